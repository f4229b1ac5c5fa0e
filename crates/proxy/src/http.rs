//! The HTTP path of a listener with an HTTP connection manager: route, then forward to an
//! endpoint of the chosen cluster, or answer locally (direct response, redirect, error).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use rand::Rng;

use crate::config::{
    Abort, Action, Fault, Forward, HeaderMutation, HttpManager, PathMatch, Redirect, RouteSource,
};
use crate::downstream::{Downstream, forwarded_headers, normalize_path, request_path};
use crate::flags::{ERROR_HEADER, ResponseFlag};
use crate::pool::Body;
use crate::select::{RequestView, find_route, header_matches, select_vhost};
use crate::store::Store;
use crate::upstream::Target;

/// Headers that describe one hop and never cross the proxy (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
];

/// Serve one downstream request. Local replies to gRPC requests are turned into gRPC
/// trailers-only responses (HTTP 200, `grpc-status` mapped from the HTTP status as Envoy does).
/// The request's `x-request-id` is set before routing and, when configured, copied into
/// every response, local replies included (`crate::request_id`); so is the `server` header
/// (`crate::envoy_headers`). The stream timers (`crate::idle`) run until the response body is
/// done.
pub async fn handle(
    store: Arc<Store>,
    manager: HttpManager,
    mut req: Request<Incoming>,
) -> Response<crate::idle::Streamed> {
    let grpc = is_grpc(req.headers());
    let (internal, response_id) = prepare(&mut req, &manager.options);
    let activity = crate::idle::Activity::new(
        manager.options.stream_idle_timeout,
        manager.options.max_stream_duration,
        hyper::body::Body::is_end_stream(req.body()),
    );
    let resp = tokio::select! {
        resp = route_request(store.clone(), &manager, req, internal, &activity) => resp,
        expiry = activity.expired() => {
            let status = expiry.status(activity.request_done());
            local_error(&store, expiry.flag(), status, expiry.cause())
        }
    };
    let mut resp = if grpc { grpc_local_reply(resp) } else { resp };
    if let Some(id) = response_id {
        resp.headers_mut()
            .insert(crate::request_id::X_REQUEST_ID, id);
    }
    manager.options.server.apply(resp.headers_mut());
    resp.map(|body| crate::idle::Streamed::watched(body, activity, store))
}

/// What the connection manager does to a request before routing, in Envoy's order: forwarded
/// headers and the internal/external decision, sanitizing external requests, `x-request-id`.
/// Returns whether the request is internal and the id the response must carry, if any.
fn prepare(
    req: &mut Request<Incoming>,
    opts: &crate::config::hcm_options::ManagerOptions,
) -> (bool, Option<HeaderValue>) {
    let internal = match req.extensions().get::<Downstream>().copied() {
        Some(conn) => forwarded_headers(req.headers_mut(), &conn, opts),
        None => false,
    };
    if !internal {
        // Envoy strips these before routing, so no route can match on them either.
        crate::overrides::sanitize(req.headers_mut(), opts.use_remote_address);
    }
    let edge = !internal && opts.use_remote_address;
    let response_id = crate::request_id::on_request(req.headers_mut(), &opts.request_id, edge);
    (internal, response_id)
}

pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// Envoy's `httpToGrpcStatus`.
pub fn grpc_status_for(http_status: u16) -> u32 {
    match http_status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

fn grpc_local_reply(resp: Response<Body>) -> Response<Body> {
    let Some(cause) = resp.headers().get(ERROR_HEADER).cloned() else {
        return resp;
    };
    if resp.headers().contains_key("grpc-status") {
        return resp;
    }
    let mut out = full(200, Bytes::new());
    let headers = out.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    // Envoy answers an expired `max_stream_duration` with DEADLINE_EXCEEDED.
    let flag = cause.to_str().ok().and_then(|c| c.split(':').next());
    let deadline = flag == Some(ResponseFlag::DurationTimeout.code());
    let code = if deadline {
        4
    } else {
        grpc_status_for(resp.status().as_u16())
    };
    headers.insert("grpc-status", HeaderValue::from(code));
    if let Ok(v) = HeaderValue::from_str(&percent_encode(cause.to_str().unwrap_or(""))) {
        headers.insert("grpc-message", v);
    }
    headers.insert(ERROR_HEADER, cause);
    out
}

/// gRPC's `grpc-message` encoding: `%` and bytes outside printable ASCII are percent-encoded.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if (0x20..=0x7e).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn route_request(
    store: Arc<Store>,
    manager: &HttpManager,
    mut req: Request<Incoming>,
    internal: bool,
    activity: &Arc<crate::idle::Activity>,
) -> Response<Body> {
    store.stats.downstream_rq.fetch_add(1, Ordering::Relaxed);
    let opts = &manager.options;
    let runtime = store.runtime.load_full();
    let rc = match &manager.routes {
        RouteSource::Inline(rc) => rc.clone(),
        RouteSource::Rds(name) => match runtime.routes.get(name) {
            Some(rc) => rc.clone(),
            None => {
                return local_error(
                    &store,
                    ResponseFlag::NoRoute,
                    404,
                    &format!("route configuration {name:?} not received yet"),
                );
            }
        },
    };
    let authority = authority_of(&req, opts.allow_absolute_url);
    let Some(vh) = select_vhost(&rc, &authority) else {
        return local_error(
            &store,
            ResponseFlag::NoRoute,
            404,
            &format!(
                "no virtual host in {:?} matches host {authority:?}",
                rc.name
            ),
        );
    };
    let mut path = request_path(req.uri(), opts.allow_absolute_url);
    if vh.require_tls.redirects(internal) && !crate::downstream::is_https(req.headers()) {
        return crate::downstream::tls_redirect(&authority, req.uri());
    }
    if opts.normalize_path {
        match normalize_path(&path) {
            Some(p) => path = p,
            None => {
                let cause = format!("path normalization failed for {path:?}");
                return local_error(&store, ResponseFlag::NoRoute, 400, &cause);
            }
        }
    }
    let view = RequestView {
        method: req.method().as_str(),
        path: &path,
        authority: &authority,
        scheme: req.uri().scheme_str().unwrap_or("http"),
        headers: req.headers(),
    };
    let Some(route) = find_route(vh, &view) else {
        return local_error(
            &store,
            ResponseFlag::NoRoute,
            404,
            &format!("no route in virtual host {:?} matches {path}", vh.name),
        );
    };
    // Envoy sets the route's stream timers as soon as the route is chosen.
    let limit = match &route.action {
        Action::Forward(f) => {
            if let Some(idle) = f.idle_timeout {
                activity.set_timeout(idle);
            }
            let limit =
                crate::grpc_timeout::stream_limit(f, opts.max_stream_duration, req.headers());
            if f.stream.is_some() {
                activity.set_limit(limit);
            }
            limit
        }
        _ => None,
    };
    if let Some(filter) = &manager.fault {
        // The most specific `typed_per_filter_config` replaces the filter's own config.
        let fault = fault_for(&filter.name, &route.faults)
            .or_else(|| fault_for(&filter.name, &vh.faults))
            .unwrap_or(&filter.config);
        if let Some(resp) = inject_fault(&store, fault, &view).await {
            return resp;
        }
    }
    // The CORS filter runs after the fault filter; the route's policy wins over the host's.
    let policy = manager
        .cors
        .then(|| route.cors.as_ref().or(vh.cors.as_ref()))
        .flatten();
    let cors = policy.and_then(|p| crate::cors::allowed_origin(p, req.headers()).map(|o| (p, o)));
    if let Some(p) = policy.filter(|_| cors.is_none())
        && let Some(resp) = crate::cors::refused_preflight(p, req.method(), req.headers())
    {
        return resp;
    }
    if let Some((policy, origin)) = &cors
        && let Some(resp) = crate::cors::preflight(policy, req.method(), req.headers(), origin)
    {
        return resp;
    }
    let levels: [&HeaderMutation; 3] = [
        &route.response_headers,
        &vh.response_headers,
        &rc.response_headers,
    ];
    let mut resp = match &route.action {
        Action::Direct { status, body } => direct(*status, body.clone()),
        Action::Redirect(r) => redirect(r, &authority, &path, &route.matcher.path),
        Action::Forward(f) => {
            crate::grpc_timeout::rewrite_header(
                f,
                limit,
                opts.max_stream_duration,
                req.headers_mut(),
            );
            let req_levels = [
                &route.request_headers,
                &vh.request_headers,
                &rc.request_headers,
            ];
            let new_path = rewrite_path(f, &path, &route.matcher.path);
            let target = Target {
                forward: f,
                retry: f.retry.as_ref().or(vh.retry.as_ref()),
                request_headers: req_levels,
                authority: &authority,
                path: &new_path,
                attempt_count: vh.attempt_count,
                downstream: req.extensions().get::<Downstream>().copied(),
                internal,
                stream: activity,
                envoy_headers: opts.envoy_headers,
            };
            use crate::upgrade::Tunnel;
            let upgrade = crate::upgrade::requested(&req);
            let (tunnel, allowed) = if req.method() == http::Method::CONNECT {
                let c = f.connect.unwrap_or(crate::config::ConnectUpgrade {
                    enabled: manager.connect,
                    terminate: false,
                });
                (
                    Some(Tunnel::Connect {
                        terminate: c.terminate,
                    }),
                    c.enabled,
                )
            } else if let Some(protocol) = &upgrade {
                let websocket = protocol.eq_ignore_ascii_case("websocket");
                let allowed = websocket && f.websocket.unwrap_or(manager.websocket);
                (Some(Tunnel::Upgrade(protocol)), allowed)
            } else {
                (None, true)
            };
            match tunnel {
                Some(t) if !allowed => crate::upgrade::refused(&store, t),
                Some(t) => crate::upgrade::forward(&store, &runtime, target, t, req).await,
                None => {
                    let watched = |b| crate::idle::Watched::new(b, activity.clone()).boxed();
                    crate::upstream::forward(&store, &runtime, target, req.map(watched)).await
                }
            }
        }
    };
    if let Some((policy, origin)) = &cors {
        crate::cors::decorate(policy, origin, resp.headers_mut());
    }
    for m in levels {
        m.apply(resp.headers_mut());
    }
    resp
}

