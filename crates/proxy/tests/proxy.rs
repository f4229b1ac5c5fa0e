//! Integration tests through the Plexus proxy with real sockets, driven by the fake ADS server:
//! NACK handling, reconnects, response flags, protocols, TCP, load balancing, admin, drain.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::util::pack_any;
use plexus_proxy::ERROR_HEADER;
use plexus_testkit::echo::{self, EchoConfig, EchoHandle};
use plexus_testkit::envoy::http_get;
use plexus_testkit::{FakeAds, eventually};
use plexus_xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn echo_named(name: &str) -> EchoHandle {
    let cfg = EchoConfig {
        workload: name.into(),
        ..Default::default()
    };
    echo::start_http(cfg, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("echo")
}

/// A proxy with listener `main` (RDS `r1`) routing everything to static cluster `a`.
async fn basic(a: SocketAddr) -> (FakeAds, plexus_proxy::ProxyHandle, SocketAddr) {
    let ads = FakeAds::start().await.expect("ads");
    push(
        &ads,
        &Config {
            listeners: vec![("main".into(), http_listener_rds("main", "r1"))],
            routes: vec![route_config(
                "r1",
                vec![vhost(
                    "all",
                    &["*"],
                    vec![route(prefix("/"), to_cluster("a"))],
                )],
            )],
            clusters: vec![static_cluster("a", &[a])],
            endpoints: vec![],
        },
    );
    let proxy = start_proxy(&ads).await;
    let addr = wait_listener(&proxy, "main").await;
    (ads, proxy, addr)
}

#[tokio::test]
async fn nack_names_the_field_and_keeps_last_good_routes() {
    let a = echo_named("a").await;
    let (ads, _proxy, addr) = basic(a.addr).await;
    get_until(addr, "h", "/", |g| g.status == 200).await;
    let good = ads
        .acks()
        .iter()
        .filter(|r| r.type_url == ROUTE_TYPE && r.error.is_none())
        .count();
    assert!(good >= 1);
    let before = ads.acks().len();
    let bad = rt::RouteConfiguration {
        virtual_hosts: vec![rt::VirtualHost {
            hedge_policy: Some(Default::default()),
            ..vhost("all", &["*"], vec![])
        }],
        ..route_config("r1", vec![])
    };
    ads.push(ROUTE_TYPE, vec![("r1".into(), pack_any(bad))]);
    let nack = ads.wait_nack(ROUTE_TYPE, before, WAIT).await.expect("NACK");
    let msg = nack.error.unwrap_or_default();
    assert!(
        msg.contains("RouteConfiguration \"r1\"") && msg.contains("virtual_hosts[0].hedge_policy"),
        "{msg}"
    );
    // The NACK reports the previous good version, and traffic still flows on it.
    assert_eq!(nack.version, "1");
    let got = request(addr, false, "GET", "h", "/still", &[])
        .await
        .expect("request");
    assert_eq!(
        (got.status, got.json()["workload"].as_str()),
        (200, Some("a"))
    );
}

#[tokio::test]
async fn bad_listener_is_nacked_and_others_still_bind() {
    let a = echo_named("a").await;
    let (ads, proxy, _) = basic(a.addr).await;
    let before = ads.acks().len();
    let mut bad = envoy_types::pb::envoy::config::listener::v3::Listener {
        name: "bad".into(),
        address: Some(socket("127.0.0.1:0".parse().expect("addr"))),
        ..Default::default()
    };
    bad.use_original_dst = Some(envoy_types::pb::google::protobuf::BoolValue { value: true });
    ads.push(
        LISTENER_TYPE,
        vec![
            ("main".into(), http_listener_rds("main", "r1")),
            ("bad".into(), pack_any(bad)),
            ("tcp".into(), tcp_listener("tcp", "a")),
        ],
    );
    let nack = ads
        .wait_nack(LISTENER_TYPE, before, WAIT)
        .await
        .expect("NACK");
    assert!(
        nack.error
            .as_deref()
            .is_some_and(|e| e.contains("Listener \"bad\": use_original_dst")),
        "{nack:?}"
    );
    wait_listener(&proxy, "tcp").await;
    assert!(proxy.listener_addr("main").is_some() && proxy.listener_addr("bad").is_none());
}

/// Host, path, request headers, expected status, expected response flag.
type LocalCase = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    u16,
    &'static str,
);

