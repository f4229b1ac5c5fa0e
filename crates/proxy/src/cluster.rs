//! Runtime side of a cluster: its current endpoints, load balancer state and per-endpoint
//! pools. A `ClusterRuntime` is reused across pushes while its config is unchanged so pools and
//! round-robin state survive EDS updates.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rand::Rng;

use crate::budget::Budget;
use crate::config::{Cluster, Endpoint, LbPolicy};
use crate::outlier::Outlier;
use crate::pool::EndpointPool;
use crate::stats::ClusterStats;

/// Pools an ORIGINAL_DST cluster keeps before dropping idle ones.
const ORIGINAL_DST_POOLS: usize = 256;

pub struct ClusterRuntime {
    pub config: Cluster,
    endpoints: ArcSwap<Vec<Endpoint>>,
    rr: AtomicUsize,
    /// Smooth weighted round robin state (only used when weights differ).
    wrr: Mutex<Vec<i64>>,
    pools: Mutex<HashMap<SocketAddr, Arc<EndpointPool>>>,
    pub stats: Arc<ClusterStats>,
    /// Circuit-breaker counters, shared by every endpoint pool of the cluster.
    pub budget: Arc<Budget>,
    pub outlier: Option<Arc<Outlier>>,
    /// Active health checking state (`crate::health::spawn` runs the checks).
    pub health: Option<Arc<crate::health::Health>>,
    /// Ring hash / maglev table and the endpoints it was built from.
    hash_table: Mutex<Option<(Vec<SocketAddr>, Arc<crate::lb::Table>)>>,
}

impl ClusterRuntime {
    pub fn new(config: Cluster, endpoints: Vec<Endpoint>, stats: Arc<ClusterStats>) -> Self {
        ClusterRuntime {
            budget: Budget::new(config.limits),
            outlier: config.outlier.map(|cfg| Outlier::start(cfg, stats.clone())),
            health: config.health.clone().map(crate::health::Health::new),
            config,
            endpoints: ArcSwap::from_pointee(endpoints),
            rr: AtomicUsize::new(0),
            wrr: Mutex::new(Vec::new()),
            pools: Mutex::new(HashMap::new()),
            stats,
            hash_table: Mutex::new(None),
        }
    }

    pub fn endpoints(&self) -> Arc<Vec<Endpoint>> {
        self.endpoints.load_full()
    }

