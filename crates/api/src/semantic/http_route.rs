//! The HTTP routes of a VirtualService: exclusive actions, matches, redirect/rewrite, retries,
//! faults, mirrors, CORS and header operations.

use super::Ctx;
use super::util::{self, duration_min_1ms, opt_duration};
use super::virtual_service::{check_destination, check_destinations, gateway_ref};
use crate::kinds::{
    CorsPolicy, Headers, HttpFaultInjection, HttpMatchRequest, HttpRedirect, HttpRetry,
    HttpRewrite, HttpRoute, StringMatch,
};

/// Envoy retry conditions Istio accepts in `retryOn` (besides HTTP status codes).
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// gRPC status names accepted by `fault.abort.grpcStatus`.
const GRPC_CODES: &[&str] = &[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

const HTTP_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "*",
];

pub(super) fn check_http_route(cx: &mut Ctx<'_>, path: &str, r: &HttpRoute, delegate_vs: bool) {
    check_exclusive_actions(cx, path, r);
    check_delegate(cx, path, r, delegate_vs);
    for (i, m) in r.r#match.iter().enumerate() {
        check_http_match(cx, &format!("{path}.match[{i}]"), m);
    }
    let weights: Vec<_> = r.route.iter().map(|d| d.weight).collect();
    check_destinations(cx, path, r.route.iter().map(|d| &d.destination), &weights);
    for (i, d) in r.route.iter().enumerate() {
        if let Some(h) = &d.headers {
            check_headers(cx, &format!("{path}.route[{i}].headers"), h);
        }
    }
    if let Some(rd) = &r.redirect {
        check_redirect(cx, &format!("{path}.redirect"), rd, r);
    }
    if let Some(rw) = &r.rewrite {
        check_rewrite(cx, &format!("{path}.rewrite"), rw);
    }
    check_direct_response(cx, path, r);
    opt_duration(cx, &format!("{path}.timeout"), &r.timeout, duration_min_1ms);
    if let Some(retry) = &r.retries {
        check_retries(cx, &format!("{path}.retries"), retry);
    }
    if let Some(f) = &r.fault {
        check_fault(cx, &format!("{path}.fault"), f);
    }
    check_mirrors(cx, path, r);
    if let Some(c) = &r.cors_policy {
        check_cors(cx, &format!("{path}.corsPolicy"), c);
    }
    if let Some(h) = &r.headers {
        check_headers(cx, &format!("{path}.headers"), h);
        check_authority_once(cx, path, r, h);
    }
}

fn check_delegate(cx: &mut Ctx<'_>, path: &str, r: &HttpRoute, delegate_vs: bool) {
    let Some(d) = &r.delegate else { return };
    if delegate_vs {
        cx.err(
            &format!("{path}.delegate"),
            "a delegate VirtualService must not delegate again",
        );
    }
    match d.name.as_deref() {
        None | Some("") => cx.err(
            &format!("{path}.delegate.name"),
            "delegate name is required",
        ),
        Some(n) if !crate::validate::is_dns1123_subdomain(n) => cx.err(
            &format!("{path}.delegate.name"),
            format!("invalid delegate name {n:?}"),
        ),
        Some(_) => {}
    }
    if let Some(ns) = d.namespace.as_deref()
        && !crate::validate::is_dns1123_label(ns)
    {
        cx.err(
            &format!("{path}.delegate.namespace"),
            format!("invalid namespace {ns:?}"),
        );
    }
}

fn check_direct_response(cx: &mut Ctx<'_>, path: &str, r: &HttpRoute) {
    let Some(dr) = &r.direct_response else { return };
    let status = dr.status.unwrap_or(0);
    if !(200..=599).contains(&status) {
        cx.err(
            &format!("{path}.directResponse.status"),
            format!("status {status} must be in the range 200..599"),
        );
    }
    if let Some(body) = &dr.body
        && body.string.is_some()
        && body.bytes.is_some()
    {
        cx.err(
            &format!("{path}.directResponse.body"),
            "only one of string or bytes may be set",
        );
    }
}

/// Setting `:authority`/`host` in request headers rewrites the authority, as `rewrite.authority`
/// does; doing both is ambiguous.
fn check_authority_once(cx: &mut Ctx<'_>, path: &str, r: &HttpRoute, h: &Headers) {
    let authority_header = h.request.as_ref().is_some_and(|req| {
        req.set
            .keys()
            .chain(req.add.keys())
            .any(|k| is_authority(k))
    });
    if authority_header && r.rewrite.as_ref().is_some_and(|rw| rw.authority.is_some()) {
        cx.err(
            &format!("{path}.headers.request"),
            "authority is set twice: by rewrite.authority and by a request header",
        );
    }
}

