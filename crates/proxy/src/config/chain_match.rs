//! `filter_chain_match`: the criteria Plexus understands (`ChainMatch`), what a connection
//! offers (`ChainKey`) and Envoy's selection among a listener's chains (`select`). Envoy
//! narrows the chains criterion by criterion — destination port, destination IP, server name,
//! transport protocol, application protocols, direct source IP, source type, source IP, source
//! port — keeping at each step only the chains with the most specific value that matches
//! (an empty criterion matches anything, as the least specific value). It never backtracks:
//! when the most specific chains fail a later criterion the connection matches nothing.

use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::listener::v3 as l;

use super::{FieldError, FieldResult};
use crate::deny_set;

/// A CIDR block with its host bits cleared (Envoy normalizes `10.1.2.3/8` to `10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub len: u8,
}

impl Cidr {
    /// `address_prefix` and `prefix_len` (unset is 0, as in Envoy). A length beyond the
    /// family's (IPv4 /33) is rejected; Envoy 1.40 rejects it only for IPv6.
    pub fn parse(range: &CidrRange) -> FieldResult<Cidr> {
        let addr: IpAddr = range.address_prefix.parse().map_err(|_| {
            FieldError::invalid(
                "address_prefix",
                format!("{:?} is not an IP address", range.address_prefix),
            )
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = range.prefix_len.as_ref().map_or(0, |p| p.value);
        let len = u8::try_from(len)
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| {
                FieldError::invalid("prefix_len", format!("{len} exceeds {max} for {addr}"))
            })?;
        Ok(Cidr {
            addr: mask(addr, len),
            len,
        })
    }

    /// Same family and the first `len` bits equal.
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.len) == self.addr
    }
}

fn mask(ip: IpAddr, len: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4)
                .checked_shr(32 - u32::from(len))
                .and_then(|b| b.checked_shl(32 - u32::from(len)))
                .unwrap_or(0);
            IpAddr::V4(bits.into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6)
                .checked_shr(128 - u32::from(len))
                .and_then(|b| b.checked_shl(128 - u32::from(len)))
                .unwrap_or(0);
            IpAddr::V6(bits.into())
        }
    }
}

/// `source_type`: which peers a chain accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SourceType {
    #[default]
    Any,
    /// The peer is 127.0.0.1, ::1 or the connection's own destination IP.
    SameIpOrLoopback,
    External,
}

/// The `filter_chain_match` criteria Plexus understands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainMatch {
    pub port: Option<u16>,
    /// `prefix_ranges`: the connection's destination IP.
    pub destination: Vec<Cidr>,
    /// Lower-cased; `*.example.com` matches by suffix.
    pub server_names: Vec<String>,
    /// "tls" or "raw_buffer".
    pub transport: Option<String>,
    /// What the http_inspector detects (`http/1.0`, `http/1.1`, `h2c`) or ALPN names from a
    /// TLS ClientHello.
    pub application_protocols: Vec<String>,
    /// `direct_source_prefix_ranges`: the peer of the socket. Without PROXY protocol (which
    /// Plexus does not speak) it is the same address as the source.
    pub direct_source: Vec<Cidr>,
    pub source_type: SourceType,
    /// `source_prefix_ranges`.
    pub source: Vec<Cidr>,
    pub source_ports: Vec<u16>,
}

/// What a connection offers for chain selection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainKey {
    pub port: u16,
    /// The original destination of a redirected connection, else the local address.
    pub destination: Option<IpAddr>,
    /// The peer.
    pub source: Option<SocketAddr>,
    pub tls: bool,
    pub server_name: Option<String>,
    /// What `http_inspector` detected (`http/1.0`, `http/1.1`, `h2c`).
    pub application_protocol: Option<&'static str>,
    /// The ALPN list of a TLS ClientHello (`tls_inspector`).
    pub alpn: Vec<String>,
}

impl ChainMatch {
    /// Some connection would meet the same value of every criterion in both chains (an empty
    /// criterion being its own value, "any"), which Envoy rejects as "multiple filter chains
    /// with overlapping matching rules".
    pub fn overlaps(&self, other: &ChainMatch) -> bool {
        fn share<V: PartialEq>(a: &[V], b: &[V]) -> bool {
            (a.is_empty() && b.is_empty()) || a.iter().any(|v| b.contains(v))
        }
        self.port == other.port
            && share(&self.destination, &other.destination)
            && share(&self.server_names, &other.server_names)
            && self.transport == other.transport
            && share(&self.application_protocols, &other.application_protocols)
            && share(&self.direct_source, &other.direct_source)
            && self.source_type == other.source_type
            && share(&self.source, &other.source)
            && share(&self.source_ports, &other.source_ports)
    }
}

type Chains<'a, T> = Vec<&'a (ChainMatch, T)>;

/// Keep the chains with the highest score; `None` scores do not match. Chains scoring
/// `Some(0)` are the ones without the criterion.
fn keep_best<'a, T>(c: Chains<'a, T>, score: impl Fn(&ChainMatch) -> Option<u32>) -> Chains<'a, T> {
    let Some(best) = c.iter().filter_map(|(m, _)| score(m)).max() else {
        return Vec::new();
    };
    c.into_iter()
        .filter(|(m, _)| score(m) == Some(best))
        .collect()
}

/// Longest matching prefix: a chain without ranges scores 0 (any address); one with ranges
/// scores 1 + the longest of its ranges holding `ip`, and does not match without one.
fn prefix_score(ranges: &[Cidr], ip: Option<IpAddr>) -> Option<u32> {
    if ranges.is_empty() {
        return Some(0);
    }
    let ip = ip?;
    ranges
        .iter()
        .filter(|r| r.contains(ip))
        .map(|r| 1 + u32::from(r.len))
        .max()
}

