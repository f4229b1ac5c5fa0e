//! Socket tests of the stream timers and of internal requests: a request body that stops
//! arriving gets 408 and a response that does not start gets 504 (flag `SI`), a slow but steady
//! upload is not idle, a route's `idle_timeout` replaces the manager's; after the response
//! headers a stalled body is cut short (HTTP/1.1 closes, HTTP/2 resets the stream) while a
//! steady one is not, and request body bytes keep a started response alive; `max_stream_duration` (connection manager and route, `grpc-timeout`)
//! answers 504/408 or gRPC DEADLINE_EXCEEDED (flag `DT`) and resets a response in progress; the
//! override headers change the timeout only for clients `internal_address_config` names.

mod accepted;
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use accepted::*;
use common::*;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn routes() -> rt::RouteConfiguration {
    let forward = |f: fn(&mut rt::RouteAction)| {
        let mut a = rt::RouteAction {
            cluster_specifier: Some(rt::route_action::ClusterSpecifier::Cluster("a".into())),
            timeout: Some(ms(0)),
            ..Default::default()
        };
        f(&mut a);
        rt::route::Action::Route(a)
    };
    route_config(
        "r",
        vec![vhost(
            "v",
            &["*"],
            vec![
                route(
                    prefix("/long"),
                    forward(|a| a.idle_timeout = Some(ms(1500))),
                ),
                route(prefix("/"), forward(|_| {})),
            ],
        )],
    )
}

/// Send `head` and then `chunks` of the body, one every `gap`; return the response head.
async fn exchange(addr: SocketAddr, head: &str, chunks: &[&[u8]], gap: Duration) -> String {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(head.as_bytes()).await?;
        for c in chunks {
            // Pacing the upload is what the test is about, not waiting for a condition.
            tokio::time::sleep(gap).await;
            s.write_all(c).await?;
        }
        let mut buf = vec![0u8; 4096];
        let n = s.read(&mut buf).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    tokio::time::timeout(WAIT, io)
        .await
        .expect("answered in time")
        .expect("io")
}

#[tokio::test]
async fn stream_idle_timeout_answers_408_or_504() {
    let a = echo_named("a").await;
    let idle = |m: &mut hcm::HttpConnectionManager| m.stream_idle_timeout = Some(ms(300));
    let (_ads, proxy) = run(
        vec![listener("main", routes(), idle)],
        vec![static_cluster("a", &[a.addr])],
    )
    .await;
    let addr = proxy.listener_addr("main").expect("bound");

    let stalled = "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 10\r\n\r\nabc";
    let started = Instant::now();
    let got = exchange(addr, stalled, &[], Duration::ZERO).await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");
    assert!(got.contains("x-plexus-error: SI: stream timeout"), "{got}");
    assert!(started.elapsed() >= Duration::from_millis(280));

    let waiting = "GET / HTTP/1.1\r\nhost: h\r\nx-echo-delay-ms: 1000\r\n\r\n";
    let got = exchange(addr, waiting, &[], Duration::ZERO).await;
    assert!(got.starts_with("HTTP/1.1 504"), "{got}");

    // Five chunks 150 ms apart: 750 ms in all, never 300 ms quiet.
    let steady = "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 10\r\n\r\n";
    let chunks: [&[u8]; 5] = [b"ab", b"cd", b"ef", b"gh", b"ij"];
    let got = exchange(addr, steady, &chunks, Duration::from_millis(150)).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");

    // The route's 1.5 s idle timeout replaces the manager's 300 ms.
    let long = "GET /long HTTP/1.1\r\nhost: h\r\nx-echo-delay-ms: 600\r\n\r\n";
    let got = exchange(addr, long, &[], Duration::ZERO).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
}

/// Send `head` and read until the proxy closes: (everything read, time until the close).
async fn read_to_close(addr: SocketAddr, head: &str) -> (String, Duration) {
    let started = Instant::now();
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(head.as_bytes()).await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf).into_owned())
    };
    let got = tokio::time::timeout(WAIT, io)
        .await
        .expect("closed in time")
        .expect("io");
    (got, started.elapsed())
}

