//! Counters shown on `/stats/prometheus`: per cluster (requests, responses by class,
//! connections, connect failures, timeouts) and per response flag. Plain atomics: one relaxed
//! increment per event, no locks on the request path.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::flags::ResponseFlag;

/// Metric name, help text, and how to read it from a cluster's counters.
type PerCluster = (&'static str, &'static str, fn(&ClusterStats) -> u64);

#[derive(Debug, Default)]
pub struct ClusterStats {
    pub rq_total: AtomicU64,
    /// Responses by class: index 0 = 1xx ... 4 = 5xx.
    pub rq_class: [AtomicU64; 5],
    pub cx_total: AtomicU64,
    pub cx_connect_fail: AtomicU64,
    pub rq_timeout: AtomicU64,
    pub rq_retry: AtomicU64,
    /// Requests refused by `max_pending_requests` or `max_requests`.
    pub rq_pending_overflow: AtomicU64,
    /// Retries not sent because of `max_retries`.
    pub rq_retry_overflow: AtomicU64,
    pub outlier_ejections: AtomicU64,
    /// TCP proxy bytes from downstream to upstream, and back.
    pub cx_rx_bytes: Arc<AtomicU64>,
    pub cx_tx_bytes: Arc<AtomicU64>,
}

impl ClusterStats {
    pub fn response(&self, status: u16) {
        let class = usize::from(status / 100).saturating_sub(1).min(4);
        self.rq_class[class].fetch_add(1, Ordering::Relaxed);
    }
}

/// All counters. Cluster stats outlive config updates so counts do not reset on a push.
#[derive(Debug, Default)]
pub struct Stats {
    clusters: Mutex<BTreeMap<String, Arc<ClusterStats>>>,
    flags: Mutex<BTreeMap<&'static str, u64>>,
    pub downstream_rq: AtomicU64,
    pub downstream_cx: AtomicU64,
    /// Downstream TLS handshakes completed / failed (Envoy's `ssl.handshake`,
    /// `ssl.connection_error`).
    pub downstream_tls_handshake: AtomicU64,
    pub downstream_tls_error: AtomicU64,
}

impl Stats {
    pub fn cluster(&self, name: &str) -> Arc<ClusterStats> {
        let mut m = self.clusters.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(name.to_string()).or_default().clone()
    }

    pub fn flag(&self, flag: ResponseFlag) {
        let mut m = self.flags.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry(flag.code()).or_default() += 1;
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let clusters = self
            .clusters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let counter = |out: &mut String, name: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        };
        counter(
            &mut out,
            "plexus_cluster_upstream_rq_total",
            "Requests sent to the cluster.",
        );
        for (name, s) in &clusters {
            let _ = writeln!(
                out,
                "plexus_cluster_upstream_rq_total{{cluster=\"{name}\"}} {}",
                s.rq_total.load(Ordering::Relaxed)
            );
        }
        counter(
            &mut out,
            "plexus_cluster_upstream_rq_class_total",
            "Responses by status class.",
        );
        for (name, s) in &clusters {
            for (i, c) in s.rq_class.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "plexus_cluster_upstream_rq_class_total{{cluster=\"{name}\",class=\"{}xx\"}} {}",
                    i + 1,
                    c.load(Ordering::Relaxed)
                );
            }
        }
        let per_cluster: [PerCluster; 9] = [
            (
                "plexus_cluster_tcp_downstream_bytes_total",
                "TCP proxy bytes received from downstream and sent to the cluster.",
                |s| s.cx_rx_bytes.load(Ordering::Relaxed),
            ),
            (
                "plexus_cluster_tcp_upstream_bytes_total",
                "TCP proxy bytes received from the cluster and sent downstream.",
                |s| s.cx_tx_bytes.load(Ordering::Relaxed),
            ),
            (
                "plexus_cluster_outlier_detection_ejections_total",
                "Hosts ejected by outlier detection.",
                |s| s.outlier_ejections.load(Ordering::Relaxed),
            ),
            (
                "plexus_cluster_upstream_rq_overflow_total",
                "Requests refused by the circuit breaker (max_requests, max_pending_requests).",
                |s| s.rq_pending_overflow.load(Ordering::Relaxed),
            ),
            (
                "plexus_cluster_upstream_rq_retry_overflow_total",
                "Retries not sent because of max_retries.",
                |s| s.rq_retry_overflow.load(Ordering::Relaxed),
            ),
            (
                "plexus_cluster_upstream_rq_retry_total",
                "Retries sent to the cluster.",
                |s| s.rq_retry.load(Ordering::Relaxed),
            ),
            (
                "plexus_cluster_upstream_cx_total",
                "Upstream connections opened.",
                |s| s.cx_total.load(Ordering::Relaxed),
            ),
            (
                "plexus_cluster_upstream_cx_connect_fail_total",
                "Upstream connect failures.",
                |s| s.cx_connect_fail.load(Ordering::Relaxed),
            ),
            (
                "plexus_cluster_upstream_rq_timeout_total",
                "Requests that hit the route timeout.",
                |s| s.rq_timeout.load(Ordering::Relaxed),
            ),
        ];
        for (metric, help, get) in per_cluster {
            counter(&mut out, metric, help);
            for (name, s) in &clusters {
                let _ = writeln!(out, "{metric}{{cluster=\"{name}\"}} {}", get(s));
            }
        }
        counter(
            &mut out,
            "plexus_response_flags_total",
            "Locally generated responses by response flag.",
        );
        for (flag, n) in self.flags.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            let _ = writeln!(out, "plexus_response_flags_total{{flag=\"{flag}\"}} {n}");
        }
        counter(&mut out, "plexus_downstream_rq_total", "Requests received.");
        let _ = writeln!(
            out,
            "plexus_downstream_rq_total {}",
            self.downstream_rq.load(Ordering::Relaxed)
        );
        counter(
            &mut out,
            "plexus_downstream_cx_total",
            "Connections accepted.",
        );
        let _ = writeln!(
            out,
            "plexus_downstream_cx_total {}",
            self.downstream_cx.load(Ordering::Relaxed)
        );
        for (name, help, v) in [
            (
                "plexus_downstream_tls_handshake_total",
                "Downstream TLS handshakes completed.",
                &self.downstream_tls_handshake,
            ),
            (
                "plexus_downstream_tls_error_total",
                "Downstream TLS handshakes that failed.",
                &self.downstream_tls_error,
            ),
        ] {
            counter(&mut out, name, help);
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }
        out
    }
}
