//! STRICT_DNS and LOGICAL_DNS clusters: the load assignment names hosts, which are resolved (and
//! re-resolved every `dns_refresh_rate`, Envoy's default 5 s) into endpoints. A LOGICAL_DNS
//! cluster has exactly one host and uses only the first address of each resolution, as Envoy
//! does. Runtime in `crate::dns`.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as e;

use super::{FieldError, FieldResult, duration};

/// Envoy's default `dns_refresh_rate`.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsTargets {
    pub hosts: Vec<DnsHost>,
    pub refresh: Duration,
    pub family: DnsFamily,
    /// LOGICAL_DNS: one host, and only the first address of each answer is an endpoint.
    pub logical: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsHost {
    pub host: String,
    pub port: u16,
    pub weight: u32,
    pub priority: u32,
}

/// `dns_lookup_family`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsFamily {
    /// IPv6 addresses when there are any, else IPv4.
    Auto,
    V4Only,
    V6Only,
    /// IPv4 addresses when there are any, else IPv6.
    V4Preferred,
    All,
}

impl DnsFamily {
    pub fn parse(v: i32) -> FieldResult<Self> {
        Ok(match v {
            0 => DnsFamily::Auto,
            1 => DnsFamily::V4Only,
            2 => DnsFamily::V6Only,
            3 => DnsFamily::V4Preferred,
            4 => DnsFamily::All,
            n => {
                return Err(FieldError::invalid(
                    "dns_lookup_family",
                    format!("unknown value {n}"),
                ));
            }
        })
    }

    /// The addresses Envoy keeps from one resolution.
    pub fn pick(self, addrs: &[std::net::IpAddr]) -> Vec<std::net::IpAddr> {
        let (v4, v6): (Vec<_>, Vec<_>) = addrs.iter().copied().partition(|a| a.is_ipv4());
        match self {
            DnsFamily::V4Only => v4,
            DnsFamily::V6Only => v6,
            DnsFamily::Auto if !v6.is_empty() => v6,
            DnsFamily::Auto => v4,
            DnsFamily::V4Preferred if !v4.is_empty() => v4,
            DnsFamily::V4Preferred => v6,
            DnsFamily::All => addrs.to_vec(),
        }
    }
}

/// The hosts of a STRICT_DNS cluster's load assignment. Every other endpoint field is checked
/// by the same rules as static endpoints (`validate` gets the endpoint with its address
/// replaced by an IP).
pub fn targets(
    la: &e::ClusterLoadAssignment,
    refresh: Option<&envoy_types::pb::google::protobuf::Duration>,
    family: i32,
    logical: bool,
    validate: impl Fn(&e::LbEndpoint) -> FieldResult<super::Endpoint>,
) -> FieldResult<DnsTargets> {
    if logical {
        let one = la.endpoints.len() == 1 && la.endpoints[0].lb_endpoints.len() == 1;
        if !one {
            return Err(FieldError::invalid(
                "load_assignment.endpoints",
                "a LOGICAL_DNS cluster needs exactly one locality with exactly one endpoint",
            ));
        }
    }
    let mut hosts = Vec::new();
    for (i, group) in la.endpoints.iter().enumerate() {
        for (j, lbe) in group.lb_endpoints.iter().enumerate() {
            let at = format!("load_assignment.endpoints[{i}].lb_endpoints[{j}]");
            let (host, port, probe) = host_of(lbe).map_err(|err| err.within(&at))?;
            let ep = validate(&probe).map_err(|err| err.within(&at))?;
            hosts.push(DnsHost {
                host,
                port,
                weight: ep.weight,
                priority: group.priority,
            });
        }
    }
    let refresh = match refresh {
        Some(d) => duration(d).map_err(|err| err.within("dns_refresh_rate"))?,
        None => DEFAULT_REFRESH,
    };
    if refresh.is_zero() {
        return Err(FieldError::invalid("dns_refresh_rate", "must be positive"));
    }
    Ok(DnsTargets {
        hosts,
        refresh,
        family: DnsFamily::parse(family)?,
        logical,
    })
}

/// (host, port, the endpoint with `0.0.0.0` in place of the host, for validation).
fn host_of(lbe: &e::LbEndpoint) -> FieldResult<(String, u16, e::LbEndpoint)> {
    let mut probe = lbe.clone();
    let Some(e::lb_endpoint::HostIdentifier::Endpoint(ep)) = probe.host_identifier.as_mut() else {
        return Err(FieldError::invalid("endpoint", "required"));
    };
    let Some(core::Address {
        address: Some(core::address::Address::SocketAddress(sa)),
    }) = ep.address.as_mut()
    else {
        return Err(FieldError::invalid(
            "endpoint.address",
            "a socket address is required",
        ));
    };
    let host = std::mem::replace(&mut sa.address, "0.0.0.0".into());
    let port = match sa.port_specifier {
        Some(core::socket_address::PortSpecifier::PortValue(p)) => u16::try_from(p)
            .map_err(|_| FieldError::invalid("endpoint.address.port_value", "not a port"))?,
        _ => {
            return Err(FieldError::invalid(
                "endpoint.address.port_value",
                "required",
            ));
        }
    };
    if host.is_empty() {
        return Err(FieldError::invalid("endpoint.address.address", "required"));
    }
    Ok((host, port, probe))
}
