//! Socket tests of the `server` header and the router's `x-envoy-*` headers beyond what the
//! differential scenario compares: h2 downstreams, local replies of every kind (no route,
//! gRPC trailers-only, stream idle timeout), a service time that covers the upstream's delay,
//! retried attempts, mirrored copies and WebSocket upgrades (both carry the expected timeout,
//! as in Envoy; a 101 gets no service time), and NACKs naming `server_name` /
//! `server_header_transformation`.

mod accepted;
mod common;

use accepted::*;
use common::*;
use envoy_types::pb::envoy::config::route::v3 as rt;
use plexus_xds::LISTENER_TYPE;

const SERVICE_TIME: &str = "x-envoy-upstream-service-time";
const EXPECTED: &str = "x-envoy-expected-rq-timeout-ms";

fn routes() -> rt::RouteConfiguration {
    route_config(
        "hdr",
        vec![vhost(
            "hdr",
            &["hdr.test"],
            vec![
                route(prefix("/down"), to_cluster("closed")),
                with_retries(prefix("/flaky"), "flaky", 2),
                mirrored(),
                route(prefix("/"), to_cluster("a")),
            ],
        )],
    )
}

/// `/mirror`: 3 s timeout, copied to cluster `shadow`.
fn mirrored() -> rt::Route {
    route(
        prefix("/mirror"),
        rt::route::Action::Route(rt::RouteAction {
            cluster_specifier: Some(rt::route_action::ClusterSpecifier::Cluster("a".into())),
            timeout: Some(envoy_types::pb::google::protobuf::Duration {
                seconds: 3,
                nanos: 0,
            }),
            request_mirror_policies: vec![rt::route_action::RequestMirrorPolicy {
                cluster: "shadow".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
    )
}

fn millis(got: &Got) -> Option<u64> {
    got.header(SERVICE_TIME)?.parse().ok()
}

#[tokio::test]
async fn server_header_reaches_every_reply_on_both_protocols() {
    let a = echo_named("a").await;
    let closed_port = plexus_testkit::ClosedPort::new().expect("closed port");
    let closed = closed_port.addr;
    let (_ads, proxy) = run(
        vec![listener("istio", routes(), |m| {
            m.server_name = "istio-envoy".into();
            m.stream_idle_timeout = Some(ms(200));
        })],
        vec![
            static_cluster("a", &[a.addr]),
            static_cluster("closed", &[closed]),
        ],
    )
    .await;
    let addr = proxy.listener_addr("istio").expect("bound");
    for h2 in [false, true] {
        let got = request(addr, h2, "GET", "hdr.test", "/", &[])
            .await
            .expect("request");
        assert_eq!(got.status, 200);
        assert_eq!(
            got.header("server").as_deref(),
            Some("istio-envoy"),
            "h2 {h2}"
        );
        assert!(millis(&got).is_some(), "h2 {h2}: {:?}", got.headers);
        assert_eq!(
            got.json()["headers"][EXPECTED].as_str(),
            Some("15000"),
            "h2 {h2}"
        );
        let no_route = request(addr, h2, "GET", "nowhere.test", "/", &[])
            .await
            .expect("request");
        assert_eq!(no_route.status, 404);
        assert_eq!(no_route.header("server").as_deref(), Some("istio-envoy"));
        assert_eq!(no_route.header(SERVICE_TIME), None, "local reply");
    }
    let grpc = grpc_request(addr, "hdr.test", "/down", &[])
        .await
        .expect("grpc");
    assert_eq!(grpc.grpc_status().as_deref(), Some("14"));
    assert_eq!(grpc.header("server").as_deref(), Some("istio-envoy"));
    assert_eq!(grpc.header(SERVICE_TIME), None);
}

#[tokio::test]
async fn idle_timeout_reply_gets_the_server_header_only() {
    let slow = echo_with(plexus_testkit::echo::EchoConfig {
        workload: "slow".into(),
        delay: std::time::Duration::from_secs(5),
        ..Default::default()
    })
    .await;
    let (_ads, proxy) = run(
        vec![listener("idle", routes(), |m| {
            m.stream_idle_timeout = Some(ms(200));
        })],
        vec![static_cluster("a", &[slow.addr])],
    )
    .await;
    let addr = proxy.listener_addr("idle").expect("bound");
    let got = request(addr, false, "GET", "hdr.test", "/", &[])
        .await
        .expect("request");
    assert_eq!(got.status, 504);
    assert_eq!(got.header("server").as_deref(), Some("envoy"));
    assert_eq!(got.header(SERVICE_TIME), None);
}

#[tokio::test]
async fn service_time_covers_the_upstream_delay_and_retries() {
    let slow = echo_with(plexus_testkit::echo::EchoConfig {
        workload: "slow".into(),
        delay: std::time::Duration::from_millis(300),
        ..Default::default()
    })
    .await;
    let flaky = echo_with(plexus_testkit::echo::EchoConfig {
        workload: "flaky".into(),
        fail_fraction: 1.0,
        fail_status: 503,
        ..Default::default()
    })
    .await;
    let (_ads, proxy) = run(
        vec![listener("timed", routes(), |_| {})],
        vec![
            static_cluster("a", &[slow.addr]),
            static_cluster("flaky", &[flaky.addr]),
        ],
    )
    .await;
    let addr = proxy.listener_addr("timed").expect("bound");
    let got = request(addr, false, "GET", "hdr.test", "/", &[])
        .await
        .expect("request");
    let ms = millis(&got).expect("service time");
    assert!((300..10_000).contains(&ms), "{ms} ms");
    // Retries exhausted on 503s: still an upstream response, so it has a service time.
    let got = request(addr, false, "GET", "hdr.test", "/flaky", &[])
        .await
        .expect("request");
    assert_eq!(got.status, 503);
    assert!(millis(&got).is_some(), "{:?}", got.headers);
    assert_eq!(flaky.requests.load(std::sync::atomic::Ordering::Relaxed), 3);
}

#[tokio::test]
async fn bad_server_options_are_nacked_by_field() {
    let a = echo_named("a").await;
    let (ads, proxy) = run(
        vec![listener("srv", routes(), |_| {})],
        vec![static_cluster("a", &[a.addr])],
    )
    .await;
    let addr = proxy.listener_addr("srv").expect("bound");
    for (tweak, field) in [
        (
            Box::new(|m: &mut HcmConfig| m.server_name = "bad\u{7f}name".into())
                as Box<dyn Fn(&mut HcmConfig)>,
            "server_name",
        ),
        (
            Box::new(|m: &mut HcmConfig| m.server_header_transformation = 9),
            "server_header_transformation",
        ),
    ] {
        let before = ads.acks().len();
        ads.push(LISTENER_TYPE, vec![listener("srv", routes(), tweak)]);
        let nack = ads
            .wait_nack(LISTENER_TYPE, before, WAIT)
            .await
            .expect("NACK");
        let msg = nack.error.unwrap_or_default();
        assert!(msg.contains(&format!("typed_config.{field}")), "{msg}");
    }
    // The last good listener keeps serving with the default server header.
    let got = request(addr, false, "GET", "hdr.test", "/", &[])
        .await
        .expect("request");
    assert_eq!(got.header("server").as_deref(), Some("envoy"));
}

type HcmConfig =
    envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;

#[tokio::test]
async fn mirrored_copies_carry_the_expected_timeout() {
    let a = echo_named("a").await;
    let shadow = echo_named("shadow").await;
    let (_ads, proxy) = run(
        vec![listener("mirror", routes(), |_| {})],
        vec![
            static_cluster("a", &[a.addr]),
            static_cluster("shadow", &[shadow.addr]),
        ],
    )
    .await;
    let addr = proxy.listener_addr("mirror").expect("bound");
    let got = request(addr, false, "GET", "hdr.test", "/mirror", &[])
        .await
        .expect("request");
    assert_eq!(got.json()["headers"][EXPECTED].as_str(), Some("3000"));
    let copy = plexus_testkit::eventually::eventually(WAIT, "a mirrored request", || async {
        shadow.last.lock().ok()?.clone()
    })
    .await
    .expect("mirrored");
    assert_eq!(copy.host, "hdr.test-shadow");
    assert_eq!(copy.headers.get(EXPECTED).map(String::as_str), Some("3000"));
}

/// An upstream that records each request head, answers 101 and closes.
async fn upgrade_upstream() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let heads = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            if let Ok(mut h) = seen.lock() {
                h.push(String::from_utf8_lossy(&head).to_lowercase());
            }
            let reply = "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n";
            let _ = s.write_all(reply.as_bytes()).await;
        }
    });
    (addr, heads)
}