fn is_authority(header: &str) -> bool {
    header.eq_ignore_ascii_case(":authority") || header.eq_ignore_ascii_case("host")
}

/// redirect / route / directResponse / delegate are alternatives; rewrite and fault only make
/// sense when traffic is forwarded.
fn check_exclusive_actions(cx: &mut Ctx<'_>, path: &str, r: &HttpRoute) {
    let actions = [
        ("route", !r.route.is_empty()),
        ("redirect", r.redirect.is_some()),
        ("directResponse", r.direct_response.is_some()),
        ("delegate", r.delegate.is_some()),
    ];
    let set: Vec<&str> = actions.iter().filter(|a| a.1).map(|a| a.0).collect();
    if set.is_empty() {
        cx.err(
            path,
            "one of route, redirect, directResponse or delegate is required",
        );
    } else if set.len() > 1 {
        cx.err(
            path,
            format!(
                "only one of route, redirect, directResponse or delegate may be set, found {}",
                set.join(" and ")
            ),
        );
    }
    let forwarding = !r.route.is_empty() || r.delegate.is_some();
    if r.rewrite.is_some() && r.redirect.is_some() {
        cx.err(
            &format!("{path}.rewrite"),
            "rewrite cannot be combined with redirect",
        );
    }
    if r.rewrite.is_some() && r.direct_response.is_some() {
        cx.err(
            &format!("{path}.rewrite"),
            "rewrite cannot be combined with directResponse",
        );
    }
    if r.fault.is_some() && !forwarding && (r.redirect.is_some() || r.direct_response.is_some()) {
        cx.err(
            &format!("{path}.fault"),
            "fault cannot be combined with redirect or directResponse",
        );
    }
}

fn check_string_match(cx: &mut Ctx<'_>, path: &str, m: &StringMatch) {
    let set = [&m.exact, &m.prefix, &m.regex]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if set > 1 {
        cx.err(path, "only one of exact, prefix or regex may be set");
    }
    if m.prefix.as_deref() == Some("") {
        cx.err(&format!("{path}.prefix"), "prefix match must not be empty");
    }
    if let Some(re) = &m.regex {
        cx.check(&format!("{path}.regex"), util::regex(re));
    }
}

fn check_http_match(cx: &mut Ctx<'_>, path: &str, m: &HttpMatchRequest) {
    for (name, sm) in [
        ("uri", &m.uri),
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(sm) = sm {
            check_string_match(cx, &format!("{path}.{name}"), sm);
        }
    }
    for (field, map) in [
        ("headers", &m.headers),
        ("withoutHeaders", &m.without_headers),
    ] {
        for (name, sm) in map {
            let p = format!("{path}.{field}.{name}");
            if name.starts_with("@request.auth.claims") {
                cx.check(&p, jwt_claim_key(name));
            } else {
                cx.check(&p, util::header_name(name));
                if name.chars().any(|c| c.is_ascii_uppercase()) {
                    cx.err(&p, format!("header match name {name:?} must be lowercase"));
                }
            }
            check_string_match(cx, &p, sm);
        }
    }
    for (name, sm) in &m.query_params {
        check_string_match(cx, &format!("{path}.queryParams.{name}"), sm);
    }
    if let Some(port) = m.port {
        cx.check(&format!("{path}.port"), util::port(port.into()));
    }
    util::labels(cx, &format!("{path}.sourceLabels"), &m.source_labels);
    for (i, gw) in m.gateways.iter().enumerate() {
        cx.check(&format!("{path}.gateways[{i}]"), gateway_ref(gw));
    }
    if let Some(ns) = m.source_namespace.as_deref()
        && !crate::validate::is_dns1123_label(ns)
    {
        cx.err(
            &format!("{path}.sourceNamespace"),
            format!("invalid namespace {ns:?}"),
        );
    }
}

/// `@request.auth.claims.<name>` or `@request.auth.claims[a][b]`.
fn jwt_claim_key(key: &str) -> Result<(), String> {
    let rest = key.trim_start_matches("@request.auth.claims");
    let ok = match rest.strip_prefix('.') {
        Some(name) => !name.is_empty(),
        None => {
            rest.starts_with('[')
                && rest.ends_with(']')
                && rest[1..rest.len() - 1]
                    .split("][")
                    .all(|c| !c.is_empty() && !c.contains(['[', ']']))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!("invalid JWT claim key {key:?}"))
    }
}

