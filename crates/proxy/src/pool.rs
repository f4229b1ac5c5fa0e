//! Per-endpoint upstream connection pools: idle HTTP/1.1 connections reused one request at a
//! time, or one multiplexed HTTP/2 connection.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::config::UpstreamProtocol;
use crate::stats::ClusterStats;

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
}

pub struct EndpointPool {
    addr: SocketAddr,
    protocol: UpstreamProtocol,
    connect_timeout: Duration,
    stats: Arc<ClusterStats>,
    idle_h1: Mutex<Vec<http1::SendRequest<Body>>>,
    h2: Mutex<Option<http2::SendRequest<Body>>>,
}

impl EndpointPool {
    pub fn new(
        addr: SocketAddr,
        protocol: UpstreamProtocol,
        connect_timeout: Duration,
        stats: Arc<ClusterStats>,
    ) -> Self {
        EndpointPool {
            addr,
            protocol,
            connect_timeout,
            stats,
            idle_h1: Mutex::new(Vec::new()),
            h2: Mutex::new(None),
        }
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

    async fn connect(&self) -> Result<TokioIo<TcpStream>, UpstreamError> {
        let addr = self.addr;
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(source)) => {
                    self.stats
                        .cx_connect_fail
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Err(UpstreamError::Connect { addr, source });
                }
                Err(_) => {
                    self.stats
                        .cx_connect_fail
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Err(UpstreamError::ConnectTimeout {
                        addr,
                        timeout: self.connect_timeout,
                    });
                }
            };
        let _ = stream.set_nodelay(true);
        self.stats
            .cx_total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(TokioIo::new(stream))
    }

    fn take_idle_h1(&self) -> Option<http1::SendRequest<Body>> {
        let mut idle = self.idle_h1.lock().unwrap_or_else(|p| p.into_inner());
        while let Some(s) = idle.pop() {
            if s.is_ready() {
                return Some(s);
            }
        }
        None
    }

    async fn send_h1(
        self: &Arc<Self>,
        req: http::Request<Body>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let addr = self.addr;
        let mut sender = match self.take_idle_h1() {
            Some(s) => s,
            None => {
                let io = self.connect().await?;
                let (sender, conn) = http1::handshake(io)
                    .await
                    .map_err(|source| UpstreamError::Handshake { addr, source })?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                sender
            }
        };
        let resp = sender
            .send_request(req)
            .await
            .map_err(|source| UpstreamError::Reset { addr, source })?;
        // The connection is reusable once the response body has been read to the end.
        let pool = self.clone();
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                pool.idle_h1
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(sender);
            }
        });
        Ok(resp)
    }

    async fn send_h2(
        &self,
        req: http::Request<Body>,
    ) -> Result<http::Response<Incoming>, UpstreamError> {
        let addr = self.addr;
        let existing = self
            .h2
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|s| !s.is_closed());
        let mut sender = match existing {
            Some(s) => s,
            None => {
                let io = self.connect().await?;
                let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(|source| UpstreamError::Handshake { addr, source })?;
                tokio::spawn(async move {
                    let _ = conn.await;
                });
                *self.h2.lock().unwrap_or_else(|p| p.into_inner()) = Some(sender.clone());
                sender
            }
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
