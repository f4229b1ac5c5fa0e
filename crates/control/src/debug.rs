//! The debug API (DESIGN §8, default 127.0.0.1:15014): `/debug/syncz`, `/debug/configz`,
//! `/debug/registryz`, `/debug/config_dump?proxyID=ID[&type=listeners|routes|clusters|endpoints|secrets]`
//! and `/metrics` (Prometheus text). `plexus proxy-status` and `plexus proxy-config` read it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use plexus_sources::ConfigState;
use plexus_xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE, short_type};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::ads::Hub;
use crate::render;

/// What the debug handlers read.
#[derive(Clone)]
pub struct DebugState {
    pub hub: Arc<Hub>,
    pub config: watch::Receiver<Arc<ConfigState>>,
    /// Objects the control plane made itself (auto-registered WorkloadEntries).
    pub generated: watch::Receiver<Vec<plexus_api::Object>>,
}

/// Serve until `stop` turns true.
pub async fn serve(listener: TcpListener, state: DebugState, mut stop: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!("debug API accept: {e}");
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&state, &req)) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

fn handle(state: &DebugState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let query = req.uri().query().unwrap_or_default();
    match req.uri().path() {
        "/debug/syncz" => json_response(200, syncz(&state.hub)),
        "/debug/configz" => json_response(200, configz(&state.config.borrow())),
        "/debug/registryz" => json_response(200, registryz(state)),
        "/debug/config_dump" => match param(query, "proxyID") {
            Some(id) => match config_dump(&state.hub, &id, param(query, "type").as_deref()) {
                Ok(v) => json_response(200, v),
                Err((code, msg)) => json_response(code, json!({"error": msg})),
            },
            None => json_response(
                400,
                json!({"error": "config_dump needs ?proxyID=<node id>"}),
            ),
        },
        "/metrics" => text(200, metrics(state), "text/plain; version=0.0.4"),
        "/" | "/debug" => text(200, INDEX.to_string(), "text/plain"),
        _ => text(
            404,
            format!("unknown debug path; try:\n{INDEX}"),
            "text/plain",
        ),
    }
}

const INDEX: &str = "/debug/syncz\n/debug/configz\n/debug/registryz\n/debug/config_dump?proxyID=ID[&type=listeners|routes|clusters|endpoints|secrets]\n/metrics\n";

fn text(code: u16, body: String, content_type: &str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

fn json_response(code: u16, v: Value) -> Response<Full<Bytes>> {
    let body = serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
    text(code, body, "application/json")
}

/// Decode one `key=value` query parameter (percent-decoding `%XX` and `+`).
pub fn param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| percent_decode(v))
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

const TYPES: [(&str, &str); 5] = [
    ("clusters", CLUSTER_TYPE),
    ("endpoints", ENDPOINT_TYPE),
    ("listeners", LISTENER_TYPE),
    ("routes", ROUTE_TYPE),
    ("secrets", SECRET_TYPE),
];

/// Per proxy: type, protocol, and per xDS type the sent/ACKed version and sync state.
pub fn syncz(hub: &Hub) -> Value {
    let proxies: Vec<Value> = hub
        .proxies()
        .into_iter()
        .map(|p| {
            let mut types = serde_json::Map::new();
            for (_, url) in TYPES {
                let t = p.types.get(url).cloned().unwrap_or_default();
                types.insert(
                    short_type(url).to_string(),
                    json!({
                        "state": t.state(),
                        "sent_version": t.sent_version,
                        "sent_nonce": t.sent_nonce,
                        "acked_version": t.acked_version,
                        "nack": t.nack,
                        "pushes": t.pushes,
                        "nacks": t.nacks,
                        "resources": t.resources.len(),
                    }),
                );
            }
            json!({
                "proxy": p.id,
                "proxy_type": p.proxy_type,
                "protocol": p.protocol,
                "snapshot_version": p.snapshot_version,
                "types": types,
            })
        })
        .collect();
    json!({ "proxies": proxies, "snapshot_version": hub.generator().version() })
}

/// Accepted objects (with where they were read), rejected ones with file:line:col and error,
/// and the analyzers' messages.
pub fn configz(state: &ConfigState) -> Value {
    let accepted: Vec<Value> = state
        .accepted
        .values()
        .map(|o| {
            json!({
                "resource": o.resource_name(),
                "apiVersion": o.api_version,
                "path": o.origin.path.to_string(),
                "line": o.origin.pos.line,
            })
        })
        .collect();
    let rejected: Vec<Value> = state
        .rejected
        .iter()
        .map(|r| {
            json!({
                "resource": r.resource,
                "path": r.path,
                "line": r.line,
                "col": r.col,
                "error": r.message,
                "serving_previous": r.serving_previous,
                "text": r.to_string(),
            })
        })
        .collect();
    json!({
        "generation": state.generation,
        "accepted": accepted,
        "rejected": rejected,
        "analysis": state.analysis,
    })
}

