//! Forwarding a routed request: pick the cluster and endpoint, send through the endpoint's pool,
//! and retry per the route's policy (Envoy semantics: `retry_on` conditions, `num_retries`,
//! per-try timeout, jittered exponential backoff, previous-hosts predicate), all inside the
//! route timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri, Version};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use rand::Rng;
use tokio::time::Instant;

use crate::budget::{Active, Guard, Guarded};
use crate::cluster::ClusterRuntime;
use crate::config::{
    ClusterChoice, Forward, HeaderMutation, RetryOn, RetryPolicy, UpstreamProtocol,
};
use crate::flags::ResponseFlag;
use crate::http::{local_error, strip_hop_by_hop};
use crate::pool::{Body, UpstreamError};
use crate::store::{Runtime, Store};

/// Largest request body buffered so that it can be replayed on retry.
pub const RETRY_BUFFER_LIMIT: usize = 1 << 20;

/// How one attempt ended, as far as retry decisions care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Status(u16),
    ConnectFailure,
    Reset,
    /// An HTTP/2 upstream refused the stream (REFUSED_STREAM): nothing was processed.
    RefusedStream,
    /// A response whose headers carry `grpc-status` (HTTP status, gRPC code).
    Grpc(u16, u32),
    PerTryTimeout,
    /// The circuit breaker refused the attempt; never retried.
    Overflow,
}

/// Envoy's `retry_on` semantics for one finished attempt.
pub fn should_retry(on: &RetryOn, codes: &[u16], attempt: Attempt) -> bool {
    match attempt {
        Attempt::Status(s) => {
            (on.server_error && s >= 500)
                || (on.gateway_error && (502..=504).contains(&s))
                || (on.retriable_4xx && s == 409)
                || (on.retriable_status_codes && codes.contains(&s))
        }
        Attempt::ConnectFailure => {
            on.server_error || on.gateway_error || on.reset || on.connect_failure
        }
        Attempt::Reset | Attempt::PerTryTimeout => on.server_error || on.gateway_error || on.reset,
        Attempt::RefusedStream => {
            on.refused_stream || on.server_error || on.gateway_error || on.reset
        }
        Attempt::Grpc(s, code) => {
            on.grpc_codes.contains(code) || should_retry(on, codes, Attempt::Status(s))
        }
        Attempt::Overflow => false,
    }
}

/// Jittered exponential backoff before retry `n` (0-based): uniform in [0, min(base * 2^n, max)).
pub fn backoff(policy: &RetryPolicy, n: u32) -> Duration {
    let ceiling = policy
        .backoff_base
        .saturating_mul(1u32 << n.min(16))
        .min(policy.backoff_max);
    let micros = u64::try_from(ceiling.as_micros())
        .unwrap_or(u64::MAX)
        .max(1);
    Duration::from_micros(rand::rng().random_range(0..micros))
}

/// What every attempt sends: method, headers and target, with the body replayable or not.
struct Template {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    /// Set `x-envoy-attempt-count` on each attempt.
    attempt_count: bool,
    /// How this request picks an endpoint beyond the cluster's own state.
    choice: crate::lb::Choice,
}

enum RequestBody {
    Stream(Option<Body>),
    Buffered(Bytes),
}

impl RequestBody {
    fn take(&mut self) -> Body {
        match self {
            RequestBody::Stream(b) => match b.take() {
                Some(b) => b,
                None => Full::new(Bytes::new())
                    .map_err(|never| match never {})
                    .boxed(),
            },
            RequestBody::Buffered(bytes) => Full::new(bytes.clone())
                .map_err(|never| match never {})
                .boxed(),
        }
    }
}