    /// Replace the endpoint set; pools of endpoints that left are dropped.
    pub fn set_endpoints(&self, endpoints: Vec<Endpoint>) {
        let keep: std::collections::HashSet<SocketAddr> =
            endpoints.iter().map(|e| e.addr).collect();
        self.pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|a, _| keep.contains(a));
        self.wrr.lock().unwrap_or_else(|p| p.into_inner()).clear();
        if let Some(o) = &self.outlier {
            o.retain(&keep);
        }
        self.endpoints.store(Arc::new(endpoints));
    }

    /// Choose an endpoint per the cluster's policy; `None` when there are none.
    pub fn pick(&self) -> Option<Endpoint> {
        self.pick_excluding(&[])
    }

    /// `pick`, avoiding the `excluded` priority levels while another has healthy endpoints.
    pub fn pick_excluding(&self, excluded: &[u32]) -> Option<Endpoint> {
        let all = self.endpoints.load();
        if all.is_empty() {
            return None;
        }
        let eps = self.available(&all, excluded);
        let uniform = eps.iter().all(|e| e.weight == eps[0].weight);
        let i = match (self.config.lb, uniform) {
            (LbPolicy::RoundRobin, true) => self.rr.fetch_add(1, Ordering::Relaxed) % eps.len(),
            (LbPolicy::RoundRobin, false) => self.smooth_wrr(&eps),
            (LbPolicy::Random, _) => weighted_random(&eps),
            (LbPolicy::LeastRequest { choices }, _) => self.least_request(&eps, choices),
            // Without a request hash Envoy's consistent-hash balancers pick at random.
            (LbPolicy::RingHash { .. } | LbPolicy::Maglev { .. }, _) => {
                let addr = self.pick_hashed(rand::rng().random(), excluded)?;
                return eps.iter().find(|e| e.addr == addr).copied();
            }
            // ORIGINAL_DST clusters have no endpoints of their own (see `lb::Choice`).
            (LbPolicy::ClusterProvided, _) => return None,
        };
        eps.get(i).copied()
    }

    /// The priority level in use, without hosts ejected by outlier detection or failed by
    /// health checks unless the level is in panic (`lb::level`).
    fn available<'a>(
        &self,
        all: &'a [Endpoint],
        excluded: &[u32],
    ) -> std::borrow::Cow<'a, [Endpoint]> {
        let single_level = all.iter().all(|e| e.priority == all[0].priority);
        let panic = self.config.panic_threshold;
        if self.outlier.is_none() && self.health.is_none() && single_level {
            return all.into();
        }
        crate::lb::level(all, |a| self.unavailable(a), panic, excluded).into()
    }

    /// Ejected by outlier detection or failed by active health checking.
    pub fn unavailable(&self, addr: &SocketAddr) -> bool {
        self.outlier.as_ref().is_some_and(|o| o.is_ejected(addr))
            || self.health.as_ref().is_some_and(|h| h.is_failed(addr))
    }

    /// Priority levels that have an endpoint not ejected or failed (`unavailable`).
    pub fn healthy_levels(&self) -> Vec<u32> {
        let all = self.endpoints.load();
        let mut out: Vec<u32> = all
            .iter()
            .filter(|e| !self.unavailable(&e.addr))
            .map(|e| e.priority)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The priority of a current endpoint.
    pub fn priority_of(&self, addr: SocketAddr) -> Option<u32> {
        let all = self.endpoints.load();
        all.iter().find(|e| e.addr == addr).map(|e| e.priority)
    }

    /// The consistent-hash choice for `hash` among the available endpoints; the table is
    /// rebuilt when that set changes (EDS update, ejection, priority failover).
    pub fn pick_hashed(&self, hash: u64, excluded: &[u32]) -> Option<SocketAddr> {
        let all = self.endpoints.load();
        if all.is_empty() {
            return None;
        }
        let eps = self.available(&all, excluded);
        let key: Vec<SocketAddr> = eps.iter().map(|e| e.addr).collect();
        let table = {
            let mut cached = self.hash_table.lock().unwrap_or_else(|p| p.into_inner());
            match cached.as_ref() {
                Some((k, t)) if *k == key => t.clone(),
                _ => {
                    let t = Arc::new(crate::lb::Table::build(self.config.lb, &eps)?);
                    *cached = Some((key, t.clone()));
                    t
                }
            }
        };
        table.lookup(hash)
    }

    /// Tell outlier detection how an attempt at `addr` ended.
    pub fn report(&self, addr: SocketAddr, attempt: crate::upstream::Attempt) {
        if let Some(o) = &self.outlier {
            o.report(addr, attempt, self.endpoints.load().len());
        }
    }

    /// Envoy's power-of-N-choices: `choices` weighted random picks (with replacement), the one
    /// with the fewest active requests per unit of weight wins (first on ties).
    fn least_request(&self, eps: &[Endpoint], choices: u32) -> usize {
        let load = |i: usize| {
            let active = self.pool(eps[i].addr).active.load(Ordering::Acquire);
            f64::from(active) / f64::from(eps[i].weight.max(1))
        };
        let mut best = weighted_random(eps);
        let mut best_load = load(best);
        for _ in 1..choices {
            let i = weighted_random(eps);
            let l = load(i);
            if l < best_load {
                best = i;
                best_load = l;
            }
        }
        best
    }

    /// nginx-style smooth weighted round robin: deterministic, spreads heavy endpoints out.
    fn smooth_wrr(&self, eps: &[Endpoint]) -> usize {
        let mut cur = self.wrr.lock().unwrap_or_else(|p| p.into_inner());
        if cur.len() != eps.len() {
            *cur = vec![0; eps.len()];
        }
        let total: i64 = eps.iter().map(|e| i64::from(e.weight)).sum();
        let mut best = 0;
        for (i, e) in eps.iter().enumerate() {
            cur[i] += i64::from(e.weight);
            if cur[i] > cur[best] {
                best = i;
            }
        }
        cur[best] -= total;
        best
    }

    pub fn pool(&self, addr: SocketAddr) -> Arc<EndpointPool> {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        // ORIGINAL_DST destinations come and go with traffic: forget idle ones (Envoy removes
        // unused original-destination hosts after `cleanup_interval`) before the map grows.
        if matches!(
            self.config.discovery,
            crate::config::Discovery::OriginalDst(_)
        ) && pools.len() >= ORIGINAL_DST_POOLS
            && !pools.contains_key(&addr)
        {
            pools.retain(|_, p| p.active.load(Ordering::Acquire) > 0);
        }
        pools
            .entry(addr)
            .or_insert_with(|| {
                Arc::new(
                    EndpointPool::new(
                        addr,
                        self.config.protocol,
                        self.config.connect_timeout,
                        self.stats.clone(),
                        self.budget.clone(),
                        self.config.pool,
                    )
                    .with_keepalive(self.config.keepalive)
                    .with_tls(self.config.tls.clone()),
                )
            })
            .clone()
    }
}

fn weighted_random(eps: &[Endpoint]) -> usize {
    let total: u64 = eps.iter().map(|e| u64::from(e.weight)).sum();
    let mut x = rand::rng().random_range(0..total.max(1));
    for (i, e) in eps.iter().enumerate() {
        if x < u64::from(e.weight) {
            return i;
        }
        x -= u64::from(e.weight);
    }
    eps.len() - 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Discovery, UpstreamProtocol};

    fn runtime(lb: LbPolicy, weights: &[u32]) -> ClusterRuntime {
        let eps = weights
            .iter()
            .enumerate()
            .map(|(i, w)| Endpoint {
                addr: SocketAddr::from(([127, 0, 0, 1], 1000 + i as u16)),
                weight: *w,
                priority: 0,
            })
            .collect();
        let cfg = Cluster {
            name: "c".into(),
            discovery: Discovery::Static(vec![]),
            lb,
            connect_timeout: std::time::Duration::from_secs(1),
            protocol: UpstreamProtocol::Http1,
            limits: Default::default(),
            outlier: None,
            health: None,
            keepalive: None,
            pool: Default::default(),
            panic_threshold: 50.0,
            tls: None,
        };
        ClusterRuntime::new(cfg, eps, Arc::default())
    }

    fn counts(rt: &ClusterRuntime, n: usize) -> Vec<usize> {
        let mut c = vec![0; rt.endpoints().len()];
        for _ in 0..n {
            let picked = rt.pick().map(|e| usize::from(e.addr.port() - 1000));
            c[picked.unwrap_or(0)] += 1;
        }
        c
    }

    #[test]
    fn round_robin_is_even_and_weighted_is_proportional() {
        assert_eq!(
            counts(&runtime(LbPolicy::RoundRobin, &[1, 1, 1]), 9),
            vec![3, 3, 3]
        );
        assert_eq!(
            counts(&runtime(LbPolicy::RoundRobin, &[1, 3]), 8),
            vec![2, 6]
        );
        let random = counts(&runtime(LbPolicy::Random, &[1, 1]), 2000);
        assert!(random.iter().all(|c| *c > 800), "{random:?}");
        assert!(runtime(LbPolicy::Random, &[]).pick().is_none());
    }
}
