//! Active health checking of a cluster's endpoints (Envoy's HTTP, gRPC and TCP checkers; one
//! check is `crate::probe`).
//!
//! One task per cluster checks every current endpoint each interval, keeping each endpoint's
//! connection between checks when `reuse_connection` (plus jitter; the
//! no-traffic interval until the cluster has routed a request). As in Envoy, a host starts
//! failed (pending its first check), one success makes a never-checked host healthy, later
//! recoveries need `healthy_threshold` successes in a row; `unhealthy_threshold` failures in a
//! row (timeouts, connection errors, payload mismatches) mark it unhealthy, and an HTTP status
//! outside `expected_statuses` marks it unhealthy at once. Load balancing skips failed hosts
//! subject to the panic threshold (`ClusterRuntime::available`).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;

use crate::cluster::ClusterRuntime;
use crate::config::health::HealthCheck;
use crate::probe::Session;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// Counts towards `unhealthy_threshold`.
    Fail,
    /// Ignores the threshold (HTTP status not expected).
    FailNow,
}

#[derive(Debug, Clone, Copy)]
struct HostHealth {
    failed: bool,
    checked: bool,
    successes: u32,
    failures: u32,
}

impl Default for HostHealth {
    fn default() -> Self {
        HostHealth {
            failed: true,
            checked: false,
            successes: 0,
            failures: 0,
        }
    }
}

pub struct Health {
    cfg: HealthCheck,
    hosts: Mutex<HashMap<SocketAddr, HostHealth>>,
}

impl Health {
    pub fn new(cfg: HealthCheck) -> Arc<Health> {
        Arc::new(Health {
            cfg,
            hosts: Mutex::default(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, HostHealth>> {
        self.hosts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `addr` is failed (or not yet checked) by active health checking.
    pub fn is_failed(&self, addr: &SocketAddr) -> bool {
        self.lock().get(addr).is_none_or(|h| h.failed)
    }

    /// Apply one check's outcome to `addr`'s state.
    pub fn record(&self, addr: SocketAddr, outcome: Outcome) {
        let (healthy_threshold, unhealthy_threshold) =
            (self.cfg.healthy_threshold, self.cfg.unhealthy_threshold);
        let mut hosts = self.lock();
        let h = hosts.entry(addr).or_default();
        match outcome {
            Outcome::Pass => {
                h.failures = 0;
                h.successes += 1;
                if h.failed && (!h.checked || h.successes >= healthy_threshold) {
                    h.failed = false;
                    tracing::info!(%addr, "active health check: host healthy");
                }
            }
            Outcome::Fail | Outcome::FailNow => {
                h.successes = 0;
                h.failures += 1;
                let now = outcome == Outcome::FailNow || h.failures >= unhealthy_threshold;
                if now && !h.failed {
                    tracing::info!(%addr, "active health check: host unhealthy");
                }
                h.failed |= now;
            }
        }
        h.checked = true;
    }

    fn retain(&self, keep: &HashSet<SocketAddr>) {
        self.lock().retain(|a, _| keep.contains(a));
    }

    /// The wait before the next round.
    fn next_wait(&self, had_traffic: bool) -> Duration {
        let base = if had_traffic {
            self.cfg.interval
        } else {
            self.cfg.no_traffic_interval
        };
        let mut rng = rand::rng();
        let mut jitter = Duration::ZERO;
        if !self.cfg.interval_jitter.is_zero() {
            jitter += self.cfg.interval_jitter.mul_f64(rng.random::<f64>());
        }
        if self.cfg.interval_jitter_percent > 0 {
            let pct = f64::from(self.cfg.interval_jitter_percent) / 100.0;
            jitter += base.mul_f64(pct * rng.random::<f64>());
        }
        base + jitter
    }
}

/// Start the checker of `runtime` if its cluster has one; it ends when the runtime is dropped.
pub fn spawn(runtime: &Arc<ClusterRuntime>) {
    let Some(health) = runtime.health.clone() else {
        return;
    };
    let weak = Arc::downgrade(runtime);
    tokio::spawn(async move {
        let mut sessions: HashMap<SocketAddr, Session> = HashMap::new();
        loop {
            let (endpoints, authority, tls, had_traffic) = {
                let Some(rt) = weak.upgrade() else { return };
                let eps: Vec<SocketAddr> = rt.endpoints().iter().map(|e| e.addr).collect();
                let traffic = rt.stats.rq_total.load(Ordering::Relaxed) > 0;
                (eps, rt.config.name.clone(), rt.config.tls.clone(), traffic)
            };
            let keep: HashSet<SocketAddr> = endpoints.iter().copied().collect();
            health.retain(&keep);
            sessions.retain(|a, _| keep.contains(a));
            let mut round = tokio::task::JoinSet::new();
            for addr in endpoints {
                let cfg = health.cfg.clone();
                let authority = authority.clone();
                let tls = tls.clone();
                let session = sessions.remove(&addr);
                round.spawn(async move {
                    let (outcome, session) =
                        crate::probe::check(&cfg, addr, &authority, tls.as_deref(), session).await;
                    (addr, outcome, session)
                });
            }
            while let Some(done) = round.join_next().await {
                if let Ok((addr, outcome, session)) = done {
                    health.record(addr, outcome);
                    if let Some(s) = session {
                        sessions.insert(addr, s);
                    }
                }
            }
            tokio::time::sleep(health.next_wait(had_traffic)).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::health::{CheckKind, TcpCheck};

    fn cfg(unhealthy: u32, healthy: u32) -> HealthCheck {
        HealthCheck {
            timeout: Duration::from_secs(1),
            interval: Duration::from_millis(10),
            interval_jitter: Duration::ZERO,
            interval_jitter_percent: 0,
            no_traffic_interval: Duration::from_secs(60),
            unhealthy_threshold: unhealthy,
            healthy_threshold: healthy,
            reuse_connection: true,
            kind: CheckKind::Tcp(TcpCheck {
                send: vec![],
                receive: vec![],
            }),
        }
    }

    #[test]
    fn thresholds_follow_envoy() {
        let h = Health::new(cfg(2, 3));
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(h.is_failed(&a), "unchecked hosts are pending");
        h.record(a, Outcome::Pass);
        assert!(!h.is_failed(&a), "the first success is enough");
        h.record(a, Outcome::Fail);
        assert!(!h.is_failed(&a));
        h.record(a, Outcome::Fail);
        assert!(h.is_failed(&a));
        h.record(a, Outcome::Pass);
        h.record(a, Outcome::Pass);
        assert!(h.is_failed(&a));
        h.record(a, Outcome::Pass);
        assert!(!h.is_failed(&a));
        h.record(a, Outcome::FailNow);
        assert!(h.is_failed(&a), "unexpected status ignores the threshold");
    }
}