#[tokio::test]
async fn upgrades_announce_the_timeout_and_get_no_service_time() {
    let (up, heads) = upgrade_upstream().await;
    let ws = |m: &mut HcmConfig| {
        m.upgrade_configs = vec![
            envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::UpgradeConfig {
                upgrade_type: "websocket".into(),
                ..Default::default()
            },
        ];
    };
    let (_ads, proxy) = run(
        vec![
            listener("ws", routes(), ws),
            listener("ws-quiet", routes(), move |m| {
                ws(m);
                suppress(m);
            }),
        ],
        vec![static_cluster("a", &[up])],
    )
    .await;
    let head =
        "GET / HTTP/1.1\r\nhost: hdr.test\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n";
    for (name, want) in [("ws", true), ("ws-quiet", false)] {
        let addr = proxy.listener_addr(name).expect("bound");
        let resp = raw(addr, head).await.to_lowercase();
        assert!(resp.starts_with("http/1.1 101"), "{name}: {resp}");
        assert!(resp.contains("server: envoy\r\n"), "{name}: {resp}");
        assert!(!resp.contains(SERVICE_TIME), "{name}: {resp}");
        let upstream = heads
            .lock()
            .ok()
            .and_then(|h| h.last().cloned())
            .unwrap_or_default();
        assert_eq!(
            upstream.contains(&format!("{EXPECTED}: 15000\r\n")),
            want,
            "{name}: {upstream}"
        );
    }
}

fn suppress(m: &mut HcmConfig) {
    use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_filter::ConfigType;
    if let Some(router) = m.http_filters.last_mut() {
        let quiet = Router {
            suppress_envoy_headers: true,
            ..Default::default()
        };
        router.config_type = Some(ConfigType::TypedConfig(envoy_types::util::pack_any(quiet)));
    }
}
