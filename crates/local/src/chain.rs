//! The echo server's "call upstreams" mode, which makes a Bookinfo-like request chain real:
//! each request is answered with the usual echo JSON plus `upstreams`, the answers of every
//! configured upstream URL, called through `HTTP_PROXY` (the workload's sidecar) when set.
//!
//! Headers that Bookinfo's services propagate (the user identity `end-user`, cookies and the
//! trace headers) are forwarded to every upstream, so header-based routing (`end-user: jason`)
//! works on the second hop.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use plexus_testkit::echo::EchoConfig;
use serde::{Deserialize, Serialize};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Headers copied from the incoming request to every upstream call.
pub const PROPAGATED_HEADERS: &[&str] = &[
    "end-user",
    "user-agent",
    "cookie",
    "x-request-id",
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-flags",
];

/// How long one upstream call may take before it is reported as failed.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);

/// One upstream's answer inside a chain reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpstreamAnswer {
    pub url: String,
    /// HTTP status, absent when the call failed before a response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The upstream's JSON body (or its text when not JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A chain reply: who answered, what was asked, and what the upstreams said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainReply {
    pub workload: String,
    pub version: String,
    pub replica: String,
    pub method: String,
    pub path: String,
    pub protocol: String,
    pub host: String,
    pub headers: BTreeMap<String, String>,
    pub upstreams: Vec<UpstreamAnswer>,
}

/// Where upstream calls go: straight to the URL's authority, or to an HTTP forward proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstreams {
    pub urls: Vec<Uri>,
    /// `host:port` of the HTTP proxy (from `HTTP_PROXY`).
    pub proxy: Option<String>,
}

impl Upstreams {
    /// Parse URLs and an `HTTP_PROXY` value; errors name the bad value.
    pub fn parse(urls: &[String], http_proxy: Option<&str>) -> Result<Upstreams, String> {
        let mut out = Vec::new();
        for u in urls.iter().filter(|u| !u.trim().is_empty()) {
            let uri: Uri = u
                .trim()
                .parse()
                .map_err(|e| format!("upstream {u:?}: {e}"))?;
            if uri.scheme_str() != Some("http") || uri.authority().is_none() {
                return Err(format!("upstream {u:?}: expected http://HOST[:PORT]/PATH"));
            }
            out.push(uri);
        }
        let proxy = match http_proxy.map(str::trim).filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => {
                let uri: Uri = p.parse().map_err(|e| format!("HTTP_PROXY {p:?}: {e}"))?;
                let auth = uri
                    .authority()
                    .ok_or_else(|| format!("HTTP_PROXY {p:?}: no host"))?;
                Some(format!("{}:{}", auth.host(), auth.port_u16().unwrap_or(80)))
            }
        };
        Ok(Upstreams { urls: out, proxy })
    }
}

/// A running chain server; dropping the handle stops it.
#[derive(Debug)]
pub struct ChainHandle {
    pub addr: SocketAddr,
    _stop: watch::Sender<bool>,
}

/// Serve the chain echo on `addr`.
pub async fn start(
    cfg: EchoConfig,
    upstreams: Upstreams,
    addr: SocketAddr,
) -> std::io::Result<ChainHandle> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    let shared = Arc::new((cfg, upstreams));
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
                _ = stopped.changed() => return,
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(answer(&shared.0, &shared.1, req).await) }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(ChainHandle { addr, _stop: stop })
}

async fn answer(
    cfg: &EchoConfig,
    ups: &Upstreams,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let mut headers = BTreeMap::new();
    for (name, value) in req.headers() {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|old: &mut String| {
                old.push(',');
                old.push_str(&v);
            })
            .or_insert(v);
    }
    let mut calls = tokio::task::JoinSet::new();
    for (i, url) in ups.urls.iter().enumerate() {
        let (url, proxy, fwd) = (url.clone(), ups.proxy.clone(), propagated(req.headers()));
        calls.spawn(async move { (i, call(url, proxy, fwd).await) });
    }
    let mut answers: Vec<(usize, UpstreamAnswer)> = Vec::new();
    while let Some(r) = calls.join_next().await {
        if let Ok(a) = r {
            answers.push(a);
        }
    }
    answers.sort_by_key(|(i, _)| *i);
    let reply = ChainReply {
        workload: cfg.workload.clone(),
        version: cfg.version.clone(),
        replica: cfg.replica.clone(),
        method: req.method().to_string(),
        path: req
            .uri()
            .path_and_query()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        protocol: format!("{:?}", req.version()),
        host: headers.get("host").cloned().unwrap_or_default(),
        headers,
        upstreams: answers.into_iter().map(|(_, a)| a).collect(),
    };
    let body = serde_json::to_vec(&reply).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn propagated(h: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    PROPAGATED_HEADERS
        .iter()
        .filter_map(|n| h.get(*n).map(|v| (n.to_string(), v.as_bytes().to_vec())))
        .collect()
}

