//! HTTP/1.1 upgrades (WebSocket) and CONNECT: when the connection manager or the route allows
//! `websocket`, the request goes to an endpoint over a fresh HTTP/1.1 connection with its
//! `Upgrade` and `Connection` headers kept; a 101 answer turns both connections into one byte
//! tunnel. A CONNECT the config allows is either forwarded the same way (tunnel after a 2xx)
//! or, with the route's `connect_config`, terminated: the proxy connects to the endpoint over
//! TCP, answers 200 and carries the payload. An upgrade or CONNECT the config does not allow
//! is refused with 403, as Envoy does. Once up, the tunnel stays under the stream's idle
//! timeout and duration limit (`crate::tunnel`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::tls::stream::{Dial, dial};
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use crate::config::UpstreamProtocol;
use crate::flags::ResponseFlag;
use crate::http::{local_error, strip_hop_by_hop};
use crate::pool::Body;
use crate::store::{Runtime, Store};
use crate::upstream::{Target, choose_cluster, upstream_uri};

/// The protocol a request asks to switch to (`Upgrade` with `Connection: upgrade`).
pub fn requested(req: &Request<Incoming>) -> Option<String> {
    let connection_upgrade = req
        .headers()
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    let protocol = req.headers().get(http::header::UPGRADE)?.to_str().ok()?;
    connection_upgrade.then(|| protocol.to_string())
}

/// What kind of tunnel a request asks for.
#[derive(Debug, Clone, Copy)]
pub enum Tunnel<'a> {
    /// `Upgrade: <protocol>` (only `websocket` can be allowed).
    Upgrade(&'a str),
    /// A CONNECT request; `terminate` answers it here instead of forwarding it.
    Connect { terminate: bool },
}

/// 403 `UPF` for an upgrade or CONNECT the connection manager and route do not allow.
pub fn refused(store: &Store, tunnel: Tunnel<'_>) -> Response<Body> {
    let cause = match tunnel {
        Tunnel::Upgrade(protocol) => {
            format!("upgrade to {protocol:?} is not allowed on this route")
        }
        Tunnel::Connect { .. } => "CONNECT is not allowed on this route".to_string(),
    };
    local_error(store, ResponseFlag::UpgradeFailed, 403, &cause)
}

