//! Echo servers that say which instance answered: HTTP/1.1 and h2c on one port (JSON body with
//! `workload`, `version`, `replica`, `method`, `path`, `headers`, ...), and a TCP byte echo.
//!
//! Knobs: a fixed delay per request, and failing a chosen fraction of requests with a chosen
//! status. Per request, `x-echo-status: CODE` and `x-echo-delay-ms: N` override both, so tests
//! can ask one request to fail or to be slow. Requests with `content-type: application/grpc*`
//! get a unary gRPC echo of any method (the message back, `grpc-status` in trailers; a failing
//! request gets a trailers-only 14 UNAVAILABLE, `x-echo-grpc-status: N` forces N). Every reply names the
//! instance in `x-echo-workload`, `x-echo-version` and `x-echo-replica`. The gRPC health service
//! (`grpc.health.v1.Health/Check`, see `grpc_health`) answers with statuses a test sets through
//! `EchoHandle::set_health`; `connections` counts accepted connections.
//!
//! Slow response bodies: `x-echo-body-chunks: K` sends the JSON reply (with its
//! `content-length`) in K pieces, the headers and first piece at once and each further piece
//! `x-echo-body-gap-ms: G` later, so tests can stall a response after its headers.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
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
    /// Terminate TLS with this config before serving HTTP (a backend behind a PASSTHROUGH
    /// gateway); `None` is plaintext.
    pub tls: Option<Arc<rustls::ServerConfig>>,
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
            tls: None,
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
    /// What the last request (not an upgrade or gRPC health check) looked like.
    pub last: Arc<std::sync::Mutex<Option<EchoReply>>>,
    /// Connections accepted so far.
    pub connections: Arc<AtomicU64>,
    /// The gRPC health service's statuses and last check.
    pub health: crate::grpc_health::HealthState,
    _stop: watch::Sender<bool>,
}

impl EchoHandle {
    /// Set the gRPC health status of `service` (`""` is the server as a whole).
    pub fn set_health(&self, service: &str, status: u64) {
        if let Ok(mut s) = self.health.statuses.lock() {
            s.insert(service.to_string(), status);
        }
    }
}

/// Bind `addr` (use `127.0.0.1:0` in tests) and serve HTTP/1.1 and h2c echo (over TLS when
/// `cfg.tls` is set).
pub async fn start_http(cfg: EchoConfig, addr: SocketAddr) -> std::io::Result<EchoHandle> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let seen = Seen::default();
    let cfg = Arc::new(cfg);
    tokio::spawn(accept_http(listener, cfg, seen.clone(), stopped));
    Ok(EchoHandle {
        addr,
        requests: seen.requests,
        last: seen.last,
        connections: seen.connections,
        health: seen.health,
        _stop: stop,
    })
}

/// What the server records about the requests it answers.
#[derive(Clone, Default)]
struct Seen {
    requests: Arc<AtomicU64>,
    last: Arc<std::sync::Mutex<Option<EchoReply>>>,
    connections: Arc<AtomicU64>,
    health: crate::grpc_health::HealthState,
}

async fn accept_http(
    listener: TcpListener,
    cfg: Arc<EchoConfig>,
    requests: Seen,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
            _ = stopped.changed() => return,
        };
        let cfg = cfg.clone();
        let requests = requests.clone();
        requests.connections.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let tls = cfg.tls.clone();
            let svc = service_fn(move |req| {
                let cfg = cfg.clone();
                let requests = requests.clone();
                async move { Ok::<_, Infallible>(answer(&cfg, &requests, req).await) }
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            match tls {
                None => {
                    let _ = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                }
                Some(tls) => {
                    if let Ok(s) = tokio_rustls::TlsAcceptor::from(tls).accept(stream).await {
                        let _ = builder
                            .serve_connection_with_upgrades(TokioIo::new(s), svc)
                            .await;
                    }
                }
            }
        });
    }
}

async fn answer(cfg: &EchoConfig, seen: &Seen, mut req: Request<Incoming>) -> Response<EchoBody> {
    seen.requests.fetch_add(1, Ordering::Relaxed);
    if let Some(resp) = upgrade(cfg, &mut req) {
        return resp;
    }
    let header_num =
        |name: &str| -> Option<u64> { req.headers().get(name)?.to_str().ok()?.parse().ok() };
    let delay = header_num("x-echo-delay-ms")
        .map(Duration::from_millis)
        .unwrap_or(cfg.delay);
    let forced = header_num("x-echo-status").and_then(|s| u16::try_from(s).ok());
    let pacing = (
        header_num("x-echo-body-chunks").unwrap_or(1),
        Duration::from_millis(header_num("x-echo-body-gap-ms").unwrap_or(0)),
    );
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
    let grpc = is_grpc(&req);
    let health_check = grpc && reply.path == crate::grpc_health::CHECK_PATH;
    let grpc_status =
        header_num("x-echo-grpc-status").unwrap_or(if status == 200 { 0 } else { 14 });
    let request_body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    reply.body_bytes = request_body.len();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if health_check {
        let (status, message) = seen.health.answer(&reply.host, &request_body);
        return grpc_echo(cfg, message, status);
    }
    let body = serde_json::to_vec(&reply).unwrap_or_default();
    if let Ok(mut last) = seen.last.lock() {
        *last = Some(reply);
    }
    if grpc {
        return grpc_echo(cfg, request_body, grpc_status);
    }
    let length = http::HeaderValue::from(body.len());
    let mut resp = Response::new(paced(Bytes::from(body), pacing));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // A paced reply keeps the whole body's length, so one cut short is visible.
    resp.headers_mut()
        .insert(http::header::CONTENT_LENGTH, length);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    identify(cfg, resp.headers_mut());
    resp
}

