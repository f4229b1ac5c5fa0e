//! Cluster load assignments (EDS) for the proxy's EDS clusters: the service port's endpoints,
//! filtered by the subset's labels, grouped by locality, with Istio's locality failover
//! priorities when outlier detection turns failover on. O(endpoints) per cluster.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::{HealthStatus, Locality};
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint,
};
use plexus_model::selects;

use super::cluster::EdsCluster;
use super::policy::Failover;
use super::{Ctx, pb};

pub(crate) fn build(ctx: &Ctx<'_>, eds: &[EdsCluster]) -> Vec<ClusterLoadAssignment> {
    eds.iter().map(|c| assignment(ctx, c)).collect()
}

fn assignment(ctx: &Ctx<'_>, c: &EdsCluster) -> ClusterLoadAssignment {
    let reg = &ctx.snap.registry;
    // (priority, locality) -> endpoints; BTreeMap keeps the output deterministic.
    let mut groups: BTreeMap<(u32, String), Vec<LbEndpoint>> = BTreeMap::new();
    for e in reg.endpoints_of(c.service, c.port) {
        let Some(w) = reg.workloads.get(e.workload) else {
            continue;
        };
        if !selects(&c.labels, &w.labels) {
            continue;
        }
        let locality = w.locality.clone().unwrap_or_default();
        let priority = c
            .failover
            .as_ref()
            .map(|f| priority(ctx.node.locality.as_deref(), &locality, f))
            .unwrap_or(0);
        let health = if w.healthy {
            HealthStatus::Healthy
        } else {
            HealthStatus::Unhealthy
        };
        groups
            .entry((priority, locality))
            .or_default()
            .push(LbEndpoint {
                host_identifier: Some(lb_endpoint::HostIdentifier::Endpoint(Endpoint {
                    address: Some(pb::socket(&e.address, e.port)),
                    ..Default::default()
                })),
                health_status: health as i32,
                load_balancing_weight: Some(pb::u32v(w.weight.max(1))),
                ..Default::default()
            });
    }
    // Envoy needs priorities without gaps: renumber the ones in use densely.
    let mut dense: BTreeMap<u32, u32> = BTreeMap::new();
    for (p, _) in groups.keys() {
        let next = dense.len() as u32;
        dense.entry(*p).or_insert(next);
    }
    ClusterLoadAssignment {
        cluster_name: c.name.clone(),
        endpoints: groups
            .into_iter()
            .map(|((p, loc), lb_endpoints)| LocalityLbEndpoints {
                locality: Some(locality(&loc)),
                lb_endpoints,
                priority: dense.get(&p).copied().unwrap_or(0),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

fn locality(text: &str) -> Locality {
    let mut parts = text.splitn(3, '/');
    Locality {
        region: parts.next().unwrap_or_default().to_string(),
        zone: parts.next().unwrap_or_default().to_string(),
        sub_zone: parts.next().unwrap_or_default().to_string(),
    }
}

/// Istio's failover order: same region/zone/subzone 0, same region/zone 1, same region 2,
/// a `failover` target region of the proxy's region 3, anything else 4. Without a proxy
/// locality every endpoint is priority 0.
pub(crate) fn priority(proxy: Option<&str>, endpoint: &str, f: &Failover) -> u32 {
    let Some(proxy) = proxy.filter(|p| !p.is_empty()) else {
        return 0;
    };
    let p = locality(proxy);
    let e = locality(endpoint);
    if p.region != e.region {
        let target = f
            .regions
            .iter()
            .any(|(from, to)| *from == p.region && *to == e.region);
        return if target { 3 } else { 4 };
    }
    if p.zone != e.zone {
        return 2;
    }
    if p.sub_zone != e.sub_zone {
        return 1;
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failover_priorities() {
        let f = Failover {
            regions: vec![("us-east".into(), "eu-west".into())],
        };
        let me = Some("us-east/a/1");
        let cases = [
            ("us-east/a/1", 0),
            ("us-east/a/2", 1),
            ("us-east/b/1", 2),
            ("eu-west/a/1", 3),
            ("ap-south/a/1", 4),
            ("", 4),
        ];
        for (ep, want) in cases {
            assert_eq!(priority(me, ep, &f), want, "{ep}");
        }
        assert_eq!(priority(None, "eu-west/a", &f), 0);
    }
}
