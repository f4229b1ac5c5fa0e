//! `plexus proxy-status` and `plexus proxy-config`: read the control plane's debug API and
//! print what each proxy was sent and whether it accepted it (istioctl's commands of the same
//! names), plus any config the control plane rejected, by file, line and error.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::Value;

#[derive(Args)]
pub struct StatusArgs {
    /// The control plane's debug API.
    #[arg(long, env = "PLEXUS_DEBUG_ADDRESS", default_value = plexus_control::DEFAULT_DEBUG_ADDRESS)]
    debug_address: String,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ConfigType {
    Listeners,
    Routes,
    Clusters,
    Endpoints,
    Secrets,
}

impl ConfigType {
    fn name(self) -> &'static str {
        match self {
            ConfigType::Listeners => "listeners",
            ConfigType::Routes => "routes",
            ConfigType::Clusters => "clusters",
            ConfigType::Endpoints => "endpoints",
            ConfigType::Secrets => "secrets",
        }
    }
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(Args)]
pub struct ConfigArgs {
    /// Which resources to show.
    #[arg(value_enum)]
    kind: ConfigType,
    /// Node id, or a unique part of it (`productpage-v1-0.default`).
    proxy: String,
    #[arg(long, env = "PLEXUS_DEBUG_ADDRESS", default_value = plexus_control::DEFAULT_DEBUG_ADDRESS)]
    debug_address: String,
    #[arg(long, short = 'o', value_enum, default_value = "table")]
    output: Format,
}

fn fetch(debug: &str, path: &str) -> Result<Value, String> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| format!("cannot start runtime: {e}"))?;
    let url = format!("http://{debug}{path}");
    let (status, body) = rt
        .block_on(plexus_testkit::envoy::http_get(&url))
        .ok_or_else(|| format!("cannot reach the control plane's debug API at {debug} (is `plexus control` running? --debug-address)"))?;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{url}: not JSON: {e}"))?;
    if status != 200 {
        let msg = v
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or(&body)
            .to_string();
        return Err(msg);
    }
    Ok(v)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub fn status(args: StatusArgs) -> ExitCode {
    let result = fetch(&args.debug_address, "/debug/syncz")
        .and_then(|sync| Ok((sync, fetch(&args.debug_address, "/debug/configz")?)));
    let (sync, config) = match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    crate::output::print(&render_status(&sync, &config));
    ExitCode::SUCCESS
}

/// The table, then NACK messages, then rejected config.
pub fn render_status(sync: &Value, config: &Value) -> String {
    let mut out = String::new();
    let proxies = sync["proxies"].as_array().cloned().unwrap_or_default();
    let width = proxies
        .iter()
        .map(|p| s(&p["proxy"]).len())
        .max()
        .unwrap_or(5)
        .max(5);
    out.push_str(&format!(
        "{:width$}  {:8} {:8} {:8} {:8} {:8} {:8} {}\n",
        "NAME", "TYPE", "PROTOCOL", "CDS", "LDS", "EDS", "RDS", "VERSION"
    ));
    let mut nacks = Vec::new();
    for p in &proxies {
        let st = |t: &str| s(&p["types"][t]["state"]);
        out.push_str(&format!(
            "{:width$}  {:8} {:8} {:8} {:8} {:8} {:8} {}\n",
            s(&p["proxy"]),
            s(&p["proxy_type"]),
            s(&p["protocol"]),
            st("CDS"),
            st("LDS"),
            st("EDS"),
            st("RDS"),
            s(&p["snapshot_version"]),
        ));
        for t in ["CDS", "LDS", "EDS", "RDS", "SDS"] {
            if let Some(msg) = p["types"][t]["nack"].as_str() {
                nacks.push(format!("{} {t} NACKED: {msg}", s(&p["proxy"])));
            }
        }
    }
    if proxies.is_empty() {
        out.push_str("(no proxies connected)\n");
    }
    for n in nacks {
        out.push_str(&format!("\n{n}\n"));
    }
    let rejected = config["rejected"].as_array().cloned().unwrap_or_default();
    if !rejected.is_empty() {
        out.push_str("\nRejected config:\n");
        for r in rejected {
            out.push_str(&format!("  {}\n", s(&r["text"])));
        }
    }
    out
}

