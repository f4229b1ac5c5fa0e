//! One active health check of one host (Envoy's TCP, HTTP and gRPC checkers), on the host's
//! kept connection when `reuse_connection` (Envoy's default) and it is still open, else on a
//! new one. As in Envoy, the connection is closed after a check when reuse is off, after a
//! timeout or transport error, and (HTTP/1.1) when the response says `connection: close`; a
//! TCP connection found closed by the host between checks counts as a failed check.
//!
//! HTTP checks send `GET path` with `host` (default: the cluster name), `user-agent: Envoy/HC`
//! and the configured headers, over HTTP/1.1 or HTTP/2 (`codec_client_type`); a status outside
//! `expected_statuses` fails the host at once. gRPC checks call
//! `grpc.health.v1.Health/Check` over HTTP/2 with `service_name` and `authority`; anything but
//! grpc-status 0 with `SERVING` fails the host at once, transport errors count towards
//! `unhealthy_threshold`.
//!
//! On a cluster with a TLS `transport_socket` every check runs over TLS with the cluster's
//! context (SNI, CA and SAN checks, client certificate), offering only the context's own
//! `alpn_protocols`, as Envoy's health checker does; a failed handshake is a transport error.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, Uri, Version};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::health::{CheckKind, GrpcCheck, HealthCheck, HttpCheck, TcpCheck};
use crate::health::Outcome;
use crate::tls::Conn;
use crate::tls::UpstreamTls;
use crate::tls::stream::{Dial, dial};

/// Bytes of a health check response kept while looking for payloads or the gRPC message.
const MAX_RESPONSE: usize = 64 * 1024;

/// A host's connection kept between checks.
pub enum Session {
    Tcp(Conn),
    Http1(http1::SendRequest<Full<Bytes>>),
    Http2(http2::SendRequest<Full<Bytes>>),
}

/// One check of `addr`, bounded by the configured timeout; returns the connection to keep.
/// `tls` is the cluster's upstream TLS context, if it has one.
pub async fn check(
    cfg: &HealthCheck,
    addr: SocketAddr,
    cluster: &str,
    tls: Option<&UpstreamTls>,
    session: Option<Session>,
) -> (Outcome, Option<Session>) {
    let to = Dial {
        connect_timeout: cfg.timeout,
        keepalive: None,
        tls,
        http: false,
    };
    let run = async {
        match &cfg.kind {
            CheckKind::Tcp(t) => tcp_check(t, addr, &to, session).await,
            CheckKind::Http(h) => {
                let req = http_request(h, cluster, addr);
                let (outcome, session) = exchange(addr, &to, h.http2, session, req).await;
                (
                    outcome.map_or(Outcome::Fail, |r| http_outcome(h, &r)),
                    session,
                )
            }
            CheckKind::Grpc(g) => {
                let req = grpc_request(g, cluster, addr);
                let (outcome, session) = exchange(addr, &to, true, session, req).await;
                let outcome = match outcome {
                    Some(resp) => grpc_outcome(resp).await,
                    None => Outcome::Fail,
                };
                (outcome, session)
            }
        }
    };
    match tokio::time::timeout(cfg.timeout, run).await {
        Ok((outcome, session)) => (outcome, session.filter(|_| cfg.reuse_connection)),
        Err(_) => (Outcome::Fail, None),
    }
}

/// An HTTP/2 request target with `authority`; a name that is not a valid authority (cluster
/// names such as `outbound|80||a.b`) gives way to the host's address.
fn h2_uri(authority: &str, path: &str, addr: SocketAddr) -> Uri {
    format!("http://{authority}{path}")
        .parse()
        .or_else(|_| format!("http://{addr}{path}").parse())
        .unwrap_or_else(|_| Uri::from_static("/"))
}

