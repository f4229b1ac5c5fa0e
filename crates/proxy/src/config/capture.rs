//! Listener fields of traffic capture (Istio's REDIRECT mode): `bind_to_port: false`
//! listeners that only receive connections handed over by a `use_original_dst` listener,
//! the `envoy.filters.listener.original_dst` listener filter, several filter chains chosen by
//! `filter_chain_match` (see `chain_match`), and `default_filter_chain`. Also the inspecting
//! listener filters (`tls_inspector`, `http_inspector`) and their `listener_filters_timeout`.

use envoy_types::pb::envoy::config::listener::v3 as l;
use std::time::Duration;

use envoy_types::pb::envoy::extensions::filters::listener::http_inspector::v3::HttpInspector;
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::google::protobuf::{self as pbuf, BoolValue};
use prost::Name;

use super::chain_match::parse as chain_match;
pub use super::chain_match::{ChainKey, ChainMatch, select};
use super::listener::{ListenerKind, filter_chain};
use super::{FieldError, FieldResult, unpack_field};
use crate::deny_set;

#[derive(Debug, Clone, PartialEq)]
pub struct Capture {
    /// `bind_to_port` (default true); an unbound listener only gets handed-over connections.
    pub bind: bool,
    /// Hand accepted connections to the listener for their SO_ORIGINAL_DST.
    pub use_original_dst: bool,
    /// `envoy.filters.listener.original_dst`: the connection's destination is SO_ORIGINAL_DST.
    pub original_dst_filter: bool,
    /// Chains with a `filter_chain_match`, in order.
    pub matched: Vec<(ChainMatch, ListenerKind)>,
    /// Peek for a TLS ClientHello before choosing a chain (`tls_inspector`, or a chain that
    /// matches on `server_names` / `transport_protocol`, for which Envoy adds the inspector).
    pub inspect_tls: bool,
    /// `http_inspector`: tell HTTP/1.x and the h2c preface from other bytes.
    pub inspect_http: bool,
    /// `listener_filters_timeout` (Envoy's default 15 s; `None` for `0s`, which waits forever).
    pub filters_timeout: Option<Duration>,
    /// `continue_on_listener_filters_timeout`: on timeout use the chain for opaque TCP instead
    /// of closing the connection.
    pub continue_on_timeout: bool,
    /// Used when no chain matches.
    pub default_chain: Option<ListenerKind>,
}

impl Default for Capture {
    fn default() -> Self {
        Capture {
            bind: true,
            use_original_dst: false,
            original_dst_filter: false,
            matched: Vec::new(),
            inspect_tls: false,
            inspect_http: false,
            filters_timeout: Some(DEFAULT_FILTERS_TIMEOUT),
            continue_on_timeout: false,
            default_chain: None,
        }
    }
}

/// Envoy's `listener_filters_timeout` when unset.
pub const DEFAULT_FILTERS_TIMEOUT: Duration = Duration::from_secs(15);

