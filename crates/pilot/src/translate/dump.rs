//! A readable, deterministic text dump of [`Generated`] for golden tests and debugging:
//! each resource's `{:#?}` with every known `Any` payload decoded in place and proto3 default
//! fields (None, 0, false, "", [], {}) left out, like proto3 JSON omits them.
//!
//! Protobuf `map` fields are Rust `HashMap`s; their entries are sorted by key in the dump so the
//! text is stable. (Their protobuf *encoding* follows `HashMap` order: compare resources with
//! `==`, not by their bytes.)

use std::fmt::Debug;

use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors, CorsPolicy};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    DownstreamTlsContext, UpstreamTlsContext,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::HttpProtocolOptions;
use prost::{Message, Name};

use super::Generated;

/// The whole translation as text: listeners, routes, clusters, endpoints, warnings.
pub fn dump(g: &Generated) -> String {
    let mut out = String::new();
    for l in &g.listeners {
        section(&mut out, "listener", &l.name, l);
    }
    for r in &g.routes {
        section(&mut out, "route", &r.name, r);
    }
    for c in &g.clusters {
        section(&mut out, "cluster", &c.name, c);
    }
    for e in &g.endpoints {
        section(&mut out, "endpoints", &e.cluster_name, e);
    }
    for w in &g.warnings {
        out.push_str(&format!("=== warning\n{w}\n"));
    }
    out
}

fn section(out: &mut String, kind: &str, name: &str, m: &dyn Debug) {
    out.push_str(&format!("=== {kind} {name}\n{}\n", message(m)));
}

/// One message as text (Any decoded, defaults omitted).
pub fn message(m: &dyn Debug) -> String {
    let text = sort_maps(&decode_anys(&format!("{m:#?}")));
    text.lines()
        .filter(|l| !is_default(l.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_default(line: &str) -> bool {
    let Some((key, value)) = line.split_once(": ") else {
        return false;
    };
    let key_ok = key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let value = value.trim_end_matches(',');
    key_ok && matches!(value, "None" | "0" | "false" | "\"\"" | "[]" | "{}" | "0.0")
}

/// Sort the entries of every `{ "key": value, ... }` map (pretty Debug of a `HashMap`).
fn sort_maps(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    sort_range(&lines).join("\n")
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn sort_range(lines: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        out.push(line.to_string());
        i += 1;
        let opens_map = line.ends_with('{')
            && lines.get(i).is_some_and(|n| {
                n.trim_start().starts_with('"') && indent_of(n) == indent_of(line) + 4
            });
        if !opens_map {
            continue;
        }
        let inner = indent_of(line) + 4;
        let mut entries: Vec<Vec<&str>> = Vec::new();
        while i < lines.len() && indent_of(lines[i]) >= inner {
            if indent_of(lines[i]) == inner && lines[i].trim_start().starts_with('"') {
                entries.push(Vec::new());
            }
            if let Some(e) = entries.last_mut() {
                e.push(lines[i]);
            }
            i += 1;
        }
        entries.sort_by(|a, b| a.first().cmp(&b.first()));
        for e in entries {
            out.extend(sort_range(&e));
        }
    }
    out
}

/// Replace `type_url: "X", value: [bytes]` pairs with the decoded message when X is known.
fn decode_anys(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let url = line
            .trim()
            .strip_prefix("type_url: \"")
            .and_then(|r| r.strip_suffix("\","));
        let next = lines.get(i + 1).map(|l| l.trim());
        if let (Some(url), Some("value: [")) = (url, next) {
            let indent = &lines[i + 1][..lines[i + 1].len() - lines[i + 1].trim_start().len()];
            let mut bytes = Vec::new();
            let mut j = i + 2;
            while j < lines.len() && lines[j].trim() != "]," {
                if let Ok(b) = lines[j].trim().trim_end_matches(',').parse::<u8>() {
                    bytes.push(b);
                }
                j += 1;
            }
            out.push(line.to_string());
            let decoded = decode(url, &bytes)
                .map(|d| decode_anys(&d))
                .unwrap_or_else(|| format!("<{} bytes>", bytes.len()));
            let mut first = true;
            for d in decoded.lines() {
                if first {
                    out.push(format!("{indent}value: {d}"));
                    first = false;
                } else {
                    out.push(format!("{indent}{d}"));
                }
            }
            if let Some(last) = out.last_mut() {
                last.push(',');
            }
            i = j + 1;
            continue;
        }
        out.push(line.to_string());
        i += 1;
    }
    out.join("\n")
}

fn decode(url: &str, bytes: &[u8]) -> Option<String> {
    fn d<T: Message + Name + Default + Debug>(url: &str, bytes: &[u8]) -> Option<String> {
        if url != T::type_url() {
            return None;
        }
        T::decode(bytes).ok().map(|m| format!("{m:#?}"))
    }
    d::<HttpConnectionManager>(url, bytes)
        .or_else(|| d::<TcpProxy>(url, bytes))
        .or_else(|| d::<Router>(url, bytes))
        .or_else(|| d::<HttpFault>(url, bytes))
        .or_else(|| d::<Cors>(url, bytes))
        .or_else(|| d::<CorsPolicy>(url, bytes))
        .or_else(|| d::<OriginalDst>(url, bytes))
        .or_else(|| d::<TlsInspector>(url, bytes))
        .or_else(|| d::<HttpProtocolOptions>(url, bytes))
        .or_else(|| d::<UpstreamTlsContext>(url, bytes))
        .or_else(|| d::<DownstreamTlsContext>(url, bytes))
        .or_else(|| d::<PreviousHostsPredicate>(url, bytes))
        .or_else(|| d::<PreviousPrioritiesConfig>(url, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_entries_are_sorted_and_defaults_dropped() {
        let text = "A {\n    m: {\n        \"z\": X {\n            v: 1,\n        },\n        \"a\": X {\n            v: 0,\n        },\n    },\n    n: None,\n}";
        let got = sort_maps(text);
        let a = got.find("\"a\"").expect("a");
        let z = got.find("\"z\"").expect("z");
        assert!(a < z, "{got}");
        assert!(is_default("n: None,"));
        assert!(is_default("v: 0,"));
        assert!(!is_default("\"k\": 0,"));
        assert!(!is_default("v: 1,"));
    }
}
