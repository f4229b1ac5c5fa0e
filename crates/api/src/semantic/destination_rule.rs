//! DestinationRule rules: host, subsets, load balancing (consistent hash, locality), pools,
//! outlier detection, client TLS, port-level settings, tunnel. Also the connection-pool check
//! shared with Sidecar.

use std::collections::BTreeSet;

use super::Ctx;
use super::util::{self, duration_any, duration_min_1ms, opt_duration};
use crate::kinds::{
    ClientTlsMode, ClientTlsSettings, ConnectionPoolSettings, ConsistentHashLb, DestinationRule,
    H2UpgradePolicy, HttpSettings, LoadBalancerSettings, LocalityLbSetting, OutlierDetection,
    TcpSettings, TrafficPolicy, TunnelSettings, WarmupConfiguration,
};

pub fn check(cx: &mut Ctx<'_>, dr: &DestinationRule) {
    match dr.host.as_deref() {
        None | Some("") => cx.err("spec.host", "host is required"),
        Some(h) => cx.check("spec.host", util::wildcard_domain(h)),
    }
    util::export_to(cx, "spec.exportTo", &dr.export_to, false);
    if let Some(sel) = &dr.workload_selector {
        util::selector(cx, "spec.workloadSelector.matchLabels", &sel.match_labels);
        let own = cx.namespace().to_string();
        if dr.export_to.iter().any(|ns| ns != "." && *ns != own) {
            cx.err("spec.exportTo", "a DestinationRule with a workloadSelector may only be exported to its own namespace");
        }
    }
    if let Some(tp) = &dr.traffic_policy {
        check_traffic_policy(cx, "spec.trafficPolicy", tp);
    }
    let mut names = BTreeSet::new();
    for (i, s) in dr.subsets.iter().enumerate() {
        let path = format!("spec.subsets[{i}]");
        match s.name.as_deref() {
            None | Some("") => cx.err(&format!("{path}.name"), "subset name is required"),
            Some(n) => {
                if !crate::validate::is_dns1123_label(n) {
                    cx.err(
                        &format!("{path}.name"),
                        format!("subset name {n:?} is not a valid DNS label"),
                    );
                }
                if !names.insert(n) {
                    cx.err(
                        &format!("{path}.name"),
                        format!("duplicate subset name {n:?}"),
                    );
                }
            }
        }
        util::labels(cx, &format!("{path}.labels"), &s.labels);
        if let Some(tp) = &s.traffic_policy {
            check_traffic_policy(cx, &format!("{path}.trafficPolicy"), tp);
        }
    }
}

fn check_traffic_policy(cx: &mut Ctx<'_>, path: &str, tp: &TrafficPolicy) {
    check_policy_blocks(
        cx,
        path,
        &tp.load_balancer,
        &tp.connection_pool,
        &tp.outlier_detection,
        &tp.tls,
    );
    if let Some(t) = &tp.tunnel {
        check_tunnel(cx, &format!("{path}.tunnel"), t);
    }
    if let Some(rb) = &tp.retry_budget {
        if let Some(pc) = rb.percent
            && !(0.0..=100.0).contains(&pc)
        {
            cx.err(
                &format!("{path}.retryBudget.percent"),
                format!("percent {pc} must be in the range 0..100"),
            );
        }
        opt_duration(
            cx,
            &format!("{path}.retryBudget.budgetInterval"),
            &rb.budget_interval,
            duration_any,
        );
    }
    let mut ports = BTreeSet::new();
    for (i, pl) in tp.port_level_settings.iter().enumerate() {
        let p = format!("{path}.portLevelSettings[{i}]");
        match pl.port.as_ref().and_then(|x| x.number) {
            None => cx.err(&format!("{p}.port"), "port number is required"),
            Some(n) => {
                cx.check(&format!("{p}.port.number"), util::port(n.into()));
                if !ports.insert(n) {
                    cx.err(
                        &format!("{p}.port.number"),
                        format!("duplicate port-level settings for port {n}"),
                    );
                }
            }
        }
        if pl.load_balancer.is_none()
            && pl.connection_pool.is_none()
            && pl.outlier_detection.is_none()
            && pl.tls.is_none()
        {
            cx.err(&p, "port-level settings must set at least one of loadBalancer, connectionPool, outlierDetection or tls");
        }
        check_policy_blocks(
            cx,
            &p,
            &pl.load_balancer,
            &pl.connection_pool,
            &pl.outlier_detection,
            &pl.tls,
        );
    }
}

