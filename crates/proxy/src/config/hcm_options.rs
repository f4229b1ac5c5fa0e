//! Connection manager options that change a request before routing: `normalize_path`,
//! `http_protocol_options` (HTTP/1.1 codec; only `allow_absolute_url`), `use_remote_address`,
//! `internal_address_config` (which clients are internal), `xff_num_trusted_hops`,
//! `stream_idle_timeout`, `common_http_protocol_options.max_stream_duration` (the only field of
//! that message Plexus implements) and the x-request-id fields (`generate_request_id`,
//! `preserve_external_request_id`, `always_set_request_id_in_response`, and
//! `request_id_extension` when it is the default UUID extension), `server_name` /
//! `server_header_transformation`, and the router's `suppress_envoy_headers`. Runtime side in
//! `crate::downstream`, `crate::request_id`, `crate::idle` and `crate::envoy_headers`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;

use super::{FieldError, FieldResult, duration};
use crate::deny_set;

/// Envoy's default `stream_idle_timeout` (5 minutes).
pub const DEFAULT_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerOptions {
    pub normalize_path: bool,
    /// Envoy's default is true: absolute-form targets are split into authority and path.
    pub allow_absolute_url: bool,
    pub use_remote_address: bool,
    /// `internal_address_config`; `None` (unset) means no address is internal, as in Envoy 1.40.
    pub internal: Option<Arc<InternalAddresses>>,
    /// `None` disables it (`0s`).
    pub stream_idle_timeout: Option<Duration>,
    /// `common_http_protocol_options.max_stream_duration`; `None` when unset or `0s`.
    pub max_stream_duration: Option<Duration>,
    /// How many proxies in front of this one append trusted `x-forwarded-for` entries.
    pub xff_num_trusted_hops: u32,
    pub request_id: RequestIdOptions,
    /// The `server` response header (`server_name`, `server_header_transformation`).
    pub server: crate::envoy_headers::ServerHeader,
    /// The router adds `x-envoy-upstream-service-time` and `x-envoy-expected-rq-timeout-ms`
    /// (false with the router's `suppress_envoy_headers`).
    pub envoy_headers: bool,
}

/// What the connection manager does with `x-request-id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestIdOptions {
    /// `generate_request_id` (Envoy's default: true).
    pub generate: bool,
    /// `preserve_external_request_id`: an edge request keeps its own id.
    pub preserve_external: bool,
    /// `always_set_request_id_in_response`.
    pub in_response: bool,
}

impl Default for RequestIdOptions {
    fn default() -> Self {
        RequestIdOptions {
            generate: true,
            preserve_external: false,
            in_response: false,
        }
    }
}

/// Which downstream addresses make a request internal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InternalAddresses {
    pub unix_sockets: bool,
    /// (network address, prefix length).
    pub cidrs: Vec<(IpAddr, u8)>,
}

impl InternalAddresses {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.cidrs.iter().any(|&(net, len)| in_cidr(ip, net, len))
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

impl Default for ManagerOptions {
    fn default() -> Self {
        ManagerOptions {
            normalize_path: false,
            allow_absolute_url: true,
            use_remote_address: false,
            internal: None,
            stream_idle_timeout: Some(DEFAULT_STREAM_IDLE_TIMEOUT),
            xff_num_trusted_hops: 0,
            request_id: RequestIdOptions::default(),
            max_stream_duration: None,
            server: crate::envoy_headers::ServerHeader::default(),
            envoy_headers: true,
        }
    }
}

impl ManagerOptions {
    /// Reads only the fields this module owns; the caller rejects the ones nobody handles.
    pub fn parse(m: &hcm::HttpConnectionManager) -> FieldResult<Self> {
        let allow_absolute_url = match &m.http_protocol_options {
            Some(o) => http1_options(o).map_err(|e| e.within("http_protocol_options"))?,
            None => true,
        };
        let internal = match &m.internal_address_config {
            Some(c) => Some(Arc::new(
                internal_addresses(c).map_err(|e| e.within("internal_address_config"))?,
            )),
            None => None,
        };
        let stream_idle_timeout = match &m.stream_idle_timeout {
            Some(d) => duration(d)
                .map_err(|e| e.within("stream_idle_timeout"))?
                .into(),
            None => Some(DEFAULT_STREAM_IDLE_TIMEOUT),
        };
        if let Some(ext) = &m.request_id_extension {
            uuid_extension(ext).map_err(|e| e.within("request_id_extension"))?;
        }
        let max_stream_duration = match &m.common_http_protocol_options {
            Some(o) => stream_duration(o).map_err(|e| e.within("common_http_protocol_options"))?,
            None => None,
        };
        Ok(ManagerOptions {
            max_stream_duration,
            // Envoy's runtime default for an unset `normalize_path` is false.
            normalize_path: m.normalize_path.as_ref().is_some_and(|b| b.value),
            allow_absolute_url,
            use_remote_address: m.use_remote_address.as_ref().is_some_and(|b| b.value),
            internal,
            stream_idle_timeout: stream_idle_timeout.filter(|d: &Duration| !d.is_zero()),
            xff_num_trusted_hops: m.xff_num_trusted_hops,
            request_id: RequestIdOptions {
                generate: m.generate_request_id.as_ref().is_none_or(|b| b.value),
                preserve_external: m.preserve_external_request_id,
                in_response: m.always_set_request_id_in_response,
            },
            server: crate::envoy_headers::ServerHeader::parse(m)?,
            // Set from the router filter's options by the caller.
            envoy_headers: true,
        })
    }

