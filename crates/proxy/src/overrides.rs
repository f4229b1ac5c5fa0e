//! The request headers that override a route's timeout and retry policy.
//!
//! Envoy honours them only for internal requests and strips them from external ones. Envoy 1.40
//! considers no client internal unless the connection manager's `internal_address_config` says
//! so, and Plexus NACKs that field, so today every request is external: `sanitize` removes the
//! headers and `apply` (Envoy's semantics for internal requests: `x-envoy-upstream-rq-timeout-ms`
//! with 0 disabling, `x-envoy-upstream-rq-per-try-timeout-ms`, `x-envoy-retry-on` added to the
//! route's conditions or creating a policy, `x-envoy-max-retries` only with a policy) is kept for
//! when `internal_address_config` is supported. `x-envoy-retry-grpc-on` has no gRPC conditions
//! to map to yet.

use std::time::Duration;

use http::HeaderMap;

use crate::config::RetryPolicy;

pub const RQ_TIMEOUT_MS: &str = "x-envoy-upstream-rq-timeout-ms";
pub const PER_TRY_TIMEOUT_MS: &str = "x-envoy-upstream-rq-per-try-timeout-ms";
pub const RETRY_ON: &str = "x-envoy-retry-on";
pub const MAX_RETRIES: &str = "x-envoy-max-retries";

pub const RETRY_GRPC_ON: &str = "x-envoy-retry-grpc-on";

/// The `x-envoy-*` request headers Envoy removes from external requests (those of its header
/// sanitizing list that Plexus would otherwise pass upstream).
pub const EXTERNAL_SANITIZED: [&str; 13] = [
    "x-envoy-decorator-operation",
    "x-envoy-downstream-service-cluster",
    "x-envoy-downstream-service-node",
    "x-envoy-expected-rq-timeout-ms",
    "x-envoy-force-trace",
    "x-envoy-internal",
    "x-envoy-ip-tags",
    MAX_RETRIES,
    RETRY_GRPC_ON,
    RETRY_ON,
    PER_TRY_TIMEOUT_MS,
    RQ_TIMEOUT_MS,
    "x-envoy-upstream-rq-timeout-alt-response",
];

/// Remove what Envoy removes from an external request.
pub fn sanitize(headers: &mut HeaderMap) {
    // Requests rarely carry any: one pass over the names instead of 13 hashed removals.
    if !headers.keys().any(|k| k.as_str().starts_with("x-envoy-")) {
        return;
    }
    for h in EXTERNAL_SANITIZED {
        headers.remove(h);
    }
}

fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
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
    if let Some(value) = headers.get(RETRY_ON).and_then(|v| v.to_str().ok()) {
        retry
            .get_or_insert_with(RetryPolicy::from_header_only)
            .on
            .merge_header(value);
    }
    if let (Some(p), Some(n)) = (retry.as_mut(), number(headers, MAX_RETRIES)) {
        p.num_retries = u32::try_from(n).unwrap_or(u32::MAX);
    }
    if let Some(ms) = number(headers, PER_TRY_TIMEOUT_MS).filter(|ms| *ms > 0) {
        retry
            .get_or_insert_with(|| RetryPolicy {
                num_retries: 0,
                ..RetryPolicy::from_header_only()
            })
            .per_try_timeout = Some(Duration::from_millis(ms));
    }
    for h in [RQ_TIMEOUT_MS, PER_TRY_TIMEOUT_MS, RETRY_ON, MAX_RETRIES] {
        headers.remove(h);
    }
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
            ("x-other", "kept"),
        ]);
        sanitize(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-other"));
        // `sanitize` skips requests without an `x-envoy-` header.
        assert!(EXTERNAL_SANITIZED.iter().all(|n| n.starts_with("x-envoy-")));
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
    }
}