/// The blocks a traffic policy and a port-level policy share.
fn check_policy_blocks(
    cx: &mut Ctx<'_>,
    path: &str,
    lb: &Option<LoadBalancerSettings>,
    cp: &Option<ConnectionPoolSettings>,
    od: &Option<OutlierDetection>,
    tls: &Option<ClientTlsSettings>,
) {
    if let Some(lb) = lb {
        check_load_balancer(cx, &format!("{path}.loadBalancer"), lb);
    }
    if let Some(cp) = cp {
        check_connection_pool(cx, &format!("{path}.connectionPool"), cp);
    }
    if let Some(od) = od {
        check_outlier_detection(cx, &format!("{path}.outlierDetection"), od);
    }
    if let Some(tls) = tls {
        check_client_tls(cx, &format!("{path}.tls"), tls);
    }
}

fn check_tunnel(cx: &mut Ctx<'_>, p: &str, t: &TunnelSettings) {
    if let Some(proto) = &t.protocol
        && !proto.eq_ignore_ascii_case("CONNECT")
        && !proto.eq_ignore_ascii_case("POST")
    {
        cx.err(
            &format!("{p}.protocol"),
            format!("tunnel protocol {proto:?} must be CONNECT or POST"),
        );
    }
    match t.target_host.as_deref() {
        None | Some("") => cx.err(&format!("{p}.targetHost"), "targetHost is required"),
        Some(h) if util::is_ip(h) => {}
        Some(h) => cx.check(&format!("{p}.targetHost"), util::fqdn(h)),
    }
    cx.check(
        &format!("{p}.targetPort"),
        util::port(t.target_port.unwrap_or(0).into()),
    );
}

fn check_load_balancer(cx: &mut Ctx<'_>, path: &str, lb: &LoadBalancerSettings) {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        cx.err(path, "only one of simple or consistentHash may be set");
    }
    if let Some(ch) = &lb.consistent_hash {
        check_consistent_hash(cx, &format!("{path}.consistentHash"), ch);
    }
    if let Some(l) = &lb.locality_lb_setting {
        check_locality(cx, &format!("{path}.localityLbSetting"), l);
    }
    if lb.locality_lb_setting.is_some() && lb.zone_aware_lb_setting.is_some() {
        cx.err(
            path,
            "only one of localityLbSetting or zoneAwareLbSetting may be set",
        );
    }
    if let Some(w) = &lb.warmup {
        check_warmup(cx, &format!("{path}.warmup"), w);
    }
    opt_duration(
        cx,
        &format!("{path}.warmupDurationSecs"),
        &lb.warmup_duration_secs,
        duration_min_1ms,
    );
    if lb.warmup.is_some() && lb.warmup_duration_secs.is_some() {
        cx.err(path, "only one of warmup or warmupDurationSecs may be set");
    }
}

fn check_consistent_hash(cx: &mut Ctx<'_>, p: &str, ch: &ConsistentHashLb) {
    let keys = [
        ch.http_header_name.is_some(),
        ch.http_cookie.is_some(),
        ch.use_source_ip.is_some(),
        ch.http_query_parameter_name.is_some(),
    ];
    match keys.iter().filter(|k| **k).count() {
        0 => cx.err(p, "consistentHash must set one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName"),
        1 => {}
        _ => cx.err(p, "only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName may be set"),
    }
    if let Some(c) = &ch.http_cookie {
        if c.name.as_deref().unwrap_or("").is_empty() {
            cx.err(&format!("{p}.httpCookie.name"), "cookie name is required");
        }
        opt_duration(cx, &format!("{p}.httpCookie.ttl"), &c.ttl, duration_any);
    }
    if ch.ring_hash.is_some() && ch.maglev.is_some() {
        cx.err(p, "only one of ringHash or maglev may be set");
    }
    if ch.minimum_ring_size.is_some() && (ch.ring_hash.is_some() || ch.maglev.is_some()) {
        cx.err(
            &format!("{p}.minimumRingSize"),
            "the deprecated minimumRingSize cannot be combined with ringHash or maglev",
        );
    }
    if let Some(size) = ch.maglev.as_ref().and_then(|m| m.table_size)
        && !is_prime(size)
    {
        cx.err(
            &format!("{p}.maglev.tableSize"),
            format!("maglev table size {size} must be a prime number"),
        );
    }
}