fn fault_for<'a>(filter: &str, faults: &'a [(String, Fault)]) -> Option<&'a Fault> {
    faults.iter().find(|(n, _)| n == filter).map(|(_, f)| f)
}

/// The fault filter: maybe delay, then maybe abort. Returns the abort response.
async fn inject_fault(
    store: &Store,
    fault: &Fault,
    view: &RequestView<'_>,
) -> Option<Response<Body>> {
    if !fault.headers.iter().all(|h| header_matches(h, view)) {
        return None;
    }
    // Roll both dice up front: the thread-local RNG must not live across the delay's await.
    let (delay_roll, abort_roll): (u32, u32) = {
        let mut rng = rand::rng();
        (rng.random(), rng.random())
    };
    if let Some((delay, _)) = fault.delay.filter(|(_, f)| f.sample(delay_roll)) {
        store.stats.flag(ResponseFlag::DelayInjected);
        tokio::time::sleep(delay).await;
    }
    let (abort, fraction) = fault.abort?;
    if !fraction.sample(abort_roll) {
        return None;
    }
    Some(match abort {
        Abort::Http(status) => local_error(
            store,
            ResponseFlag::FaultInjected,
            status,
            "fault filter abort",
        ),
        Abort::Grpc(code) => {
            let mut resp = local_error(
                store,
                ResponseFlag::FaultInjected,
                200,
                "fault filter abort",
            );
            let headers = resp.headers_mut();
            headers.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/grpc"),
            );
            headers.insert("grpc-status", HeaderValue::from(code));
            headers.insert(
                "grpc-message",
                HeaderValue::from_static("fault filter abort"),
            );
            resp
        }
    })
}

