//! Socket tests of active health checks: an HTTP upstream failing its health path leaves and
//! rejoins rotation per the thresholds, `/clusters` shows `/failed_active_hc`, and TCP checks
//! (connect-only and send/receive) fail a closed port or a wrong reply.

mod accepted;
mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use accepted::*;
use common::*;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::core::v3::health_check as hc;
use envoy_types::pb::envoy::r#type::v3::Int64Range;
use envoy_types::pb::google::protobuf::UInt32Value;
use plexus_testkit::eventually;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(5);

/// An HTTP/1.1 upstream answering every path with its name, and `/hc` with 200 or (while
/// `failing`) 503; it counts health requests and keeps the last one's head.
struct Upstream {
    addr: SocketAddr,
    failing: Arc<AtomicBool>,
    checks: Arc<AtomicUsize>,
    last_check: Arc<Mutex<String>>,
}

async fn upstream(name: &'static str) -> Upstream {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let up = Upstream {
        addr: l.local_addr().expect("addr"),
        failing: Arc::default(),
        checks: Arc::default(),
        last_check: Arc::default(),
    };
    let (failing, checks, last) = (up.failing.clone(), up.checks.clone(), up.last_check.clone());
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let (failing, checks, last) = (failing.clone(), checks.clone(), last.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16384 {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let status = if head.starts_with("GET /hc ") {
                    checks.fetch_add(1, Ordering::SeqCst);
                    *last.lock().expect("lock") = head.clone();
                    if failing.load(Ordering::SeqCst) {
                        503
                    } else {
                        200
                    }
                } else {
                    200
                };
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{name}",
                    name.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    up
}

fn check(checker: hc::HealthChecker, unhealthy: u32, healthy: u32) -> core::HealthCheck {
    core::HealthCheck {
        timeout: Some(ms(200)),
        interval: Some(ms(20)),
        no_traffic_interval: Some(ms(20)),
        unhealthy_threshold: Some(UInt32Value { value: unhealthy }),
        healthy_threshold: Some(UInt32Value { value: healthy }),
        health_checker: Some(checker),
        ..Default::default()
    }
}

async fn workloads(addr: SocketAddr, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..n {
        let got = request(addr, false, "GET", "h", "/", &[])
            .await
            .expect("request");
        out.push(String::from_utf8_lossy(&got.body).into_owned());
    }
    out
}

#[tokio::test]
async fn http_health_check_takes_failing_host_out_then_back() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let http = hc::HttpHealthCheck {
        path: "/hc".into(),
        host: "hc.example".into(),
        expected_statuses: vec![Int64Range {
            start: 200,
            end: 300,
        }],
        request_headers_to_add: vec![core::HeaderValueOption {
            header: Some(core::HeaderValue {
                key: "x-probe".into(),
                value: "plexus".into(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let mut cl = static_cluster("web", &[a.addr, b.addr]);
    cl.health_checks = vec![check(hc::HealthChecker::HttpHealthCheck(http), 2, 3)];
    let rc = route_config(
        "r",
        vec![vhost(
            "v",
            &["*"],
            vec![route(prefix("/"), to_cluster("web"))],
        )],
    );
    let (_ads, proxy) = run(vec![listener("main", rc, |_| {})], vec![cl]).await;
    let addr = proxy.listener_addr("main").expect("bound");
    wait_flags(proxy.admin, "web", a.addr, "").await;
    wait_flags(proxy.admin, "web", b.addr, "").await;
    let head = a.last_check.lock().expect("lock").to_ascii_lowercase();
    assert!(head.contains("host: hc.example"), "{head}");
    assert!(head.contains("x-probe: plexus"), "{head}");
    let seen = workloads(addr, 6).await;
    assert!(
        seen.contains(&"a".into()) && seen.contains(&"b".into()),
        "{seen:?}"
    );

    a.failing.store(true, Ordering::SeqCst);
    let failed_at = Instant::now();
    wait_flags(proxy.admin, "web", a.addr, "/failed_active_hc").await;
    // A 503 fails the host at once; allow interval × unhealthy_threshold plus scheduling slack.
    assert!(
        failed_at.elapsed() < Duration::from_millis(40 + 1000),
        "{:?}",
        failed_at.elapsed()
    );
    assert_eq!(
        workloads(addr, 6).await,
        vec!["b"; 6],
        "a failed host gets no traffic"
    );

    let checks_before = a.checks.load(Ordering::SeqCst);
    a.failing.store(false, Ordering::SeqCst);
    wait_flags(proxy.admin, "web", a.addr, "").await;
    let passes = a.checks.load(Ordering::SeqCst) - checks_before;
    assert!(
        passes >= 3,
        "healthy after {passes} passing checks, threshold is 3"
    );
    eventually(WAIT, "a back in rotation", || async {
        workloads(addr, 4).await.contains(&"a".into()).then_some(())
    })
    .await
    .expect("a serves again");
}

/// A TCP server that answers every read with `reply`.
async fn replier(reply: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 256];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn tcp_health_checks_fail_closed_ports_and_wrong_replies() {
    let live = replier(b"xxPONGxx").await;
    let wrong = replier(b"NOPE").await;
    let closed_port = plexus_testkit::ClosedPort::new().expect("closed port");
    let closed = closed_port.addr;
    let mut connect = static_cluster("connect", &[live, closed]);
    connect.health_checks = vec![check(
        hc::HealthChecker::TcpHealthCheck(Default::default()),
        1,
        1,
    )];
    let text = |t: &str| hc::Payload {
        payload: Some(hc::payload::Payload::Text(t.into())),
    };
    let mut payload = static_cluster("payload", &[live, wrong]);
    payload.health_checks = vec![check(
        hc::HealthChecker::TcpHealthCheck(hc::TcpHealthCheck {
            send: Some(text("50494E47")),
            receive: vec![text("504F4E47")],
            ..Default::default()
        }),
        1,
        1,
    )];
    let rc = route_config(
        "r",
        vec![vhost(
            "v",
            &["*"],
            vec![route(prefix("/"), to_cluster("connect"))],
        )],
    );
    let (_ads, proxy) = run(vec![listener("main", rc, |_| {})], vec![connect, payload]).await;
    wait_flags(proxy.admin, "connect", live, "").await;
    wait_flags(proxy.admin, "connect", closed, "/failed_active_hc").await;
    wait_flags(proxy.admin, "payload", live, "").await;
    wait_flags(proxy.admin, "payload", wrong, "/failed_active_hc").await;
}
