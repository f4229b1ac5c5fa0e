//! TCP and TLS traffic (istio-api.md §3.10): a service port without HTTP gets `tcp_proxy`
//! to its cluster, or to the first applicable VirtualService `tcp` route; TLS ports with
//! `tls` routes get one filter chain per SNI match. `destinationSubnets` of either become
//! `prefix_ranges` on the chain.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::pb::google::protobuf::UInt32Value;
use plexus_api::Object;
use plexus_api::kinds::{L4MatchAttributes, RouteDestination, TlsMatchAttributes, VirtualService};
use plexus_model::{Config, Service, selects};

use super::route_action::target;
use super::route_match::{Site, bound_to};
use super::scope::Egress;
use super::{Ctx, destination_rule, outbound_cluster_name, pb};

pub const TCP_PROXY: &str = "envoy.filters.network.tcp_proxy";
/// Istio's default TCP idle timeout.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Filter chains for a non-HTTP service port at a sidecar.
pub(crate) fn service_chains(
    ctx: &Ctx<'_>,
    egress: &Egress<'_>,
    svc: &Service,
    port: u16,
) -> Vec<FilterChain> {
    let site = Site {
        port: Some(port),
        gateway: None,
    };
    let vs = egress.virtual_service_for(&svc.hostname);
    let is_tls = svc.port(port).is_some_and(|p| p.protocol.is_tls());
    if let Some(vs) = vs {
        if is_tls && !vs.spec.tls.is_empty() {
            let chains = tls_chains(ctx, vs, &site);
            if !chains.is_empty() {
                return chains;
            }
        }
        let chains = tcp_chains(ctx, vs, &site);
        if chains
            .last()
            .is_some_and(|c| c.filter_chain_match.is_none())
        {
            return chains;
        }
        if !chains.is_empty() {
            // Only `destinationSubnets` chains: other connections go to the service, as in
            // Istio.
            return [chains, vec![default_chain(ctx, svc, port)]].concat();
        }
    }
    vec![default_chain(ctx, svc, port)]
}

/// The service's own cluster for connections no route takes.
fn default_chain(ctx: &Ctx<'_>, svc: &Service, port: u16) -> FilterChain {
    let cluster = outbound_cluster_name(port, "", &svc.hostname);
    let idle = idle_timeout(ctx, svc, port);
    chain(None, proxy(&cluster, vec![(cluster.clone(), 1)], idle))
}

/// Chains of the first `tcp` routes that apply, as Istio builds them: an applicable match
/// with `destinationSubnets` gives a chain matching those CIDRs (`prefix_ranges`, which Envoy
/// picks by longest prefix), and the first route applying without subnets (no match, or a
/// match without them) gives a chain for every other connection and ends the list. A CIDR
/// already claimed by an earlier route is left out (Envoy rejects two chains with the same
/// match), so the first route wins as in Istio. Empty: no route applies.
pub(crate) fn tcp_chains(
    ctx: &Ctx<'_>,
    vs: &Config<VirtualService>,
    site: &Site,
) -> Vec<FilterChain> {
    let mut out = Vec::new();
    let mut claimed = BTreeSet::new();
    for (i, r) in vs.spec.tcp.iter().enumerate() {
        let field = format!("spec.tcp[{i}]");
        let mut subnets: Vec<Vec<String>> = Vec::new();
        let mut catch_all = r.r#match.is_empty();
        for (j, m) in r.r#match.iter().enumerate() {
            let at = format!("{field}.match[{j}]");
            if !l4_applies(ctx, &vs.object, &at, m, vs, site) {
                continue;
            }
            match parse_subnets(ctx, &vs.object, &at, &m.destination_subnets) {
                Some(cidrs) if cidrs.is_empty() => {
                    catch_all = true;
                    break;
                }
                Some(cidrs) => subnets.push(cidrs),
                None => {}
            }
        }
        if subnets.is_empty() && !catch_all {
            continue;
        }
        let Some(proxy) = destinations(ctx, &vs.object, &field, &r.route, site) else {
            break;
        };
        for cidrs in subnets {
            let fresh: Vec<String> = cidrs
                .into_iter()
                .filter(|c| claimed.insert(c.clone()))
                .collect();
            if !fresh.is_empty() {
                out.push(chain(Some(prefix_match(&fresh)), proxy.clone()));
            }
        }
        if catch_all {
            out.push(chain(None, proxy));
            break;
        }
    }
    out
}