/// The parts of the route that shape the upstream request.
pub struct Target<'a> {
    pub forward: &'a Forward,
    pub retry: Option<&'a RetryPolicy>,
    pub request_headers: [&'a HeaderMutation; 3],
    pub authority: &'a str,
    pub path: &'a str,
    /// The virtual host's `include_request_attempt_count`.
    pub attempt_count: bool,
    /// The downstream connection (ORIGINAL_DST clusters, hash policies on the source IP).
    pub downstream: Option<crate::downstream::Downstream>,
    /// The request is internal (`internal_address_config`): the override headers apply.
    pub internal: bool,
    /// The stream's timers: the route timeout keeps running over the response body.
    pub stream: &'a std::sync::Arc<crate::idle::Activity>,
    /// The router adds `x-envoy-expected-rq-timeout-ms` and `x-envoy-upstream-service-time`.
    pub envoy_headers: bool,
}

pub async fn forward(
    store: &Store,
    runtime: &Runtime,
    target: Target<'_>,
    req: Request<Body>,
) -> Response<Body> {
    let f = target.forward;
    let (cluster_name, weighted) = choose_cluster(f);
    let Some(cluster) = runtime.clusters.get(&cluster_name).cloned() else {
        let cause = format!("cluster {cluster_name:?} not found");
        return local_error(
            store,
            ResponseFlag::NoCluster,
            f.cluster_not_found_status,
            &cause,
        );
    };
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if let Some((req_h, _)) = weighted {
        req_h.apply(&mut parts.headers);
    }
    for m in target.request_headers {
        m.apply(&mut parts.headers);
    }
    let host = f
        .host_rewrite
        .clone()
        .unwrap_or_else(|| target.authority.to_string());
    let h2 = cluster.config.protocol == UpstreamProtocol::Http2;
    if h2 {
        parts.headers.remove(http::header::HOST);
    } else if let Ok(v) = HeaderValue::from_str(&host) {
        parts.headers.insert(http::header::HOST, v);
    }
    // The router's timeout is what `x-envoy-expected-rq-timeout-ms` announces; on a route with
    // `max_stream_duration` there is none (the stream limit is not announced), as in Envoy.
    let mut timeout = crate::grpc_timeout::route_timeout(f, &parts.headers);
    let mut retry = target.retry.cloned();
    if target.internal {
        (retry, timeout) = crate::overrides::apply(&mut parts.headers, retry.as_ref(), timeout);
    } else {
        crate::overrides::sanitize(&mut parts.headers, false);
    }
    let per_try = retry.as_ref().and_then(|p| p.per_try_timeout);
    if target.envoy_headers
        && let Some(v) = crate::envoy_headers::expected_timeout(timeout, per_try)
    {
        parts
            .headers
            .insert(crate::envoy_headers::EXPECTED_RQ_TIMEOUT_MS, v);
    }
    crate::grpc_timeout::tell_upstream(f, timeout, per_try, &mut parts.headers);
    let template = Template {
        method: parts.method,
        uri: upstream_uri(h2, &host, target.path),
        version: if h2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        },
        choice: crate::lb::Choice::new(&cluster, f, &parts.headers, target.path, target.downstream),
        headers: parts.headers,
        attempt_count: target.attempt_count,
    };
    let retry = retry.as_ref();
    let replay = retry.is_some_and(|p| p.num_retries > 0) || !f.mirrors.is_empty();
    let body = if replay {
        match Limited::new(body, RETRY_BUFFER_LIMIT).collect().await {
            Ok(b) => RequestBody::Buffered(b.to_bytes()),
            Err(e) => {
                let cause = format!("request body not buffered for retries or mirroring: {e}");
                return local_error(store, ResponseFlag::RequestBodyTooLarge, 413, &cause);
            }
        }
    } else {
        RequestBody::Stream(Some(body))
    };
    if let RequestBody::Buffered(bytes) = &body {
        crate::mirror::spawn(
            runtime,
            &f.mirrors,
            &template.method,
            &template.headers,
            &host,
            target.path,
            bytes,
        );
    }
    let started = Instant::now();
    let deadline = timeout.map(|t| started + t);
    let since = target.envoy_headers.then_some(started);
    let mut resp = attempts(store, &cluster, &template, body, retry, (deadline, since)).await;
    if let Some(at) = deadline {
        target.stream.set_route_deadline(at);
    }
    if let Some(cookie) = &template.choice.set_cookie {
        resp.headers_mut()
            .append(http::header::SET_COOKIE, cookie.clone());
    }
    if let Some((_, resp_h)) = weighted {
        resp_h.apply(resp.headers_mut());
    }
    resp
}