async fn call(url: Uri, proxy: Option<String>, fwd: Vec<(String, Vec<u8>)>) -> UpstreamAnswer {
    let shown = url.to_string();
    match tokio::time::timeout(UPSTREAM_TIMEOUT, fetch(&url, proxy, fwd)).await {
        Ok(Ok((status, bytes))) => {
            let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into())
            });
            UpstreamAnswer {
                url: shown,
                status: Some(status),
                body: Some(body),
                error: None,
            }
        }
        Ok(Err(e)) => UpstreamAnswer {
            url: shown,
            status: None,
            body: None,
            error: Some(e),
        },
        Err(_) => UpstreamAnswer {
            url: shown,
            status: None,
            body: None,
            error: Some(format!("no answer within {}s", UPSTREAM_TIMEOUT.as_secs())),
        },
    }
}

/// One HTTP/1.1 GET. Through a proxy the request line carries the absolute URL, as HTTP
/// forward proxies expect; directly it carries the origin form.
async fn fetch(
    url: &Uri,
    proxy: Option<String>,
    fwd: Vec<(String, Vec<u8>)>,
) -> Result<(u16, Bytes), String> {
    let auth = url.authority().ok_or("no authority")?;
    let direct = format!("{}:{}", auth.host(), auth.port_u16().unwrap_or(80));
    let target = proxy.clone().unwrap_or(direct);
    let stream = TcpStream::connect(&target)
        .await
        .map_err(|e| format!("connect {target}: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake with {target}: {e}"))?;
    tokio::spawn(conn);
    let uri = if proxy.is_some() {
        url.clone()
    } else {
        url.path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .parse()
            .map_err(|e| format!("{e}"))?
    };
    let mut req = Request::get(uri).header(http::header::HOST, auth.as_str());
    for (k, v) in fwd {
        req = req.header(k, v);
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("request via {target}: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use plexus_testkit::echo::{EchoReply, start_http};

    async fn get(addr: SocketAddr, headers: &[(&str, &str)]) -> ChainReply {
        let (status, body) = {
            let url: Uri = format!("http://{addr}/productpage").parse().expect("uri");
            let fwd = headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
                .collect();
            fetch(&url, None, fwd).await.expect("get")
        };
        assert_eq!(status, 200);
        serde_json::from_slice(&body).expect("json")
    }

    fn cfg(name: &str) -> EchoConfig {
        EchoConfig {
            workload: name.into(),
            version: "v1".into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn calls_upstreams_directly_and_forwards_user_headers() {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let details = start_http(cfg("details"), any).await.expect("details");
        let reviews = start_http(cfg("reviews"), any).await.expect("reviews");
        let ups = Upstreams::parse(
            &[
                format!("http://{}/details/0", details.addr),
                format!("http://{}/reviews/0", reviews.addr),
            ],
            None,
        )
        .expect("parse");
        let page = start(cfg("productpage"), ups, any).await.expect("page");
        let reply = get(
            page.addr,
            &[("end-user", "jason"), ("x-not-forwarded", "1")],
        )
        .await;
        assert_eq!(reply.workload, "productpage");
        let names: Vec<String> = reply
            .upstreams
            .iter()
            .map(|u| {
                let r: EchoReply =
                    serde_json::from_value(u.body.clone().expect("body")).expect("echo");
                assert_eq!(r.headers.get("end-user").map(String::as_str), Some("jason"));
                assert!(!r.headers.contains_key("x-not-forwarded"));
                format!("{}{}", r.workload, r.path)
            })
            .collect();
        assert_eq!(names, ["details/details/0", "reviews/reviews/0"]);
    }

    #[tokio::test]
    async fn calls_go_through_the_http_proxy_in_absolute_form() {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        // The "proxy" is an echo server: it reports the request line it received.
        let proxy = start_http(cfg("sidecar"), any).await.expect("proxy");
        let ups = Upstreams::parse(
            &["http://ratings:9080/ratings/0".to_string()],
            Some(&format!("http://{}", proxy.addr)),
        )
        .expect("parse");
        let page = start(cfg("reviews"), ups, any).await.expect("page");
        let reply = get(page.addr, &[]).await;
        let r: EchoReply =
            serde_json::from_value(reply.upstreams[0].body.clone().expect("body")).expect("echo");
        assert_eq!(r.workload, "sidecar");
        assert_eq!(r.host, "ratings:9080");
    }

    #[tokio::test]
    async fn a_failed_upstream_is_reported_not_fatal() {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let dead = closed.local_addr().expect("addr");
        drop(closed);
        let ups = Upstreams::parse(&[format!("http://{dead}/x")], None).expect("parse");
        let page = start(cfg("productpage"), ups, any).await.expect("page");
        let reply = get(page.addr, &[]).await;
        assert!(
            reply.upstreams[0]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("connect"))
        );
    }

    #[test]
    fn bad_urls_are_named() {
        assert!(
            Upstreams::parse(&["ftp://x/".into()], None)
                .unwrap_err()
                .contains("ftp://x/")
        );
        assert!(
            Upstreams::parse(&["http://x/".into()], Some("::"))
                .unwrap_err()
                .contains("HTTP_PROXY")
        );
        let u = Upstreams::parse(
            &["http://x/".into(), " ".into()],
            Some("http://127.0.0.1:15080"),
        )
        .expect("ok");
        assert_eq!(
            (u.urls.len(), u.proxy.as_deref()),
            (1, Some("127.0.0.1:15080"))
        );
    }
}
