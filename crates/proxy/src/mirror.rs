//! Request mirroring (`request_mirror_policies`): for each policy whose fraction hits, a copy of
//! the request goes to an endpoint of the mirror cluster with the host suffixed `-shadow`, as
//! Envoy does. It is fire-and-forget: the answer is read and dropped, failures are ignored.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use rand::Rng;

use crate::config::{Mirror, UpstreamProtocol};
use crate::store::Runtime;
use crate::upstream::upstream_uri;

/// `reviews:9080` -> `reviews-shadow:9080`.
pub fn shadow_host(host: &str) -> String {
    let digits = |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit());
    let split = if host.starts_with('[') {
        host.split_once("]:")
            .filter(|(_, p)| digits(p))
            .map(|(h, p)| (&host[..=h.len()], p))
    } else {
        host.rsplit_once(':').filter(|(_, p)| digits(p))
    };
    match split {
        Some((h, port)) => format!("{h}-shadow:{port}"),
        None => format!("{host}-shadow"),
    }
}

pub fn spawn(
    runtime: &Runtime,
    mirrors: &[Mirror],
    method: &Method,
    headers: &HeaderMap,
    host: &str,
    path: &str,
    body: &Bytes,
) {
    for m in mirrors {
        if !m.fraction.sample(rand::rng().random()) {
            continue;
        }
        let Some(cluster) = runtime.clusters.get(&m.cluster).cloned() else {
            tracing::debug!(cluster = %m.cluster, "mirror cluster not found; mirror skipped");
            continue;
        };
        let Some(endpoint) = cluster.pick() else {
            continue;
        };
        let host = if m.shadow_suffix {
            shadow_host(host)
        } else {
            host.to_string()
        };
        let h2 = cluster.config.protocol == UpstreamProtocol::Http2;
        let mut req = Request::new(
            Full::new(body.clone())
                .map_err(|never| match never {})
                .boxed(),
        );
        *req.method_mut() = method.clone();
        *req.uri_mut() = upstream_uri(h2, &host, path);
        *req.version_mut() = if h2 {
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        };
        *req.headers_mut() = headers.clone();
        if h2 {
            req.headers_mut().remove(http::header::HOST);
        } else if let Ok(v) = HeaderValue::from_str(&host) {
            req.headers_mut().insert(http::header::HOST, v);
        }
        let pool = cluster.pool(endpoint.addr);
        tokio::spawn(async move {
            if let Ok(resp) = pool.send(req).await {
                let _ = resp.into_body().collect().await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_hosts() {
        assert_eq!(shadow_host("reviews"), "reviews-shadow");
        assert_eq!(shadow_host("reviews:9080"), "reviews-shadow:9080");
        assert_eq!(shadow_host("[::1]:80"), "[::1]-shadow:80");
    }
}
