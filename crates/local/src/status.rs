//! The live status table of `plexus up`: services, workloads, replicas, each sidecar's sync
//! state as the control plane reports it on `/debug/syncz`, and the gateway addresses.
//!
//! `/debug/syncz` is read leniently: Plexus's shape (`{"proxies": [{"proxy": ID, "types":
//! {"clusters": {"state": "SYNCED", ...}, ...}}]}`, the proxy's state being its worst type's) and
//! Istio's (a JSON array of per-proxy objects with `<type>_sent`/`<type>_acked` nonce pairs), so
//! a field added by the control plane does not break the table.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;

/// One row per replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaRow {
    pub services: Vec<String>,
    pub workload: String,
    pub replica: String,
    pub address: String,
    /// `running`, `restarting (exit status ...)`, ...
    pub process: String,
    /// SYNCED / STALE / NACKED / `-` (not connected).
    pub sidecar: String,
}

/// Everything the table shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub rows: Vec<ReplicaRow>,
    /// `(address served, Gateway port, sync state)`.
    pub gateways: Vec<(String, u16, String)>,
}

/// Render as an aligned text table.
pub fn render(s: &Status) -> String {
    let mut lines = vec![[
        "SERVICES".to_string(),
        "WORKLOAD".into(),
        "REPLICA".into(),
        "POD IP".into(),
        "PROCESS".into(),
        "SIDECAR".into(),
    ]];
    for r in &s.rows {
        let services = if r.services.is_empty() {
            "-".into()
        } else {
            r.services.join(",")
        };
        lines.push([
            services,
            r.workload.clone(),
            r.replica.clone(),
            r.address.clone(),
            r.process.clone(),
            r.sidecar.clone(),
        ]);
    }
    let mut widths = [0usize; 6];
    for l in &lines {
        for (w, c) in widths.iter_mut().zip(l) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for l in &lines {
        let cells: Vec<String> = l
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    for (addr, port, state) in &s.gateways {
        out.push_str(&format!(
            "gateway  http://{addr}/  (Gateway port {port})  {state}\n"
        ));
    }
    out
}

/// Sync state per proxy, keyed by pod name (`<pod>` of `<pod>.<namespace>` or of an Istio node
/// id `sidecar~<ip>~<pod>.<ns>~...`).
pub fn parse_syncz(body: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let items = match serde_json::from_str::<Value>(body) {
        Ok(Value::Array(items)) => items,
        Ok(Value::Object(mut m)) => match m.remove("proxies") {
            Some(Value::Array(items)) => items,
            _ => return out,
        },
        _ => return out,
    };
    for item in items {
        let Some(id) = ["proxy", "id", "node", "node_id", "proxyId"]
            .iter()
            .find_map(|k| item.get(*k).and_then(Value::as_str))
        else {
            continue;
        };
        out.insert(pod_of(id), state_of(&item));
    }
    out
}

fn pod_of(id: &str) -> String {
    let pod_ns = id.split('~').nth(2).unwrap_or(id);
    pod_ns.split('.').next().unwrap_or(pod_ns).to_string()
}

fn state_of(item: &Value) -> String {
    if let Some(types) = item.get("types").and_then(Value::as_object) {
        let states: Vec<String> = types
            .values()
            .filter_map(|t| t.get("state").and_then(Value::as_str))
            .map(str::to_uppercase)
            .collect();
        return worst(&states);
    }
    for k in ["status", "state", "sync_status"] {
        if let Some(s) = item.get(k).and_then(Value::as_str) {
            return s.to_uppercase();
        }
    }
    let Some(map) = item.as_object() else {
        return "UNKNOWN".into();
    };
    let nacked = map
        .iter()
        .any(|(k, v)| k.ends_with("_nacked") && !v.is_null() && v != "");
    if nacked {
        return "NACKED".into();
    }
    let mut any = false;
    let mut state = "SYNCED";
    for (k, sent) in map {
        let Some(ty) = k.strip_suffix("_sent") else {
            continue;
        };
        any = true;
        let acked = map.get(&format!("{ty}_acked"));
        if acked != Some(sent) {
            state = "STALE";
        }
    }
    if any { state.into() } else { "UNKNOWN".into() }
}

/// NACKED beats STALE beats anything else but SYNCED; SYNCED only when every type is.
fn worst(states: &[String]) -> String {
    for bad in ["NACKED", "STALE"] {
        if states.iter().any(|s| s == bad) {
            return bad.into();
        }
    }
    match states.iter().find(|s| *s != "SYNCED") {
        Some(other) => other.clone(),
        None if states.is_empty() => "UNKNOWN".into(),
        None => "SYNCED".into(),
    }
}

/// `GET http://addr/path` (HTTP/1.1, `Connection: close`: Envoy's admin refuses HTTP/1.0); a short timeout because the table must
/// not stall when the control plane is busy or restarting.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String), String> {
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| format!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let timeout = Duration::from_secs(2);
    let mut s = TcpStream::connect_timeout(&sock, timeout).map_err(|e| format!("{addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(timeout));
    // One write: a server may answer (and close) as soon as it has the header block.
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)
        .map_err(|e| format!("{addr}{path}: {e}"))?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("{addr}{path}: not an HTTP response"))?;
    Ok((code, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncz_states_from_status_or_nonces() {
        let body = r#"[
          {"proxy":"reviews-v1-0.default","status":"synced"},
          {"id":"sidecar~127.1.1.2~ratings-v1-0.default~default.svc.cluster.local",
           "cluster_sent":"n1","cluster_acked":"n1","listener_sent":"n2","listener_acked":"n1"},
          {"proxy":"details-v1-0.default","cluster_sent":"a","cluster_acked":"a","route_nacked":"bad"},
          {"proxy":"x.default","cluster_sent":"a","cluster_acked":"a"},
          {"nothing":"here"}
        ]"#;
        let m = parse_syncz(body);
        assert_eq!(m.get("reviews-v1-0").map(String::as_str), Some("SYNCED"));
        assert_eq!(m.get("ratings-v1-0").map(String::as_str), Some("STALE"));
        assert_eq!(m.get("details-v1-0").map(String::as_str), Some("NACKED"));
        assert_eq!(m.get("x").map(String::as_str), Some("SYNCED"));
        assert_eq!(m.len(), 4);
        assert!(parse_syncz("not json").is_empty());
    }

    #[test]
    fn syncz_in_plexus_shape_takes_the_worst_type() {
        let body = r#"{"snapshot_version": 3, "proxies": [
          {"proxy":"sidecar~127.1.1.1~reviews-v1-0.default~default.svc.cluster.local",
           "types": {"clusters": {"state":"SYNCED"}, "listeners": {"state":"SYNCED"}}},
          {"proxy":"sidecar~127.1.1.2~ratings-v1-0.default~default.svc.cluster.local",
           "types": {"clusters": {"state":"SYNCED"}, "routes": {"state":"NACKED"}, "listeners": {"state":"STALE"}}},
          {"proxy":"router~127.0.0.1~istio-ingressgateway-0.istio-system~istio-system.svc.cluster.local",
           "types": {"clusters": {"state":"SYNCED"}, "routes": {"state":"NOT SENT"}}}
        ]}"#;
        let m = parse_syncz(body);
        assert_eq!(m.get("reviews-v1-0").map(String::as_str), Some("SYNCED"));
        assert_eq!(m.get("ratings-v1-0").map(String::as_str), Some("NACKED"));
        assert_eq!(
            m.get("istio-ingressgateway-0").map(String::as_str),
            Some("NOT SENT")
        );
    }

    #[test]
    fn table_is_aligned_and_lists_gateways() {
        let s = Status {
            rows: vec![
                ReplicaRow {
                    services: vec!["reviews".into()],
                    workload: "reviews-v1".into(),
                    replica: "reviews-v1-0".into(),
                    address: "127.1.1.1".into(),
                    process: "running".into(),
                    sidecar: "SYNCED".into(),
                },
                ReplicaRow {
                    services: vec![],
                    workload: "x".into(),
                    replica: "x-0".into(),
                    address: "127.1.1.2".into(),
                    process: "restarting".into(),
                    sidecar: "-".into(),
                },
            ],
            gateways: vec![("127.0.0.1:8080".into(), 80, "SYNCED".into())],
        };
        let t = render(&s);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4, "{t}");
        let col = |l: &str| {
            l.find("reviews-v1-0")
                .or_else(|| l.find("x-0"))
                .or_else(|| l.find("REPLICA"))
        };
        assert_eq!(col(lines[0]), col(lines[1]));
        assert_eq!(col(lines[1]), col(lines[2]));
        assert!(lines[2].starts_with("-  "), "{t}");
        assert_eq!(
            lines[3],
            "gateway  http://127.0.0.1:8080/  (Gateway port 80)  SYNCED"
        );
    }

    #[test]
    fn http_get_reads_status_and_body() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr").to_string();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().expect("accept");
            let mut req = Vec::new();
            let mut buf = [0u8; 256];
            while !req.ends_with(b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]");
        });
        assert_eq!(
            http_get(&addr, "/debug/syncz").expect("get"),
            (200, "[]".to_string())
        );
        let _ = t.join();
    }
}
