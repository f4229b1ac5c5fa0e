//! The route timeout of a gRPC request under `max_stream_duration.grpc_timeout_header_max`
//! (Istio sets it to 0 on every route): Envoy takes the `grpc-timeout` header as the timeout,
//! a missing header meaning none, capped by the maximum unless that is zero.

use std::time::Duration;

use http::HeaderMap;

use crate::config::Forward;

/// Whether the request's timeout comes from `grpc-timeout`: a gRPC request on a route with
/// `grpc_timeout_header_max`.
pub fn applies(f: &Forward, headers: &HeaderMap) -> bool {
    f.grpc_timeout_max.is_some()
        && headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// The timeout for this request: `None` disables it.
pub fn route_timeout(f: &Forward, headers: &HeaderMap) -> Option<Duration> {
    let Some(max) = f.grpc_timeout_max.filter(|_| applies(f, headers)) else {
        return f.timeout;
    };
    let header = headers
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(parse);
    match (header.filter(|d| !d.is_zero()), max.is_zero()) {
        (Some(t), true) => Some(t),
        (Some(t), false) => Some(t.min(max)),
        (None, true) => None,
        (None, false) => Some(max),
    }
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
}
