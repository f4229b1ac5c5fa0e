//! Per-endpoint upstream connection pools: idle HTTP/1.1 connections reused one request at a
//! time, or one multiplexed HTTP/2 connection. New connections take a unit of the cluster's
//! connection budget; when none is left the request waits as pending (bounded by
//! `max_pending_requests`) for a connection to close or come back idle, as in Envoy.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::budget::{Budget, Guard};
use crate::config::UpstreamProtocol;
use crate::config::cluster_ext::PoolPolicy;
use crate::conn_life::Tracked;
use crate::stats::ClusterStats;
use crate::tls::Conn;

pub type Body = BoxBody<Bytes, hyper::Error>;

/// Why an upstream exchange failed before response headers.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connect to {addr} failed: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("connect to {addr} timed out after {timeout:?}")]
    ConnectTimeout { addr: SocketAddr, timeout: Duration },
    #[error("HTTP handshake with {addr} failed: {source}")]
    Handshake {
        addr: SocketAddr,
        source: hyper::Error,
    },
    #[error("upstream {addr} reset before response headers: {source}")]
    Reset {
        addr: SocketAddr,
        source: hyper::Error,
    },
    #[error("circuit breaker overflow: {0}")]
    Overflow(&'static str),
}

pub struct EndpointPool {
    addr: SocketAddr,
    protocol: UpstreamProtocol,
    connect_timeout: Duration,
    stats: Arc<ClusterStats>,
    budget: Arc<Budget>,
    idle_h1: Mutex<Vec<Tracked<http1::SendRequest<Body>>>>,
    h2: Mutex<Option<Tracked<http2::SendRequest<Body>>>>,
    /// Requests sent to this endpoint whose responses are not finished (least-request LB).
    pub active: Arc<AtomicU32>,
    policy: PoolPolicy,
    /// A reaper task is closing expired idle connections.
    reaping: AtomicBool,
    /// Wakes the reaper to recompute its deadline (a connection that expires sooner went idle).
    rearm: Arc<tokio::sync::Notify>,
    /// When the reaper wakes next (`None`: not known yet). Held while the reaper scans, so a
    /// connection going idle meanwhile compares its expiry with the deadline that scan chose:
    /// the reaper is woken only when a connection expires sooner than that, not per request.
    reap_at: Mutex<Option<tokio::time::Instant>>,
    keepalive: Option<crate::config::keepalive::Keepalive>,
    /// The cluster's `transport_socket`: connections are TLS.
    tls: Option<Arc<crate::tls::UpstreamTls>>,
}

impl EndpointPool {
    pub fn new(
        addr: SocketAddr,
        protocol: UpstreamProtocol,
        connect_timeout: Duration,
        stats: Arc<ClusterStats>,
        budget: Arc<Budget>,
        policy: PoolPolicy,
    ) -> Self {
        EndpointPool {
            addr,
            protocol,
            connect_timeout,
            stats,
            budget,
            idle_h1: Mutex::new(Vec::new()),
            h2: Mutex::new(None),
            active: Arc::default(),
            policy,
            reaping: AtomicBool::new(false),
            rearm: Arc::default(),
            reap_at: Mutex::new(None),
            keepalive: None,
            tls: None,
        }
    }

    /// Originate TLS on the connections this pool opens.
    pub fn with_tls(mut self, tls: Option<Arc<crate::tls::UpstreamTls>>) -> Self {
        self.tls = tls;
        self
    }

    /// Set TCP keepalive on the connections this pool opens.
    pub fn with_keepalive(mut self, k: Option<crate::config::keepalive::Keepalive>) -> Self {
        self.keepalive = k;
        self
    }

    pub async fn send(
        self: &Arc<Self>,
        req: http::Request<Body>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        match self.protocol {
            UpstreamProtocol::Http1 => self.send_h1(req).await,
            UpstreamProtocol::Http2 => self.send_h2(req).await,
        }
    }