/// Forwards an allowed upgrade or CONNECT (or terminates the CONNECT).
pub async fn forward(
    store: &Arc<Store>,
    runtime: &Runtime,
    target: Target<'_>,
    tunnel: Tunnel<'_>,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let f = target.forward;
    let (cluster_name, weighted) = choose_cluster(f);
    let Some(cluster) = runtime.clusters.get(&cluster_name).cloned() else {
        let cause = format!("cluster {cluster_name:?} not found");
        return local_error(
            store,
            ResponseFlag::NoCluster,
            f.cluster_not_found_status,
            &cause,
        );
    };
    let terminate = matches!(tunnel, Tunnel::Connect { terminate: true });
    if cluster.config.protocol == UpstreamProtocol::Http2 && !terminate {
        let cause = format!(
            "cluster {cluster_name:?} is HTTP/2; WebSocket and CONNECT over HTTP/2 upstreams are not supported"
        );
        return local_error(store, ResponseFlag::UpgradeFailed, 503, &cause);
    }
    let choice = crate::lb::Choice::new(
        &cluster,
        target.forward,
        req.headers(),
        target.path,
        target.downstream,
    );
    let Some(endpoint) = choice.pick(&cluster, &[]) else {
        let cause = format!("no healthy upstream for cluster {cluster_name:?}");
        return local_error(store, ResponseFlag::NoHealthyUpstream, 503, &cause);
    };
    let downstream = hyper::upgrade::on(&mut req);
    if terminate {
        let watch = (target.stream.clone(), store.clone());
        return terminate_connect(store, &cluster, &cluster_name, endpoint, downstream, watch)
            .await;
    }
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let mut timeout = f.timeout;
    let mut per_try = target.retry.and_then(|p| p.per_try_timeout);
    if target.internal {
        // Only for the announced timeout below: the handshake itself stays bounded by the
        // route's `timeout`.
        let (retry, t) = crate::overrides::apply(&mut parts.headers, target.retry, timeout);
        (timeout, per_try) = (t, retry.and_then(|p| p.per_try_timeout));
    } else {
        crate::overrides::sanitize(&mut parts.headers, false);
    }
    if target.envoy_headers
        && let Some(v) = crate::envoy_headers::expected_timeout(timeout, per_try)
    {
        // As Envoy: the upgrade request announces its timeout; the 101 / 2xx answer gets no
        // service time.
        parts
            .headers
            .insert(crate::envoy_headers::EXPECTED_RQ_TIMEOUT_MS, v);
    }
    if let Some((req_h, _)) = weighted {
        req_h.apply(&mut parts.headers);
    }
    for m in target.request_headers {
        m.apply(&mut parts.headers);
    }
    let host = f
        .host_rewrite
        .clone()
        .unwrap_or_else(|| target.authority.to_string());
    if let Ok(v) = HeaderValue::from_str(&host) {
        parts.headers.insert(http::header::HOST, v);
    }
    if let Tunnel::Upgrade(protocol) = tunnel {
        if let Ok(v) = HeaderValue::from_str(protocol) {
            parts.headers.insert(http::header::UPGRADE, v);
        }
        parts.headers.insert(
            http::header::CONNECTION,
            HeaderValue::from_static("upgrade"),
        );
        parts.uri = upstream_uri(false, &host, target.path);
    }
    // A forwarded CONNECT keeps its authority-form target.
    parts.version = http::Version::HTTP_11;
    let req = Request::from_parts(parts, body.boxed());
    cluster.stats.rq_total.fetch_add(1, Ordering::Relaxed);
    let exchange = async {
        let how = Dial::cluster(&cluster.config, true);
        let stream = dial(endpoint, &how)
            .await
            .map_err(|e| (ResponseFlag::UpstreamConnectFailure, e.to_string()))?;
        cluster.stats.cx_total.fetch_add(1, Ordering::Relaxed);
        let (mut sender, conn) = http1::handshake::<_, Body>(TokioIo::new(stream))
            .await
            .map_err(|e| (ResponseFlag::UpstreamConnectFailure, e.to_string()))?;
        tokio::spawn(conn.with_upgrades());
        sender
            .send_request(req)
            .await
            .map_err(|e| (ResponseFlag::UpstreamConnectionTermination, e.to_string()))
    };
    let sent = match f.timeout {
        Some(t) => tokio::time::timeout(t, exchange).await.unwrap_or_else(|_| {
            Err((
                ResponseFlag::UpstreamRequestTimeout,
                format!("no answer within {t:?}"),
            ))
        }),
        None => exchange.await,
    };
    let mut resp = match sent {
        Ok(r) => r,
        Err((flag, e)) => {
            cluster.stats.response(503);
            let status = if flag == ResponseFlag::UpstreamRequestTimeout {
                504
            } else {
                503
            };
            return local_error(
                store,
                flag,
                status,
                &format!("upgrade via cluster {cluster_name:?}: {e}"),
            );
        }
    };
    cluster.stats.response(resp.status().as_u16());
    let tunneled = match tunnel {
        Tunnel::Upgrade(_) => resp.status() == http::StatusCode::SWITCHING_PROTOCOLS,
        Tunnel::Connect { .. } => resp.status().is_success(),
    };
    if tunneled {
        let upstream = hyper::upgrade::on(&mut resp);
        let (activity, store) = (target.stream.clone(), store.clone());
        tokio::spawn(async move {
            let (Ok(down), Ok(up)) = (downstream.await, upstream.await) else {
                return;
            };
            let (down, up) = (TokioIo::new(down), TokioIo::new(up));
            crate::tunnel::carry(down, up, activity, store).await;
        });
    }
    let (mut parts, body) = resp.into_parts();
    if !tunneled {
        strip_hop_by_hop(&mut parts.headers);
    }
    let mut resp = Response::from_parts(parts, body.boxed());
    if let Some((_, resp_h)) = weighted {
        resp_h.apply(resp.headers_mut());
    }
    resp
}

/// CONNECT with the route's `connect_config`: connect to the endpoint, answer 200, then carry
/// the downstream's bytes over that TCP connection. A failed connect is 503 `UF`.
async fn terminate_connect(
    store: &Store,
    cluster: &crate::cluster::ClusterRuntime,
    cluster_name: &str,
    endpoint: std::net::SocketAddr,
    downstream: hyper::upgrade::OnUpgrade,
    (activity, watch_store): (Arc<crate::idle::Activity>, Arc<Store>),
) -> Response<Body> {
    cluster.stats.rq_total.fetch_add(1, Ordering::Relaxed);
    // The payload is opaque: a TLS cluster gets a raw (non-HTTP ALPN) TLS connection, as the
    // TCP proxy makes.
    let stream = match dial(endpoint, &Dial::cluster(&cluster.config, false)).await {
        Ok(s) => s,
        Err(e) => return connect_failed(store, cluster, cluster_name, &e.to_string()),
    };
    cluster.stats.cx_total.fetch_add(1, Ordering::Relaxed);
    cluster.stats.response(200);
    tokio::spawn(async move {
        if let Ok(down) = downstream.await {
            crate::tunnel::carry(TokioIo::new(down), stream, activity, watch_store).await;
        }
    });
    let mut resp = Response::new(Body::default());
    *resp.status_mut() = http::StatusCode::OK;
    resp
}

fn connect_failed(
    store: &Store,
    cluster: &crate::cluster::ClusterRuntime,
    cluster_name: &str,
    error: &str,
) -> Response<Body> {
    cluster.stats.response(503);
    let cause = format!("CONNECT via cluster {cluster_name:?}: {error}");
    local_error(store, ResponseFlag::UpstreamConnectFailure, 503, &cause)
}
