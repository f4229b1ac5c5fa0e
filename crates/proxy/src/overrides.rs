//! The request headers that override a route's timeout and retry policy.
//!
//! Envoy honours them only for internal requests (see `downstream::forwarded_headers` and the
//! connection manager's `internal_address_config`) and strips them, with the other sanitized
//! `x-envoy-*` headers, from external ones (`sanitize`). For an internal request `apply` gives
//! Envoy's semantics: `x-envoy-upstream-rq-timeout-ms` replaces the route timeout (0 disables
//! it), `x-envoy-upstream-rq-per-try-timeout-ms` sets the per-try timeout (ignored unless it
//! is below the route timeout), `x-envoy-retry-on` adds HTTP conditions and
//! `x-envoy-retry-grpc-on` gRPC conditions to the route's policy (or create one),
//! `x-envoy-max-retries` replaces `num_retries` of a policy and `x-envoy-retriable-status-codes`
//! adds codes for its `retriable-status-codes` condition. The headers are consumed.

use std::time::Duration;

use http::HeaderMap;

use crate::config::RetryPolicy;

pub const RQ_TIMEOUT_MS: &str = "x-envoy-upstream-rq-timeout-ms";
pub const PER_TRY_TIMEOUT_MS: &str = "x-envoy-upstream-rq-per-try-timeout-ms";
pub const RETRY_ON: &str = "x-envoy-retry-on";
pub const MAX_RETRIES: &str = "x-envoy-max-retries";

pub const RETRY_GRPC_ON: &str = "x-envoy-retry-grpc-on";
pub const RETRIABLE_STATUS_CODES: &str = "x-envoy-retriable-status-codes";

/// The `x-envoy-*` request headers Envoy removes from external requests (those of its header
/// sanitizing list that Plexus would otherwise pass upstream).
pub const EXTERNAL_SANITIZED: [&str; 14] = [
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-internal",
    "x-envoy-ip-tags",
    "x-envoy-original-url",
    "x-envoy-upstream-alt-stat-name",
    MAX_RETRIES,
    RETRIABLE_STATUS_CODES,
    RETRY_GRPC_ON,
    RETRY_ON,
    PER_TRY_TIMEOUT_MS,
    RQ_TIMEOUT_MS,
    "x-envoy-upstream-rq-timeout-alt-response",
];

/// Removed from edge requests only: external requests on a connection manager with
/// `use_remote_address` (Envoy keeps them on other external requests).
pub const EDGE_SANITIZED: [&str; 3] = [
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
];

/// Remove what Envoy removes from an external request; `edge` adds `EDGE_SANITIZED`.
pub fn sanitize(headers: &mut HeaderMap, edge: bool) {
    // Requests rarely carry any: one pass over the names instead of a hashed removal each.
    if !headers.keys().any(|k| k.as_str().starts_with("x-envoy-")) {
        return;
    }
    for h in EXTERNAL_SANITIZED {
        headers.remove(h);
    }
    if edge {
        for h in EDGE_SANITIZED {
            headers.remove(h);
        }
    }
}

fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// Remove the override headers of an internal request (Envoy consumes them).
pub fn consume(headers: &mut HeaderMap) {
    for h in [
        RQ_TIMEOUT_MS,
        PER_TRY_TIMEOUT_MS,
        RETRY_ON,
        RETRY_GRPC_ON,
        MAX_RETRIES,
        RETRIABLE_STATUS_CODES,
    ] {
        headers.remove(h);
    }
}

/// `x-envoy-retriable-status-codes`: a comma-separated list; entries that are no status code
/// are skipped.
fn status_codes(headers: &HeaderMap) -> Vec<u16> {
    headers
        .get(RETRIABLE_STATUS_CODES)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .filter_map(|c| c.trim().parse::<u16>().ok())
                .filter(|c| (100..600).contains(c))
                .collect()
        })
        .unwrap_or_default()
}