fn registryz(state: &DebugState) -> Value {
    let generated: Vec<Value> = state
        .generated
        .borrow()
        .iter()
        .map(|o| json!({"resource": o.resource_name(), "object": o.root.to_json()}))
        .collect();
    json!({
        "snapshot_version": state.hub.generator().version(),
        "registry": state.hub.generator().describe(),
        "auto_registered": generated,
    })
}

/// What the control plane last sent `proxy_id`, per type, as readable summaries.
pub fn config_dump(hub: &Hub, proxy_id: &str, only: Option<&str>) -> Result<Value, (u16, String)> {
    let Some(p) = hub.proxy(proxy_id) else {
        let known: Vec<String> = hub.proxies().into_iter().map(|p| p.id).collect();
        return Err((
            404,
            format!("no connected proxy {proxy_id:?}; connected: {known:?}"),
        ));
    };
    if let Some(t) = only
        && !TYPES.iter().any(|(n, _)| *n == t)
    {
        return Err((
            400,
            format!("unknown type {t:?}: listeners, routes, clusters, endpoints or secrets"),
        ));
    }
    let mut out = serde_json::Map::new();
    out.insert("proxy".into(), json!(p.id));
    for (name, url) in TYPES {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let t = p.types.get(url).cloned().unwrap_or_default();
        let items: Vec<Value> = t
            .resources
            .iter()
            .map(|(n, any)| render::resource(url, n, any))
            .collect();
        out.insert(
            name.into(),
            json!({"version": t.sent_version, "resources": items}),
        );
    }
    Ok(Value::Object(out))
}

/// NACKs received so far, by xDS type (`LDS`, `CDS`...), whatever proxy sent them.
pub fn nack_counts(hub: &Hub) -> Vec<(String, u64)> {
    crate::ads::hub::lock(&hub.counters.nacks)
        .iter()
        .map(|(t, n)| (t.clone(), *n))
        .collect()
}

fn metrics(state: &DebugState) -> String {
    let hub = &state.hub;
    let proxies = hub.proxies();
    let mut out = String::new();
    out.push_str("# HELP plexus_xds_connected_proxies Proxies with an open ADS stream.\n");
    out.push_str("# TYPE plexus_xds_connected_proxies gauge\n");
    out.push_str(&format!("plexus_xds_connected_proxies {}\n", proxies.len()));
    out.push_str("# HELP plexus_xds_connections_total ADS streams opened.\n");
    out.push_str("# TYPE plexus_xds_connections_total counter\n");
    out.push_str(&format!(
        "plexus_xds_connections_total {}\n",
        hub.counters.connections.load(Ordering::Relaxed)
    ));
    for (metric, help, map) in [
        (
            "plexus_xds_pushes_total",
            "xDS responses sent, by type.",
            &hub.counters.pushes,
        ),
        (
            "plexus_xds_nacks_total",
            "xDS responses a proxy rejected, by type.",
            &hub.counters.nacks,
        ),
    ] {
        out.push_str(&format!(
            "# HELP {metric} {help}\n# TYPE {metric} counter\n"
        ));
        for (t, n) in crate::ads::hub::lock(map).iter() {
            out.push_str(&format!("{metric}{{type=\"{t}\"}} {n}\n"));
        }
    }
    let cfg = state.config.borrow();
    out.push_str("# HELP plexus_config_objects Config objects served (accepted) and rejected.\n");
    out.push_str("# TYPE plexus_config_objects gauge\n");
    out.push_str(&format!(
        "plexus_config_objects{{state=\"accepted\"}} {}\n",
        cfg.accepted.len()
    ));
    out.push_str(&format!(
        "plexus_config_objects{{state=\"rejected\"}} {}\n",
        cfg.rejected.len()
    ));
    out.push_str("# HELP plexus_config_generation Reloads of the config directory.\n");
    out.push_str("# TYPE plexus_config_generation counter\n");
    out.push_str(&format!("plexus_config_generation {}\n", cfg.generation));
    let mut by_state = std::collections::BTreeMap::<&str, u64>::new();
    for p in &proxies {
        for t in p.types.values() {
            *by_state.entry(t.state()).or_default() += 1;
        }
    }
    out.push_str("# HELP plexus_xds_sync_state Proxy xDS types by sync state.\n");
    out.push_str("# TYPE plexus_xds_sync_state gauge\n");
    for (s, n) in by_state {
        out.push_str(&format!("plexus_xds_sync_state{{state=\"{s}\"}} {n}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_are_decoded() {
        let q = "proxyID=sidecar~127.0.0.1~a.ns~ns.svc.cluster.local&type=routes";
        assert_eq!(param(q, "type").as_deref(), Some("routes"));
        assert_eq!(
            param("proxyID=a%7Eb+c", "proxyID").as_deref(),
            Some("a~b c")
        );
        assert_eq!(param("x=%zz%", "x").as_deref(), Some("%zz%"));
        assert_eq!(param(q, "missing"), None);
    }
}