fn check_redirect(cx: &mut Ctx<'_>, path: &str, rd: &HttpRedirect, r: &HttpRoute) {
    if rd.uri.is_none()
        && rd.authority.is_none()
        && rd.scheme.is_none()
        && rd.port.is_none()
        && rd.derive_port.is_none()
        && rd.prefix_rewrite.is_none()
    {
        cx.err(
            path,
            "redirect must specify uri, prefixRewrite, authority, scheme, port or derivePort",
        );
    }
    if rd.uri.is_some() && rd.prefix_rewrite.is_some() {
        cx.err(path, "only one of uri or prefixRewrite may be set");
    }
    if rd.prefix_rewrite.is_some()
        && r.r#match
            .iter()
            .any(|m| m.uri.as_ref().is_some_and(|u| u.prefix.is_none()))
    {
        cx.err(
            &format!("{path}.prefixRewrite"),
            "prefixRewrite requires every uri match of the rule to be a prefix match",
        );
    }
    if let Some(code) = rd.redirect_code
        && !(300..=399).contains(&code)
    {
        cx.err(
            &format!("{path}.redirectCode"),
            format!("{code} is not a valid redirect code, must be 3xx"),
        );
    }
    if let Some(p) = rd.port {
        cx.check(&format!("{path}.port"), util::port(p.into()));
    }
}

fn check_rewrite(cx: &mut Ctx<'_>, path: &str, rw: &HttpRewrite) {
    if rw.uri.is_none() && rw.authority.is_none() && rw.uri_regex_rewrite.is_none() {
        cx.err(
            path,
            "rewrite must specify uri, authority or uriRegexRewrite",
        );
    }
    if rw.uri.is_some() && rw.uri_regex_rewrite.is_some() {
        cx.err(path, "only one of uri or uriRegexRewrite may be set");
    }
    if let Some(rr) = &rw.uri_regex_rewrite {
        let p = format!("{path}.uriRegexRewrite");
        match rr.r#match.as_deref() {
            None | Some("") => cx.err(&format!("{p}.match"), "match is required"),
            Some(re) => cx.check(&format!("{p}.match"), util::regex(re)),
        }
        if rr.rewrite.is_none() {
            cx.err(&format!("{p}.rewrite"), "rewrite is required");
        }
    }
}

fn check_retries(cx: &mut Ctx<'_>, path: &str, r: &HttpRetry) {
    let attempts = r.attempts.unwrap_or(0);
    if attempts < 0 {
        cx.err(
            &format!("{path}.attempts"),
            format!("attempts {attempts} must not be negative"),
        );
    }
    opt_duration(
        cx,
        &format!("{path}.perTryTimeout"),
        &r.per_try_timeout,
        duration_min_1ms,
    );
    opt_duration(cx, &format!("{path}.backoff"), &r.backoff, duration_min_1ms);
    if attempts == 0 && (r.per_try_timeout.is_some() || r.retry_on.is_some()) {
        cx.err(
            path,
            "attempts 0 disables retries; perTryTimeout and retryOn must not be set",
        );
    }
    if let Some(on) = &r.retry_on {
        for policy in on.split(',').map(str::trim) {
            let code = policy
                .parse::<u32>()
                .is_ok_and(|c| (100..=599).contains(&c));
            if !code && !RETRY_ON.contains(&policy) {
                cx.err(
                    &format!("{path}.retryOn"),
                    format!("{policy:?} is not a valid retryOn policy"),
                );
            }
        }
    }
}

fn check_percent(cx: &mut Ctx<'_>, path: &str, value: Option<f64>) {
    if let Some(v) = value
        && !(0.0..=100.0).contains(&v)
    {
        cx.err(path, format!("percentage {v} must be in the range 0..100"));
    }
}