/// The listener's filter chains: the chain to run when there is exactly one unmatched chain
/// (`Ok((kind, capture))`), else the matched chains and default in `capture` with `kind` the
/// default (or first) chain.
pub fn parse(
    bind_to_port: Option<&BoolValue>,
    filters_timeout: Option<&pbuf::Duration>,
    continue_on_timeout: bool,
    use_original_dst: Option<&BoolValue>,
    listener_filters: &[l::ListenerFilter],
    filter_chains: &[l::FilterChain],
    default_filter_chain: Option<&l::FilterChain>,
) -> FieldResult<(ListenerKind, Capture)> {
    let mut capture = Capture {
        bind: bind_to_port.is_none_or(|b| b.value),
        use_original_dst: use_original_dst.is_some_and(|b| b.value),
        continue_on_timeout,
        ..Capture::default()
    };
    if let Some(t) = filters_timeout {
        let t = super::duration(t).map_err(|e| e.within("listener_filters_timeout"))?;
        capture.filters_timeout = (!t.is_zero()).then_some(t);
    }
    for (i, f) in listener_filters.iter().enumerate() {
        match listener_filter(f).map_err(|e| e.within(&format!("listener_filters[{i}]")))? {
            Inspector::OriginalDst => capture.original_dst_filter = true,
            Inspector::Tls => capture.inspect_tls = true,
            Inspector::Http => capture.inspect_http = true,
        }
    }
    if let ([only], None) = (filter_chains, default_filter_chain)
        && only.filter_chain_match.is_none()
    {
        let kind = filter_chain(only).map_err(|e| e.within("filter_chains[0]"))?;
        return Ok((kind, capture));
    }
    for (i, chain) in filter_chains.iter().enumerate() {
        let at = format!("filter_chains[{i}]");
        let m = chain_match(chain.filter_chain_match.as_ref())
            .map_err(|e| e.within(&format!("{at}.filter_chain_match")))?;
        capture.inspect_tls |= !m.server_names.is_empty() || m.transport.is_some();
        let unmatched = l::FilterChain {
            filter_chain_match: None,
            ..chain.clone()
        };
        let kind = filter_chain(&unmatched).map_err(|e| e.within(&at))?;
        if let Some(j) = capture
            .matched
            .iter()
            .position(|(prev, _)| prev.overlaps(&m))
        {
            return Err(FieldError::invalid(
                format!("{at}.filter_chain_match"),
                format!(
                    "filter_chains[{j}] has overlapping matching rules (Envoy rejects them too)"
                ),
            ));
        }
        capture.matched.push((m, kind));
    }
    if let Some(d) = default_filter_chain {
        if d.filter_chain_match.is_some() {
            return Err(FieldError::invalid(
                "default_filter_chain.filter_chain_match",
                "the default chain has no match",
            ));
        }
        capture.default_chain =
            Some(filter_chain(d).map_err(|e| e.within("default_filter_chain"))?);
    }
    let kind = capture
        .default_chain
        .clone()
        .or_else(|| capture.matched.first().map(|(_, k)| k.clone()))
        .ok_or_else(|| FieldError::invalid("filter_chains", "a listener needs a filter chain"))?;
    Ok((kind, capture))
}

enum Inspector {
    OriginalDst,
    Tls,
    Http,
}

fn listener_filter(f: &l::ListenerFilter) -> FieldResult<Inspector> {
    let l::ListenerFilter {
        name,
        filter_disabled,
        config_type,
    } = f;
    deny_set!(filter_disabled);
    match config_type {
        Some(l::listener_filter::ConfigType::TypedConfig(any))
            if any.type_url == OriginalDst::type_url() =>
        {
            let cfg: OriginalDst = unpack_field(any, "typed_config")?;
            let OriginalDst {} = cfg;
            Ok(Inspector::OriginalDst)
        }
        Some(l::listener_filter::ConfigType::TypedConfig(any))
            if any.type_url == TlsInspector::type_url() =>
        {
            let cfg: TlsInspector = unpack_field(any, "typed_config")?;
            let TlsInspector {
                enable_ja3_fingerprinting,
                enable_ja4_fingerprinting,
                initial_read_buffer_size,
                close_connection_on_client_hello_parsing_errors,
                max_client_hello_size,
            } = cfg;
            deny_set!(
                enable_ja3_fingerprinting,
                enable_ja4_fingerprinting,
                initial_read_buffer_size,
                close_connection_on_client_hello_parsing_errors,
                max_client_hello_size
            );
            Ok(Inspector::Tls)
        }
        Some(l::listener_filter::ConfigType::TypedConfig(any))
            if any.type_url == HttpInspector::type_url() =>
        {
            let cfg: HttpInspector = unpack_field(any, "typed_config")?;
            let HttpInspector {} = cfg;
            Ok(Inspector::Http)
        }
        _ => Err(FieldError::unsupported(format!(
            "typed_config ({name}; only envoy.filters.listener.original_dst, tls_inspector \
             and http_inspector)"
        ))),
    }
}
