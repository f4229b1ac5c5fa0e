//! One connection type for plain TCP and TLS (server or client side), so the HTTP connection
//! manager, the TCP proxy and the upstream pools run the same code over either; plus the
//! handshakes themselves.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::{client, server};

use super::context::{DownstreamTls, UpstreamTls};

pub enum Conn {
    Plain(TcpStream),
    Server(Box<server::TlsStream<TcpStream>>),
    Client(Box<client::TlsStream<TcpStream>>),
}

impl Conn {
    /// The TCP socket underneath (addresses, SO_ORIGINAL_DST).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Server(s) => s.get_ref().0,
            Conn::Client(s) => s.get_ref().0,
        }
    }
}

/// Why a TLS handshake did not complete; the message never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("no TLS configuration yet (waiting for secrets)")]
    NotReady,
    #[error("TLS handshake failed: {0}")]
    Failed(io::Error),
}

/// Terminate TLS on an accepted connection, counting the outcome.
pub async fn accept(
    tls: &DownstreamTls,
    stream: TcpStream,
    stats: &crate::stats::Stats,
) -> Result<Conn, HandshakeError> {
    use std::sync::atomic::Ordering::Relaxed;
    let done = match tls.acceptor.load_full() {
        Some(cfg) => {
            let handshake = tokio_rustls::TlsAcceptor::from(cfg).accept(stream);
            let finished = match tls.handshake_timeout {
                Some(t) => tokio::time::timeout(t, handshake)
                    .await
                    .unwrap_or_else(|_| Err(io::Error::from(io::ErrorKind::TimedOut))),
                None => handshake.await,
            };
            finished
                .map(|s| Conn::Server(Box::new(s)))
                .map_err(HandshakeError::Failed)
        }
        None => Err(HandshakeError::NotReady),
    };
    match &done {
        Ok(_) => stats.downstream_tls_handshake.fetch_add(1, Relaxed),
        Err(_) => stats.downstream_tls_error.fetch_add(1, Relaxed),
    };
    done
}

/// Originate TLS on a connected upstream socket, for an HTTP pool (`http`) or the TCP proxy.
/// Without `sni` the endpoint's address names the server (rustls sends no SNI for an IP).
pub async fn connect(
    tls: &UpstreamTls,
    stream: TcpStream,
    addr: SocketAddr,
    http: bool,
) -> Result<Conn, HandshakeError> {
    let connector = if http {
        &tls.connector
    } else {
        &tls.raw_connector
    };
    let cfg: Arc<rustls::ClientConfig> = connector.load_full().ok_or(HandshakeError::NotReady)?;
    let name = match &tls.sni {
        Some(sni) => ServerName::try_from(sni.clone())
            .map_err(|e| HandshakeError::Failed(io::Error::new(io::ErrorKind::InvalidInput, e)))?,
        None => ServerName::IpAddress(addr.ip().into()),
    };
    tokio_rustls::TlsConnector::from(cfg)
        .connect(name, stream)
        .await
        .map(|s| Conn::Client(Box::new(s)))
        .map_err(HandshakeError::Failed)
}

/// How to reach an endpoint of a cluster (the cluster's settings).
pub struct Dial<'a> {
    pub connect_timeout: std::time::Duration,
    pub keepalive: Option<&'a crate::config::keepalive::Keepalive>,
    pub tls: Option<&'a UpstreamTls>,
    /// Offer the cluster's HTTP protocol by ALPN (HTTP pools, upgrades); raw TCP otherwise.
    pub http: bool,
}

impl<'a> Dial<'a> {
    pub fn cluster(c: &'a crate::config::Cluster, http: bool) -> Self {
        Dial {
            connect_timeout: c.connect_timeout,
            keepalive: c.keepalive.as_ref(),
            tls: c.tls.as_deref(),
            http,
        }
    }
}

/// Why `dial` failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("connect timed out after {0:?}")]
    Timeout(std::time::Duration),
    #[error("{0}")]
    Failed(io::Error),
}

/// TCP connect (no Nagle, the cluster's keepalive) plus, for a TLS cluster, the handshake:
/// Envoy counts both against `connect_timeout`, and a failed handshake or certificate check is
/// a connect failure. The one way every upstream connection is made.
pub async fn dial(endpoint: SocketAddr, d: &Dial<'_>) -> Result<Conn, DialError> {
    let connected = tokio::time::timeout(d.connect_timeout, async {
        let stream = TcpStream::connect(endpoint).await?;
        let _ = stream.set_nodelay(true);
        crate::config::keepalive::apply(d.keepalive, &stream);
        match d.tls {
            Some(tls) => connect(tls, stream, endpoint, d.http)
                .await
                .map_err(io::Error::other),
            None => Ok(Conn::Plain(stream)),
        }
    })
    .await;
    match connected {
        Ok(r) => r.map_err(DialError::Failed),
        Err(_) => Err(DialError::Timeout(d.connect_timeout)),
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Server(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Client(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Server(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Client(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Server(s) => Pin::new(s).poll_flush(cx),
            Conn::Client(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Server(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Client(s) => Pin::new(s).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Server(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Client(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Server(s) => s.is_write_vectored(),
            Conn::Client(s) => s.is_write_vectored(),
        }
    }
}