fn check_warmup(cx: &mut Ctx<'_>, p: &str, w: &WarmupConfiguration) {
    match &w.duration {
        Some(d) => cx.check(&format!("{p}.duration"), duration_min_1ms(d)),
        None => cx.err(&format!("{p}.duration"), "duration is required"),
    }
    if let Some(m) = w.minimum_percent
        && !(0.0..=100.0).contains(&m)
    {
        cx.err(
            &format!("{p}.minimumPercent"),
            format!("minimumPercent {m} must be in the range 0..100"),
        );
    }
    if let Some(a) = w.aggression
        && a < 1.0
    {
        cx.err(
            &format!("{p}.aggression"),
            format!("aggression {a} must be at least 1"),
        );
    }
}

fn is_prime(n: i64) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

/// `region/zone/subzone`, each part non-empty; `*` may replace the trailing parts.
fn locality(s: &str) -> Result<(), String> {
    let parts: Vec<&str> = s.split('/').collect();
    let bad = parts.len() > 3
        || parts.iter().any(|p| p.is_empty())
        || parts
            .iter()
            .enumerate()
            .any(|(i, p)| p.contains('*') && (*p != "*" || i + 1 != parts.len()));
    if bad {
        Err(format!("invalid locality {s:?}"))
    } else {
        Ok(())
    }
}

fn check_locality(cx: &mut Ctx<'_>, path: &str, l: &LocalityLbSetting) {
    if !l.distribute.is_empty() && !l.failover.is_empty() {
        cx.err(path, "only one of distribute or failover may be set");
    }
    if !l.distribute.is_empty() && !l.failover_priority.is_empty() {
        cx.err(
            path,
            "only one of distribute or failoverPriority may be set",
        );
    }
    for (i, d) in l.distribute.iter().enumerate() {
        let p = format!("{path}.distribute[{i}]");
        match d.from.as_deref() {
            None | Some("") => cx.err(&format!("{p}.from"), "from is required"),
            Some(f) => cx.check(&format!("{p}.from"), locality(f)),
        }
        if d.to.is_empty() {
            cx.err(&format!("{p}.to"), "to must list at least one locality");
        }
        let mut total: u64 = 0;
        for (loc, w) in &d.to {
            cx.check(&format!("{p}.to"), locality(loc));
            total += u64::from(*w);
        }
        if !d.to.is_empty() && total != 100 {
            cx.err(
                &format!("{p}.to"),
                format!("total weight {total} must be 100"),
            );
        }
    }
    for (i, f) in l.failover.iter().enumerate() {
        let p = format!("{path}.failover[{i}]");
        let (from, to) = (
            f.from.as_deref().unwrap_or(""),
            f.to.as_deref().unwrap_or(""),
        );
        if from.is_empty() || to.is_empty() {
            cx.err(&p, "failover from and to are both required");
        } else if from == to {
            cx.err(
                &p,
                format!("failover from and to must be different regions, both are {from:?}"),
            );
        } else if from.contains('/') || to.contains('/') {
            cx.err(&p, "failover from and to must be regions (no '/')");
        }
    }
}

pub fn check_connection_pool(cx: &mut Ctx<'_>, path: &str, cp: &ConnectionPoolSettings) {
    if cp.http.is_none() && cp.tcp.is_none() {
        cx.err(path, "connectionPool must set http or tcp");
    }
    if let Some(h) = &cp.http {
        check_http_pool(cx, &format!("{path}.http"), h);
    }
    if let Some(t) = &cp.tcp {
        check_tcp_pool(cx, &format!("{path}.tcp"), t);
    }
}

fn check_http_pool(cx: &mut Ctx<'_>, p: &str, h: &HttpSettings) {
    for (field, v) in [
        ("http1MaxPendingRequests", h.http1_max_pending_requests),
        ("http2MaxRequests", h.http2_max_requests),
        ("maxRequestsPerConnection", h.max_requests_per_connection),
        ("maxRetries", h.max_retries),
        ("maxConcurrentStreams", h.max_concurrent_streams),
    ] {
        if let Some(v) = v
            && v < 0
        {
            cx.err(&format!("{p}.{field}"), format!("{v} must not be negative"));
        }
    }
    opt_duration(
        cx,
        &format!("{p}.idleTimeout"),
        &h.idle_timeout,
        duration_min_1ms,
    );
    if h.use_client_protocol == Some(true) && h.h2_upgrade_policy == Some(H2UpgradePolicy::Upgrade)
    {
        cx.err(
            p,
            "useClientProtocol cannot be combined with h2UpgradePolicy UPGRADE",
        );
    }
    if let Some(ka) = &h.http2_keep_alive {
        opt_duration(
            cx,
            &format!("{p}.http2KeepAlive.interval"),
            &ka.interval,
            duration_min_1ms,
        );
        opt_duration(
            cx,
            &format!("{p}.http2KeepAlive.timeout"),
            &ka.timeout,
            duration_min_1ms,
        );
    }
}