/// One chain per applicable `tls` match: SNI names (and `destinationSubnets` as
/// `prefix_ranges`) → the route's destinations. A name already served for a CIDR (or for
/// any address) by an earlier match is left out there.
pub(crate) fn tls_chains(
    ctx: &Ctx<'_>,
    vs: &Config<VirtualService>,
    site: &Site,
) -> Vec<FilterChain> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, r) in vs.spec.tls.iter().enumerate() {
        let field = format!("spec.tls[{i}]");
        for (j, m) in r.r#match.iter().enumerate() {
            let at = format!("{field}.match[{j}]");
            if !tls_applies(ctx, m, vs, site) {
                continue;
            }
            let Some(cidrs) = parse_subnets(ctx, &vs.object, &at, &m.destination_subnets) else {
                continue;
            };
            // Group the names by the CIDRs still free for them: one chain per group.
            let ranges: Vec<Option<&String>> = if cidrs.is_empty() {
                vec![None]
            } else {
                cidrs.iter().map(Some).collect()
            };
            let mut groups: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
            for name in &m.sni_hosts {
                let free: Vec<Option<&String>> = ranges
                    .iter()
                    .copied()
                    .filter(|r| seen.insert((name.clone(), r.cloned())))
                    .collect();
                if !free.is_empty() {
                    let key = free.into_iter().flatten().cloned().collect();
                    groups.entry(key).or_default().push(name.clone());
                }
            }
            if groups.is_empty() {
                continue;
            }
            let Some(f) = destinations(ctx, &vs.object, &field, &r.route, site) else {
                continue;
            };
            for (cidrs, names) in groups {
                let m = FilterChainMatch {
                    server_names: names,
                    transport_protocol: "tls".into(),
                    ..prefix_match(&cidrs)
                };
                out.push(chain(Some(m), f.clone()));
            }
        }
    }
    out
}

/// `prefix_ranges` for CIDRs from `parse_subnets`.
fn prefix_match(cidrs: &[String]) -> FilterChainMatch {
    let prefix_ranges = cidrs
        .iter()
        .filter_map(|c| {
            let (addr, len) = c.split_once('/')?;
            Some(CidrRange {
                address_prefix: addr.to_string(),
                prefix_len: Some(UInt32Value {
                    value: len.parse().ok()?,
                }),
            })
        })
        .collect();
    FilterChainMatch {
        prefix_ranges,
        ..Default::default()
    }
}

/// `destinationSubnets` as normalized `ADDR/LEN` (a bare address is /32 or /128, host bits
/// cleared), without duplicates. `None` (with a warning) when one is not a CIDR: the match
/// never applies rather than applying to more addresses than asked.
fn parse_subnets(
    ctx: &Ctx<'_>,
    obj: &Object,
    field: &str,
    subnets: &[String],
) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for (k, s) in subnets.iter().enumerate() {
        let Some(cidr) = normalize_cidr(s) else {
            ctx.warn(
                obj,
                &format!("{field}.destinationSubnets[{k}]"),
                format!("{s:?} is not an IP address or CIDR; this match never applies"),
            );
            return None;
        };
        if !out.contains(&cidr) {
            out.push(cidr);
        }
    }
    Some(out)
}

pub(crate) fn normalize_cidr(s: &str) -> Option<String> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (s, None),
    };
    let ip: IpAddr = addr.trim().parse().ok()?;
    let max: u32 = if ip.is_ipv4() { 32 } else { 128 };
    let len: u32 = match len {
        Some(l) => l.trim().parse().ok().filter(|l| *l <= max)?,
        None => max,
    };
    let masked = match ip {
        IpAddr::V4(v4) => {
            let keep = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & keep))
        }
        IpAddr::V6(v6) => {
            let keep = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & keep))
        }
    };
    Some(format!("{masked}/{len}"))
}

fn l4_applies(
    ctx: &Ctx<'_>,
    obj: &Object,
    field: &str,
    m: &L4MatchAttributes,
    vs: &Config<VirtualService>,
    site: &Site,
) -> bool {
    if m.source_subnet.is_some() {
        ctx.warn(
            obj,
            &format!("{field}.sourceSubnet"),
            "not translated (removed from Istio); this match never applies",
        );
        return false;
    }
    selectors_apply(
        ctx,
        m.port,
        &m.gateways,
        &m.source_labels,
        m.source_namespace.as_deref(),
        vs,
        site,
    )
}