#[tokio::test]
async fn local_replies_carry_flag_and_cause() {
    let a = echo_named("a").await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let ads = FakeAds::start().await.expect("ads");
    let timeout = envoy_types::pb::google::protobuf::Duration {
        seconds: 0,
        nanos: 100_000_000,
    };
    let routes = vec![
        route(prefix("/nc"), to_cluster("missing")),
        route(prefix("/uh"), to_cluster("empty")),
        route(prefix("/uf"), to_cluster("closed")),
        route(
            prefix("/ut"),
            rt::route::Action::Route(rt::RouteAction {
                cluster_specifier: Some(rt::route_action::ClusterSpecifier::Cluster("a".into())),
                timeout: Some(timeout),
                ..Default::default()
            }),
        ),
    ];
    push(
        &ads,
        &Config {
            listeners: vec![("main".into(), http_listener_rds("main", "r1"))],
            routes: vec![route_config("r1", vec![vhost("v", &["v.test"], routes)])],
            clusters: vec![
                static_cluster("a", &[a.addr]),
                eds_cluster("empty"),
                static_cluster("closed", &[closed]),
            ],
            endpoints: vec![("empty".into(), assignment("empty", &[]))],
        },
    );
    let proxy = start_proxy(&ads).await;
    let addr = wait_listener(&proxy, "main").await;
    get_until(addr, "v.test", "/ut", |g| g.status == 200).await;
    let cases: [LocalCase; 5] = [
        ("other.test", "/", &[], 404, "NR"),
        ("v.test", "/nc", &[], 503, "NC"),
        ("v.test", "/uh", &[], 503, "UH"),
        ("v.test", "/uf", &[], 503, "UF"),
        ("v.test", "/ut", &[("x-echo-delay-ms", "1000")], 504, "UT"),
    ];
    for (host, path, headers, status, flag) in cases {
        let got = request(addr, false, "GET", host, path, headers)
            .await
            .expect("request");
        let cause = got.header(ERROR_HEADER).unwrap_or_default();
        assert_eq!(got.status, status, "{host}{path}: {cause}");
        assert!(
            cause.starts_with(&format!("{flag}: ")),
            "{host}{path}: {cause}"
        );
    }
    let (_, metrics) = http_get(&format!("http://{}/stats/prometheus", proxy.admin))
        .await
        .expect("metrics");
    for flag in ["NR", "NC", "UH", "UF", "UT"] {
        assert!(
            metrics.contains(&format!("plexus_response_flags_total{{flag=\"{flag}\"}} 1")),
            "{flag}:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("plexus_cluster_upstream_rq_timeout_total{cluster=\"a\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn h2c_downstream_and_keepalive_reuse_one_upstream_connection() {
    let a = echo_named("a").await;
    let (_ads, proxy, addr) = basic(a.addr).await;
    get_until(addr, "h", "/", |g| g.status == 200).await;
    let h2 = request(addr, true, "GET", "h2.test", "/over-h2", &[])
        .await
        .expect("h2c request");
    assert_eq!(
        (h2.status, h2.json()["path"].as_str()),
        (200, Some("/over-h2"))
    );
    assert_eq!(h2.json()["host"].as_str(), Some("h2.test"));
    // Several requests on one downstream HTTP/1.1 connection.
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    for i in 0..3 {
        let req = http::Request::get(format!("/ka/{i}"))
            .header("host", "h")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .expect("req");
        let resp = send.send_request(req).await.expect("keep-alive request");
        assert_eq!(resp.status(), 200);
        http_body_util::BodyExt::collect(resp.into_body())
            .await
            .expect("body");
    }
    let (_, metrics) = http_get(&format!("http://{}/stats/prometheus", proxy.admin))
        .await
        .expect("metrics");
    let line = metrics
        .lines()
        .find(|l| l.starts_with("plexus_cluster_upstream_cx_total{cluster=\"a\"}"));
    let cx: u64 = line
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        (1..=2).contains(&cx),
        "upstream connections should be reused: {line:?}"
    );
}

#[tokio::test]
async fn tcp_proxy_copies_bytes_both_ways() {
    let tcp_echo = echo::start_tcp("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("tcp echo");
    let ads = FakeAds::start().await.expect("ads");
    push(
        &ads,
        &Config {
            listeners: vec![("tcp".into(), tcp_listener("tcp", "t"))],
            routes: vec![],
            clusters: vec![static_cluster("t", &[tcp_echo.addr])],
            endpoints: vec![],
        },
    );
    let proxy = start_proxy(&ads).await;
    let addr = wait_listener(&proxy, "tcp").await;
    let reply = eventually(WAIT, "tcp echo through proxy", || async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(b"hello plexus").await.ok()?;
        let mut buf = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(buf)
    })
    .await
    .expect("echoed");
    assert_eq!(&reply, b"hello plexus");
}

#[tokio::test]
async fn eds_updates_and_round_robin_spread_requests() {
    let (a, b) = (echo_named("a").await, echo_named("b").await);
    let ads = FakeAds::start().await.expect("ads");
    push(
        &ads,
        &Config {
            listeners: vec![("main".into(), http_listener_rds("main", "r1"))],
            routes: vec![route_config(
                "r1",
                vec![vhost(
                    "all",
                    &["*"],
                    vec![route(prefix("/"), to_cluster("svc"))],
                )],
            )],
            clusters: vec![eds_cluster("svc")],
            endpoints: vec![("svc".into(), assignment("svc", &[a.addr]))],
        },
    );
    let proxy = start_proxy(&ads).await;
    let addr = wait_listener(&proxy, "main").await;
    get_until(addr, "h", "/", |g| g.json()["workload"] == "a").await;
    ads.push(
        ENDPOINT_TYPE,
        vec![("svc".into(), assignment("svc", &[a.addr, b.addr]))],
    );
    get_until(addr, "h", "/", |g| g.json()["workload"] == "b").await;
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..10 {
        let got = request(addr, false, "GET", "h", "/", &[])
            .await
            .expect("request");
        *seen
            .entry(got.json()["workload"].as_str().unwrap_or("?").to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(
        seen.get("a").zip(seen.get("b")),
        Some((&5, &5)),
        "round robin: {seen:?}"
    );
    ads.push(
        ENDPOINT_TYPE,
        vec![("svc".into(), assignment("svc", &[b.addr]))],
    );
    get_until(addr, "h", "/", |g| g.json()["workload"] == "b").await;
    for _ in 0..4 {
        let got = request(addr, false, "GET", "h", "/", &[])
            .await
            .expect("request");
        assert_eq!(got.json()["workload"], "b");
    }
}

#[tokio::test]
async fn reconnects_after_the_server_hangs_up_and_keeps_serving() {
    let a = echo_named("a").await;
    let (ads, proxy, addr) = basic(a.addr).await;
    get_until(addr, "h", "/", |g| g.status == 200).await;
    let streams = ads.streams();
    ads.disconnect_all();
    // Serving continues on the last good config while the stream is down.
    let got = request(addr, false, "GET", "h", "/", &[])
        .await
        .expect("request");
    assert_eq!(got.status, 200);
    eventually(WAIT, "a new ADS stream", || async {
        (ads.streams() > streams).then_some(())
    })
    .await
    .expect("reconnect");
    // A push after the reconnect reaches the proxy.
    ads.push(
        CLUSTER_TYPE,
        vec![
            ("a".into(), pack_any(static_cluster("a", &[a.addr]))),
            ("b".into(), pack_any(static_cluster("b", &[a.addr]))),
        ],
    );
    eventually(WAIT, "cluster b", || async {
        proxy
            .store
            .runtime
            .load()
            .clusters
            .contains_key("b")
            .then_some(())
    })
    .await
    .expect("pushed after reconnect");
}

#[tokio::test]
async fn admin_endpoints_report_live_config() {
    let a = echo_named("a").await;
    let (_ads, proxy, addr) = basic(a.addr).await;
    let base = format!("http://{}", proxy.admin);
    eventually(WAIT, "ready", || async {
        (http_get(&format!("{base}/ready")).await?.0 == 200).then_some(())
    })
    .await
    .expect("ready");
    get_until(addr, "h", "/", |g| g.status == 200).await;
    let (status, dump) = http_get(&format!("{base}/config_dump"))
        .await
        .expect("config_dump");
    let dump: serde_json::Value = serde_json::from_str(&dump).expect("json");
    assert_eq!(status, 200);
    assert_eq!(dump["listeners"][0]["name"], "main");
    assert_eq!(dump["clusters"][0]["name"], "a");
    assert_eq!(
        dump["node_id"],
        "sidecar~127.0.0.1~test-0.default~default.svc.cluster.local"
    );
    let (_, clusters) = http_get(&format!("{base}/clusters"))
        .await
        .expect("clusters");
    assert!(clusters.contains(&a.addr.to_string()), "{clusters}");
    let (_, listeners) = http_get(&format!("{base}/listeners"))
        .await
        .expect("listeners");
    assert!(listeners.contains(&addr.port().to_string()), "{listeners}");
    let (_, metrics) = http_get(&format!("{base}/stats/prometheus"))
        .await
        .expect("metrics");
    assert!(
        metrics.contains("plexus_cluster_upstream_rq_class_total{cluster=\"a\",class=\"2xx\"}"),
        "{metrics}"
    );
    assert_eq!(
        http_get(&format!("{base}/healthz")).await.map(|r| r.0),
        Some(200)
    );
}

#[tokio::test]
async fn quitquitquit_then_drain_lets_inflight_requests_finish() {
    let a = echo_named("a").await;
    let (_ads, mut proxy, addr) = basic(a.addr).await;
    get_until(addr, "h", "/", |g| g.status == 200).await;
    let slow = tokio::spawn(async move {
        request(addr, false, "GET", "h", "/", &[("x-echo-delay-ms", "300")]).await
    });
    // Let the slow request reach the upstream before draining.
    eventually(WAIT, "slow request upstream", || async {
        (a.requests.load(std::sync::atomic::Ordering::Relaxed) >= 2).then_some(())
    })
    .await
    .expect("in flight");
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let quit = http::Request::post(format!("http://{}/quitquitquit", proxy.admin))
        .body(http_body_util::Empty::new())
        .expect("req");
    assert_eq!(client.request(quit).await.expect("quit").status(), 200);
    tokio::time::timeout(WAIT, proxy.quit_requested())
        .await
        .expect("quit observed");
    let open = proxy.drain().await;
    assert_eq!(open, 0);
    let got = slow.await.expect("join").expect("slow request completed");
    assert_eq!(got.status, 200);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed after drain"
    );
}

#[tokio::test]
async fn exhausted_retries_count_urx_and_retries() {
    let flaky = echo::start_http(
        EchoConfig {
            workload: "flaky".into(),
            fail_fraction: 1.0,
            fail_status: 502,
            ..Default::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("echo");
    let ads = FakeAds::start().await.expect("ads");
    let policy = rt::RetryPolicy {
        retry_on: "gateway-error".into(),
        num_retries: Some(envoy_types::pb::google::protobuf::UInt32Value { value: 3 }),
        ..Default::default()
    };
    let vh = rt::VirtualHost {
        retry_policy: Some(policy),
        ..vhost("all", &["*"], vec![route(prefix("/"), to_cluster("f"))])
    };
    push(
        &ads,
        &Config {
            listeners: vec![("main".into(), http_listener_rds("main", "r1"))],
            routes: vec![route_config("r1", vec![vh])],
            clusters: vec![static_cluster("f", &[flaky.addr])],
            endpoints: vec![],
        },
    );
    let proxy = start_proxy(&ads).await;
    let addr = wait_listener(&proxy, "main").await;
    // The virtual host's policy applies: one request, four attempts, the last 502 passed on.
    let got = get_until(addr, "h", "/", |g| g.status == 502).await;
    assert_eq!(got.json()["workload"], "flaky");
    assert_eq!(flaky.requests.load(std::sync::atomic::Ordering::Relaxed), 4);
    let (_, metrics) = http_get(&format!("http://{}/stats/prometheus", proxy.admin))
        .await
        .expect("metrics");
    assert!(
        metrics.contains("plexus_cluster_upstream_rq_retry_total{cluster=\"f\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("plexus_response_flags_total{flag=\"URX\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("plexus_cluster_upstream_rq_total{cluster=\"f\"} 4"),
        "{metrics}"
    );
}