type Sent = Option<Result<Response<Incoming>, UpstreamError>>;

/// Send one attempt to `endpoint`, bounded by the per-try timeout and the route deadline.
/// `None` means a timer fired first.
async fn send_once(
    cluster: &ClusterRuntime,
    endpoint: SocketAddr,
    attempt: u32,
    template: &Template,
    body: Body,
    per_try: Option<Duration>,
    deadline: Option<Instant>,
) -> (Sent, Active) {
    let mut req = Request::new(body);
    *req.method_mut() = template.method.clone();
    *req.uri_mut() = template.uri.clone();
    *req.version_mut() = template.version;
    *req.headers_mut() = template.headers.clone();
    if template.attempt_count {
        req.headers_mut()
            .insert("x-envoy-attempt-count", HeaderValue::from(attempt));
    }
    cluster.stats.rq_total.fetch_add(1, Ordering::Relaxed);
    let limit = match (per_try.map(|t| Instant::now() + t), deadline) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let pool = cluster.pool(endpoint);
    let active = Active::start(&pool.active);
    let sent = match limit {
        Some(at) => tokio::time::timeout_at(at, pool.send(req)).await.ok(),
        None => Some(pool.send(req).await),
    };
    (sent, active)
}

fn classify(sent: &Sent) -> Attempt {
    match sent {
        None => Attempt::PerTryTimeout,
        Some(Ok(r)) => {
            let grpc = r.headers().get("grpc-status").and_then(|v| v.to_str().ok());
            match grpc.and_then(|v| v.parse().ok()) {
                Some(code) => Attempt::Grpc(r.status().as_u16(), code),
                None => Attempt::Status(r.status().as_u16()),
            }
        }
        Some(Err(UpstreamError::Reset { source, .. })) if refused(source) => Attempt::RefusedStream,
        Some(Err(UpstreamError::Reset { .. })) => Attempt::Reset,
        Some(Err(UpstreamError::Overflow(_))) => Attempt::Overflow,
        Some(Err(_)) => Attempt::ConnectFailure,
    }
}

/// Whether hyper's error is an HTTP/2 REFUSED_STREAM reset.
fn refused(e: &hyper::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(err) = cur {
        if let Some(h2e) = err.downcast_ref::<h2::Error>() {
            return h2e.reason() == Some(h2::Reason::REFUSED_STREAM);
        }
        cur = err.source();
    }
    false
}

fn timeout_reply(store: &Store, cluster: &ClusterRuntime, cause: &str) -> Response<Body> {
    cluster.stats.rq_timeout.fetch_add(1, Ordering::Relaxed);
    cluster.stats.response(504);
    local_error(store, ResponseFlag::UpstreamRequestTimeout, 504, cause)
}