    /// Whether a request whose (final) remote address is `ip` is internal.
    pub fn is_internal(&self, ip: IpAddr) -> bool {
        self.internal.as_ref().is_some_and(|c| c.contains(ip))
    }
}

/// The router filter's options: only `suppress_envoy_headers`. Returns whether the router
/// adds its `x-envoy-*` headers (`x-envoy-expected-rq-timeout-ms`,
/// `x-envoy-upstream-service-time`; Plexus makes none of the others the option suppresses).
pub fn router_options(
    r: &envoy_types::pb::envoy::extensions::filters::http::router::v3::Router,
) -> FieldResult<bool> {
    let envoy_types::pb::envoy::extensions::filters::http::router::v3::Router {
        dynamic_stats,
        start_child_span,
        upstream_log,
        upstream_log_options,
        suppress_envoy_headers,
        strict_check_headers,
        respect_expected_rq_timeout,
        suppress_grpc_request_failure_code_stats,
        upstream_http_filters,
        reject_connect_request_early_data,
    } = r;
    deny_set!(
        dynamic_stats,
        start_child_span,
        upstream_log,
        upstream_log_options,
        strict_check_headers,
        respect_expected_rq_timeout,
        suppress_grpc_request_failure_code_stats,
        upstream_http_filters,
        reject_connect_request_early_data
    );
    Ok(!suppress_envoy_headers)
}

/// Only Envoy's default request-id extension is accepted: UUIDs with the trace reason packed
/// and used for sampling (the behaviour `crate::request_id` implements).
fn uuid_extension(ext: &hcm::RequestIdExtension) -> FieldResult<()> {
    use envoy_types::pb::envoy::extensions::request_id::uuid::v3::UuidRequestIdConfig;
    use prost::Name;
    let Some(any) = &ext.typed_config else {
        return Err(FieldError::invalid("typed_config", "required"));
    };
    if any.type_url != UuidRequestIdConfig::type_url() {
        return Err(FieldError::unsupported(format!(
            "typed_config ({}; only the UUID request ID extension)",
            any.type_url
        )));
    }
    let UuidRequestIdConfig {
        pack_trace_reason,
        use_request_id_for_trace_sampling,
    } = super::unpack_field(any, "typed_config")?;
    let off = |b: &Option<envoy_types::pb::google::protobuf::BoolValue>| {
        b.as_ref().is_some_and(|b| !b.value)
    };
    if off(&pack_trace_reason) {
        return Err(FieldError::unsupported("typed_config.pack_trace_reason"));
    }
    if off(&use_request_id_for_trace_sampling) {
        return Err(FieldError::unsupported(
            "typed_config.use_request_id_for_trace_sampling",
        ));
    }
    Ok(())
}

/// The connection manager's `common_http_protocol_options`: only `max_stream_duration`.
fn stream_duration(o: &core::HttpProtocolOptions) -> FieldResult<Option<Duration>> {
    let core::HttpProtocolOptions {
        idle_timeout,
        max_connection_duration,
        max_connection_duration_jitter,
        max_headers_count,
        max_response_headers_kb,
        max_stream_duration,
        headers_with_underscores_action,
        max_requests_per_connection,
    } = o;
    deny_set!(
        idle_timeout,
        max_connection_duration,
        max_connection_duration_jitter,
        max_headers_count,
        max_response_headers_kb,
        headers_with_underscores_action,
        max_requests_per_connection
    );
    match max_stream_duration {
        Some(d) => Ok(
            Some(duration(d).map_err(|e| e.within("max_stream_duration"))?)
                .filter(|d| !d.is_zero()),
        ),
        None => Ok(None),
    }
}

fn internal_addresses(
    c: &hcm::http_connection_manager::InternalAddressConfig,
) -> FieldResult<InternalAddresses> {
    let hcm::http_connection_manager::InternalAddressConfig {
        unix_sockets,
        cidr_ranges,
    } = c;
    let mut cidrs = Vec::with_capacity(cidr_ranges.len());
    for (i, r) in cidr_ranges.iter().enumerate() {
        cidrs.push(cidr(r).map_err(|e| e.within(&format!("cidr_ranges[{i}]")))?);
    }
    Ok(InternalAddresses {
        unix_sockets: *unix_sockets,
        cidrs,
    })
}

fn cidr(r: &core::CidrRange) -> FieldResult<(IpAddr, u8)> {
    let ip: IpAddr = r.address_prefix.parse().map_err(|_| {
        FieldError::invalid(
            "address_prefix",
            format!("{:?} is not an IP address", r.address_prefix),
        )
    })?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = r.prefix_len.as_ref().map_or(0, |v| v.value);
    let len = u8::try_from(len)
        .ok()
        .filter(|l| u32::from(*l) <= max)
        .ok_or_else(|| FieldError::invalid("prefix_len", format!("{len} is more than {max}")))?;
    Ok((ip, len))
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
    use envoy_types::pb::google::protobuf::{BoolValue, Duration as PbDuration, UInt32Value};

    #[test]
    fn defaults_and_rejections() {
        let d = ManagerOptions::parse(&hcm::HttpConnectionManager::default());
        assert_eq!(d, Ok(ManagerOptions::default()));
        let t = BoolValue { value: true };
        let m = hcm::HttpConnectionManager {
            http_protocol_options: Some(core::Http1ProtocolOptions {
                allow_absolute_url: Some(BoolValue { value: false }),
                ..Default::default()
            }),
            normalize_path: Some(t),
            use_remote_address: Some(t),
            stream_idle_timeout: Some(PbDuration::default()),
            ..Default::default()
        };
        assert_eq!(
            ManagerOptions::parse(&m),
            Ok(ManagerOptions {
                normalize_path: true,
                allow_absolute_url: false,
                use_remote_address: true,
                internal: None,
                stream_idle_timeout: None,
                ..ManagerOptions::default()
            })
        );
        let trailers = hcm::HttpConnectionManager {
            http_protocol_options: Some(core::Http1ProtocolOptions {
                enable_trailers: true,
                ..Default::default()
            }),
            ..Default::default()
        };
        let err = ManagerOptions::parse(&trailers).map_err(|e| e.field);
        assert_eq!(
            err,
            Err("http_protocol_options.enable_trailers".to_string())
        );
    }

    #[test]
    fn common_options_take_max_stream_duration_only() {
        let with = |o: core::HttpProtocolOptions| hcm::HttpConnectionManager {
            common_http_protocol_options: Some(o),
            ..Default::default()
        };
        let limited = with(core::HttpProtocolOptions {
            max_stream_duration: Some(PbDuration {
                seconds: 2,
                nanos: 0,
            }),
            ..Default::default()
        });
        let o = ManagerOptions::parse(&limited).expect("valid");
        assert_eq!(o.max_stream_duration, Some(Duration::from_secs(2)));
        let off = with(core::HttpProtocolOptions {
            max_stream_duration: Some(PbDuration::default()),
            ..Default::default()
        });
        let o = ManagerOptions::parse(&off).expect("valid");
        assert_eq!(o.max_stream_duration, None, "0s disables it");
        let idle = with(core::HttpProtocolOptions {
            idle_timeout: Some(PbDuration::default()),
            ..Default::default()
        });
        assert_eq!(
            ManagerOptions::parse(&idle).map_err(|e| e.field),
            Err("common_http_protocol_options.idle_timeout".to_string())
        );
    }

    #[test]
    fn router_accepts_suppress_envoy_headers_only() {
        use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
        let quiet = Router {
            suppress_envoy_headers: true,
            ..Default::default()
        };
        assert_eq!(router_options(&quiet), Ok(false));
        assert_eq!(router_options(&Router::default()), Ok(true));
        let strict = Router {
            respect_expected_rq_timeout: true,
            ..Default::default()
        };
        assert_eq!(
            router_options(&strict).map_err(|e| e.field),
            Err("respect_expected_rq_timeout".to_string())
        );
    }

    #[test]
    fn internal_addresses_match_cidrs() {
        let range = |p: &str, l: u32| core::CidrRange {
            address_prefix: p.into(),
            prefix_len: Some(UInt32Value { value: l }),
        };
        let m = hcm::HttpConnectionManager {
            internal_address_config: Some(hcm::http_connection_manager::InternalAddressConfig {
                unix_sockets: false,
                cidr_ranges: vec![range("10.0.0.0", 8), range("fd00::", 8)],
            }),
            ..Default::default()
        };
        let o = ManagerOptions::parse(&m).expect("valid");
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(o.is_internal(ip("10.9.8.7")));
        assert!(o.is_internal(ip("::ffff:10.1.1.1")));
        assert!(o.is_internal(ip("fd12::1")));
        assert!(!o.is_internal(ip("11.0.0.1")));
        assert!(!o.is_internal(ip("127.0.0.1")));
        assert!(!ManagerOptions::default().is_internal(ip("127.0.0.1")));
        let bad = hcm::HttpConnectionManager {
            internal_address_config: Some(hcm::http_connection_manager::InternalAddressConfig {
                unix_sockets: false,
                cidr_ranges: vec![range("10.0.0.0", 33)],
            }),
            ..Default::default()
        };
        assert_eq!(
            ManagerOptions::parse(&bad).map_err(|e| e.field),
            Err("internal_address_config.cidr_ranges[0].prefix_len".to_string())
        );
    }

    #[test]
    fn request_id_fields_and_extension() {
        use envoy_types::pb::envoy::extensions::request_id::uuid::v3::UuidRequestIdConfig;
        let m = hcm::HttpConnectionManager {
            generate_request_id: Some(BoolValue { value: false }),
            preserve_external_request_id: true,
            always_set_request_id_in_response: true,
            xff_num_trusted_hops: 2,
            ..Default::default()
        };
        let o = ManagerOptions::parse(&m).expect("valid");
        assert_eq!(
            o.request_id,
            RequestIdOptions {
                generate: false,
                preserve_external: true,
                in_response: true
            }
        );
        assert_eq!(o.xff_num_trusted_hops, 2);
        let with_ext = |cfg: UuidRequestIdConfig| hcm::HttpConnectionManager {
            request_id_extension: Some(hcm::RequestIdExtension {
                typed_config: Some(envoy_types::util::pack_any(cfg)),
            }),
            ..Default::default()
        };
        let explicit_defaults = UuidRequestIdConfig {
            pack_trace_reason: Some(BoolValue { value: true }),
            use_request_id_for_trace_sampling: None,
        };
        assert_eq!(
            ManagerOptions::parse(&with_ext(explicit_defaults)),
            Ok(ManagerOptions::default())
        );
        let unpacked = UuidRequestIdConfig {
            pack_trace_reason: Some(BoolValue { value: false }),
            use_request_id_for_trace_sampling: None,
        };
        assert_eq!(
            ManagerOptions::parse(&with_ext(unpacked)).map_err(|e| e.field),
            Err("request_id_extension.typed_config.pack_trace_reason".to_string())
        );
        let other = hcm::HttpConnectionManager {
            request_id_extension: Some(hcm::RequestIdExtension {
                typed_config: Some(envoy_types::util::pack_any(BoolValue { value: true })),
            }),
            ..Default::default()
        };
        let field = ManagerOptions::parse(&other).map_err(|e| e.field);
        assert!(
            field
                .as_ref()
                .is_err_and(|f| f.starts_with("request_id_extension.typed_config (")),
            "{field:?}"
        );
    }
}