/// The declared `content-length` and the body bytes that came with it.
fn body_lengths(resp: &str) -> (usize, usize) {
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((resp, ""));
    let declared = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_string)
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (declared, body.len())
}

/// GET over h2c: the status, then how the body ended (`Ok(len)` or the error).
async fn h2_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Result<usize, String>) {
    use http_body_util::{BodyExt, Empty};
    let io = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        )
        .await
        .expect("h2 handshake");
        tokio::spawn(conn);
        let mut req = http::Request::get(format!("http://h{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Empty::<bytes::Bytes>::new()).expect("request");
        let resp = send.send_request(req).await.expect("response headers");
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await;
        (
            status,
            body.map(|b| b.to_bytes().len())
                .map_err(|e| format!("{e:?}")),
        )
    };
    tokio::time::timeout(WAIT, io)
        .await
        .expect("answered in time")
}

async fn flag_count(admin: SocketAddr, flag: &str) -> u64 {
    let (_, text) = plexus_testkit::envoy::http_get(&format!("http://{admin}/stats/prometheus"))
        .await
        .expect("admin answers");
    let want = format!("plexus_response_flags_total{{flag=\"{flag}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(want.as_str()))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

const STALL: &str = "x-echo-body-chunks: 2\r\nx-echo-body-gap-ms: 2000\r\n";

#[tokio::test]
async fn stream_idle_timeout_resets_a_stalled_response_body() {
    let a = echo_named("a").await;
    let idle = |m: &mut hcm::HttpConnectionManager| m.stream_idle_timeout = Some(ms(300));
    let (_ads, proxy) = run(
        vec![listener("main", routes(), idle)],
        vec![static_cluster("a", &[a.addr])],
    )
    .await;
    let addr = proxy.listener_addr("main").expect("bound");

    let head = format!("GET / HTTP/1.1\r\nhost: h\r\n{STALL}\r\n");
    let (got, after) = read_to_close(addr, &head).await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    let (declared, received) = body_lengths(&got);
    assert!(received < declared, "cut short: {received} of {declared}");
    assert!(
        after >= Duration::from_millis(280) && after < Duration::from_millis(1800),
        "closed after {after:?}"
    );
    assert_eq!(flag_count(proxy.admin, "SI").await, 1);

    let stall = [("x-echo-body-chunks", "2"), ("x-echo-body-gap-ms", "2000")];
    let (status, body) = h2_get(addr, "/", &stall).await;
    assert_eq!(status, 200);
    let err = body.expect_err("the stream is reset");
    assert!(err.contains("INTERNAL_ERROR"), "{err}");
    assert_eq!(flag_count(proxy.admin, "SI").await, 2);

    // Five pieces 150 ms apart: never 300 ms quiet.
    let steady = "GET / HTTP/1.1\r\nhost: h\r\nconnection: close\r\nx-echo-body-chunks: 5\r\nx-echo-body-gap-ms: 150\r\n\r\n";
    let (got, _) = read_to_close(addr, steady).await;
    let (declared, received) = body_lengths(&got);
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert_eq!(received, declared, "{got}");
}

/// An upstream that answers the headers of a 5-byte response at once, then sends the body only
/// once it has read the 10-byte request body.
async fn answers_before_the_upload() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let Ok((mut s, _)) = l.accept().await else {
            return;
        };
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        let head_end = loop {
            let Ok(n) = s.read(&mut buf).await else {
                return;
            };
            if n == 0 {
                return;
            }
            seen.extend_from_slice(&buf[..n]);
            if let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n";
        if s.write_all(head).await.is_err() {
            return;
        }
        let mut body = seen.len() - head_end;
        while body < 10 {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => body += n,
            }
        }
        let _ = s.write_all(b"hello").await;
    });
    addr
}

