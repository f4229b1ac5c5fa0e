//! Socket tests of the stream idle timeout and of internal requests: a request body that
//! stops arriving gets 408 and a response that does not start gets 504 (flag `SI`), a slow but
//! steady upload is not idle, a route's `idle_timeout` replaces the manager's; the override
//! headers change the timeout only for clients `internal_address_config` names.

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