/// Effective (retry policy, route timeout) for one request; removes the override headers.
pub fn apply(
    headers: &mut HeaderMap,
    route_retry: Option<&RetryPolicy>,
    route_timeout: Option<Duration>,
) -> (Option<RetryPolicy>, Option<Duration>) {
    let timeout = match number(headers, RQ_TIMEOUT_MS) {
        Some(0) => None,
        Some(ms) => Some(Duration::from_millis(ms)),
        None => route_timeout,
    };
    let mut retry = route_retry.cloned();
    for (name, grpc) in [(RETRY_ON, false), (RETRY_GRPC_ON, true)] {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            retry
                .get_or_insert_with(RetryPolicy::from_header_only)
                .on
                .merge_header(value, grpc);
        }
    }
    if let Some(p) = retry.as_mut() {
        if let Some(n) = number(headers, MAX_RETRIES) {
            p.num_retries = u32::try_from(n).unwrap_or(u32::MAX);
        }
        p.retriable_status_codes.extend(status_codes(headers));
    }
    let per_try = number(headers, PER_TRY_TIMEOUT_MS)
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .filter(|d| timeout.is_none_or(|t| *d < t));
    if let Some(per_try) = per_try {
        retry
            .get_or_insert_with(|| RetryPolicy {
                num_retries: 0,
                ..RetryPolicy::from_header_only()
            })
            .per_try_timeout = Some(per_try);
    }
    consume(headers);
    (retry, timeout)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn sanitize_removes_override_headers() {
        let mut h = headers(&[
            (RQ_TIMEOUT_MS, "1"),
            (RETRY_ON, "5xx"),
            ("x-envoy-internal", "true"),
            ("x-envoy-decorator-operation", "op"),
            ("x-other", "kept"),
        ]);
        sanitize(&mut h, false);
        assert_eq!(h.len(), 2, "{h:?}");
        assert!(h.contains_key("x-other"));
        sanitize(&mut h, true);
        assert_eq!(h.len(), 1);
        // `sanitize` skips requests without an `x-envoy-` header.
        assert!(
            EXTERNAL_SANITIZED
                .iter()
                .chain(&EDGE_SANITIZED)
                .all(|n| n.starts_with("x-envoy-"))
        );
    }

    #[test]
    fn overrides_follow_envoy() {
        let route_timeout = Some(Duration::from_secs(15));
        let mut h = headers(&[(RQ_TIMEOUT_MS, "250"), (MAX_RETRIES, "4")]);
        let (retry, timeout) = apply(&mut h, None, route_timeout);
        assert_eq!(timeout, Some(Duration::from_millis(250)));
        assert!(
            retry.is_none(),
            "max-retries alone does not create a policy"
        );
        assert!(h.is_empty(), "headers are consumed");

        let mut h = headers(&[
            (RQ_TIMEOUT_MS, "0"),
            (RETRY_ON, "5xx,bogus"),
            (MAX_RETRIES, "3"),
        ]);
        let (retry, timeout) = apply(&mut h, None, route_timeout);
        assert_eq!(timeout, None);
        let retry = retry.unwrap_or_else(RetryPolicy::from_header_only);
        assert!(retry.on.server_error && retry.num_retries == 3);

        let mut route = RetryPolicy::from_header_only();
        route.on.connect_failure = true;
        let mut h = headers(&[(RETRY_ON, "gateway-error"), (PER_TRY_TIMEOUT_MS, "100")]);
        let (retry, _) = apply(&mut h, Some(&route), route_timeout);
        let retry = retry.unwrap_or_else(RetryPolicy::from_header_only);
        assert!(retry.on.connect_failure && retry.on.gateway_error);
        assert_eq!(retry.per_try_timeout, Some(Duration::from_millis(100)));

        let mut h = headers(&[
            (RETRY_ON, "retriable-status-codes"),
            (RETRIABLE_STATUS_CODES, "418, x,503"),
        ]);
        let (retry, _) = apply(&mut h, None, route_timeout);
        let retry = retry.unwrap_or_else(RetryPolicy::from_header_only);
        assert!(retry.on.retriable_status_codes);
        assert_eq!(retry.retriable_status_codes, vec![418, 503]);

        let mut h = headers(&[
            (RETRY_ON, "unavailable"),
            (RETRY_GRPC_ON, "unavailable,5xx"),
            (PER_TRY_TIMEOUT_MS, "20000"),
        ]);
        let (retry, _) = apply(&mut h, None, route_timeout);
        let retry = retry.unwrap_or_else(RetryPolicy::from_header_only);
        assert!(retry.on.grpc_codes.contains(14) && !retry.on.server_error);
        assert!(retry.retriable_status_codes.is_empty());
        assert_eq!(retry.per_try_timeout, None, "not below the route timeout");
        assert!(h.is_empty());
    }
}