fn http_request(h: &HttpCheck, cluster: &str, addr: SocketAddr) -> Request<Full<Bytes>> {
    let host = if h.host.is_empty() { cluster } else { &h.host };
    let mut req = Request::new(Full::new(Bytes::new()));
    *req.method_mut() = Method::GET;
    if h.http2 {
        *req.uri_mut() = h2_uri(host, &h.path, addr);
        *req.version_mut() = Version::HTTP_2;
    } else {
        *req.uri_mut() = h.path.parse().unwrap_or_else(|_| Uri::from_static("/"));
        if let Ok(v) = HeaderValue::from_str(host) {
            req.headers_mut().insert(http::header::HOST, v);
        }
    }
    let headers = req.headers_mut();
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static("Envoy/HC"),
    );
    for (name, value) in &h.headers {
        headers.append(name.clone(), value.clone());
    }
    req
}

fn grpc_request(g: &GrpcCheck, cluster: &str, addr: SocketAddr) -> Request<Full<Bytes>> {
    let authority = if g.authority.is_empty() {
        cluster
    } else {
        &g.authority
    };
    let mut msg = Vec::new();
    if !g.service_name.is_empty() {
        // HealthCheckRequest { string service = 1; }
        msg.push(0x0a);
        let mut n = g.service_name.len();
        while n >= 0x80 {
            msg.push(u8::try_from(n & 0x7f).unwrap_or(0) | 0x80);
            n >>= 7;
        }
        msg.push(u8::try_from(n).unwrap_or(0));
        msg.extend_from_slice(g.service_name.as_bytes());
    }
    let mut framed = vec![0u8];
    framed.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(0).to_be_bytes());
    framed.extend_from_slice(&msg);
    let mut req = Request::new(Full::new(Bytes::from(framed)));
    *req.method_mut() = Method::POST;
    *req.uri_mut() = h2_uri(authority, "/grpc.health.v1.Health/Check", addr);
    *req.version_mut() = Version::HTTP_2;
    let headers = req.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(http::header::TE, HeaderValue::from_static("trailers"));
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static("Envoy/HC"),
    );
    for (name, value) in &g.headers {
        headers.append(name.clone(), value.clone());
    }
    req
}

/// Send `req` on the kept connection if it is still usable, else on a new one. `None`: the
/// connection failed (a transport error, counted towards `unhealthy_threshold`).
async fn exchange(
    addr: SocketAddr,
    to: &Dial<'_>,
    h2: bool,
    session: Option<Session>,
    req: Request<Full<Bytes>>,
) -> (Option<Response<Incoming>>, Option<Session>) {
    let reused = match session {
        Some(Session::Http1(mut s)) if !h2 => s.ready().await.ok().map(|()| Session::Http1(s)),
        Some(Session::Http2(mut s)) if h2 => s.ready().await.ok().map(|()| Session::Http2(s)),
        _ => None,
    };
    let session = match reused {
        Some(s) => s,
        None => match connect(addr, to, h2).await {
            Some(s) => s,
            None => return (None, None),
        },
    };
    match session {
        Session::Http1(mut s) => match s.send_request(req).await {
            Ok(resp) => {
                let close = resp
                    .headers()
                    .get(http::header::CONNECTION)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"));
                let keep = (!close).then_some(Session::Http1(s));
                (Some(resp), keep)
            }
            Err(_) => (None, None),
        },
        Session::Http2(mut s) => match s.send_request(req).await {
            Ok(resp) => (Some(resp), Some(Session::Http2(s))),
            Err(_) => (None, None),
        },
        Session::Tcp(_) => (None, None),
    }
}

async fn connect(addr: SocketAddr, to: &Dial<'_>, h2: bool) -> Option<Session> {
    let io = TokioIo::new(dial(addr, to).await.ok()?);
    if h2 {
        let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await.ok()?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Some(Session::Http2(sender))
    } else {
        let (sender, conn) = http1::handshake(io).await.ok()?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Some(Session::Http1(sender))
    }
}

