//! Connection manager options that change a request before routing: `normalize_path`,
//! `http_protocol_options` (HTTP/1.1 codec; only `allow_absolute_url`) and
//! `use_remote_address`. Runtime side in `crate::downstream`.

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::google::protobuf::BoolValue;

use super::FieldResult;
use crate::deny_set;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagerOptions {
    pub normalize_path: bool,
    /// Envoy's default is true: absolute-form targets are split into authority and path.
    pub allow_absolute_url: bool,
    pub use_remote_address: bool,
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            normalize_path: false,
            allow_absolute_url: true,
            use_remote_address: false,
        }
    }
}

impl ManagerOptions {
    pub fn parse(
        http1: Option<&core::Http1ProtocolOptions>,
        normalize_path: Option<&BoolValue>,
        use_remote_address: Option<&BoolValue>,
    ) -> FieldResult<Self> {
        let allow_absolute_url = match http1 {
            Some(o) => http1_options(o).map_err(|e| e.within("http_protocol_options"))?,
            None => true,
        };
        Ok(ManagerOptions {
            // Envoy's runtime default for an unset `normalize_path` is false.
            normalize_path: normalize_path.is_some_and(|b| b.value),
            allow_absolute_url,
            use_remote_address: use_remote_address.is_some_and(|b| b.value),
        })
    }
}

fn http1_options(o: &core::Http1ProtocolOptions) -> FieldResult<bool> {
    let core::Http1ProtocolOptions {
        allow_absolute_url,
        accept_http_10,
        default_host_for_http_10,
        header_key_format,
        enable_trailers,
        allow_chunked_length,
        override_stream_error_on_invalid_http_message,
        send_fully_qualified_url,
        use_balsa_parser,
        allow_custom_methods,
        ignore_http_11_upgrade,
    } = o;
    deny_set!(
        accept_http_10,
        default_host_for_http_10,
        header_key_format,
        enable_trailers,
        allow_chunked_length,
        override_stream_error_on_invalid_http_message,
        send_fully_qualified_url,
        use_balsa_parser,
        allow_custom_methods,
        ignore_http_11_upgrade
    );
    Ok(allow_absolute_url.as_ref().is_none_or(|b| b.value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_rejections() {
        let d = ManagerOptions::parse(None, None, None);
        assert_eq!(d, Ok(ManagerOptions::default()));
        let off = core::Http1ProtocolOptions {
            allow_absolute_url: Some(BoolValue { value: false }),
            ..Default::default()
        };
        let t = BoolValue { value: true };
        let got = ManagerOptions::parse(Some(&off), Some(&t), Some(&t));
        assert_eq!(
            got,
            Ok(ManagerOptions {
                normalize_path: true,
                allow_absolute_url: false,
                use_remote_address: true,
            })
        );
        let trailers = core::Http1ProtocolOptions {
            enable_trailers: true,
            ..Default::default()
        };
        let err = ManagerOptions::parse(Some(&trailers), None, None).map_err(|e| e.field);
        assert_eq!(
            err,
            Err("http_protocol_options.enable_trailers".to_string())
        );
    }
}