pub fn config(args: ConfigArgs) -> ExitCode {
    let ConfigArgs {
        kind,
        proxy,
        debug_address,
        output,
    } = args;
    let result = fetch(&debug_address, "/debug/syncz").and_then(|sync| {
        let id = resolve_proxy(&sync, &proxy)?;
        let query = format!(
            "/debug/config_dump?proxyID={}&type={}",
            encode(&id),
            kind.name()
        );
        fetch(&debug_address, &query)
    });
    let dump = match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let resources = dump[kind.name()]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    match output {
        Format::Json => {
            crate::output::println(&serde_json::to_string_pretty(&resources).unwrap_or_default());
        }
        Format::Table => {
            crate::output::print(&render_table(kind, &resources));
        }
    }
    ExitCode::SUCCESS
}

/// The one connected node id equal to, or containing, `wanted`.
fn resolve_proxy(sync: &Value, wanted: &str) -> Result<String, String> {
    let ids: Vec<String> = sync["proxies"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| s(&p["proxy"]))
        .collect();
    if ids.iter().any(|i| i == wanted) {
        return Ok(wanted.to_string());
    }
    let matching: Vec<&String> = ids.iter().filter(|i| i.contains(wanted)).collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(format!(
            "no connected proxy matches {wanted:?}; connected: {ids:?}"
        )),
        many => Err(format!("{wanted:?} matches several proxies: {many:?}")),
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn render_table(kind: ConfigType, resources: &[Value]) -> String {
    let mut rows: Vec<Vec<String>> = Vec::new();
    match kind {
        ConfigType::Listeners => {
            rows.push(vec!["NAME".into(), "ADDRESS".into(), "DESTINATION".into()]);
            for l in resources {
                for fc in l["filter_chains"].as_array().into_iter().flatten() {
                    for f in fc["filters"].as_array().into_iter().flatten() {
                        let dest = if let Some(r) = f["routes"]["rds"].as_str() {
                            format!("Route: {r}")
                        } else if !f["cluster"].is_null() {
                            format!("Cluster: {}", s(&f["cluster"]))
                        } else if !f["routes"].is_null() {
                            "Inline routes".into()
                        } else {
                            s(&f["name"])
                        };
                        rows.push(vec![s(&l["name"]), s(&l["address"]), dest]);
                    }
                }
            }
        }
        ConfigType::Routes => {
            rows.push(vec![
                "NAME".into(),
                "VIRTUAL HOST".into(),
                "DOMAINS".into(),
                "MATCH".into(),
                "ACTION".into(),
            ]);
            for r in resources {
                for vh in r["virtual_hosts"].as_array().into_iter().flatten() {
                    let domains: Vec<String> = vh["domains"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(s)
                        .collect();
                    for route in vh["routes"].as_array().into_iter().flatten() {
                        let mut m = s(&route["match"]);
                        for h in route["headers"].as_array().into_iter().flatten() {
                            m.push_str(&format!(" [{}]", s(h)));
                        }
                        rows.push(vec![
                            s(&r["name"]),
                            s(&vh["name"]),
                            domains.join(","),
                            m,
                            s(&route["action"]),
                        ]);
                    }
                }
            }
        }
        ConfigType::Clusters => {
            rows.push(vec![
                "NAME".into(),
                "TYPE".into(),
                "LB".into(),
                "EDS SERVICE".into(),
            ]);
            for c in resources {
                rows.push(vec![
                    s(&c["name"]),
                    s(&c["type"]),
                    s(&c["lb_policy"]),
                    s(&c["eds_service_name"]),
                ]);
            }
        }
        ConfigType::Endpoints => {
            rows.push(vec![
                "ENDPOINT".into(),
                "CLUSTER".into(),
                "WEIGHT".into(),
                "PRIORITY".into(),
            ]);
            for c in resources {
                for e in c["endpoints"].as_array().into_iter().flatten() {
                    rows.push(vec![
                        s(&e["address"]),
                        s(&c["name"]),
                        s(&e["weight"]),
                        s(&e["priority"]),
                    ]);
                }
            }
        }
        ConfigType::Secrets => secret_rows(resources, &mut rows),
    }
    table(&rows)
}

/// SDS resources: one row per certificate (istioctl's `proxy-config secret` columns, plus SANs
/// and a fingerprint). Key material is never in the debug API to begin with.
fn secret_rows(resources: &[Value], rows: &mut Vec<Vec<String>>) {
    rows.push(
        ["RESOURCE NAME", "TYPE", "SANS", "NOT AFTER", "SHA-256"]
            .map(String::from)
            .to_vec(),
    );
    for r in resources {
        for c in r["certificates"].as_array().into_iter().flatten() {
            let sans: Vec<String> = c["sans"].as_array().into_iter().flatten().map(s).collect();
            rows.push(vec![
                s(&r["name"]),
                s(&r["kind"]),
                sans.join(","),
                s(&c["not_after"]),
                s(&c["sha256"]),
            ]);
        }
    }
}

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_table_lists_states_nacks_and_rejections() {
        let sync = json!({"proxies": [{"proxy": "sidecar~127.0.0.1~a-0.default~default.svc.cluster.local",
            "proxy_type": "sidecar", "protocol": "SotW", "snapshot_version": "4",
            "types": {"CDS": {"state": "SYNCED"}, "LDS": {"state": "NACKED", "nack": "Listener \"x\": bad"},
                      "EDS": {"state": "SYNCED"}, "RDS": {"state": "STALE"}}}]});
        let config = json!({"rejected": [{"text": "vs.yaml:9:7: error: VirtualService default/r: unknown field"}]});
        let out = render_status(&sync, &config);
        assert!(out.contains("SYNCED   NACKED   SYNCED   STALE"), "{out}");
        assert!(out.contains("LDS NACKED: Listener \"x\": bad"), "{out}");
        assert!(
            out.contains("vs.yaml:9:7: error: VirtualService default/r"),
            "{out}"
        );
    }

    #[test]
    fn secrets_table_shows_names_sans_expiry_and_fingerprint() {
        let resources = vec![json!({"name": "kubernetes://gw-cred", "kind": "Cert Chain",
            "certificates": [{"sans": ["DNSName(a.example.com)", "DNSName(b.example.com)"],
                              "not_after": "Nov 27 18:00:00 2027 +00:00", "sha256": "ab12"}]})];
        let out = render_table(ConfigType::Secrets, &resources);
        let mut lines = out.lines();
        let header = lines.next().unwrap_or_default();
        assert!(header.starts_with("RESOURCE NAME"), "{out}");
        let row = lines.next().unwrap_or_default();
        for want in [
            "kubernetes://gw-cred",
            "Cert Chain",
            "DNSName(a.example.com),DNSName(b.example.com)",
            "Nov 27 18:00:00 2027 +00:00",
            "ab12",
        ] {
            assert!(row.contains(want), "{want} missing: {out}");
        }
    }

    #[test]
    fn proxy_names_resolve_by_unique_part() {
        let sync =
            json!({"proxies": [{"proxy": "sidecar~1~a-0.ns~x"}, {"proxy": "sidecar~1~b-0.ns~x"}]});
        assert_eq!(
            resolve_proxy(&sync, "a-0.ns").ok().as_deref(),
            Some("sidecar~1~a-0.ns~x")
        );
        assert!(resolve_proxy(&sync, "ns").is_err());
        assert!(resolve_proxy(&sync, "zzz").is_err());
        assert_eq!(encode("a~b"), "a%7Eb");
    }
}
