//! The admin endpoint (`--admin-address`, default 127.0.0.1:15000): `/ready`, `/healthz`,
//! `/config_dump`, `/clusters`, `/listeners`, `/stats/prometheus`, `/quitquitquit`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use plexus_xds::client::StatusHandle;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{Discovery, ListenerKind, RouteSource};
use crate::store::Store;

#[derive(Clone)]
pub struct AdminState {
    pub store: Arc<Store>,
    pub ads: StatusHandle,
    pub node_id: String,
    /// Sending `true` asks the proxy to drain and exit.
    pub quit: watch::Sender<bool>,
    pub log_control: Option<crate::LogControl>,
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

pub async fn serve(listener: TcpListener, state: AdminState, mut stop: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
            _ = stop.changed() => return,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&state, &req)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn text(status: u16, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

fn route(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let ready = state.store.ready.load(std::sync::atomic::Ordering::Acquire);
    let json_type = "application/json";
    match req.uri().path() {
        "/ready" if ready => text(200, "LIVE\n".into(), "text/plain"),
        "/ready" => text(503, "PRE_INITIALIZING\n".into(), "text/plain"),
        "/healthz" => text(200, "OK\n".into(), "text/plain"),
        "/stats/prometheus" => text(200, state.store.stats.render(), "text/plain; version=0.0.4"),
        "/config_dump" => text(200, pretty(config_dump(state)), json_type),
        "/clusters" => text(200, pretty(clusters(&state.store)), json_type),
        "/listeners" => text(200, pretty(listeners(&state.store)), json_type),
        "/logging" => logging(state, req),
        "/quitquitquit" if req.method() == http::Method::POST => {
            let _ = state.quit.send(true);
            text(200, "OK\n".into(), "text/plain")
        }
        "/quitquitquit" => text(405, "use POST\n".into(), "text/plain"),
        _ => text(404, "unknown admin path\n".into(), "text/plain"),
    }
}

/// GET shows the log filter; POST `?level=FILTER` (an `EnvFilter` directive such as `debug` or
/// `plexus_proxy=trace,info`) replaces it.
fn logging(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let Some(control) = &state.log_control else {
        return text(
            501,
            "log control is not available in this process\n".into(),
            "text/plain",
        );
    };
    let level = req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("level="))
            .map(|v| v.replace("%2C", ",").replace("%3D", "="))
    });
    let result = match (req.method() == http::Method::POST, level) {
        (true, Some(level)) => control(Some(&level)),
        (true, None) => return text(400, "POST /logging?level=FILTER\n".into(), "text/plain"),
        (false, _) => control(None),
    };
    match result {
        Ok(current) => text(200, format!("{current}\n"), "text/plain"),
        Err(e) => text(400, format!("{e}\n"), "text/plain"),
    }
}

fn pretty(v: Value) -> String {
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}

/// Same shape as Envoy's `/listeners?format=json`, so tools read both.
fn listeners(store: &Store) -> Value {
    let statuses: Vec<Value> = store
        .listeners
        .load()
        .iter()
        .map(|(name, l)| {
            json!({"name": name, "local_address": {"socket_address": {
                "address": l.bound.ip().to_string(), "port_value": l.bound.port()}}})
        })
        .collect();
    json!({ "listener_statuses": statuses })
}

fn clusters(store: &Store) -> Value {
    let runtime = store.runtime.load();
    let mut names: Vec<&String> = runtime.clusters.keys().collect();
    names.sort();
    let list: Vec<Value> = names
        .into_iter()
        .filter_map(|n| runtime.clusters.get(n).map(|c| (n, c)))
        .map(|(name, c)| {
            let eps: Vec<Value> = c
                .endpoints()
                .iter()
                .map(|e| {
                    let ejected = c.outlier.as_ref().is_some_and(|o| o.is_ejected(&e.addr));
                    let hc_failed = c.health.as_ref().is_some_and(|h| h.is_failed(&e.addr));
                    // Envoy's `/clusters` text names these flags; empty means healthy.
                    let flags: Vec<&str> = [
                        (hc_failed, "/failed_active_hc"),
                        (ejected, "/failed_outlier_check"),
                    ]
                    .into_iter()
                    .filter_map(|(on, f)| on.then_some(f))
                    .collect();
                    json!({"address": e.addr.to_string(), "weight": e.weight,
                           "health": if hc_failed { "UNHEALTHY" } else { "HEALTHY" },
                           "health_flags": flags.concat(), "outlier_ejected": ejected})
                })
                .collect();
            json!({"name": name, "endpoints": eps})
        })
        .collect();
    json!({ "clusters": list })
}

