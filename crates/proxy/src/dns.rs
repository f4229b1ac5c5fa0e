//! Resolving STRICT_DNS clusters: one task per cluster runtime re-resolves every host each
//! `dns_refresh_rate` and replaces the endpoint set when it changed. A failed lookup keeps
//! that host's previous addresses, as Envoy does. The task ends with the runtime.

use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use crate::cluster::ClusterRuntime;
use crate::config::dns::DnsTargets;
use crate::config::{Discovery, Endpoint};

pub fn spawn(cluster: &Arc<ClusterRuntime>) {
    let Discovery::Dns(targets) = &cluster.config.discovery else {
        return;
    };
    let targets = targets.clone();
    let weak: Weak<ClusterRuntime> = Arc::downgrade(cluster);
    tokio::spawn(async move {
        let mut last: Vec<Vec<Endpoint>> = vec![Vec::new(); targets.hosts.len()];
        loop {
            let fresh = resolve(&targets, &last).await;
            let Some(cluster) = weak.upgrade() else {
                return;
            };
            if fresh != last {
                cluster.set_endpoints(fresh.concat());
                last = fresh;
            }
            drop(cluster);
            tokio::time::sleep(targets.refresh).await;
        }
    });
}

async fn resolve(targets: &DnsTargets, last: &[Vec<Endpoint>]) -> Vec<Vec<Endpoint>> {
    let mut out = Vec::with_capacity(targets.hosts.len());
    for (i, h) in targets.hosts.iter().enumerate() {
        let found = tokio::net::lookup_host((h.host.as_str(), h.port)).await;
        let eps = match found {
            Ok(addrs) => {
                let ips: Vec<_> = addrs.map(|a: SocketAddr| a.ip()).collect();
                let mut picked = targets.family.pick(&ips);
                picked.dedup();
                picked
                    .into_iter()
                    .map(|ip| Endpoint {
                        addr: SocketAddr::new(ip, h.port),
                        weight: h.weight,
                        priority: h.priority,
                    })
                    .collect()
            }
            Err(e) => {
                tracing::debug!(host = %h.host, error = %e, "DNS resolution failed");
                last.get(i).cloned().unwrap_or_default()
            }
        };
        out.push(eps);
    }
    out
}
