//! Socket tests of the stream timers on an upgraded (WebSocket) stream: once the tunnel is up,
//! no bytes either way for the route's `idle_timeout` (else the manager's
//! `stream_idle_timeout`) close both the client's and the upstream's connection and count flag
//! `SI`; traffic more often than that keeps the tunnel open.

mod accepted;
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use accepted::*;
use common::*;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// `/route-idle` has a 300 ms `idle_timeout`; `/` keeps the manager's.
fn routes() -> rt::RouteConfiguration {
    let forward = |idle: Option<i32>| {
        rt::route::Action::Route(rt::RouteAction {
            cluster_specifier: Some(rt::route_action::ClusterSpecifier::Cluster("ws".into())),
            timeout: Some(ms(0)),
            idle_timeout: idle.map(ms),
            ..Default::default()
        })
    };
    route_config(
        "r",
        vec![vhost(
            "v",
            &["*"],
            vec![
                route(prefix("/route-idle"), forward(Some(300))),
                route(prefix("/"), forward(None)),
            ],
        )],
    )
}

/// Manager: WebSocket allowed, `stream_idle_timeout` 600 ms.
fn manager(m: &mut hcm::HttpConnectionManager) {
    m.stream_idle_timeout = Some(ms(600));
    m.upgrade_configs = vec![hcm::http_connection_manager::UpgradeConfig {
        upgrade_type: "websocket".into(),
        ..Default::default()
    }];
}

/// An upstream that answers any request head with 101, then echoes; each connection's end is
/// reported on the channel.
async fn websocket_upstream() -> (SocketAddr, mpsc::UnboundedReceiver<Instant>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                serve_websocket(s).await;
                let _ = tx.send(Instant::now());
            });
        }
    });
    (addr, rx)
}

async fn serve_websocket(mut s: TcpStream) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    let head =
        b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n";
    if s.write_all(head).await.is_err() {
        return;
    }
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if s.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Upgrade on `path` through the proxy and check one echo.
async fn open_tunnel(addr: SocketAddr, path: &str) -> TcpStream {
    let (got, s) = upgrade_stream(addr, "h", path, "websocket")
        .await
        .expect("upgrade");
    assert_eq!(got.status, 101, "{}", got.head);
    assert!(got.echoed, "the tunnel echoes");
    s
}

/// Wait for the proxy to close the client's side; returns how long after `since`.
async fn closed_after(s: &mut TcpStream, since: Instant) -> Duration {
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "no bytes from a quiet tunnel"
    );
    since.elapsed()
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

#[tokio::test]
async fn idle_tunnel_is_closed_on_both_sides() {
    let (upstream, mut ended) = websocket_upstream().await;
    let (_ads, proxy) = run(
        vec![listener("main", routes(), manager)],
        vec![static_cluster("ws", &[upstream])],
    )
    .await;
    let addr = proxy.listener_addr("main").expect("bound");

    // The route's 300 ms.
    let mut s = open_tunnel(addr, "/route-idle").await;
    let quiet_since = Instant::now();
    let after = closed_after(&mut s, quiet_since).await;
    assert!(
        after >= Duration::from_millis(280) && after < Duration::from_millis(700),
        "closed after {after:?}"
    );
    let upstream_end = tokio::time::timeout(WAIT, ended.recv())
        .await
        .expect("upstream closed in time")
        .expect("upstream end reported");
    assert!(upstream_end.duration_since(quiet_since) < Duration::from_millis(700));
    assert_eq!(flag_count(proxy.admin, "SI").await, 1);

    // No route idle_timeout: the manager's 600 ms.
    let mut s = open_tunnel(addr, "/").await;
    let after = closed_after(&mut s, Instant::now()).await;
    assert!(
        after >= Duration::from_millis(580) && after < Duration::from_millis(1200),
        "closed after {after:?}"
    );
    assert_eq!(flag_count(proxy.admin, "SI").await, 2);
}

#[tokio::test]
async fn traffic_keeps_a_tunnel_open() {
    let (upstream, _ended) = websocket_upstream().await;
    let (_ads, proxy) = run(
        vec![listener("main", routes(), manager)],
        vec![static_cluster("ws", &[upstream])],
    )
    .await;
    let addr = proxy.listener_addr("main").expect("bound");

    let mut s = open_tunnel(addr, "/route-idle").await;
    let opened = Instant::now();
    let mut buf = [0u8; 4];
    for round in 0..8 {
        // The pacing is the point of the test: 150 ms gaps under a 300 ms idle timeout.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let trip = async {
            s.write_all(b"ping").await?;
            s.read_exact(&mut buf).await
        };
        let echoed = tokio::time::timeout(WAIT, trip).await.expect("in time");
        assert!(
            echoed.is_ok() && &buf == b"ping",
            "round {round}: {echoed:?}"
        );
    }
    assert!(opened.elapsed() >= Duration::from_millis(1200));
    assert_eq!(flag_count(proxy.admin, "SI").await, 0);
    let after = closed_after(&mut s, Instant::now()).await;
    assert!(after < Duration::from_millis(700), "closed after {after:?}");
    assert_eq!(flag_count(proxy.admin, "SI").await, 1);
}
