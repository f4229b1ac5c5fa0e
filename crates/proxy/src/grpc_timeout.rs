//! The stream duration limit of a request (Envoy's `max_stream_duration`), counted from the
//! moment the request arrived. The connection manager's
//! `common_http_protocol_options.max_stream_duration` applies until a route is chosen; a route
//! with `max_stream_duration` then decides:
//! - a `grpc-timeout` request header (on any request, as in Envoy) sets the limit when the route
//!   has `grpc_timeout_header_max`, capped by that maximum unless it is zero, less
//!   `grpc_timeout_header_offset` (never below zero);
//! - otherwise the route's `max_stream_duration` (`0s` disables the limit), or else the
//!   connection manager's.
//!
//! A route with `max_stream_duration` set (even empty) drops the router's `timeout` — Envoy 1.40
//! does so — and its gRPC requests go upstream with `grpc-timeout` set to the limit in force.
//!
//! Without it, the deprecated `max_grpc_timeout` (what Istio sends Envoy sidecars) makes the
//! router timeout of a gRPC request its `grpc-timeout` header (none: no timeout) less
//! `grpc_timeout_offset` when the offset is smaller, capped by the maximum unless that is zero;
//! the upstream then gets `grpc-timeout` set to the time it is given (the per-try timeout when
//! that is shorter). Other requests keep the route's `timeout`.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use crate::config::Forward;

/// The stream's limit once route `f` is chosen: `None` means no limit.
pub fn stream_limit(
    f: &Forward,
    manager: Option<Duration>,
    headers: &HeaderMap,
) -> Option<Duration> {
    let Some(s) = &f.stream else {
        return manager;
    };
    match (header(headers), s.grpc_header_max) {
        (Some(t), Some(max)) => {
            let capped = if !max.is_zero() && t > max { max } else { t };
            Some(match s.grpc_header_offset {
                Some(offset) if !capped.is_zero() => capped.saturating_sub(offset),
                _ => capped,
            })
        }
        _ => match s.max {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
            None => manager,
        },
    }
}

fn header(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse)
}

/// The router's own timeout for route `f` (before the internal override headers).
pub fn route_timeout(f: &Forward, headers: &HeaderMap) -> Option<Duration> {
    if f.stream.is_some() {
        return None;
    }
    let Some(g) = f.grpc_timeout.filter(|_| crate::http::is_grpc(headers)) else {
        return f.timeout;
    };
    let mut t = header(headers).unwrap_or_default();
    if let Some(offset) = g.offset.filter(|o| *o < t) {
        t -= offset;
    }
    if !g.max.is_zero() && (t.is_zero() || t > g.max) {
        t = g.max;
    }
    Some(t).filter(|t| !t.is_zero())
}

/// Under `max_grpc_timeout`, a gRPC request tells the upstream how long it has: the per-try
/// timeout when it is set and shorter than the router timeout, else the router timeout.
pub fn tell_upstream(
    f: &Forward,
    timeout: Option<Duration>,
    per_try: Option<Duration>,
    headers: &mut HeaderMap,
) {
    if f.stream.is_some() || f.grpc_timeout.is_none() || !crate::http::is_grpc(headers) {
        return;
    }
    let expected = match (per_try, timeout) {
        (Some(p), Some(t)) => Some(p.min(t)),
        (p, t) => p.or(t),
    };
    if let Some(v) = expected.and_then(|t| HeaderValue::from_str(&format(t)).ok()) {
        headers.insert("grpc-timeout", v);
    }
}

/// On a route with `max_stream_duration`, a gRPC request tells the upstream the limit in force
/// through `grpc-timeout`; without a limit its own header is dropped only when the connection
/// manager's limit was lifted by the route.
pub fn rewrite_header(
    f: &Forward,
    limit: Option<Duration>,
    manager: Option<Duration>,
    headers: &mut HeaderMap,
) {
    if f.stream.is_none() || !crate::http::is_grpc(headers) {
        return;
    }
    match limit {
        Some(t) => {
            if let Ok(v) = HeaderValue::from_str(&format(t)) {
                headers.insert("grpc-timeout", v);
            }
        }
        None if manager.is_some() => {
            headers.remove("grpc-timeout");
        }
        None => {}
    }
}

/// Largest `grpc-timeout` value: 8 digits.
const MAX_DIGITS: u64 = 99_999_999;

/// `grpc-timeout` in milliseconds, moving to seconds, minutes and hours only when the number
/// would not fit in 8 digits (clipped at the largest number of hours).
pub fn format(d: Duration) -> String {
    let mut n = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    for (unit, per_next) in [('m', 1000), ('S', 60), ('M', 60)] {
        if n <= MAX_DIGITS {
            return format!("{n}{unit}");
        }
        n /= per_next;
    }
    format!("{}H", n.min(MAX_DIGITS))
}

