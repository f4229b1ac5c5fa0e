//! Resolving STRICT_DNS and LOGICAL_DNS clusters: one task per cluster runtime re-resolves
//! every host each `dns_refresh_rate` and replaces the endpoint set when it changed. A failed
//! lookup keeps that host's previous addresses, as Envoy does. A LOGICAL_DNS cluster keeps
//! only the first address (after the lookup family rule) of each answer: new connections go
//! there, as Envoy's single logical host. The task ends with the runtime.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
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
            let fresh = resolve(&targets, &last, system_lookup).await;
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

async fn system_lookup(host: String, port: u16) -> std::io::Result<Vec<IpAddr>> {
    let found = tokio::net::lookup_host((host.as_str(), port)).await?;
    Ok(found.map(|a: SocketAddr| a.ip()).collect())
}

/// One resolution round: the endpoints of each host, in order.
async fn resolve<F, Fut>(
    targets: &DnsTargets,
    last: &[Vec<Endpoint>],
    lookup: F,
) -> Vec<Vec<Endpoint>>
where
    F: Fn(String, u16) -> Fut,
    Fut: Future<Output = std::io::Result<Vec<IpAddr>>>,
{
    let mut out = Vec::with_capacity(targets.hosts.len());
    for (i, h) in targets.hosts.iter().enumerate() {
        let eps = match lookup(h.host.clone(), h.port).await {
            Ok(ips) => {
                let mut picked = targets.family.pick(&ips);
                picked.dedup();
                if targets.logical {
                    picked.truncate(1);
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::dns::{DnsFamily, DnsHost};
    use std::sync::Mutex;

    fn targets(logical: bool, family: DnsFamily) -> DnsTargets {
        DnsTargets {
            hosts: vec![DnsHost {
                host: "svc.test".into(),
                port: 80,
                weight: 1,
                priority: 0,
            }],
            refresh: std::time::Duration::from_secs(5),
            family,
            logical,
        }
    }

    fn addrs(eps: &[Vec<Endpoint>]) -> Vec<String> {
        eps.concat().iter().map(|e| e.addr.to_string()).collect()
    }

    #[tokio::test]
    async fn logical_dns_keeps_the_first_address_of_each_answer() {
        let answers: Mutex<Vec<std::io::Result<Vec<IpAddr>>>> = Mutex::new(vec![
            Ok(vec![
                "10.0.0.1".parse().unwrap(),
                "10.0.0.2".parse().unwrap(),
            ]),
            Err(std::io::Error::other("SERVFAIL")),
            Ok(vec![
                "10.0.0.3".parse().unwrap(),
                "10.0.0.1".parse().unwrap(),
            ]),
        ]);
        let lookup = |_h: String, _p: u16| {
            let next = answers.lock().unwrap().remove(0);
            async move { next }
        };
        let t = targets(true, DnsFamily::V4Only);
        let first = resolve(&t, &[vec![]], &lookup).await;
        assert_eq!(addrs(&first), ["10.0.0.1:80"]);
        let failed = resolve(&t, &first, &lookup).await;
        assert_eq!(
            addrs(&failed),
            ["10.0.0.1:80"],
            "a failure keeps the address"
        );
        let moved = resolve(&t, &failed, &lookup).await;
        assert_eq!(
            addrs(&moved),
            ["10.0.0.3:80"],
            "re-resolution follows the answer"
        );
    }

    #[tokio::test]
    async fn strict_dns_keeps_every_address_of_the_family() {
        let lookup = |_h: String, _p: u16| async {
            Ok(vec![
                "::1".parse().unwrap(),
                "10.0.0.1".parse().unwrap(),
                "10.0.0.2".parse().unwrap(),
            ])
        };
        let got = resolve(&targets(false, DnsFamily::V4Only), &[vec![]], lookup).await;
        assert_eq!(addrs(&got), ["10.0.0.1:80", "10.0.0.2:80"]);
        let got = resolve(&targets(true, DnsFamily::Auto), &[vec![]], lookup).await;
        assert_eq!(addrs(&got), ["[::1]:80"], "AUTO prefers IPv6");
    }
}
