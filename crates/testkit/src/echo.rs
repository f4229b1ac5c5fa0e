//! Echo servers that say which instance answered: HTTP/1.1 and h2c on one port (JSON body with
//! `workload`, `version`, `replica`, `method`, `path`, `headers`, ...), and a TCP byte echo.
//!
//! Knobs: a fixed delay per request, and failing a chosen fraction of requests with a chosen
//! status. Per request, `x-echo-status: CODE` and `x-echo-delay-ms: N` override both, so tests
//! can ask one request to fail or to be slow.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rand::Rng;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What an echo instance calls itself and how it misbehaves.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    pub workload: String,
    pub version: String,
    pub replica: String,
    /// Added before every HTTP response.
    pub delay: Duration,
    /// Fraction of requests (0.0..=1.0) answered with `fail_status` instead of 200.
    pub fail_fraction: f64,
    pub fail_status: u16,
}

impl Default for EchoConfig {
    fn default() -> Self {
        EchoConfig {
            workload: "echo".into(),
            version: "v1".into(),
            replica: "0".into(),
            delay: Duration::ZERO,
            fail_fraction: 0.0,
            fail_status: 503,
        }
    }
}

/// The JSON an HTTP echo answers with.
#[derive(Debug, Serialize, serde::Deserialize, Clone, PartialEq)]
pub struct EchoReply {
    pub workload: String,
    pub version: String,
    pub replica: String,
    pub method: String,
    /// Path and query as received.
    pub path: String,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub protocol: String,
    pub host: String,
    /// Header names lower-cased; repeated headers joined with `,`.
    pub headers: BTreeMap<String, String>,
    pub body_bytes: usize,
}

/// A running HTTP echo server; dropping the handle stops it.
#[derive(Debug)]
pub struct EchoHandle {
    pub addr: SocketAddr,
    /// Requests answered so far.
    pub requests: Arc<AtomicU64>,
    _stop: watch::Sender<bool>,
}

/// Bind `addr` (use `127.0.0.1:0` in tests) and serve HTTP/1.1 and h2c echo.
pub async fn start_http(cfg: EchoConfig, addr: SocketAddr) -> std::io::Result<EchoHandle> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let requests = Arc::new(AtomicU64::new(0));
    let cfg = Arc::new(cfg);
    tokio::spawn(accept_http(listener, cfg, requests.clone(), stopped));
    Ok(EchoHandle {
        addr,
        requests,
        _stop: stop,
    })
}

async fn accept_http(
    listener: TcpListener,
    cfg: Arc<EchoConfig>,
    requests: Arc<AtomicU64>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
            _ = stopped.changed() => return,
        };
        let cfg = cfg.clone();
        let requests = requests.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let cfg = cfg.clone();
                let requests = requests.clone();
                async move { Ok::<_, Infallible>(answer(&cfg, &requests, req).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn answer(
    cfg: &EchoConfig,
    requests: &AtomicU64,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    requests.fetch_add(1, Ordering::Relaxed);
    let header_num =
        |name: &str| -> Option<u64> { req.headers().get(name)?.to_str().ok()?.parse().ok() };
    let delay = header_num("x-echo-delay-ms")
        .map(Duration::from_millis)
        .unwrap_or(cfg.delay);
    let forced = header_num("x-echo-status").and_then(|s| u16::try_from(s).ok());
    let status = forced.unwrap_or_else(|| {
        if cfg.fail_fraction > 0.0 && rand::rng().random_bool(cfg.fail_fraction.clamp(0.0, 1.0)) {
            cfg.fail_status
        } else {
            200
        }
    });
    let mut reply = EchoReply {
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
        host: host_of(&req),
        headers: BTreeMap::new(),
        body_bytes: 0,
    };
    for (name, value) in req.headers() {
        let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
        reply
            .headers
            .entry(name.as_str().to_string())
            .and_modify(|old| {
                old.push(',');
                old.push_str(&v);
            })
            .or_insert(v);
    }
    reply.body_bytes = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().len())
        .unwrap_or(0);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let body = serde_json::to_vec(&reply).unwrap_or_default();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&cfg.replica) {
        resp.headers_mut().insert("x-echo-replica", v);
    }
    resp
}

fn host_of(req: &Request<Incoming>) -> String {
    req.uri()
        .authority()
        .map(|a| a.to_string())
        .or_else(|| {
            req.headers()
                .get(http::header::HOST)?
                .to_str()
                .ok()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// A running TCP echo server; dropping the handle stops accepting.
#[derive(Debug)]
pub struct TcpEchoHandle {
    pub addr: SocketAddr,
    _stop: watch::Sender<bool>,
}

/// Bind `addr` and echo every byte back on each connection until the peer closes.
pub async fn start_tcp(addr: SocketAddr) -> std::io::Result<TcpEchoHandle> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, mut stopped) = watch::channel(false);
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = tokio::select! {
                r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
                _ = stopped.changed() => return,
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if stream.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    Ok(TcpEchoHandle { addr, _stop: stop })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::client::legacy::Client;

    async fn get(addr: SocketAddr, h2: bool, headers: &[(&str, &str)]) -> (u16, EchoReply) {
        let client = Client::builder(TokioExecutor::new())
            .http2_only(h2)
            .build_http::<Full<Bytes>>();
        let mut req = Request::get(format!("http://{addr}/a/b?x=1"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = client
            .request(req.body(Full::default()).expect("request"))
            .await
            .expect("send");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&body).expect("json"))
    }

    #[tokio::test]
    async fn http1_and_h2c_on_one_port() {
        let cfg = EchoConfig {
            workload: "reviews".into(),
            version: "v2".into(),
            ..Default::default()
        };
        let echo = start_http(cfg, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let (s1, r1) = get(echo.addr, false, &[("x-a", "1")]).await;
        assert_eq!(
            (s1, r1.protocol.as_str(), r1.path.as_str()),
            (200, "HTTP/1.1", "/a/b?x=1")
        );
        assert_eq!(
            (r1.workload.as_str(), r1.version.as_str()),
            ("reviews", "v2")
        );
        assert_eq!(r1.headers.get("x-a").map(String::as_str), Some("1"));
        let (s2, r2) = get(echo.addr, true, &[]).await;
        assert_eq!((s2, r2.protocol.as_str()), (200, "HTTP/2.0"));
        assert_eq!(echo.requests.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn fails_the_chosen_fraction_and_obeys_overrides() {
        let cfg = EchoConfig {
            fail_fraction: 1.0,
            fail_status: 502,
            ..Default::default()
        };
        let echo = start_http(cfg, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        assert_eq!(get(echo.addr, false, &[]).await.0, 502);
        assert_eq!(
            get(echo.addr, false, &[("x-echo-status", "201")]).await.0,
            201
        );
    }

    #[tokio::test]
    async fn tcp_echoes_bytes() {
        let echo = start_tcp("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let mut s = tokio::net::TcpStream::connect(echo.addr)
            .await
            .expect("connect");
        s.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"ping");
    }
}
