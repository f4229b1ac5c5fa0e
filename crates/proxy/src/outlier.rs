//! Passive outlier detection per cluster (Envoy's consecutive-5xx and consecutive-gateway-failure
//! detectors). Every attempt's outcome is reported; a host reaching a threshold is ejected
//! (subject to the enforcement percentage and `max_ejection_percent`) for
//! `base_ejection_time × times ejected`, capped at `max_ejection_time`. Hosts return at the
//! first interval tick after their time is up, and each tick a host spends un-ejected lowers
//! its multiplier, as in Envoy.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};

use rand::Rng;
use tokio::time::Instant;

use crate::config::OutlierDetection;
use crate::stats::ClusterStats;
use crate::upstream::Attempt;

#[derive(Debug, Default, Clone, Copy)]
struct HostState {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    ejected_at: Option<Instant>,
    /// Ejection time multiplier.
    ejections: u32,
}

pub struct Outlier {
    cfg: OutlierDetection,
    hosts: Mutex<HashMap<SocketAddr, HostState>>,
    stats: Arc<ClusterStats>,
}

impl Outlier {
    /// Create the detector and its interval task; the task ends when the detector is dropped.
    pub fn start(cfg: OutlierDetection, stats: Arc<ClusterStats>) -> Arc<Outlier> {
        let outlier = Arc::new(Outlier {
            cfg,
            hosts: Mutex::default(),
            stats,
        });
        let weak: Weak<Outlier> = Arc::downgrade(&outlier);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(Instant::now() + cfg.interval, cfg.interval);
            loop {
                ticks.tick().await;
                let Some(o) = weak.upgrade() else { return };
                o.tick(Instant::now());
            }
        });
        outlier
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, HostState>> {
        self.hosts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_ejected(&self, addr: &SocketAddr) -> bool {
        self.lock()
            .get(addr)
            .is_some_and(|h| h.ejected_at.is_some())
    }

    /// Record one attempt's outcome at `addr`; `total_hosts` sizes the ejection cap.
    pub fn report(&self, addr: SocketAddr, attempt: Attempt, total_hosts: usize) {
        // Without split_external_local_origin_errors, connect failures, resets and timeouts
        // count as upstream 5xx and as gateway failures.
        let (server_error, gateway) = match attempt {
            Attempt::Status(s) | Attempt::Grpc(s, _) => (s >= 500, (502..=504).contains(&s)),
            Attempt::ConnectFailure
            | Attempt::Reset
            | Attempt::RefusedStream
            | Attempt::PerTryTimeout => (true, true),
            Attempt::Overflow => return,
        };
        let mut hosts = self.lock();
        let ejected_now = hosts.values().filter(|h| h.ejected_at.is_some()).count();
        let host = hosts.entry(addr).or_default();
        if host.ejected_at.is_some() {
            return;
        }
        host.consecutive_5xx = if server_error {
            host.consecutive_5xx + 1
        } else {
            0
        };
        host.consecutive_gateway = if gateway {
            host.consecutive_gateway + 1
        } else {
            0
        };
        let cfg = &self.cfg;
        let by_5xx =
            host.consecutive_5xx >= cfg.consecutive_5xx && roll(cfg.enforcing_consecutive_5xx);
        let by_gateway = host.consecutive_gateway >= cfg.consecutive_gateway_failure
            && roll(cfg.enforcing_consecutive_gateway_failure);
        if !(by_5xx || by_gateway) {
            return;
        }
        let ejected_percent = 100.0 * ejected_now as f64 / total_hosts.max(1) as f64;
        let allowed = ejected_percent < f64::from(cfg.max_ejection_percent)
            || (cfg.always_eject_one_host && ejected_now == 0);
        // Envoy resets the counters whether or not the ejection is allowed.
        host.consecutive_5xx = 0;
        host.consecutive_gateway = 0;
        if allowed {
            host.ejected_at = Some(Instant::now());
            host.ejections += 1;
            self.stats.outlier_ejections.fetch_add(1, Ordering::Relaxed);
            tracing::info!(%addr, times = host.ejections, "outlier detection ejected host");
        }
    }

    /// The interval pass: return hosts whose ejection time is over, relax multipliers.
    pub fn tick(&self, now: Instant) {
        let cfg = self.cfg;
        for h in self.lock().values_mut() {
            match h.ejected_at {
                Some(at) => {
                    let time = cfg
                        .base_ejection_time
                        .saturating_mul(h.ejections)
                        .min(cfg.max_ejection_time);
                    if now.duration_since(at) >= time {
                        h.ejected_at = None;
                    }
                }
                None => h.ejections = h.ejections.saturating_sub(1),
            }
        }
    }

    /// Forget hosts that left the cluster.
    pub fn retain(&self, keep: &std::collections::HashSet<SocketAddr>) {
        self.lock().retain(|a, _| keep.contains(a));
    }
}

fn roll(percent: u32) -> bool {
    percent >= 100 || (percent > 0 && rand::rng().random_range(0..100) < percent)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cfg(max_pct: u32) -> OutlierDetection {
        OutlierDetection {
            consecutive_5xx: 2,
            enforcing_consecutive_5xx: 100,
            consecutive_gateway_failure: 5,
            enforcing_consecutive_gateway_failure: 0,
            interval: Duration::from_secs(1),
            base_ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(15),
            max_ejection_percent: max_pct,
            always_eject_one_host: false,
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_5xx_ejects_and_time_grows_to_the_cap() {
        let o = Outlier::start(cfg(100), Arc::default());
        o.report(addr(1), Attempt::Status(503), 2);
        o.report(addr(1), Attempt::Status(200), 2);
        o.report(addr(1), Attempt::Status(500), 2);
        assert!(!o.is_ejected(&addr(1)), "a success resets the count");
        o.report(addr(1), Attempt::ConnectFailure, 2);
        assert!(o.is_ejected(&addr(1)));
        tokio::time::sleep(Duration::from_millis(10_500)).await;
        assert!(
            !o.is_ejected(&addr(1)),
            "back after base_ejection_time at the next tick"
        );
        o.report(addr(1), Attempt::Status(502), 2);
        o.report(addr(1), Attempt::Status(502), 2);
        assert!(o.is_ejected(&addr(1)));
        tokio::time::sleep(Duration::from_millis(10_500)).await;
        assert!(o.is_ejected(&addr(1)), "second ejection lasts longer");
        tokio::time::sleep(Duration::from_millis(5_600)).await;
        assert!(!o.is_ejected(&addr(1)), "capped at max_ejection_time");
    }

    #[tokio::test(start_paused = true)]
    async fn max_ejection_percent_caps_ejections() {
        let o = Outlier::start(cfg(50), Arc::default());
        for port in [1, 2] {
            o.report(addr(port), Attempt::Status(500), 2);
            o.report(addr(port), Attempt::Status(500), 2);
        }
        assert!(o.is_ejected(&addr(1)) && !o.is_ejected(&addr(2)));
    }
}