    /// TCP connect plus, for a TLS cluster, the handshake: Envoy counts both against
    /// `connect_timeout`, and a failed handshake or certificate check is a connect failure.
    async fn connect(&self) -> Result<TokioIo<Conn>, UpstreamError> {
        use crate::tls::stream::{Dial, DialError, dial};
        let addr = self.addr;
        let how = Dial {
            connect_timeout: self.connect_timeout,
            keepalive: self.keepalive.as_ref(),
            tls: self.tls.as_deref(),
            http: true,
        };
        let stream = match dial(addr, &how).await {
            Ok(s) => s,
            Err(e) => {
                self.stats.cx_connect_fail.fetch_add(1, Ordering::Relaxed);
                return Err(match e {
                    DialError::Failed(source) => UpstreamError::Connect { addr, source },
                    DialError::Timeout(timeout) => UpstreamError::ConnectTimeout { addr, timeout },
                });
            }
        };
        self.stats.cx_total.fetch_add(1, Ordering::Relaxed);
        Ok(TokioIo::new(stream))
    }

    /// An idle connection to reuse; expired ones met on the way are dropped (closed).
    fn take_idle_h1(&self) -> Option<Tracked<http1::SendRequest<Body>>> {
        let mut idle = self.idle_h1.lock().unwrap_or_else(|p| p.into_inner());
        let now = tokio::time::Instant::now();
        while let Some(s) = idle.pop() {
            if s.sender.is_ready() && s.usable(&self.policy, now) {
                return Some(s);
            }
        }
        None
    }

    /// The shared HTTP/2 connection, counting the request about to start on it. A connection
    /// that is worn out or idle too long is retired: it finishes its streams and closes.
    fn existing_h2(&self, count: bool) -> Option<http2::SendRequest<Body>> {
        let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        let now = tokio::time::Instant::now();
        let idle = self.active.load(Ordering::Acquire) == 0;
        let live = h2.as_ref().is_some_and(|t| {
            !t.sender.is_closed()
                && !t.worn_out(&self.policy, now)
                && (!idle || t.usable(&self.policy, now))
        });
        if !live {
            *h2 = None;
            return None;
        }
        let t = h2.as_mut()?;
        if count {
            t.requests += 1;
            t.idle_since = now;
        }
        Some(t.sender.clone())
    }

