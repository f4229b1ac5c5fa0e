//! Value checks shared by the kinds: durations, host names, IPs and CIDRs, ports, labels,
//! header names, regexes, `exportTo`, protocols. Each returns `Err(message)` naming the bad
//! value; the caller adds the field path.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use super::Ctx;

/// Parse a duration as Istio's CRDs accept it (Go `time.ParseDuration` syntax: `1h`, `1m30s`,
/// `0.5s`, `250ms`, `10us`, `5ns`; a bare `0`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.starts_with('-') {
        return Err(format!("duration {s:?} must not be negative"));
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (num, tail) = rest.split_at(num_end);
        let value: f64 = num.parse().map_err(|_| bad())?;
        let unit_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_end);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += value * scale;
        rest = tail;
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// A duration that must be at least 1ms (Istio's `duration-validation` rule).
pub fn duration_min_1ms(s: &str) -> Result<(), String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(1) {
        return Err(format!("duration {s:?} must be at least 1ms"));
    }
    Ok(())
}

/// A duration that may be zero.
pub fn duration_any(s: &str) -> Result<(), String> {
    parse_duration(s).map(|_| ())
}

/// Check an optional duration field at `path` with `rule`.
pub fn opt_duration(
    cx: &mut Ctx<'_>,
    path: &str,
    value: &Option<String>,
    rule: fn(&str) -> Result<(), String>,
) {
    if let Some(v) = value {
        cx.check(path, rule(v));
    }
}

/// One DNS label, either case (Istio's host labels are case-insensitive).
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A (possibly wildcard) DNS name: `*`, `*.example.com`, `*foo.example.com`, `reviews`,
/// `reviews.default.svc.cluster.local`. A wildcard is only allowed in the first label.
pub fn wildcard_domain(host: &str) -> Result<(), String> {
    check_domain_preconditions(host)?;
    let (first, rest) = match host.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (host, None),
    };
    let first_ok = first == "*"
        || is_dns_label(first)
        || first
            .strip_prefix('*')
            .map(|tail| is_dns_label(tail.strip_prefix('-').unwrap_or(tail)))
            .unwrap_or(false);
    if !first_ok {
        return Err(format!(
            "domain name {host:?} invalid (label {first:?} invalid)"
        ));
    }
    match rest {
        Some(r) => dns_labels(host, r),
        None => Ok(()),
    }
}

/// A DNS name without wildcards.
pub fn fqdn(host: &str) -> Result<(), String> {
    check_domain_preconditions(host)?;
    dns_labels(host, host)
}

fn check_domain_preconditions(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("domain name must not be empty".into());
    }
    if host.len() > 255 {
        return Err(format!("domain name {host:?} too long (max 255)"));
    }
    Ok(())
}

fn dns_labels(host: &str, labels: &str) -> Result<(), String> {
    // A trailing dot (fully qualified form) is accepted, as by Istio.
    let labels = labels.strip_suffix('.').unwrap_or(labels);
    for label in labels.split('.') {
        if !is_dns_label(label) {
            return Err(format!(
                "domain name {host:?} invalid (label {label:?} invalid)"
            ));
        }
    }
    Ok(())
}

pub fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

/// An IP address or a CIDR block.
pub fn ip_or_cidr(s: &str) -> Result<(), String> {
    if is_ip(s) || s.parse::<ipnet::IpNet>().is_ok() {
        Ok(())
    } else {
        Err(format!("{s:?} is not a valid IP address or CIDR block"))
    }
}

/// A TCP/UDP port number, 1–65535.
pub fn port(n: i64) -> Result<(), String> {
    if (1..=65535).contains(&n) {
        Ok(())
    } else {
        Err(format!("port number {n} must be in the range 1..65535"))
    }
}

/// A Kubernetes label key: optional DNS-subdomain prefix and `/`, then a name of up to 63
/// alphanumerics, `-`, `_`, `.`, starting and ending alphanumeric.
pub fn label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty() || p.len() > 253 || !p.split('.').all(is_dns_label))
    {
        return Err(format!("invalid label key {key:?}: bad prefix {p:?}"));
    }
    if !is_label_name(name) {
        return Err(format!("invalid label key {key:?}"));
    }
    Ok(())
}

fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A Kubernetes label value: empty, or a label name.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err(format!("invalid label value {value:?}"))
    }
}

/// Every key and value of a label map.
pub fn labels(cx: &mut Ctx<'_>, path: &str, map: &BTreeMap<String, String>) {
    for (k, v) in map {
        cx.check(&format!("{path}.{k}"), label_key(k).and(label_value(v)));
    }
}

/// A workload selector: valid labels, and no wildcards (Istio rejects `*` in selectors).
pub fn selector(cx: &mut Ctx<'_>, path: &str, map: &BTreeMap<String, String>) {
    for (k, v) in map {
        let field = format!("{path}.{k}");
        if k.contains('*') || v.contains('*') {
            cx.err(
                &field,
                format!("wildcard is not supported in selector {k:?}: {v:?}"),
            );
            continue;
        }
        cx.check(&field, label_key(k).and(label_value(v)));
    }
}

/// An HTTP header name (RFC 7230 token), optionally an HTTP/2 pseudo-header (`:authority`).
pub fn header_name(name: &str) -> Result<(), String> {
    let token = name.strip_prefix(':').unwrap_or(name);
    let ok = !token.is_empty()
        && token
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid header name {name:?}"))
    }
}