/// Exact name 3, else longest `*` suffix, else no names; wildcard lengths sit between.
fn server_name_score(names: &[String], sni: &str) -> Option<u32> {
    if names.is_empty() {
        return Some(0);
    }
    if names.iter().any(|n| n == sni) {
        return Some(u32::MAX);
    }
    names
        .iter()
        .filter_map(|n| n.strip_prefix('*'))
        .filter(|suffix| sni.len() > suffix.len() && sni.ends_with(suffix))
        .map(|suffix| 1 + u32::try_from(suffix.len()).unwrap_or(u32::MAX - 2))
        .max()
}

/// Envoy's test for `SAME_IP_OR_LOOPBACK`: the peer is the canonical loopback address
/// (127.0.0.1 or ::1 exactly; 127.0.0.2 is external) or the connection's own destination IP.
fn is_same_ip_or_loopback(peer: IpAddr, destination: Option<IpAddr>) -> bool {
    peer == IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        || peer == IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        || Some(peer) == destination
}

/// `None`: no chain matches.
pub fn select<'a, T>(chains: &'a [(ChainMatch, T)], key: &ChainKey) -> Option<&'a T> {
    let mut c: Chains<'a, T> = chains.iter().collect();
    c = keep_best(c, |m| match m.port {
        None => Some(0),
        Some(p) => (p == key.port).then_some(1),
    });
    c = keep_best(c, |m| prefix_score(&m.destination, key.destination));
    let sni = key.server_name.as_deref().unwrap_or("");
    c = keep_best(c, |m| server_name_score(&m.server_names, sni));
    let proto = if key.tls { "tls" } else { "raw_buffer" };
    c = keep_best(c, |m| match m.transport.as_deref() {
        None => Some(0),
        Some(t) => (t == proto).then_some(1),
    });
    c = keep_best(c, |m| {
        let offered = |a: &String| {
            key.application_protocol == Some(a.as_str()) || key.alpn.iter().any(|p| p == a)
        };
        match m.application_protocols.as_slice() {
            [] => Some(0),
            apps => apps.iter().any(offered).then_some(1),
        }
    });
    let source_ip = key.source.map(|s| s.ip());
    c = keep_best(c, |m| prefix_score(&m.direct_source, source_ip));
    let local = source_ip.is_some_and(|ip| is_same_ip_or_loopback(ip, key.destination));
    c = keep_best(c, |m| match (m.source_type, local) {
        (SourceType::Any, _) => Some(0),
        (SourceType::SameIpOrLoopback, true) | (SourceType::External, false) => Some(1),
        _ => None,
    });
    c = keep_best(c, |m| prefix_score(&m.source, source_ip));
    let source_port = key.source.map(|s| s.port());
    c = keep_best(c, |m| match m.source_ports.as_slice() {
        [] => Some(0),
        ports => source_port.filter(|p| ports.contains(p)).map(|_| 1),
    });
    c.first().map(|(_, k)| k)
}

/// Parse one chain's `filter_chain_match`; `address_suffix` and `suffix_len` (which Envoy
/// does not implement) are rejected.
pub fn parse(m: Option<&l::FilterChainMatch>) -> FieldResult<ChainMatch> {
    let Some(m) = m else {
        return Ok(ChainMatch::default());
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
    deny_set!(address_suffix, suffix_len);
    let port = match destination_port {
        Some(p) => Some(port_value(p.value).ok_or_else(|| {
            FieldError::invalid("destination_port", format!("{} is not a port", p.value))
        })?),
        None => None,
    };
    let transport = match transport_protocol.as_str() {
        "" => None,
        t @ ("tls" | "raw_buffer") => Some(t.to_string()),
        other => {
            return Err(FieldError::unsupported(format!(
                "transport_protocol ({other})"
            )));
        }
    };
    let source_type = match l::filter_chain_match::ConnectionSourceType::try_from(*source_type) {
        Ok(l::filter_chain_match::ConnectionSourceType::Any) => SourceType::Any,
        Ok(l::filter_chain_match::ConnectionSourceType::SameIpOrLoopback) => {
            SourceType::SameIpOrLoopback
        }
        Ok(l::filter_chain_match::ConnectionSourceType::External) => SourceType::External,
        Err(_) => {
            return Err(FieldError::invalid(
                "source_type",
                format!("{source_type} is not a source type"),
            ));
        }
    };
    let ports = source_ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            port_value(*p).ok_or_else(|| {
                FieldError::invalid(format!("source_ports[{i}]"), format!("{p} is not a port"))
            })
        })
        .collect::<FieldResult<Vec<u16>>>()?;
    Ok(ChainMatch {
        port,
        destination: cidrs(prefix_ranges, "prefix_ranges")?,
        server_names: server_names
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect(),
        transport,
        application_protocols: application_protocols.clone(),
        direct_source: cidrs(direct_source_prefix_ranges, "direct_source_prefix_ranges")?,
        source_type,
        source: cidrs(source_prefix_ranges, "source_prefix_ranges")?,
        source_ports: ports,
    })
}

fn port_value(p: u32) -> Option<u16> {
    u16::try_from(p).ok().filter(|p| *p > 0)
}

fn cidrs(ranges: &[CidrRange], field: &str) -> FieldResult<Vec<Cidr>> {
    ranges
        .iter()
        .enumerate()
        .map(|(i, r)| Cidr::parse(r).map_err(|e| e.within(&format!("{field}[{i}]"))))
        .collect()
}

#[cfg(test)]
#[path = "chain_match_tests.rs"]
mod tests;