#[tokio::test]
async fn request_body_bytes_keep_a_started_response_alive() {
    let upstream = answers_before_the_upload().await;
    let idle = |m: &mut hcm::HttpConnectionManager| m.stream_idle_timeout = Some(ms(300));
    let (_ads, proxy) = run(
        vec![listener("main", routes(), idle)],
        vec![static_cluster("a", &[upstream])],
    )
    .await;
    let addr = proxy.listener_addr("main").expect("bound");
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let head = "POST / HTTP/1.1\r\nhost: h\r\nconnection: close\r\ncontent-length: 10\r\n\r\n";
        s.write_all(head.as_bytes()).await?;
        // The response headers come first; then five pieces 150 ms apart: 750 ms with no
        // response bytes, never 300 ms without request bytes.
        let mut buf = vec![0u8; 1024];
        let n = s.read(&mut buf).await?;
        let first = String::from_utf8_lossy(&buf[..n]).into_owned();
        for piece in [b"ab", b"cd", b"ef", b"gh", b"ij"] {
            tokio::time::sleep(Duration::from_millis(150)).await;
            s.write_all(piece).await?;
        }
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await?;
        Ok::<_, std::io::Error>(first + &String::from_utf8_lossy(&rest))
    };
    let got = tokio::time::timeout(WAIT, io)
        .await
        .expect("answered in time")
        .expect("io");
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(got.ends_with("hello"), "{got}");
}

