//! Integration tests of traffic through the proxy with real sockets, driven by the fake ADS
//! server: response flags, protocols, TCP, load balancing, retries, circuit breakers.

mod common;

use std::time::Duration;

use common::*;
use envoy_types::pb::envoy::config::route::v3 as rt;
use plexus_proxy::ERROR_HEADER;
use plexus_testkit::echo::{self, EchoConfig};
use plexus_testkit::envoy::http_get;
use plexus_testkit::{FakeAds, eventually};
use plexus_xds::ENDPOINT_TYPE;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
    let closed_port = plexus_testkit::ClosedPort::new().expect("closed port");
    let closed = closed_port.addr;
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

#[tokio::test]
async fn circuit_breaker_overflow_is_flagged_uo() {
    use envoy_types::pb::envoy::config::cluster::v3 as c;
    let a = echo_named("a").await;
    let ads = FakeAds::start().await.expect("ads");
    let mut cluster = static_cluster("a", &[a.addr]);
    cluster.circuit_breakers = Some(c::CircuitBreakers {
        thresholds: vec![c::circuit_breakers::Thresholds {
            max_pending_requests: Some(envoy_types::pb::google::protobuf::UInt32Value { value: 0 }),
            ..Default::default()
        }],
        ..Default::default()
    });
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
            clusters: vec![cluster],
            endpoints: vec![],
        },
    );
    let proxy = start_proxy(&ads).await;
    let addr = wait_listener(&proxy, "main").await;
    let got = get_until(addr, "h", "/", |g| g.status == 503).await;
    let cause = got.header(ERROR_HEADER).unwrap_or_default();
    assert!(
        cause.starts_with("UO: ") && cause.contains("max_pending_requests"),
        "{cause}"
    );
    assert_eq!(a.requests.load(std::sync::atomic::Ordering::Relaxed), 0);
    let (_, metrics) = http_get(&format!("http://{}/stats/prometheus", proxy.admin))
        .await
        .expect("metrics");
    assert!(
        metrics.contains("plexus_cluster_upstream_rq_overflow_total{cluster=\"a\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn least_request_avoids_the_busy_endpoint() {
    use envoy_types::pb::envoy::config::cluster::v3 as c;
    use std::sync::atomic::Ordering::Relaxed;
    let (a, b) = (echo_named("a").await, echo_named("b").await);
    let ads = FakeAds::start().await.expect("ads");
    let mut cluster = static_cluster("lr", &[a.addr, b.addr]);
    cluster.lb_policy = c::cluster::LbPolicy::LeastRequest as i32;
    cluster.lb_config = Some(c::cluster::LbConfig::LeastRequestLbConfig(
        c::cluster::LeastRequestLbConfig {
            choice_count: Some(envoy_types::pb::google::protobuf::UInt32Value { value: 20 }),
            ..Default::default()
        },
    ));
    push(
        &ads,
        &Config {
            listeners: vec![("main".into(), http_listener_rds("main", "r1"))],
            routes: vec![route_config(
                "r1",
                vec![vhost(
                    "all",
                    &["*"],
                    vec![route(prefix("/"), to_cluster("lr"))],
                )],
            )],
            clusters: vec![cluster],
            endpoints: vec![],
        },
    );
    let proxy = start_proxy(&ads).await;
    let addr = wait_listener(&proxy, "main").await;
    get_until(addr, "h", "/", |g| g.status == 200).await;
    let before = (a.requests.load(Relaxed), b.requests.load(Relaxed));
    let slow = tokio::spawn(async move {
        request(
            addr,
            false,
            "GET",
            "h",
            "/slow",
            &[("x-echo-delay-ms", "1000")],
        )
        .await
    });
    let busy = eventually(WAIT, "the slow request upstream", || async {
        let now = (a.requests.load(Relaxed), b.requests.load(Relaxed));
        if now.0 > before.0 {
            Some("a")
        } else if now.1 > before.1 {
            Some("b")
        } else {
            None
        }
    })
    .await
    .expect("slow request arrived");
    for _ in 0..5 {
        let got = request(addr, false, "GET", "h", "/", &[])
            .await
            .expect("request");
        assert_ne!(
            got.json()["workload"].as_str(),
            Some(busy),
            "least request must avoid the busy endpoint"
        );
    }
    assert_eq!(slow.await.expect("join").expect("slow").status, 200);
}

#[tokio::test]
async fn tcp_idle_timeout_closes_and_bytes_are_counted() {
    let tcp_echo = echo::start_tcp("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("tcp echo");
    let ads = FakeAds::start().await.expect("ads");
    push(
        &ads,
        &Config {
            listeners: vec![("tcp".into(), tcp_listener_idle("tcp", "t", 200))],
            routes: vec![],
            clusters: vec![static_cluster("t", &[tcp_echo.addr])],
            endpoints: vec![],
        },
    );
    let proxy = start_proxy(&ads).await;
    let addr = wait_listener(&proxy, "tcp").await;
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"abcd").await.expect("write");
    let mut buf = [0u8; 4];
    s.read_exact(&mut buf).await.expect("echo");
    let idle_from = std::time::Instant::now();
    let n = tokio::time::timeout(WAIT, s.read(&mut buf))
        .await
        .expect("closed in time")
        .unwrap_or(0);
    assert_eq!(n, 0, "the proxy closes an idle connection");
    assert!(
        idle_from.elapsed() >= Duration::from_millis(150),
        "{:?}",
        idle_from.elapsed()
    );
    let (_, metrics) = http_get(&format!("http://{}/stats/prometheus", proxy.admin))
        .await
        .expect("metrics");
    for m in [
        "plexus_cluster_tcp_downstream_bytes_total",
        "plexus_cluster_tcp_upstream_bytes_total",
    ] {
        assert!(
            metrics.contains(&format!("{m}{{cluster=\"t\"}} 4")),
            "{m}:\n{metrics}"
        );
    }
    assert!(
        metrics.contains("plexus_response_flags_total{flag=\"SI\"} 1"),
        "{metrics}"
    );
}