/// A regex that must compile as RE2 syntax.
pub fn regex(re: &str) -> Result<(), String> {
    if re.is_empty() {
        return Err("regex must not be empty".into());
    }
    regex::Regex::new(re)
        .map(|_| ())
        .map_err(|e| format!("invalid regex {re:?}: {}", first_line(&e.to_string())))
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_string()
}

/// `exportTo`: `.`, `*`, `~` (when allowed) or namespace names; no duplicates; `*` and `~`
/// stand alone.
pub fn export_to(cx: &mut Ctx<'_>, path: &str, list: &[String], allow_none: bool) {
    let mut seen = BTreeSet::new();
    for (i, ns) in list.iter().enumerate() {
        let field = format!("{path}[{i}]");
        let ok = ns == "."
            || ns == "*"
            || (allow_none && ns == "~")
            || crate::validate::is_dns1123_label(ns);
        if !ok {
            cx.err(&field, format!("invalid exportTo value {ns:?}"));
        }
        if !seen.insert(ns.as_str()) {
            cx.err(&field, format!("duplicate exportTo value {ns:?}"));
        }
    }
    if list.len() > 1 {
        for special in ["*", "~"] {
            if seen.contains(special) {
                cx.err(path, format!("{special:?} must be the only exportTo value"));
            }
        }
    }
}

/// Protocol names Istio understands on ports (case-insensitive).
pub const PROTOCOLS: &[&str] = &[
    "http",
    "https",
    "http2",
    "grpc",
    "grpc-web",
    "http_proxy",
    "tcp",
    "tls",
    "udp",
    "mongo",
    "redis",
    "mysql",
    "thrift",
];

pub fn protocol(p: &str) -> Result<(), String> {
    if PROTOCOLS.contains(&p.to_ascii_lowercase().as_str()) {
        Ok(())
    } else {
        Err(format!("unrecognized protocol {p:?}"))
    }
}

/// `ns/host` (Gateway `servers.hosts`, Sidecar `egress.hosts`): the namespace part is `*`, `.`,
/// a namespace name, or (Sidecar only) `~`; the host part is `*` or a (wildcard) DNS name.
pub fn namespaced_host(value: &str, sidecar: bool) -> Result<(), String> {
    let (ns, host) = match value.split_once('/') {
        Some((ns, host)) => (Some(ns), host),
        None if sidecar => return Err(format!("{value:?} must be of the form namespace/dnsName")),
        None => (None, value),
    };
    if let Some(ns) = ns {
        let ns_ok = ns == "*"
            || ns == "."
            || (sidecar && ns == "~")
            || crate::validate::is_dns1123_label(
                ns.strip_prefix('~').filter(|_| sidecar).unwrap_or(ns),
            );
        if !ns_ok {
            return Err(format!("invalid namespace {ns:?} in host {value:?}"));
        }
    }
    if host == "*" || is_ip(host) {
        return Ok(());
    }
    wildcard_domain(host)
}

/// The YAML spelling of a protobuf enum value (`ISTIO_MUTUAL`), for messages.
pub fn yaml_name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::from("?"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("1s", 1000),
            ("1.5s", 1500),
            ("1m", 60_000),
            ("1h1m", 3_660_000),
            ("250ms", 250),
            ("0", 0),
            ("0s", 0),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s).map(|d| d.as_millis()), Ok(ms), "{s}");
        }
        for bad in ["", "1", "s", "1x", "-1s", "1.2.3s", "10 s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(duration_min_1ms("1ms").is_ok());
        assert!(duration_min_1ms("999us").is_err());
        assert!(duration_any("0s").is_ok());
    }

    #[test]
    fn domains() {
        for ok in [
            "*",
            "*.example.com",
            "*foo.example.com",
            "reviews",
            "reviews.default.svc.cluster.local",
            "a.b.",
            "1.2.3.4",
        ] {
            assert!(wildcard_domain(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "foo.*.com",
            "*.",
            "a..b",
            "-a.com",
            "a_b.com",
            &"a".repeat(64),
        ] {
            assert!(wildcard_domain(bad).is_err(), "{bad}");
        }
        assert!(fqdn("*.example.com").is_err());
    }

    #[test]
    fn hosts_ips_labels_headers() {
        assert!(namespaced_host("ns/a.com", false).is_ok());
        assert!(namespaced_host("a.com", false).is_ok());
        assert!(namespaced_host("a.com", true).is_err());
        assert!(namespaced_host("~/*", true).is_ok());
        assert!(namespaced_host("~/*", false).is_err());
        assert!(ip_or_cidr("10.0.0.0/8").is_ok() && ip_or_cidr("::1").is_ok());
        assert!(ip_or_cidr("10.0.0.0/33").is_err() && ip_or_cidr("host").is_err());
        assert!(label_key("app.kubernetes.io/name").is_ok() && label_key("a/b/c").is_err());
        assert!(label_value("").is_ok() && label_value("-x").is_err());
        assert!(header_name(":authority").is_ok() && header_name("x y").is_err());
        assert!(port(65535).is_ok() && port(0).is_err() && port(65536).is_err());
        assert!(protocol("grpc-web").is_ok() && protocol("spdy").is_err());
    }
}
