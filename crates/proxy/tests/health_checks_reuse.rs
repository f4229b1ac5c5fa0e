//! Socket tests of active health checks: one connection (HTTP/1.1, HTTP/2, TCP) reused
//! across checks (Envoy's default) or one per check with `reuse_connection: false`, HTTP/2
//! checks, and gRPC checks (`grpc.health.v1`, `service_name`, `authority`) whose host leaves
//! and rejoins rotation as the echo's serving status flips, shown in `/clusters`.

mod accepted;
mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use accepted::*;
use common::*;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::core::v3::health_check as hc;
use envoy_types::pb::envoy::r#type::v3::CodecClientType;
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};
use plexus_testkit::eventually;
use plexus_testkit::grpc_health::{NOT_SERVING, SERVING};

fn check(checker: hc::HealthChecker, reuse: Option<bool>) -> core::HealthCheck {
    core::HealthCheck {
        timeout: Some(ms(500)),
        interval: Some(ms(20)),
        no_traffic_interval: Some(ms(20)),
        unhealthy_threshold: Some(UInt32Value { value: 2 }),
        healthy_threshold: Some(UInt32Value { value: 1 }),
        reuse_connection: reuse.map(|value| BoolValue { value }),
        health_checker: Some(checker),
        ..Default::default()
    }
}

fn routes() -> envoy_types::pb::envoy::config::route::v3::RouteConfiguration {
    route_config(
        "r",
        vec![vhost(
            "v",
            &["*"],
            vec![route(prefix("/"), to_cluster("grpc"))],
        )],
    )
}

#[tokio::test]
async fn http_checks_reuse_one_connection_unless_told_not_to() {
    let (kept, fresh, h2) = (
        echo_named("kept").await,
        echo_named("fresh").await,
        echo_named("h2").await,
    );
    let http = |http2: bool| {
        hc::HealthChecker::HttpHealthCheck(hc::HttpHealthCheck {
            path: "/healthz".into(),
            host: "hc.test".into(),
            codec_client_type: if http2 {
                CodecClientType::Http2 as i32
            } else {
                CodecClientType::Http1 as i32
            },
            ..Default::default()
        })
    };
    let mut a = static_cluster("kept", &[kept.addr]);
    a.health_checks = vec![check(http(false), None)];
    let mut b = static_cluster("fresh", &[fresh.addr]);
    b.health_checks = vec![check(http(false), Some(false))];
    let mut c = static_cluster("h2", &[h2.addr]);
    c.health_checks = vec![check(http(true), Some(true))];
    let (_ads, proxy) = run(vec![listener("main", routes(), |_| {})], vec![a, b, c]).await;
    for (name, e) in [("kept", &kept), ("fresh", &fresh), ("h2", &h2)] {
        wait_flags(proxy.admin, name, e.addr, "").await;
        eventually(WAIT, &format!("{name}: five checks"), || async {
            (e.requests.load(Ordering::SeqCst) >= 5).then_some(())
        })
        .await
        .expect("checks keep coming");
    }
    assert_eq!(kept.connections.load(Ordering::SeqCst), 1, "reused");
    assert_eq!(
        h2.connections.load(Ordering::SeqCst),
        1,
        "one HTTP/2 connection"
    );
    assert!(
        fresh.connections.load(Ordering::SeqCst) >= 5,
        "one per check"
    );
    let last = h2.last.lock().expect("lock").clone().expect("a check");
    assert_eq!(
        (
            last.protocol.as_str(),
            last.host.as_str(),
            last.path.as_str()
        ),
        ("HTTP/2.0", "hc.test", "/healthz")
    );
    assert_eq!(
        last.headers.get("user-agent").map(String::as_str),
        Some("Envoy/HC")
    );
    let last = kept.last.lock().expect("lock").clone().expect("a check");
    assert_eq!(
        (last.protocol.as_str(), last.host.as_str()),
        ("HTTP/1.1", "hc.test")
    );
}

#[tokio::test]
async fn grpc_checks_follow_the_serving_status() {
    let (one, two) = (echo_named("one").await, echo_named("two").await);
    one.set_health("reviews", SERVING);
    two.set_health("reviews", SERVING);
    let grpc = hc::HealthChecker::GrpcHealthCheck(hc::GrpcHealthCheck {
        service_name: "reviews".into(),
        authority: "reviews.default".into(),
        ..Default::default()
    });
    let mut cl = h2_cluster(static_cluster("grpc", &[one.addr, two.addr]));
    cl.health_checks = vec![check(grpc, None)];
    let mut unknown = static_cluster("unknown", &[one.addr]);
    unknown.health_checks = vec![check(
        hc::HealthChecker::GrpcHealthCheck(hc::GrpcHealthCheck {
            service_name: "ratings".into(),
            ..Default::default()
        }),
        None,
    )];
    let (_ads, proxy) = run(vec![listener("main", routes(), |_| {})], vec![cl, unknown]).await;
    let addr = proxy.listener_addr("main").expect("bound");
    wait_flags(proxy.admin, "grpc", one.addr, "").await;
    wait_flags(proxy.admin, "grpc", two.addr, "").await;
    // NOT_FOUND for a service the server does not know.
    wait_flags(proxy.admin, "unknown", one.addr, "/failed_active_hc").await;
    let asked = two.health.last_check.lock().expect("lock").clone();
    assert_eq!(
        asked,
        Some(("reviews.default".to_string(), "reviews".to_string()))
    );

    two.set_health("reviews", NOT_SERVING);
    wait_flags(proxy.admin, "grpc", two.addr, "/failed_active_hc").await;
    for _ in 0..4 {
        let got = request(addr, false, "GET", "h", "/", &[])
            .await
            .expect("request");
        assert_eq!(
            got.json()["workload"],
            "one",
            "a failed host gets no traffic"
        );
    }
    two.set_health("reviews", SERVING);
    wait_flags(proxy.admin, "grpc", two.addr, "").await;
    // `two` only ever saw health checks, all on one HTTP/2 connection.
    assert_eq!(
        two.connections.load(Ordering::SeqCst),
        1,
        "reused across checks"
    );
}

/// A TCP server that counts connections and answers `PING` with `PONG`, keeping them open.
async fn pong_server() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(b"PONG").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, count)
}

#[tokio::test]
async fn tcp_checks_reuse_their_connection() {
    let ((kept, kept_count), (fresh, fresh_count)) = (pong_server().await, pong_server().await);
    let text = |t: &str| hc::Payload {
        payload: Some(hc::payload::Payload::Text(t.into())),
    };
    let tcp = hc::HealthChecker::TcpHealthCheck(hc::TcpHealthCheck {
        send: Some(text("50494E47")),
        receive: vec![text("504F4E47")],
        ..Default::default()
    });
    let mut a = static_cluster("kept", &[kept]);
    a.health_checks = vec![check(tcp.clone(), None)];
    let mut b = static_cluster("fresh", &[fresh]);
    b.health_checks = vec![check(tcp, Some(false))];
    let (_ads, proxy) = run(vec![listener("main", routes(), |_| {})], vec![a, b]).await;
    wait_flags(proxy.admin, "kept", kept, "").await;
    wait_flags(proxy.admin, "fresh", fresh, "").await;
    eventually(WAIT, "five fresh connections", || async {
        (fresh_count.load(Ordering::SeqCst) >= 5).then_some(())
    })
    .await
    .expect("one connection per check");
    assert_eq!(kept_count.load(Ordering::SeqCst), 1, "reused");
    assert_eq!(
        health_flags(proxy.admin, "kept", kept).await.as_deref(),
        Some("")
    );
}
