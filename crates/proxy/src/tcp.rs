//! TCP proxy: pick a cluster (weighted), connect to one of its endpoints, and copy bytes both
//! ways until either side closes or nothing moves for the idle timeout. Bytes are counted per
//! cluster. Either side may be TLS (a chain's or the cluster's `transport_socket`); the
//! upstream TLS handshake counts towards `connect_timeout`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::config::TcpProxy;
use crate::flags::ResponseFlag;
use crate::store::Store;
use crate::tls::Conn;

pub async fn proxy(downstream: Conn, peer: SocketAddr, cfg: &TcpProxy, store: &Store) {
    let cluster_name = choose(&cfg.clusters);
    let runtime = store.runtime.load_full();
    let Some(cluster) = runtime.clusters.get(cluster_name).cloned() else {
        store.stats.flag(ResponseFlag::NoCluster);
        tracing::debug!(%peer, cluster = cluster_name, "tcp: cluster not found");
        return;
    };
    let Some(endpoint) = crate::lb::pick_for_connection(&cluster, downstream.tcp()) else {
        store.stats.flag(ResponseFlag::NoHealthyUpstream);
        tracing::debug!(%peer, cluster = cluster_name, "tcp: no healthy upstream");
        return;
    };
    cluster.stats.rq_total.fetch_add(1, Ordering::Relaxed);
    let how = crate::tls::stream::Dial::cluster(&cluster.config, false);
    let upstream = match crate::tls::stream::dial(endpoint, &how).await {
        Ok(s) => s,
        Err(_) => {
            cluster
                .stats
                .cx_connect_fail
                .fetch_add(1, Ordering::Relaxed);
            store.stats.flag(ResponseFlag::UpstreamConnectFailure);
            tracing::debug!(%peer, upstream = %endpoint, "tcp: upstream connect failed");
            return;
        }
    };
    cluster.stats.cx_total.fetch_add(1, Ordering::Relaxed);
    let clock = Arc::new(Activity::new());
    let mut down = Tracked {
        inner: downstream,
        counter: cluster.stats.cx_rx_bytes.clone(),
        clock: clock.clone(),
    };
    let mut up = Tracked {
        inner: upstream,
        counter: cluster.stats.cx_tx_bytes.clone(),
        clock: clock.clone(),
    };
    let copy = tokio::io::copy_bidirectional(&mut down, &mut up);
    match cfg.idle_timeout {
        Some(idle) => {
            tokio::select! {
                r = copy => log_end(peer, r),
                _ = clock.idle_for(idle) => {
                    store.stats.flag(ResponseFlag::StreamIdleTimeout);
                    tracing::debug!(%peer, ?idle, "tcp: idle timeout");
                }
            }
        }
        None => log_end(peer, copy.await),
    }
}

fn log_end(peer: SocketAddr, r: io::Result<(u64, u64)>) {
    if let Err(e) = r {
        tracing::debug!(%peer, error = %e, "tcp: connection ended with error");
    }
}

fn choose(clusters: &[(String, u32)]) -> &str {
    let total: u64 = clusters.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut x = rand::rng().random_range(0..total.max(1));
    for (name, w) in clusters {
        if x < u64::from(*w) {
            return name;
        }
        x -= u64::from(*w);
    }
    clusters.last().map_or("", |(n, _)| n)
}

/// When bytes last moved in either direction.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }
    /// Resolves once nothing has moved for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A stream that counts the bytes read from it and notes activity both ways.
struct Tracked {
    inner: Conn,
    counter: Arc<AtomicU64>,
    clock: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.counter.fetch_add(n as u64, Ordering::Relaxed);
            self.clock.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(&r, Poll::Ready(Ok(n)) if *n > 0) {
            self.clock.touch();
        }
        r
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
