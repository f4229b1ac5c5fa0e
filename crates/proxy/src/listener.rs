//! Bound listeners: accept loops that hand each connection to the HTTP connection manager
//! (HTTP/1.1 keep-alive and h2c via hyper-util's auto builder) or the TCP proxy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::config::capture::Capture;
use crate::config::capture::ChainKey;
use crate::config::{Listener, ListenerKind, listener::Codec};
use crate::detect::{Detected, TimedOut};
use crate::flags::ResponseFlag;
use crate::store::Store;
use crate::tls::Conn;

/// A running accept loop. Dropping it stops accepting; open connections finish on their own.
pub struct ActiveListener {
    pub config: Arc<ArcSwap<Listener>>,
    pub bound: SocketAddr,
    _stop: watch::Sender<bool>,
}

/// Bind synchronously so a bind failure can NACK the push that asked for it.
pub fn start(config: Listener, store: Arc<Store>) -> std::io::Result<ActiveListener> {
    if !config.capture.bind {
        // `bind_to_port: false`: only connections handed over by a `use_original_dst`
        // listener reach it (see `handoff`), so there is no socket and no accept loop.
        let (stop, _) = watch::channel(false);
        return Ok(ActiveListener {
            bound: config.address,
            config: Arc::new(ArcSwap::from_pointee(config)),
            _stop: stop,
        });
    }
    let std_listener = std::net::TcpListener::bind(config.address)?;
    std_listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(std_listener)?;
    let bound = listener.local_addr()?;
    let config = Arc::new(ArcSwap::from_pointee(config));
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(accept_loop(listener, config.clone(), store, stopped));
    Ok(ActiveListener {
        config,
        bound,
        _stop: stop,
    })
}

async fn accept_loop(
    listener: TcpListener,
    config: Arc<ArcSwap<Listener>>,
    store: Arc<Store>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = stopped.changed() => return,
        };
        let _ = stream.set_nodelay(true);
        store.stats.downstream_cx.fetch_add(1, Ordering::Relaxed);
        let own = config.load_full();
        let (cfg, conn) = crate::handoff::route_connection(&own, &stream, peer, &store);
        let store = store.clone();
        // A handed-over connection runs on a snapshot of the target listener's config.
        let config = if Arc::ptr_eq(&cfg, &own) {
            config.clone()
        } else {
            Arc::new(ArcSwap::new(cfg.clone()))
        };
        tokio::spawn(async move {
            store.active_connections.fetch_add(1, Ordering::AcqRel);
            let key = chain_key(&stream, &cfg.capture, &conn).await;
            let chain = key
                .as_ref()
                .and_then(|key| cfg.chain_for(key).map(|c| (key, c)));
            let stream = match chain.and_then(|(_, c)| c.tls()) {
                Some(tls) => crate::tls::stream::accept(tls, stream, &store.stats).await,
                None => Ok(Conn::Plain(stream)),
            };
            match (chain, stream) {
                (_, Err(e)) => tracing::debug!(%peer, error = %e, "downstream TLS failed"),
                (Some((key, ListenerKind::Http(_))), Ok(stream)) => {
                    let tls = matches!(stream, Conn::Server(_));
                    let conn = crate::downstream::Downstream { tls, ..conn };
                    serve_http(stream, conn, key.clone(), config, store.clone()).await
                }
                (Some((_, ListenerKind::Tcp(t))), Ok(stream)) => {
                    crate::tcp::proxy(stream, peer, t, &store).await
                }
                // Envoy closes a connection no filter chain matches, and one whose listener
                // filters time out without `continue_on_listener_filters_timeout`.
                (None, Ok(_)) => store.stats.flag(ResponseFlag::NoRoute),
            }
            store.active_connections.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// What the listener filters say about a connection, for chain selection; `None` when they
/// time out and the listener closes such connections. Without inspecting filters nothing is
/// read, so server-first protocols are never held up. The destination is where the client
/// meant to connect (SO_ORIGINAL_DST of a redirected connection), as Envoy restores it.
async fn chain_key(
    stream: &TcpStream,
    capture: &Capture,
    conn: &crate::downstream::Downstream,
) -> Option<ChainKey> {
    let mut key = ChainKey {
        port: conn.original_dst.port(),
        destination: Some(conn.original_dst.ip()),
        source: Some(conn.peer),
        ..ChainKey::default()
    };
    if !capture.inspect_tls && !capture.inspect_http {
        return Some(key);
    }
    match crate::detect::sniff(stream, capture.filters_timeout, capture.inspect_http).await {
        Ok(Detected::Tls { server_name, alpn }) if capture.inspect_tls => {
            (key.tls, key.server_name, key.alpn) = (true, server_name, alpn);
        }
        Ok(d) if capture.inspect_http => key.application_protocol = d.application_protocol(),
        Ok(_) => {}
        Err(TimedOut) if capture.continue_on_timeout => {}
        Err(TimedOut) => return None,
    }
    Some(key)
}

pub(crate) async fn serve_http(
    stream: Conn,
    conn: crate::downstream::Downstream,
    key: ChainKey,
    config: Arc<ArcSwap<Listener>>,
    store: Arc<Store>,
) {
    let codec = match config.load().chain_for(&key) {
        Some(ListenerKind::Http(m)) => m.codec,
        _ => return,
    };
    let svc = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(conn);
        let store = store.clone();
        // Route source is read per request so an LDS update applies to open connections too.
        let routes = match config.load().chain_for(&key) {
            Some(ListenerKind::Http(m)) => Some(m.clone()),
            _ => None,
        };
        async move {
            let resp = match routes {
                Some(manager) => crate::http::handle(store, manager, req).await,
                None => crate::http::local_error(
                    &store,
                    ResponseFlag::NoRoute,
                    404,
                    "listener is no longer HTTP",
                )
                .map(crate::idle::Streamed::plain),
            };
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder = match codec {
        Codec::Auto => builder,
        Codec::Http1 => builder.http1_only(),
        Codec::Http2 => builder.http2_only(),
    };
    if let Err(e) = builder
        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
        .await
    {
        tracing::debug!(error = %e, "downstream connection ended with error");
    }
}