/// `body` whole, or in `chunks` pieces (at most 64) with `gap` before each piece after the
/// first.
fn paced(body: Bytes, (chunks, gap): (u64, Duration)) -> EchoBody {
    let chunks = usize::try_from(chunks.clamp(1, 64)).unwrap_or(1);
    if chunks == 1 {
        return full(body);
    }
    let size = body.len().div_ceil(chunks).max(1);
    let pieces: Vec<Bytes> = body.chunks(size).map(Bytes::copy_from_slice).collect();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        for (i, piece) in pieces.into_iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            // The peer went away: nobody reads the rest.
            if tx.send(Ok(Frame::data(piece))).await.is_err() {
                return;
            }
        }
    });
    StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed()
}

/// An HTTP/1.1 `Upgrade` request (WebSocket or any other protocol) is accepted with 101, and a
/// CONNECT with 200; the upgraded connection then echoes raw bytes. There is no WebSocket
/// framing and no `Sec-WebSocket-Accept`: the proxies under test treat upgraded bytes as opaque.
fn upgrade(cfg: &EchoConfig, req: &mut Request<Incoming>) -> Option<Response<EchoBody>> {
    let connect = req.method() == http::Method::CONNECT;
    let protocol = match req.headers().get(http::header::UPGRADE) {
        Some(p) => Some(p.clone()),
        None if connect => None,
        None => return None,
    };
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut io = TokioIo::new(upgraded);
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match io.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if io.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut resp = Response::new(full(Bytes::new()));
    match protocol {
        Some(protocol) => {
            *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            resp.headers_mut().insert(http::header::UPGRADE, protocol);
            resp.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("upgrade"),
            );
        }
        None => *resp.status_mut() = StatusCode::OK,
    }
    identify(cfg, resp.headers_mut());
    Some(resp)
}

/// The echo's response body: whole JSON, or a gRPC message followed by trailers.
pub type EchoBody = BoxBody<Bytes, Infallible>;

fn full(b: Bytes) -> EchoBody {
    Full::new(b).boxed()
}

fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/grpc"))
}

/// Headers naming the instance, on every reply (gRPC replies have no JSON body).
fn identify(cfg: &EchoConfig, headers: &mut http::HeaderMap) {
    for (name, value) in [
        ("x-echo-workload", &cfg.workload),
        ("x-echo-version", &cfg.version),
        ("x-echo-replica", &cfg.replica),
    ] {
        if let Ok(v) = http::HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    }
}

/// Unary gRPC echo of any method: the request's length-prefixed message comes back as the
/// response message, then trailers with `grpc-status`; a failure is a trailers-only reply.
fn grpc_echo(cfg: &EchoConfig, message: Bytes, grpc_status: u64) -> Response<EchoBody> {
    if grpc_status != 0 {
        // Errors are trailers-only, as gRPC servers send them (and proxies can retry them).
        let mut resp = Response::new(full(Bytes::new()));
        let headers = resp.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/grpc"),
        );
        headers.insert("grpc-status", http::HeaderValue::from(grpc_status));
        identify(cfg, headers);
        return resp;
    }
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from(grpc_status));
    let frames = vec![
        Ok::<_, Infallible>(Frame::data(message)),
        Ok(Frame::trailers(trailers)),
    ];
    let mut resp = Response::new(StreamBody::new(tokio_stream::iter(frames)).boxed());
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    identify(cfg, resp.headers_mut());
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
    async fn grpc_unary_echo_with_trailers() {
        let cfg = EchoConfig {
            workload: "g".into(),
            ..Default::default()
        };
        let echo = start_http(cfg, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let client = Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http::<Full<Bytes>>();
        let message = Bytes::from_static(&[0, 0, 0, 0, 3, b'a', b'b', b'c']);
        let send = |status: Option<&str>| {
            let mut req = Request::post(format!("http://{}/echo.Echo/Say", echo.addr))
                .header("content-type", "application/grpc");
            if let Some(s) = status {
                req = req.header("x-echo-grpc-status", s);
            }
            client.request(req.body(Full::new(message.clone())).expect("request"))
        };
        let resp = send(None).await.expect("send");
        assert_eq!(resp.headers()["x-echo-workload"], "g");
        let collected = resp.into_body().collect().await.expect("body");
        let trailers = collected.trailers().cloned().unwrap_or_default();
        assert_eq!(
            trailers.get("grpc-status").map(|v| v.as_bytes()),
            Some(&b"0"[..])
        );
        assert_eq!(collected.to_bytes(), message);
        let failed = send(Some("5")).await.expect("send");
        assert_eq!(failed.headers()["grpc-status"], "5", "trailers-only");
        let failed = failed.into_body().collect().await.expect("body");
        assert!(failed.trailers().is_none() && failed.to_bytes().is_empty());
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
