//! Socket tests of the `server` header and the router's `x-envoy-*` headers beyond what the
//! differential scenario compares: h2 downstreams, local replies of every kind (no route,
//! gRPC trailers-only, stream idle timeout), a service time that covers the upstream's delay,
//! retried attempts, mirrored copies (they carry the expected timeout, as Envoy's shadows do),
//! and NACKs naming `server_name` / `server_header_transformation`.

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

async fn closed_port() -> std::net::SocketAddr {
    tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr")
}

fn millis(got: &Got) -> Option<u64> {
    got.header(SERVICE_TIME)?.parse().ok()
}

#[tokio::test]
async fn server_header_reaches_every_reply_on_both_protocols() {
    let a = echo_named("a").await;
    let closed = closed_port().await;
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
    let slow = plexus_testkit::echo::start_http(
        plexus_testkit::echo::EchoConfig {
            workload: "slow".into(),
            delay: std::time::Duration::from_secs(5),
            ..Default::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("echo");
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
    let slow = plexus_testkit::echo::start_http(
        plexus_testkit::echo::EchoConfig {
            workload: "slow".into(),
            delay: std::time::Duration::from_millis(300),
            ..Default::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("echo");
    let flaky = plexus_testkit::echo::start_http(
        plexus_testkit::echo::EchoConfig {
            workload: "flaky".into(),
            fail_fraction: 1.0,
            fail_status: 503,
            ..Default::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("echo");
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
