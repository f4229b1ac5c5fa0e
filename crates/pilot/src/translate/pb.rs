//! Small builders for Envoy protobuf values used across translation (addresses, durations,
//! ADS config sources, typed filters), so the translation modules read as Istio's semantics.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{
    self as core, AggregatedConfigSource, ConfigSource, SocketAddress, address, config_source,
    socket_address,
};
use envoy_types::pb::envoy::config::listener::v3 as l;
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatcher, StringMatcher, string_matcher};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use envoy_types::pb::google::protobuf::{self as pbf, Any};
use envoy_types::util::pack_any;
use prost::{Message, Name};

/// `ip:port` as an Envoy TCP socket address.
pub fn socket(ip: &str, port: u16) -> core::Address {
    core::Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            protocol: socket_address::Protocol::Tcp as i32,
            address: ip.to_string(),
            port_specifier: Some(socket_address::PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

/// A protobuf duration.
pub fn duration(d: Duration) -> pbf::Duration {
    pbf::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// Config source pointing at the ADS stream the proxy already has.
pub fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: core::ApiVersion::V3 as i32,
        config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
            AggregatedConfigSource {},
        )),
        ..Default::default()
    }
}

/// Pack a message as `Any`.
pub fn any<T: Message + Name>(m: T) -> Any {
    pack_any(m)
}

/// A network filter with a typed config.
pub fn network_filter<T: Message + Name>(name: &str, config: T) -> l::Filter {
    l::Filter {
        name: name.into(),
        config_type: Some(l::filter::ConfigType::TypedConfig(any(config))),
    }
}

/// A listener filter with a typed config.
pub fn listener_filter<T: Message + Name>(name: &str, config: T) -> l::ListenerFilter {
    l::ListenerFilter {
        name: name.into(),
        config_type: Some(l::listener_filter::ConfigType::TypedConfig(any(config))),
        ..Default::default()
    }
}

/// A percentage 0–100 (doubles allowed) as parts per million, as Istio converts it.
pub fn percent(value: f64) -> FractionalPercent {
    let clamped = value.clamp(0.0, 100.0);
    FractionalPercent {
        numerator: (clamped * 10_000.0).round() as u32,
        denominator: fractional_percent::DenominatorType::Million as i32,
    }
}

/// An RE2 regex matcher.
pub fn regex(re: &str) -> RegexMatcher {
    RegexMatcher {
        regex: re.into(),
        ..Default::default()
    }
}

/// Exact / prefix / full-match regex string matcher.
pub fn string_match(
    exact: Option<&str>,
    prefix: Option<&str>,
    re: Option<&str>,
) -> Option<StringMatcher> {
    use string_matcher::MatchPattern as P;
    let pattern = if let Some(e) = exact {
        P::Exact(e.into())
    } else if let Some(p) = prefix {
        P::Prefix(p.into())
    } else if let Some(r) = re {
        P::SafeRegex(regex(r))
    } else {
        return None;
    };
    Some(StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    })
}

pub fn u32v(v: u32) -> pbf::UInt32Value {
    pbf::UInt32Value { value: v }
}

pub fn boolv(v: bool) -> pbf::BoolValue {
    pbf::BoolValue { value: v }
}

pub fn u64v(v: u64) -> pbf::UInt64Value {
    pbf::UInt64Value { value: v }
}