fn tls_applies(
    ctx: &Ctx<'_>,
    m: &TlsMatchAttributes,
    vs: &Config<VirtualService>,
    site: &Site,
) -> bool {
    selectors_apply(
        ctx,
        m.port,
        &m.gateways,
        &m.source_labels,
        m.source_namespace.as_deref(),
        vs,
        site,
    )
}

fn selectors_apply(
    ctx: &Ctx<'_>,
    port: Option<u32>,
    gateways: &[String],
    source_labels: &std::collections::BTreeMap<String, String>,
    source_ns: Option<&str>,
    vs: &Config<VirtualService>,
    site: &Site,
) -> bool {
    if let (Some(want), Some(p)) = (port, site.port)
        && want != u32::from(p)
    {
        return false;
    }
    let gws = if gateways.is_empty() {
        &vs.spec.gateways[..]
    } else {
        gateways
    };
    if !bound_to(gws, vs.namespace(), site) {
        return false;
    }
    if site.gateway.is_none() && gateways.is_empty() {
        return selects(source_labels, &ctx.node.labels)
            && source_ns.is_none_or(|ns| ns == ctx.node.namespace);
    }
    true
}

/// `tcp_proxy` to the weighted destinations of a TCP/TLS route.
pub(crate) fn destinations(
    ctx: &Ctx<'_>,
    obj: &Object,
    field: &str,
    route: &[RouteDestination],
    site: &Site,
) -> Option<TcpProxy> {
    let mut clusters = Vec::new();
    let mut idle = None;
    for (i, d) in route.iter().enumerate() {
        let weight = d.weight.unwrap_or(0).max(0) as u32;
        if route.len() > 1 && weight == 0 {
            continue;
        }
        let t = target(
            ctx,
            obj,
            &format!("{field}.route[{i}]"),
            d.destination.as_ref()?,
            site,
        )?;
        // The idle timeout is a listener property: the first destination's applies (Istio).
        if clusters.is_empty() {
            idle = t.tcp_idle_timeout;
        }
        clusters.push((t.cluster, weight.max(1)));
    }
    let stat = clusters.first()?.0.clone();
    Some(proxy(&stat, clusters, idle.unwrap_or(TCP_IDLE_TIMEOUT)))
}

fn proxy(stat: &str, clusters: Vec<(String, u32)>, idle: Duration) -> TcpProxy {
    let spec = if clusters.len() == 1 {
        tcp_proxy::ClusterSpecifier::Cluster(clusters[0].0.clone())
    } else {
        tcp_proxy::ClusterSpecifier::WeightedClusters(tcp_proxy::WeightedCluster {
            clusters: clusters
                .into_iter()
                .map(
                    |(name, weight)| tcp_proxy::weighted_cluster::ClusterWeight {
                        name,
                        weight,
                        ..Default::default()
                    },
                )
                .collect(),
        })
    };
    TcpProxy {
        stat_prefix: stat.to_string(),
        cluster_specifier: Some(spec),
        idle_timeout: Some(pb::duration(idle)),
        ..Default::default()
    }
}

/// `tcp_proxy` straight to one cluster (passthrough, blackhole, inbound).
pub(crate) fn to_cluster(cluster: &str) -> TcpProxy {
    proxy(cluster, vec![(cluster.to_string(), 1)], TCP_IDLE_TIMEOUT)
}

pub(crate) fn chain(m: Option<FilterChainMatch>, p: TcpProxy) -> FilterChain {
    FilterChain {
        filter_chain_match: m,
        filters: vec![pb::network_filter(TCP_PROXY, p)],
        ..Default::default()
    }
}

/// DestinationRule `connectionPool.tcp.idleTimeout` (a listener property), default 1h.
fn idle_timeout(ctx: &Ctx<'_>, svc: &Service, port: u16) -> Duration {
    destination_rule::lookup(ctx, &svc.hostname, &svc.namespace)
        .map(|r| r.policy(port, None))
        .and_then(|p| p.connection_pool)
        .and_then(|c| c.tcp)
        .and_then(|t| t.idle_timeout)
        .and_then(|t| plexus_model::duration::parse(&t))
        .unwrap_or(TCP_IDLE_TIMEOUT)
}
