//! The HTTP path of a listener with an HTTP connection manager: route, then forward to an
//! endpoint of the chosen cluster, or answer locally (direct response, redirect, error).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use rand::Rng;

use crate::config::{
    Action, ClusterChoice, Forward, HeaderMutation, PathMatch, Redirect, RouteSource,
};
use crate::flags::{ERROR_HEADER, ResponseFlag};
use crate::pool::{Body, UpstreamError};
use crate::select::{RequestView, find_route, select_vhost};
use crate::store::Store;

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

pub async fn handle(
    store: Arc<Store>,
    routes: RouteSource,
    req: Request<Incoming>,
) -> Response<Body> {
    store.stats.downstream_rq.fetch_add(1, Ordering::Relaxed);
    let runtime = store.runtime.load_full();
    let rc = match &routes {
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
    let authority = authority_of(&req);
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
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
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
    let levels: [&HeaderMutation; 3] = [
        &route.response_headers,
        &vh.response_headers,
        &rc.response_headers,
    ];
    let mut resp = match &route.action {
        Action::Direct { status, body } => direct(*status, body.clone()),
        Action::Redirect(r) => redirect(r, &authority, &path, &route.matcher.path),
        Action::Forward(f) => {
            let req_levels = [
                &route.request_headers,
                &vh.request_headers,
                &rc.request_headers,
            ];
            let new_path = rewrite_path(f, &path, &route.matcher.path);
            forward(&store, &runtime, f, req_levels, req, &authority, &new_path).await
        }
    };
    for m in levels {
        m.apply(resp.headers_mut());
    }
    resp
}

fn authority_of(req: &Request<Incoming>) -> String {
    req.uri()
        .authority()
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
        PathMatch::Exact(_) | PathMatch::Regex(_) => path.len(),
    };
    format!("{replacement}{}", path.get(len..).unwrap_or(""))
}

fn split_port(authority: &str) -> (&str, Option<&str>) {
    match authority.rsplit_once(':') {
        Some((h, p))
            if !h.is_empty() && p.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(']')
                || h.starts_with('[') =>
        {
            (h, Some(p))
        }
        _ => (authority, None),
    }
}

fn choose_cluster(f: &Forward) -> (String, Option<(&HeaderMutation, &HeaderMutation)>) {
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

async fn forward(
    store: &Store,
    runtime: &crate::store::Runtime,
    f: &Forward,
    req_levels: [&HeaderMutation; 3],
    req: Request<Incoming>,
    authority: &str,
    new_path: &str,
) -> Response<Body> {
    let (cluster_name, weighted_headers) = choose_cluster(f);
    let Some(cluster) = runtime.clusters.get(&cluster_name).cloned() else {
        return local_error(
            store,
            ResponseFlag::NoCluster,
            f.cluster_not_found_status,
            &format!("cluster {cluster_name:?} not found"),
        );
    };
    let Some(endpoint) = cluster.pick() else {
        return local_error(
            store,
            ResponseFlag::NoHealthyUpstream,
            503,
            &format!("no healthy upstream for cluster {cluster_name:?}"),
        );
    };
    let (mut parts, body) = req.into_parts();
    let host = f
        .host_rewrite
        .clone()
        .unwrap_or_else(|| authority.to_string());
    strip_hop_by_hop(&mut parts.headers);
    if let Some((req_h, _)) = weighted_headers {
        req_h.apply(&mut parts.headers);
    }
    for m in req_levels {
        m.apply(&mut parts.headers);
    }
    let h2 = cluster.config.protocol == crate::config::UpstreamProtocol::Http2;
    parts.uri = upstream_uri(h2, &host, new_path);
    parts.version = if h2 {
        http::Version::HTTP_2
    } else {
        http::Version::HTTP_11
    };
    if h2 {
        parts.headers.remove(http::header::HOST);
    } else if let Ok(v) = HeaderValue::from_str(&host) {
        parts.headers.insert(http::header::HOST, v);
    }
    let upstream_req = Request::from_parts(parts, body.boxed());
    cluster.stats.rq_total.fetch_add(1, Ordering::Relaxed);
    let pool = cluster.pool(endpoint.addr);
    let sent = match f.timeout {
        Some(t) => match tokio::time::timeout(t, pool.send(upstream_req)).await {
            Ok(r) => r,
            Err(_) => {
                cluster.stats.rq_timeout.fetch_add(1, Ordering::Relaxed);
                cluster.stats.response(504);
                return local_error(
                    store,
                    ResponseFlag::UpstreamRequestTimeout,
                    504,
                    &format!("upstream request timeout after {t:?} (cluster {cluster_name:?})"),
                );
            }
        },
        None => pool.send(upstream_req).await,
    };
    match sent {
        Ok(resp) => {
            cluster.stats.response(resp.status().as_u16());
            let (mut parts, body) = resp.into_parts();
            strip_hop_by_hop(&mut parts.headers);
            if let Some((_, resp_h)) = weighted_headers {
                resp_h.apply(&mut parts.headers);
            }
            Response::from_parts(parts, body.boxed())
        }
        Err(e) => {
            cluster.stats.response(503);
            let flag = match e {
                UpstreamError::Reset { .. } => ResponseFlag::UpstreamConnectionTermination,
                _ => ResponseFlag::UpstreamConnectFailure,
            };
            local_error(store, flag, 503, &format!("cluster {cluster_name:?}: {e}"))
        }
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

fn upstream_uri(h2: bool, host: &str, path: &str) -> Uri {
    let built = if h2 {
        format!("http://{host}{path}")
    } else {
        path.to_string()
    };
    built.parse().unwrap_or_else(|_| Uri::from_static("/"))
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
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