/// `grpc-timeout`: up to 8 digits and a unit (H, M, S, m, u, n).
pub fn parse(v: &str) -> Option<Duration> {
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GrpcTimeout, StreamDuration};

    #[test]
    fn parses_grpc_timeouts() {
        assert_eq!(parse("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse("123456789S"), None);
        assert_eq!(parse("5x"), None);
        assert_eq!(parse("S"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn formats_in_the_smallest_unit_that_fits() {
        assert_eq!(format(Duration::from_millis(1500)), "1500m");
        assert_eq!(format(Duration::from_millis(99_999_999)), "99999999m");
        assert_eq!(format(Duration::from_millis(100_000_000)), "100000S");
        assert_eq!(format(Duration::from_secs(6_000_000_000)), "1666666H");
        assert_eq!(format(Duration::MAX), "99999999H");
    }

    fn forward(stream: Option<StreamDuration>) -> Forward {
        let a = envoy_types::pb::envoy::config::route::v3::RouteAction {
            cluster_specifier: Some(
                envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier::Cluster(
                    "c".into(),
                ),
            ),
            ..Default::default()
        };
        let mut f = Forward::try_from(&a).expect("valid");
        f.stream = stream;
        f
    }

    #[test]
    fn limit_follows_envoy_precedence() {
        let ms = Duration::from_millis;
        let hcm = Some(ms(400));
        let mut grpc = HeaderMap::new();
        grpc.insert("grpc-timeout", HeaderValue::from_static("300m"));
        let none = HeaderMap::new();
        let s = |max, header_max, offset| {
            forward(Some(StreamDuration {
                max,
                grpc_header_max: header_max,
                grpc_header_offset: offset,
            }))
        };
        assert_eq!(stream_limit(&forward(None), hcm, &grpc), hcm);
        assert_eq!(
            stream_limit(&s(None, Some(ms(0)), None), hcm, &grpc),
            Some(ms(300))
        );
        assert_eq!(
            stream_limit(&s(None, Some(ms(100)), None), hcm, &grpc),
            Some(ms(100))
        );
        assert_eq!(
            stream_limit(&s(None, Some(ms(0)), Some(ms(100))), hcm, &grpc),
            Some(ms(200))
        );
        assert_eq!(
            stream_limit(&s(None, Some(ms(0)), Some(ms(500))), hcm, &grpc),
            Some(ms(0))
        );
        assert_eq!(
            stream_limit(&s(Some(ms(50)), None, None), hcm, &grpc),
            Some(ms(50)),
            "header ignored without a maximum"
        );
        assert_eq!(stream_limit(&s(None, Some(ms(100)), None), hcm, &none), hcm);
        assert_eq!(
            stream_limit(&s(Some(ms(0)), Some(ms(100)), None), hcm, &none),
            None
        );
        assert_eq!(
            route_timeout(&forward(None), &grpc),
            Some(Duration::from_secs(15))
        );
        assert_eq!(route_timeout(&s(None, Some(ms(0)), None), &grpc), None);
    }

    #[test]
    fn legacy_max_grpc_timeout_sets_the_router_timeout_of_grpc_requests() {
        let ms = Duration::from_millis;
        let legacy = |max, offset| {
            let mut f = forward(None);
            f.grpc_timeout = Some(GrpcTimeout { max, offset });
            f
        };
        let call = |t: Option<&'static str>| {
            let mut h = HeaderMap::new();
            h.insert("content-type", HeaderValue::from_static("application/grpc"));
            if let Some(t) = t {
                h.insert("grpc-timeout", HeaderValue::from_static(t));
            }
            h
        };
        assert_eq!(
            route_timeout(&legacy(ms(0), None), &call(Some("200m"))),
            Some(ms(200))
        );
        assert_eq!(route_timeout(&legacy(ms(0), None), &call(None)), None);
        assert_eq!(
            route_timeout(&legacy(ms(100), None), &call(None)),
            Some(ms(100))
        );
        assert_eq!(
            route_timeout(&legacy(ms(100), None), &call(Some("5S"))),
            Some(ms(100))
        );
        assert_eq!(
            route_timeout(&legacy(ms(0), Some(ms(100))), &call(Some("300m"))),
            Some(ms(200))
        );
        assert_eq!(
            route_timeout(&legacy(ms(0), Some(ms(100))), &call(Some("50m"))),
            Some(ms(50))
        );
        let mut plain = call(Some("200m"));
        plain.remove("content-type");
        assert_eq!(
            route_timeout(&legacy(ms(0), None), &plain),
            Some(Duration::from_secs(15))
        );

        let mut h = call(Some("3S"));
        tell_upstream(&legacy(ms(0), None), Some(ms(3000)), Some(ms(700)), &mut h);
        assert_eq!(h["grpc-timeout"], "700m");
        let mut h = call(None);
        tell_upstream(&legacy(ms(0), None), None, None, &mut h);
        assert!(h.get("grpc-timeout").is_none());
    }
}
