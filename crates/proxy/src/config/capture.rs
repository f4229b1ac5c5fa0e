//! Listener fields of traffic capture (Istio's REDIRECT mode): `bind_to_port: false`
//! listeners that only receive connections handed over by a `use_original_dst` listener,
//! the `envoy.filters.listener.original_dst` listener filter, several filter chains chosen by
//! `filter_chain_match.destination_port`, and `default_filter_chain`.

use envoy_types::pb::envoy::config::listener::v3 as l;
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::google::protobuf::BoolValue;
use prost::Name;

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
    /// Chains selected by destination port, in order.
    pub matched: Vec<(u16, ListenerKind)>,
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
            default_chain: None,
        }
    }
}

/// The listener's filter chains: the chain to run when there is exactly one unmatched chain
/// (`Ok((kind, capture))`), else the matched chains and default in `capture` with `kind` the
/// default (or first) chain.
pub fn parse(
    bind_to_port: Option<&BoolValue>,
    use_original_dst: Option<&BoolValue>,
    listener_filters: &[l::ListenerFilter],
    filter_chains: &[l::FilterChain],
    default_filter_chain: Option<&l::FilterChain>,
) -> FieldResult<(ListenerKind, Capture)> {
    let mut capture = Capture {
        bind: bind_to_port.is_none_or(|b| b.value),
        use_original_dst: use_original_dst.is_some_and(|b| b.value),
        ..Capture::default()
    };
    for (i, f) in listener_filters.iter().enumerate() {
        listener_filter(f).map_err(|e| e.within(&format!("listener_filters[{i}]")))?;
        capture.original_dst_filter = true;
    }
    if let ([only], None) = (filter_chains, default_filter_chain)
        && only.filter_chain_match.is_none()
    {
        let kind = filter_chain(only).map_err(|e| e.within("filter_chains[0]"))?;
        return Ok((kind, capture));
    }
    for (i, chain) in filter_chains.iter().enumerate() {
        let at = format!("filter_chains[{i}]");
        let port = destination_port(chain.filter_chain_match.as_ref())
            .map_err(|e| e.within(&format!("{at}.filter_chain_match")))?;
        let unmatched = l::FilterChain {
            filter_chain_match: None,
            ..chain.clone()
        };
        let kind = filter_chain(&unmatched).map_err(|e| e.within(&at))?;
        capture.matched.push((port, kind));
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

fn listener_filter(f: &l::ListenerFilter) -> FieldResult<()> {
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
            Ok(())
        }
        _ => Err(FieldError::unsupported(format!(
            "typed_config ({name}; only envoy.filters.listener.original_dst)"
        ))),
    }
}

/// Only `destination_port` is understood; any other criterion is rejected.
fn destination_port(m: Option<&l::FilterChainMatch>) -> FieldResult<u16> {
    let Some(m) = m else {
        return Err(FieldError::unsupported(
            "(several filter chains need filter_chain_match.destination_port)",
        ));
    };
    let l::FilterChainMatch {
        destination_port,
        prefix_ranges,
        address_suffix,
        suffix_len,
        direct_source_prefix_ranges,
        source_type,
        source_prefix_ranges,
        source_ports,
        server_names,
        transport_protocol,
        application_protocols,
    } = m;
    deny_set!(
        prefix_ranges,
        address_suffix,
        suffix_len,
        direct_source_prefix_ranges,
        source_type,
        source_prefix_ranges,
        source_ports,
        server_names,
        transport_protocol,
        application_protocols
    );
    let port = destination_port
        .as_ref()
        .ok_or_else(|| FieldError::unsupported("(a match without destination_port)"))?
        .value;
    u16::try_from(port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| FieldError::invalid("destination_port", format!("{port} is not a port")))
}