async fn attempts(
    store: &Store,
    cluster: &Arc<ClusterRuntime>,
    template: &Template,
    mut body: RequestBody,
    retry: Option<&RetryPolicy>,
    (deadline, since): (Option<Instant>, Option<Instant>),
) -> Response<Body> {
    let name = &cluster.config.name;
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut guards: Vec<Guard> = Vec::new();
    let mut n = 0u32;
    loop {
        let Some(endpoint) = pick(cluster, &template.choice, retry, &tried) else {
            let cause = format!("no healthy upstream for cluster {name:?}");
            return local_error(store, ResponseFlag::NoHealthyUpstream, 503, &cause);
        };
        tried.push(endpoint);
        let Some(request_guard) = cluster.budget.try_request() else {
            cluster
                .stats
                .rq_pending_overflow
                .fetch_add(1, Ordering::Relaxed);
            return overflow(store, cluster, "max_requests");
        };
        let per_try = retry.and_then(|p| p.per_try_timeout);
        let (sent, active) = send_once(
            cluster,
            endpoint,
            n + 1,
            template,
            body.take(),
            per_try,
            deadline,
        )
        .await;
        if sent.is_none() && deadline.is_some_and(|d| Instant::now() >= d) {
            let cause = format!(
                "upstream request timeout (cluster {name:?}, {} attempts)",
                n + 1
            );
            return timeout_reply(store, cluster, &cause);
        }
        let attempt = classify(&sent);
        cluster.report(endpoint, attempt);
        let retriable =
            retry.is_some_and(|p| should_retry(&p.on, &p.retriable_status_codes, attempt));
        let Some(p) = retry.filter(|p| retriable && n < p.num_retries) else {
            if retriable {
                store.stats.flag(ResponseFlag::UpstreamRetryLimitExceeded);
            }
            guards.push(request_guard);
            return finish(store, cluster, sent, (n, since), (guards, active));
        };
        // A retry holds a unit of `max_retries` until it completes; without one, the current
        // outcome stands (Envoy's retry overflow).
        let Some(retry_guard) = cluster.budget.try_retry() else {
            cluster
                .stats
                .rq_retry_overflow
                .fetch_add(1, Ordering::Relaxed);
            guards.push(request_guard);
            return finish(store, cluster, sent, (n, since), (guards, active));
        };
        drop((sent, request_guard, active));
        guards = vec![retry_guard];
        let wait = backoff(p, n);
        if deadline.is_some_and(|d| Instant::now() + wait >= d) {
            let cause = format!("upstream request timeout while backing off (cluster {name:?})");
            return timeout_reply(store, cluster, &cause);
        }
        tokio::time::sleep(wait).await;
        cluster.stats.rq_retry.fetch_add(1, Ordering::Relaxed);
        n += 1;
    }
}

fn overflow(store: &Store, cluster: &ClusterRuntime, which: &str) -> Response<Body> {
    cluster.stats.response(503);
    let cause = format!(
        "circuit breaker {which} reached for cluster {:?}",
        cluster.config.name
    );
    local_error(store, ResponseFlag::UpstreamOverflow, 503, &cause)
}

/// An endpoint for the next attempt; with the previous-hosts predicate, re-pick up to
/// `host_selection_max_attempts` times to avoid hosts already tried.
fn pick(
    cluster: &ClusterRuntime,
    choice: &crate::lb::Choice,
    retry: Option<&RetryPolicy>,
    tried: &[SocketAddr],
) -> Option<SocketAddr> {
    let excluded =
        crate::lb::excluded_priorities(retry.and_then(|p| p.previous_priorities), cluster, tried);
    let first = choice.pick(cluster, &excluded)?;
    let Some(p) = retry.filter(|p| p.avoid_previous_hosts && !tried.is_empty()) else {
        return Some(first);
    };
    let mut candidate = first;
    for _ in 0..p.host_selection_max_attempts {
        if !tried.contains(&candidate) {
            return Some(candidate);
        }
        candidate = choice.pick(cluster, &excluded)?;
    }
    Some(candidate)
}

/// The attempt's outcome as the downstream response; an upstream response gets
/// `x-envoy-upstream-service-time` counted from `since` when that is set.
fn finish(
    store: &Store,
    cluster: &ClusterRuntime,
    sent: Sent,
    (retries, since): (u32, Option<Instant>),
    held: (Vec<Guard>, Active),
) -> Response<Body> {
    let name = &cluster.config.name;
    match sent {
        Some(Ok(resp)) => {
            cluster.stats.response(resp.status().as_u16());
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            if let Some(since) = since {
                parts.headers.insert(
                    crate::envoy_headers::UPSTREAM_SERVICE_TIME,
                    crate::envoy_headers::service_time(since),
                );
            }
            // The request counts against `max_requests` until its response body is done.
            let body = Guarded {
                inner: body.boxed(),
                _guards: held.0,
                _active: Some(held.1),
            };
            Response::from_parts(parts, body.boxed())
        }
        Some(Err(UpstreamError::Overflow(which))) => overflow(store, cluster, which),
        Some(Err(e)) => {
            cluster.stats.response(503);
            let flag = match e {
                UpstreamError::Reset { .. } => ResponseFlag::UpstreamConnectionTermination,
                _ => ResponseFlag::UpstreamConnectFailure,
            };
            local_error(
                store,
                flag,
                503,
                &format!("cluster {name:?}: {e} (after {retries} retries)"),
            )
        }
        None => {
            cluster.stats.rq_timeout.fetch_add(1, Ordering::Relaxed);
            cluster.stats.response(504);
            let cause = format!("per-try timeout (cluster {name:?}, after {retries} retries)");
            local_error(store, ResponseFlag::UpstreamRequestTimeout, 504, &cause)
        }
    }
}