fn check_fault(cx: &mut Ctx<'_>, path: &str, f: &HttpFaultInjection) {
    if f.abort.is_none() && f.delay.is_none() {
        cx.err(path, "fault must have an abort and/or a delay");
    }
    if let Some(d) = &f.delay {
        let p = format!("{path}.delay");
        check_percent(
            cx,
            &format!("{p}.percentage.value"),
            d.percentage.as_ref().and_then(|x| x.value),
        );
        if let Some(pc) = d.percent
            && !(0..=100).contains(&pc)
        {
            cx.err(
                &format!("{p}.percent"),
                format!("percent {pc} must be in the range 0..100"),
            );
        }
        if d.exponential_delay.is_some() {
            cx.err(
                &format!("{p}.exponentialDelay"),
                "exponentialDelay is not supported",
            );
        }
        match &d.fixed_delay {
            Some(fd) => cx.check(&format!("{p}.fixedDelay"), duration_min_1ms(fd)),
            None if d.exponential_delay.is_none() => {
                cx.err(&format!("{p}.fixedDelay"), "fixedDelay is required")
            }
            None => {}
        }
    }
    if let Some(a) = &f.abort {
        let p = format!("{path}.abort");
        check_percent(
            cx,
            &format!("{p}.percentage.value"),
            a.percentage.as_ref().and_then(|x| x.value),
        );
        if a.http2_error.is_some() {
            cx.err(&format!("{p}.http2Error"), "http2Error is not supported");
        }
        match (a.http_status, &a.grpc_status) {
            (Some(s), _) if !(200..=599).contains(&s) => cx.err(
                &format!("{p}.httpStatus"),
                format!("httpStatus {s} must be in the range 200..599"),
            ),
            (_, Some(g)) if !GRPC_CODES.contains(&g.as_str()) => cx.err(
                &format!("{p}.grpcStatus"),
                format!("{g:?} is not a gRPC status name"),
            ),
            (None, None) if a.http2_error.is_none() => {
                cx.err(&p, "abort must set httpStatus or grpcStatus")
            }
            _ => {}
        }
    }
}

fn check_mirrors(cx: &mut Ctx<'_>, path: &str, r: &HttpRoute) {
    if r.mirror.is_some() && !r.mirrors.is_empty() {
        cx.err(
            &format!("{path}.mirrors"),
            "only one of mirror or mirrors may be set",
        );
    }
    if let Some(m) = &r.mirror {
        check_destination(cx, &format!("{path}.mirror"), m);
    }
    check_percent(
        cx,
        &format!("{path}.mirrorPercentage.value"),
        r.mirror_percentage.as_ref().and_then(|p| p.value),
    );
    for (field, v) in [
        ("mirrorPercent", r.mirror_percent),
        ("mirror_percent", r.mirror_percent_snake),
    ] {
        if let Some(v) = v
            && v > 100
        {
            cx.err(
                &format!("{path}.{field}"),
                format!("mirror percent {v} must be at most 100"),
            );
        }
    }
    for (i, m) in r.mirrors.iter().enumerate() {
        let p = format!("{path}.mirrors[{i}]");
        match &m.destination {
            Some(d) => check_destination(cx, &format!("{p}.destination"), d),
            None => cx.err(&format!("{p}.destination"), "destination is required"),
        }
        check_percent(
            cx,
            &format!("{p}.percentage.value"),
            m.percentage.as_ref().and_then(|x| x.value),
        );
    }
}

fn check_cors(cx: &mut Ctx<'_>, path: &str, c: &CorsPolicy) {
    for (i, o) in c.allow_origins.iter().enumerate() {
        let p = format!("{path}.allowOrigins[{i}]");
        if o.exact.is_none() && o.prefix.is_none() && o.regex.is_none() {
            cx.err(&p, "origin match must set exact, prefix or regex");
        }
        check_string_match(cx, &p, o);
    }
    for (i, m) in c.allow_methods.iter().enumerate() {
        if !HTTP_METHODS.contains(&m.as_str()) {
            cx.err(
                &format!("{path}.allowMethods[{i}]"),
                format!("{m:?} is not a valid HTTP method"),
            );
        }
    }
    for (field, list) in [
        ("allowHeaders", &c.allow_headers),
        ("exposeHeaders", &c.expose_headers),
    ] {
        for (i, h) in list.iter().enumerate() {
            if h != "*" {
                cx.check(&format!("{path}.{field}[{i}]"), util::header_name(h));
            }
        }
    }
    if let Some(age) = &c.max_age {
        cx.check(&format!("{path}.maxAge"), util::duration_any(age));
    }
}

fn check_headers(cx: &mut Ctx<'_>, path: &str, h: &Headers) {
    for (dir, ops) in [("request", &h.request), ("response", &h.response)] {
        let Some(ops) = ops else { continue };
        for (op, names) in [
            ("set", ops.set.keys().collect::<Vec<_>>()),
            ("add", ops.add.keys().collect()),
            ("remove", ops.remove.iter().collect()),
        ] {
            for name in names {
                cx.check(&format!("{path}.{dir}.{op}"), util::header_name(name));
            }
        }
    }
}