/// The absolute-form target's authority wins over `Host` when absolute URLs are allowed.
fn authority_of(req: &Request<Incoming>, absolute: bool) -> String {
    req.uri()
        .authority()
        .filter(|_| absolute)
        .map(|a| a.as_str().to_string())
        .or_else(|| {
            req.headers()
                .get(http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

fn full(status: u16, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Full::new(body).map_err(|never| match never {}).boxed());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp
}

/// A response the proxy produced itself because something failed: counted by flag and
/// labelled with `x-plexus-error`.
pub fn local_error(store: &Store, flag: ResponseFlag, status: u16, cause: &str) -> Response<Body> {
    store.stats.flag(flag);
    tracing::debug!(flag = flag.code(), status, cause, "local reply");
    let message = format!("{}: {cause}", flag.code());
    let mut resp = full(status, Bytes::from(message.clone()));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain"),
    );
    if let Ok(v) = HeaderValue::from_str(&message) {
        resp.headers_mut().insert(ERROR_HEADER, v);
    }
    resp
}

fn direct(status: u16, body: Option<Bytes>) -> Response<Body> {
    match body {
        Some(b) => {
            let mut resp = full(status, b);
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain"),
            );
            resp
        }
        None => full(status, Bytes::new()),
    }
}

/// Build the `location` the way Envoy does: each part of the original URL is replaced only
/// when the redirect names it.
fn redirect(r: &Redirect, authority: &str, path: &str, matched: &PathMatch) -> Response<Body> {
    let (orig_path, query) = path
        .split_once('?')
        .map_or((path, None), |(p, q)| (p, Some(q)));
    let scheme = r.scheme.clone().unwrap_or_else(|| "http".to_string());
    let (orig_host, orig_port) = split_port(authority);
    let host = r.host.clone().unwrap_or_else(|| orig_host.to_string());
    let port = match (r.port, r.host.is_some(), r.scheme.is_some()) {
        (Some(p), _, _) => Some(p.to_string()),
        (None, false, false) => orig_port.map(str::to_string),
        _ => None,
    };
    let port = port.filter(|p| !(scheme == "http" && p == "80" || scheme == "https" && p == "443"));
    let mut new_path = match (&r.path, &r.prefix_rewrite) {
        (Some(p), _) => p.clone(),
        (None, Some(prefix)) => replace_prefix(orig_path, matched, prefix),
        (None, None) => orig_path.to_string(),
    };
    if let Some(q) = query.filter(|_| !r.strip_query && !new_path.contains('?')) {
        new_path.push('?');
        new_path.push_str(q);
    }
    let location = match port {
        Some(p) => format!("{scheme}://{host}:{p}{new_path}"),
        None => format!("{scheme}://{host}{new_path}"),
    };
    let mut resp = full(r.status, Bytes::new());
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    resp
}

/// Envoy's `prefix_rewrite`: the part of the path the route matched (its prefix, or the whole
/// path for an exact match) is swapped for `replacement`.
fn replace_prefix(path: &str, matched: &PathMatch, replacement: &str) -> String {
    let len = match matched {
        PathMatch::Prefix(p) | PathMatch::SeparatedPrefix(p) => p.len(),
        PathMatch::Exact(_) | PathMatch::Regex(_) | PathMatch::Connect => path.len(),
    };
    format!("{replacement}{}", path.get(len..).unwrap_or(""))
}

/// `host:port` -> (`host`, `Some(port)`); IPv6 literals keep their brackets.
fn split_port(authority: &str) -> (&str, Option<&str>) {
    let digits = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
    if authority.starts_with('[') {
        return match authority.split_once("]:") {
            Some((h, p)) if digits(p) => (&authority[..=h.len()], Some(p)),
            _ => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.is_empty() && digits(p) => (h, Some(p)),
        _ => (authority, None),
    }
}

fn rewrite_path(f: &Forward, path: &str, matched: &PathMatch) -> String {
    let (p, query) = path
        .split_once('?')
        .map_or((path, None), |(p, q)| (p, Some(q)));
    let rewritten = match (&f.regex_rewrite, &f.prefix_rewrite) {
        (Some((re, sub)), _) => re.replace_all(p, sub.as_str()).into_owned(),
        (None, Some(prefix)) => replace_prefix(p, matched, prefix),
        (None, None) => p.to_string(),
    };
    match query {
        Some(q) => format!("{rewritten}?{q}"),
        None => rewritten,
    }
}

pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none of them (and without `connection` nothing is listed): one pass
    // over the names is cheaper than a hashed removal per name on every request and response.
    if !headers.keys().any(|k| HOP_BY_HOP.contains(&k.as_str())) {
        return;
    }
    let listed: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
        .collect();
    for name in HOP_BY_HOP
        .iter()
        .copied()
        .chain(listed.iter().map(String::as_str))
    {
        if name == "te" && headers.get("te").is_some_and(|v| v == "trailers") {
            continue;
        }
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_ports() {
        assert_eq!(split_port("a.test:8080"), ("a.test", Some("8080")));
        assert_eq!(split_port("a.test"), ("a.test", None));
        assert_eq!(split_port("[::1]:80"), ("[::1]", Some("80")));
        assert_eq!(split_port("[::1]"), ("[::1]", None));
        assert_eq!(split_port("a.test:"), ("a.test:", None));
    }

    #[test]
    fn hop_by_hop_headers_are_stripped() {
        let mut plain = HeaderMap::new();
        plain.insert("x-a", HeaderValue::from_static("1"));
        plain.insert("te", HeaderValue::from_static("trailers"));
        let kept = plain.clone();
        strip_hop_by_hop(&mut plain);
        assert_eq!(plain, kept);
        let mut listed = kept.clone();
        listed.insert("connection", HeaderValue::from_static("x-a, Keep-Alive"));
        listed.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        listed.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        strip_hop_by_hop(&mut listed);
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed["te"], "trailers");
        let mut te = HeaderMap::new();
        te.insert("te", HeaderValue::from_static("gzip"));
        strip_hop_by_hop(&mut te);
        assert!(te.is_empty());
    }

    #[test]
    fn grpc_status_mapping() {
        assert_eq!(grpc_status_for(404), 12);
        assert_eq!(grpc_status_for(503), 14);
        assert_eq!(grpc_status_for(418), 2);
        assert_eq!(percent_encode("a%b\n"), "a%25b%0A");
    }
}