/// The status decides (Envoy's rule: an unexpected status fails the host at once).
fn http_outcome(h: &HttpCheck, resp: &Response<Incoming>) -> Outcome {
    let s = resp.status().as_u16();
    if h.expected.iter().any(|&(lo, hi)| (lo..hi).contains(&s)) {
        Outcome::Pass
    } else {
        Outcome::FailNow
    }
}

async fn grpc_outcome(resp: Response<Incoming>) -> Outcome {
    if resp.status() != http::StatusCode::OK {
        return Outcome::FailNow;
    }
    let header_status = resp.headers().get("grpc-status").cloned();
    let Ok(collected) = Limited::new(resp.into_body(), MAX_RESPONSE).collect().await else {
        return Outcome::Fail;
    };
    let status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status").cloned())
        .or(header_status);
    if status.as_ref().is_none_or(|s| s.as_bytes() != b"0") {
        return Outcome::FailNow;
    }
    // HealthCheckResponse { ServingStatus status = 1; } in one frame; SERVING is 1.
    let body = collected.to_bytes();
    match body.get(5..) {
        Some([0x08, 1]) => Outcome::Pass,
        _ => Outcome::FailNow,
    }
}

async fn read_more(stream: &mut Conn, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// Whether a kept connection was closed by the host while idle: the socket reads end of
/// stream. Peeked, so bytes a TLS session has pending stay where they are.
fn closed_while_idle(stream: &Conn) -> bool {
    let mut probe = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    matches!(socket2::SockRef::from(stream.tcp()).peek(&mut probe), Ok(0))
}

async fn tcp_check(
    t: &TcpCheck,
    addr: SocketAddr,
    to: &Dial<'_>,
    session: Option<Session>,
) -> (Outcome, Option<Session>) {
    let mut stream = match session {
        Some(Session::Tcp(s)) if closed_while_idle(&s) => return (Outcome::Fail, None),
        Some(Session::Tcp(s)) => s,
        _ => match dial(addr, to).await {
            Ok(s) => s,
            Err(_) => return (Outcome::Fail, None),
        },
    };
    if !t.send.is_empty() && stream.write_all(&t.send).await.is_err() {
        return (Outcome::Fail, None);
    }
    let mut buf = Vec::new();
    while !payloads_found(&buf, &t.receive) {
        if buf.len() > MAX_RESPONSE || !read_more(&mut stream, &mut buf).await {
            return (Outcome::Fail, None);
        }
    }
    (Outcome::Pass, Some(Session::Tcp(stream)))
}

/// Whether every block appears in `buf`, each after the previous one.
fn payloads_found(buf: &[u8], blocks: &[Vec<u8>]) -> bool {
    let mut rest = buf;
    for b in blocks.iter().filter(|b| !b.is_empty()) {
        match rest.windows(b.len()).position(|w| w == b.as_slice()) {
            Some(i) => rest = &rest[i + b.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Body as _;

    #[test]
    fn payload_order_matters() {
        let blocks = vec![b"AB".to_vec(), b"CD".to_vec()];
        assert!(payloads_found(b"xxABxxCD", &blocks));
        assert!(!payloads_found(b"CDxxAB", &blocks));
        assert!(payloads_found(b"", &[]));
    }

    #[test]
    fn grpc_request_carries_service_and_authority() {
        let g = GrpcCheck {
            service_name: "reviews".into(),
            authority: String::new(),
            headers: vec![],
        };
        let addr: SocketAddr = "127.0.0.1:9080".parse().unwrap();
        let req = grpc_request(&g, "outbound|9080||reviews", addr);
        assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
        assert_eq!(
            req.uri().authority().map(|a| a.as_str()),
            Some("127.0.0.1:9080"),
            "a cluster name that is no valid authority gives way to the address"
        );
        assert_eq!(req.body().size_hint().exact(), Some(5 + 9));
        let g = GrpcCheck {
            authority: "reviews.default".into(),
            ..g
        };
        let req = grpc_request(&g, "c", addr);
        assert_eq!(
            req.uri().authority().map(|a| a.as_str()),
            Some("reviews.default")
        );
    }
}