fn check_tcp_pool(cx: &mut Ctx<'_>, p: &str, t: &TcpSettings) {
    if let Some(v) = t.max_connections
        && v < 0
    {
        cx.err(
            &format!("{p}.maxConnections"),
            format!("{v} must not be negative"),
        );
    }
    opt_duration(
        cx,
        &format!("{p}.connectTimeout"),
        &t.connect_timeout,
        duration_min_1ms,
    );
    opt_duration(
        cx,
        &format!("{p}.maxConnectionDuration"),
        &t.max_connection_duration,
        duration_min_1ms,
    );
    // `tcp.idleTimeout: 0s` disables the idle timeout (no `duration-validation` in the CRD).
    opt_duration(
        cx,
        &format!("{p}.idleTimeout"),
        &t.idle_timeout,
        duration_any,
    );
    if let Some(ka) = &t.tcp_keepalive {
        opt_duration(
            cx,
            &format!("{p}.tcpKeepalive.time"),
            &ka.time,
            duration_min_1ms,
        );
        opt_duration(
            cx,
            &format!("{p}.tcpKeepalive.interval"),
            &ka.interval,
            duration_min_1ms,
        );
    }
}

fn check_outlier_detection(cx: &mut Ctx<'_>, path: &str, od: &OutlierDetection) {
    if let Some(v) = od.consecutive_errors
        && v < 0
    {
        cx.err(
            &format!("{path}.consecutiveErrors"),
            format!("{v} must not be negative"),
        );
    }
    opt_duration(
        cx,
        &format!("{path}.interval"),
        &od.interval,
        duration_min_1ms,
    );
    opt_duration(
        cx,
        &format!("{path}.baseEjectionTime"),
        &od.base_ejection_time,
        duration_min_1ms,
    );
    for (field, v) in [
        ("maxEjectionPercent", od.max_ejection_percent),
        ("minHealthPercent", od.min_health_percent),
    ] {
        if let Some(v) = v
            && !(0..=100).contains(&v)
        {
            cx.err(
                &format!("{path}.{field}"),
                format!("{v} must be in the range 0..100"),
            );
        }
    }
    for (i, code) in od.outlier_detection_http_error_codes.iter().enumerate() {
        if !(100..=599).contains(code) {
            cx.err(
                &format!("{path}.outlierDetectionHttpErrorCodes[{i}]"),
                format!("{code} is not an HTTP status code"),
            );
        }
    }
}

fn check_client_tls(cx: &mut Ctx<'_>, path: &str, tls: &ClientTlsSettings) {
    let files = tls.client_certificate.is_some()
        || tls.private_key.is_some()
        || tls.ca_certificates.is_some()
        || tls.ca_crl.is_some();
    match tls.mode.unwrap_or_default() {
        ClientTlsMode::IstioMutual if files || tls.credential_name.is_some() => {
            cx.err(path, "ISTIO_MUTUAL uses the mesh certificates: clientCertificate, privateKey, caCertificates, caCrl and credentialName must not be set");
        }
        ClientTlsMode::Mutual if tls.credential_name.is_none() => {
            if tls.client_certificate.is_none() {
                cx.err(
                    &format!("{path}.clientCertificate"),
                    "MUTUAL TLS requires clientCertificate (or credentialName)",
                );
            }
            if tls.private_key.is_none() {
                cx.err(
                    &format!("{path}.privateKey"),
                    "MUTUAL TLS requires privateKey (or credentialName)",
                );
            }
        }
        _ => {}
    }
    if tls.credential_name.is_some()
        && (tls.client_certificate.is_some()
            || tls.private_key.is_some()
            || tls.ca_certificates.is_some())
    {
        cx.err(
            &format!("{path}.credentialName"),
            "credentialName cannot be combined with certificate file paths",
        );
    }
}
