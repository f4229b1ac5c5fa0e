//! TCP and TLS traffic (istio-api.md §3.10): a service port without HTTP gets `tcp_proxy`
//! to its cluster, or to the first applicable VirtualService `tcp` route; TLS ports with
//! `tls` routes get one filter chain per SNI match.

use std::time::Duration;

use envoy_types::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
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
        if let Some(chain) = tcp_chain(ctx, vs, &site) {
            return vec![chain];
        }
    }
    let cluster = outbound_cluster_name(port, "", &svc.hostname);
    let idle = idle_timeout(ctx, svc, port);
    vec![chain(
        None,
        proxy(&cluster, vec![(cluster.clone(), 1)], idle),
    )]
}

/// The first `tcp` route whose match applies (no match: all connections).
pub(crate) fn tcp_chain(
    ctx: &Ctx<'_>,
    vs: &Config<VirtualService>,
    site: &Site,
) -> Option<FilterChain> {
    for (i, r) in vs.spec.tcp.iter().enumerate() {
        let field = format!("spec.tcp[{i}]");
        let applies = r.r#match.is_empty()
            || r.r#match.iter().enumerate().any(|(j, m)| {
                l4_applies(ctx, &vs.object, &format!("{field}.match[{j}]"), m, vs, site)
            });
        if !applies {
            continue;
        }
        return destinations(ctx, &vs.object, &field, &r.route, site).map(|f| chain(None, f));
    }
    None
}

/// One chain per applicable `tls` match: SNI names → the route's destinations.
pub(crate) fn tls_chains(
    ctx: &Ctx<'_>,
    vs: &Config<VirtualService>,
    site: &Site,
) -> Vec<FilterChain> {
    let mut out = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, r) in vs.spec.tls.iter().enumerate() {
        let field = format!("spec.tls[{i}]");
        for (j, m) in r.r#match.iter().enumerate() {
            if !tls_applies(ctx, &vs.object, &format!("{field}.match[{j}]"), m, vs, site) {
                continue;
            }
            let names: Vec<String> = m
                .sni_hosts
                .iter()
                .filter(|h| seen.insert((*h).clone()))
                .cloned()
                .collect();
            if names.is_empty() {
                continue;
            }
            if let Some(f) = destinations(ctx, &vs.object, &field, &r.route, site) {
                let m = FilterChainMatch {
                    server_names: names,
                    transport_protocol: "tls".into(),
                    ..Default::default()
                };
                out.push(chain(Some(m), f));
            }
        }
    }
    out
}

fn l4_applies(
    ctx: &Ctx<'_>,
    obj: &Object,
    field: &str,
    m: &L4MatchAttributes,
    vs: &Config<VirtualService>,
    site: &Site,
) -> bool {
    if !m.destination_subnets.is_empty() {
        ctx.warn(
            obj,
            &format!("{field}.destinationSubnets"),
            "not translated yet; this match never applies",
        );
        return false;
    }
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
    obj: &Object,
    field: &str,
    m: &TlsMatchAttributes,
    vs: &Config<VirtualService>,
    site: &Site,
) -> bool {
    if !m.destination_subnets.is_empty() {
        ctx.warn(
            obj,
            &format!("{field}.destinationSubnets"),
            "not translated yet; this match never applies",
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