pub fn choose_cluster(f: &Forward) -> (String, Option<(&HeaderMutation, &HeaderMutation)>) {
    match &f.clusters {
        ClusterChoice::Single(c) => (c.clone(), None),
        ClusterChoice::Weighted(targets) => {
            let total: u64 = targets.iter().map(|t| u64::from(t.weight)).sum();
            let mut x = rand::rng().random_range(0..total.max(1));
            for t in targets {
                if x < u64::from(t.weight) {
                    return (
                        t.cluster.clone(),
                        Some((&t.request_headers, &t.response_headers)),
                    );
                }
                x -= u64::from(t.weight);
            }
            let last = targets.last();
            (
                last.map(|t| t.cluster.clone()).unwrap_or_default(),
                last.map(|t| (&t.request_headers, &t.response_headers)),
            )
        }
    }
}

pub fn upstream_uri(h2: bool, host: &str, path: &str) -> Uri {
    let built = if h2 {
        format!("http://{host}{path}")
    } else {
        path.to_string()
    };
    built.parse().unwrap_or_else(|_| Uri::from_static("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_on_table() {
        let on = |f: fn(&mut RetryOn)| {
            let mut o = RetryOn::default();
            f(&mut o);
            o
        };
        let five = on(|o| o.server_error = true);
        let gw = on(|o| o.gateway_error = true);
        let reset = on(|o| o.reset = true);
        let cf = on(|o| o.connect_failure = true);
        let refused = on(|o| o.refused_stream = true);
        let unavailable = on(|o| o.grpc_codes.0 = 1 << 14);
        let codes = on(|o| o.retriable_status_codes = true);
        let four = on(|o| o.retriable_4xx = true);
        let cases = [
            (five, Attempt::Status(500), true),
            (five, Attempt::Status(404), false),
            (five, Attempt::PerTryTimeout, true),
            (gw, Attempt::Status(500), false),
            (gw, Attempt::Status(503), true),
            (reset, Attempt::Status(503), false),
            (reset, Attempt::Reset, true),
            (reset, Attempt::ConnectFailure, true),
            (cf, Attempt::ConnectFailure, true),
            (cf, Attempt::Reset, false),
            (cf, Attempt::RefusedStream, false),
            (refused, Attempt::RefusedStream, true),
            (refused, Attempt::Reset, false),
            (reset, Attempt::RefusedStream, true),
            (unavailable, Attempt::Grpc(200, 14), true),
            (unavailable, Attempt::Grpc(200, 1), false),
            (unavailable, Attempt::Status(200), false),
            (five, Attempt::Grpc(503, 0), true),
            (codes, Attempt::Status(418), true),
            (codes, Attempt::Status(419), false),
            (four, Attempt::Status(409), true),
            (four, Attempt::Status(400), false),
        ];
        for (on, attempt, want) in cases {
            assert_eq!(
                should_retry(&on, &[418], attempt),
                want,
                "{on:?} {attempt:?}"
            );
        }
    }

    #[test]
    fn backoff_is_bounded() {
        let p = RetryPolicy {
            on: RetryOn::default(),
            num_retries: 3,
            per_try_timeout: None,
            retriable_status_codes: vec![],
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(35),
            avoid_previous_hosts: false,
            host_selection_max_attempts: 1,
            previous_priorities: None,
        };
        for n in 0..20 {
            let ceiling = Duration::from_millis(10 * (1 << n.min(16))).min(p.backoff_max);
            assert!(backoff(&p, n) < ceiling, "retry {n}");
        }
    }
}