    /// Close idle connections when they expire; one task per pool while any are idle.
    /// `expires` is when the connection that just went idle expires.
    fn arm_reaper(self: &Arc<Self>, expires: Option<tokio::time::Instant>) {
        if self.reaping.swap(true, Ordering::AcqRel) {
            let at = *self.reap_at.lock().unwrap_or_else(|p| p.into_inner());
            let sooner = match (expires, at) {
                (Some(e), Some(at)) => e < at,
                (None, Some(_)) => false,
                (_, None) => true,
            };
            if sooner {
                self.rearm.notify_one();
            }
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(pool) = weak.upgrade() else { return };
                let next = {
                    let mut reap_at = pool.reap_at.lock().unwrap_or_else(|p| p.into_inner());
                    let next = pool.reap();
                    *reap_at = next;
                    next
                };
                let Some(at) = next else {
                    pool.reaping.store(false, Ordering::Release);
                    // An idle connection pushed after the last check needs a reaper too.
                    if let Some(at) = pool.reap() {
                        pool.arm_reaper(Some(at));
                    }
                    return;
                };
                let rearm = pool.rearm.clone();
                drop(pool);
                tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = rearm.notified() => {}
                }
            }
        });
    }

    /// Drop expired idle connections; the earliest expiry of those left.
    fn reap(&self) -> Option<tokio::time::Instant> {
        let now = tokio::time::Instant::now();
        let mut next = None;
        let keep = |t: &Tracked<_>, next: &mut Option<tokio::time::Instant>| match t
            .expires_at(&self.policy)
        {
            Some(at) if at <= now => false,
            Some(at) => {
                *next = Some(next.map_or(at, |n: tokio::time::Instant| n.min(at)));
                true
            }
            None => true,
        };
        self.idle_h1
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|t| keep(t, &mut next));
        let idle = self.active.load(Ordering::Acquire) == 0;
        let mut h2 = self.h2.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(t) = h2.as_ref() {
            let expired = t.worn_out(&self.policy, now) || (idle && !t.usable(&self.policy, now));
            if expired {
                *h2 = None;
            } else if let Some(at) = t.expires_at(&self.policy) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        next
    }

    /// Either something reusable appeared (`None`), or the guards to open a new connection:
    /// a connection budget unit and a pending unit. Like Envoy, a request waiting for a new
    /// connection (being opened, or blocked by `max_connections`) is pending.
    async fn reuse_or_budget(
        &self,
        reusable: impl Fn() -> bool,
    ) -> Result<Option<(Guard, Guard)>, UpstreamError> {
        if reusable() {
            return Ok(None);
        }
        let Some(pending) = self.budget.try_pending() else {
            self.stats
                .rq_pending_overflow
                .fetch_add(1, Ordering::Relaxed);
            return Err(UpstreamError::Overflow("max_pending_requests"));
        };
        loop {
            if reusable() {
                return Ok(None);
            }
            if let Some(g) = self.budget.try_connection() {
                return Ok(Some((g, pending)));
            }
            let freed = self.budget.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            // Re-check after registering so a release between the checks is not missed.
            let below_max = self.budget.connections.load(Ordering::Acquire)
                < self.budget.limits.max_connections;
            if reusable() || below_max {
                continue;
            }
            freed.await;
        }
    }

    async fn send_h1(
        self: &Arc<Self>,
        req: http::Request<Body>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let addr = self.addr;
        let mut sender = loop {
            if let Some(s) = self.take_idle_h1() {
                break s;
            }
            let has_idle = || {
                !self
                    .idle_h1
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .is_empty()
            };
            let Some((guard, pending)) = self.reuse_or_budget(has_idle).await? else {
                continue;
            };
            let io = self.connect().await?;
            let (sender, conn) = http1::handshake(io)
                .await
                .map_err(|source| UpstreamError::Handshake { addr, source })?;
            drop(pending);
            tokio::spawn(async move {
                let _ = conn.await;
                drop(guard);
            });
            break Tracked::new(sender);
        };
        sender.requests += 1;
        let resp = sender
            .sender
            .send_request(req)
            .await
            .map_err(|source| UpstreamError::Reset { addr, source })?;
        // The connection is reusable once the response body has been read to the end.
        let pool = self.clone();
        tokio::spawn(async move {
            let now = tokio::time::Instant::now();
            if sender.sender.ready().await.is_ok() && !sender.worn_out(&pool.policy, now) {
                sender.idle_since = tokio::time::Instant::now();
                let expires = sender.expires_at(&pool.policy);
                pool.idle_h1
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(sender);
                pool.arm_reaper(expires);
            }
            // A retired connection is dropped here and closes, which frees its budget unit.
            pool.budget.freed.notify_waiters();
        });
        Ok(resp)
    }

    async fn send_h2(
        self: &Arc<Self>,
        req: http::Request<Body>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let addr = self.addr;
        let mut sender = loop {
            if let Some(s) = self.existing_h2(true) {
                break s;
            }
            let reusable = || self.existing_h2(false).is_some();
            let Some((guard, pending)) = self.reuse_or_budget(reusable).await? else {
                continue;
            };
            let io = self.connect().await?;
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|source| UpstreamError::Handshake { addr, source })?;
            drop(pending);
            tokio::spawn(async move {
                let _ = conn.await;
                drop(guard);
            });
            let mut tracked = Tracked::new(sender.clone());
            tracked.requests = 1;
            let expires = tracked.expires_at(&self.policy);
            *self.h2.lock().unwrap_or_else(|p| p.into_inner()) = Some(tracked);
            self.arm_reaper(expires);
            break sender;
        };
        sender
            .ready()
            .await
            .map_err(|source| UpstreamError::Reset { addr, source })?;
        sender
            .send_request(req)
            .await
            .map_err(|source| UpstreamError::Reset { addr, source })
    }
}