#[tokio::test]
async fn max_stream_duration_answers_or_resets() {
    use rt::route_action::MaxStreamDuration;
    let a = echo_named("a").await;
    let forward = |path: &str, limit: Option<MaxStreamDuration>| {
        // gRPC needs HTTP/2 upstream for its trailers.
        let cluster = if path == "/grpc" { "a2" } else { "a" };
        let action = rt::RouteAction {
            cluster_specifier: Some(rt::route_action::ClusterSpecifier::Cluster(cluster.into())),
            timeout: Some(ms(200)),
            max_stream_duration: limit,
            ..Default::default()
        };
        route(prefix(path), rt::route::Action::Route(action))
    };
    let msd = |max: Option<i32>, header_max: Option<i32>| MaxStreamDuration {
        max_stream_duration: max.map(ms),
        grpc_timeout_header_max: header_max.map(ms),
        grpc_timeout_header_offset: None,
    };
    let rc = route_config(
        "r",
        vec![vhost(
            "v",
            &["*"],
            vec![
                forward("/off", Some(msd(Some(0), None))),
                forward("/route", Some(msd(Some(300), None))),
                forward("/grpc", Some(msd(None, Some(0)))),
                forward("/plain", None),
            ],
        )],
    );
    let limited = |m: &mut hcm::HttpConnectionManager| {
        m.common_http_protocol_options = Some(core::HttpProtocolOptions {
            max_stream_duration: Some(ms(600)),
            ..Default::default()
        });
    };
    let (_ads, proxy) = run(
        vec![listener("main", rc, limited)],
        vec![
            static_cluster("a", &[a.addr]),
            h2_cluster(static_cluster("a2", &[a.addr])),
        ],
    )
    .await;
    let addr = proxy.listener_addr("main").expect("bound");
    let get = |path: &str, extra: &str| format!("GET {path} HTTP/1.1\r\nhost: h\r\n{extra}\r\n");

    // The route's own limit; its `timeout` (200 ms) no longer applies, as in Envoy.
    let started = Instant::now();
    let got = exchange(
        addr,
        &get("/route", "x-echo-delay-ms: 1000\r\n"),
        &[],
        Duration::ZERO,
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 504"), "{got}");
    assert!(
        got.contains("x-plexus-error: DT: downstream duration timeout"),
        "{got}"
    );
    assert!(started.elapsed() >= Duration::from_millis(280));
    // `0s` on the route lifts the manager's 600 ms.
    let got = exchange(
        addr,
        &get("/off", "x-echo-delay-ms: 800\r\n"),
        &[],
        Duration::ZERO,
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    // Without `max_stream_duration` the route timeout stays in charge.
    let got = exchange(
        addr,
        &get("/plain", "x-echo-delay-ms: 400\r\n"),
        &[],
        Duration::ZERO,
    )
    .await;
    assert!(got.contains("x-plexus-error: UT"), "{got}");
    // ... also over the response body: cut short at 200 ms.
    let (got, after) = read_to_close(addr, &get("/plain", STALL)).await;
    let (declared, received) = body_lengths(&got);
    assert!(
        got.starts_with("HTTP/1.1 200") && received < declared,
        "{got}"
    );
    assert!(
        after < Duration::from_millis(1800),
        "closed after {after:?}"
    );
    // The manager's limit on a route that only sets `grpc_timeout_header_max`.
    let got = exchange(
        addr,
        &get("/grpc", "x-echo-delay-ms: 1000\r\n"),
        &[],
        Duration::ZERO,
    )
    .await;
    assert!(got.starts_with("HTTP/1.1 504"), "{got}");
    // A request body still arriving: 408.
    let partial = "POST /route HTTP/1.1\r\nhost: h\r\ncontent-length: 10\r\n\r\nabc";
    let got = exchange(addr, partial, &[], Duration::ZERO).await;
    assert!(got.starts_with("HTTP/1.1 408"), "{got}");

    // After the headers the response is cut short.
    let (got, after) = read_to_close(addr, &get("/route", STALL)).await;
    let (declared, received) = body_lengths(&got);
    assert!(
        got.starts_with("HTTP/1.1 200") && received < declared,
        "{got}"
    );
    assert!(
        after < Duration::from_millis(1800),
        "closed after {after:?}"
    );

    // gRPC: `grpc-timeout` sets the limit and the reply is DEADLINE_EXCEEDED.
    let started = Instant::now();
    let got = grpc_request(
        addr,
        "h",
        "/grpc",
        &[("grpc-timeout", "150m"), ("x-echo-delay-ms", "1000")],
    )
    .await
    .expect("grpc call");
    assert_eq!(got.grpc_status().as_deref(), Some("4"));
    assert!(
        started.elapsed() < Duration::from_millis(550),
        "the header's 150 ms, not 600 ms"
    );
    let got = grpc_request(addr, "h", "/grpc", &[("grpc-timeout", "5S")])
        .await
        .expect("grpc call");
    assert_eq!(got.grpc_status().as_deref(), Some("0"));
    let upstream = a.last.lock().expect("lock").clone().expect("seen");
    assert_eq!(
        upstream.headers.get("grpc-timeout").map(String::as_str),
        Some("5000m")
    );
    assert_eq!(flag_count(proxy.admin, "DT").await, 5);
    assert_eq!(flag_count(proxy.admin, "UT").await, 2);
}

#[tokio::test]
async fn override_headers_apply_to_internal_clients_only() {
    let a = echo_named("a").await;
    let internal = |m: &mut hcm::HttpConnectionManager| {
        m.use_remote_address = Some(BoolValue { value: true });
        m.internal_address_config = Some(hcm::http_connection_manager::InternalAddressConfig {
            unix_sockets: false,
            cidr_ranges: vec![core::CidrRange {
                address_prefix: "127.0.0.1".into(),
                prefix_len: Some(UInt32Value { value: 32 }),
            }],
        });
    };
    let (_ads, proxy) = run(
        vec![
            listener("internal", routes(), internal),
            listener("external", routes(), |_| {}),
        ],
        vec![static_cluster("a", &[a.addr])],
    )
    .await;
    let headers = [
        ("x-echo-delay-ms", "500"),
        ("x-envoy-upstream-rq-timeout-ms", "100"),
    ];
    let inside = proxy.listener_addr("internal").expect("bound");
    let got = request(inside, false, "GET", "h", "/", &headers)
        .await
        .expect("request");
    assert_eq!(got.status, 504, "the header's 100 ms timeout applies");
    assert_eq!(
        got.header("x-plexus-error").as_deref().map(|h| &h[..2]),
        Some("UT")
    );
    let got = request(
        inside,
        false,
        "GET",
        "h",
        "/",
        &[("x-forwarded-for", "10.1.1.1")],
    )
    .await
    .expect("request");
    let json = got.json();
    assert_eq!(
        json["headers"].get("x-envoy-internal"),
        None,
        "a forwarded request has two hops: external"
    );
    let got = request(inside, false, "GET", "h", "/", &[])
        .await
        .expect("request");
    assert_eq!(got.json()["headers"]["x-envoy-internal"], "true");

    let outside = proxy.listener_addr("external").expect("bound");
    let got = request(outside, false, "GET", "h", "/", &headers)
        .await
        .expect("request");
    assert_eq!(got.status, 200, "ignored for an external client");
    assert_eq!(
        got.json()["headers"].get("x-envoy-upstream-rq-timeout-ms"),
        None
    );
}
