//! Clusters: `outbound|<port>|<subset>|<host>` for every visible service port and every subset
//! of its DestinationRule, `inbound|<port>||` for the proxy's own workload ports, and the
//! fixed `BlackHoleCluster` / `PassthroughCluster` / `InboundPassthroughCluster`.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::endpoint::v3 as ep;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use plexus_model::{Interception, NodeKind, Resolution, Service};

use super::destination_rule::{self, Rule};
use super::{
    BLACKHOLE_CLUSTER, Ctx, INBOUND_PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER, inbound,
    inbound_cluster_name, outbound_cluster_name, pb, policy,
};

/// An EDS cluster whose endpoints [`super::endpoints`] computes.
#[derive(Clone, Debug)]
pub(crate) struct EdsCluster {
    pub name: String,
    pub service: usize,
    pub port: u16,
    pub labels: BTreeMap<String, String>,
    /// Locality failover is on (outlier detection set and locality LB not disabled).
    pub failover: Option<policy::Failover>,
}

/// Every cluster of the proxy, and the EDS clusters among them.
pub(crate) fn build(ctx: &Ctx<'_>) -> (Vec<Cluster>, Vec<EdsCluster>) {
    let mut clusters = Vec::new();
    let mut eds = Vec::new();
    for &si in &ctx.scope.services {
        let svc = &ctx.snap.registry.services[si];
        let rule = destination_rule::lookup(ctx, &svc.hostname, &svc.namespace);
        for port in &svc.ports {
            outbound(
                ctx,
                si,
                svc,
                port.number,
                rule.as_ref(),
                &mut clusters,
                &mut eds,
            );
        }
    }
    clusters.push(blackhole());
    clusters.push(passthrough(PASSTHROUGH_CLUSTER, ctx));
    if ctx.node.kind == NodeKind::Sidecar {
        if ctx.node.interception == Interception::Redirect {
            clusters.push(passthrough(INBOUND_PASSTHROUGH_CLUSTER, ctx));
        }
        for p in inbound::ports(ctx) {
            clusters.push(inbound_cluster(ctx, p.port));
        }
    }
    (clusters, eds)
}

fn outbound(
    ctx: &Ctx<'_>,
    si: usize,
    svc: &Service,
    port: u16,
    rule: Option<&Rule>,
    clusters: &mut Vec<Cluster>,
    eds: &mut Vec<EdsCluster>,
) {
    let mut variants = vec![(String::new(), None)];
    if let Some(r) = rule {
        variants.extend(r.subsets.iter().map(|s| (s.name.clone(), Some(s))));
    }
    for (subset_name, subset) in variants {
        let name = outbound_cluster_name(port, &subset_name, &svc.hostname);
        let pol = rule.map(|r| r.policy(port, subset)).unwrap_or_default();
        let mut c = base(ctx, &name, si, svc, port);
        let applied = policy::apply(
            ctx,
            &mut c,
            &pol,
            rule.map(|r| r.object.as_ref()),
            svc,
            port,
        );
        if c.cluster_discovery_type == Some(discovery(cluster::DiscoveryType::Eds)) {
            eds.push(EdsCluster {
                name,
                service: si,
                port,
                labels: subset.map(|s| s.labels.clone()).unwrap_or_default(),
                failover: applied.failover,
            });
        }
        clusters.push(c);
    }
}

pub(crate) fn discovery(t: cluster::DiscoveryType) -> cluster::ClusterDiscoveryType {
    cluster::ClusterDiscoveryType::Type(t as i32)
}

/// The cluster before DestinationRule policy: discovery type from the service's resolution,
/// Istio's defaults (LEAST_REQUEST, MeshConfig connect timeout, max circuit breakers).
fn base(ctx: &Ctx<'_>, name: &str, si: usize, svc: &Service, port: u16) -> Cluster {
    let mut c = Cluster {
        name: name.to_string(),
        connect_timeout: Some(pb::duration(ctx.snap.mesh.connect_timeout)),
        lb_policy: cluster::LbPolicy::LeastRequest as i32,
        circuit_breakers: Some(policy::default_circuit_breakers()),
        ..Default::default()
    };
    match svc.resolution {
        Resolution::ClientSideLb => {
            c.cluster_discovery_type = Some(discovery(cluster::DiscoveryType::Eds));
            c.eds_cluster_config = Some(cluster::EdsClusterConfig {
                eds_config: Some(pb::ads()),
                service_name: name.to_string(),
            });
        }
        Resolution::Dns | Resolution::DnsRoundRobin => {
            let t = if svc.resolution == Resolution::Dns {
                cluster::DiscoveryType::StrictDns
            } else {
                cluster::DiscoveryType::LogicalDns
            };
            c.cluster_discovery_type = Some(discovery(t));
            c.dns_lookup_family = cluster::DnsLookupFamily::V4Only as i32;
            let mut endpoints: Vec<(String, u16)> = ctx
                .snap
                .registry
                .endpoints_of(si, port)
                .iter()
                .map(|e| (e.address.clone(), e.port))
                .collect();
            if t == cluster::DiscoveryType::LogicalDns {
                endpoints.truncate(1);
            }
            c.load_assignment = Some(static_assignment(name, &endpoints));
        }
        Resolution::Passthrough => {
            c.cluster_discovery_type = Some(discovery(cluster::DiscoveryType::OriginalDst));
            c.lb_policy = cluster::LbPolicy::ClusterProvided as i32;
        }
    }
    c
}

/// Inline endpoints for STATIC / DNS clusters.
pub(crate) fn static_assignment(name: &str, endpoints: &[(String, u16)]) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: name.to_string(),
        endpoints: vec![LocalityLbEndpoints {
            lb_endpoints: endpoints
                .iter()
                .map(|(addr, port)| LbEndpoint {
                    host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(ep::Endpoint {
                        address: Some(pb::socket(addr, *port)),
                        ..Default::default()
                    })),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn blackhole() -> Cluster {
    Cluster {
        name: BLACKHOLE_CLUSTER.into(),
        // No endpoints: every connection fails (Istio's BlackHoleCluster).
        load_assignment: Some(ClusterLoadAssignment {
            cluster_name: BLACKHOLE_CLUSTER.into(),
            ..Default::default()
        }),
        cluster_discovery_type: Some(discovery(cluster::DiscoveryType::Static)),
        connect_timeout: Some(pb::duration(std::time::Duration::from_secs(10))),
        ..Default::default()
    }
}

fn passthrough(name: &str, ctx: &Ctx<'_>) -> Cluster {
    Cluster {
        name: name.into(),
        cluster_discovery_type: Some(discovery(cluster::DiscoveryType::OriginalDst)),
        lb_policy: cluster::LbPolicy::ClusterProvided as i32,
        connect_timeout: Some(pb::duration(ctx.snap.mesh.connect_timeout)),
        circuit_breakers: Some(policy::default_circuit_breakers()),
        ..Default::default()
    }
}

/// `inbound|<port>||`: the application on `app_address:<port>`.
fn inbound_cluster(ctx: &Ctx<'_>, port: u16) -> Cluster {
    let name = inbound_cluster_name(port);
    Cluster {
        name: name.clone(),
        cluster_discovery_type: Some(discovery(cluster::DiscoveryType::Static)),
        connect_timeout: Some(pb::duration(ctx.snap.mesh.connect_timeout)),
        lb_policy: cluster::LbPolicy::LeastRequest as i32,
        circuit_breakers: Some(policy::default_circuit_breakers()),
        load_assignment: Some(static_assignment(
            &name,
            &[(ctx.node.app_address.clone(), port)],
        )),
        ..Default::default()
    }
}