fn config_dump(state: &AdminState) -> Value {
    let store = &state.store;
    let runtime = store.runtime.load();
    let listeners: Vec<Value> = store
        .listeners
        .load()
        .iter()
        .map(|(name, l)| {
            let kind = match &l.config.kind {
                ListenerKind::Http(m) => match &m.routes {
                    RouteSource::Rds(r) => json!({"http": {"codec": format!("{:?}", m.codec), "rds": r}}),
                    RouteSource::Inline(rc) => json!({"http": {"codec": format!("{:?}", m.codec), "route_config": format!("{rc:?}")}}),
                },
                ListenerKind::Tcp(t) => json!({"tcp_proxy": {
                    "clusters": t.clusters.iter().map(|(c, w)| json!({"name": c, "weight": w})).collect::<Vec<_>>(),
                    "idle_timeout_ms": t.idle_timeout.map(|d| d.as_millis() as u64)}}),
            };
            json!({"name": name, "address": l.config.address.to_string(), "bound": l.bound.to_string(), "filter": kind})
        })
        .collect();
    let mut routes: Vec<(&String, String)> = runtime
        .routes
        .iter()
        .map(|(k, v)| (k, format!("{v:?}")))
        .collect();
    routes.sort();
    let mut clusters: Vec<Value> = runtime
        .clusters
        .values()
        .map(|c| {
            let cfg = &c.config;
            let discovery = match &cfg.discovery {
                Discovery::Static(_) => json!("STATIC"),
                Discovery::Eds(s) => json!({"EDS": s}),
                Discovery::Dns(t) => {
                    json!({"STRICT_DNS": t.hosts.iter().map(|h| format!("{}:{}", h.host, h.port)).collect::<Vec<_>>()})
                }
                Discovery::OriginalDst(h) => {
                    json!({"ORIGINAL_DST": h.as_ref().map(|h| h.as_str().to_string())})
                }
            };
            json!({"name": cfg.name, "discovery": discovery, "lb_policy": format!("{:?}", cfg.lb),
                   "protocol": format!("{:?}", cfg.protocol),
                   "connect_timeout_ms": cfg.connect_timeout.as_millis() as u64,
                   "endpoints": c.endpoints().iter().map(|e| e.addr.to_string()).collect::<Vec<_>>()})
        })
        .collect();
    clusters.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    let ads = ads_status(state);
    json!({
        "node_id": state.node_id,
        "ads": ads,
        "listeners": listeners,
        "route_configs": routes.into_iter().map(|(n, d)| json!({"name": n, "config": d})).collect::<Vec<_>>(),
        "clusters": clusters,
        "tls": store.tls.load().to_json(),
    })
}

fn ads_status(state: &AdminState) -> Value {
    let Ok(s) = state.ads.lock() else {
        return Value::Null;
    };
    let mut types: Vec<Value> = s
        .types
        .iter()
        .map(|(t, ts)| {
            json!({"type": plexus_xds::short_type(t), "accepted_version": ts.accepted_version,
                   "last_nonce": ts.last_nonce, "acks": ts.acks, "nacks": ts.nacks, "last_error": ts.last_error})
        })
        .collect();
    types.sort_by(|a, b| a["type"].as_str().cmp(&b["type"].as_str()));
    json!({"connected": s.connected, "connects": s.connects, "types": types})
}
