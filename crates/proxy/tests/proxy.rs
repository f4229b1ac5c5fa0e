//! Integration tests of the proxy's control side with real sockets, driven by the fake ADS
//! server: NACK handling, reconnects (SotW and delta), admin endpoints, drain.

mod common;

use std::time::Duration;

use common::*;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::util::pack_any;
use plexus_testkit::envoy::http_get;
use plexus_testkit::{FakeAds, eventually};
use plexus_xds::{CLUSTER_TYPE, LISTENER_TYPE, ROUTE_TYPE};

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
    bad.transparent = Some(envoy_types::pb::google::protobuf::BoolValue { value: true });
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
            .is_some_and(|e| e.contains("Listener \"bad\": transparent")),
        "{nack:?}"
    );
    wait_listener(&proxy, "tcp").await;
    assert!(proxy.listener_addr("main").is_some() && proxy.listener_addr("bad").is_none());
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
async fn delta_xds_removes_resources_nacks_and_resyncs_after_reconnect() {
    let a = echo_named("a").await;
    let ads = FakeAds::start().await.expect("ads");
    let cluster = |name: &str| (name.to_string(), pack_any(static_cluster(name, &[a.addr])));
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
            clusters: vec![
                static_cluster("a", &[a.addr]),
                static_cluster("b", &[a.addr]),
            ],
            endpoints: vec![],
        },
    );
    let proxy = start_proxy_with(&ads, true).await;
    let addr = wait_listener(&proxy, "main").await;
    get_until(addr, "h", "/", |g| g.status == 200).await;
    let has = |name: &'static str| {
        let store = proxy.store.clone();
        move || {
            let present = store.runtime.load().clusters.contains_key(name);
            async move { present.then_some(()) }
        }
    };
    let lacks = |name: &'static str| {
        let store = proxy.store.clone();
        move || {
            let present = store.runtime.load().clusters.contains_key(name);
            async move { (!present).then_some(()) }
        }
    };
    // A removal arrives as removed_resources.
    ads.push(CLUSTER_TYPE, vec![cluster("a")]);
    eventually(WAIT, "cluster b removed", lacks("b"))
        .await
        .expect("removed");
    // A bad update is NACKed and the last good version stays.
    let before = ads.acks().len();
    let mut bad = static_cluster("a", &[a.addr]);
    bad.health_checks = vec![Default::default()];
    ads.push(CLUSTER_TYPE, vec![("a".into(), pack_any(bad))]);
    let nack = ads
        .wait_nack(CLUSTER_TYPE, before, WAIT)
        .await
        .expect("NACK");
    assert!(
        nack.error
            .as_deref()
            .is_some_and(|e| e.contains("Cluster \"a\": health_checks")),
        "{nack:?}"
    );
    assert_eq!(
        request(addr, false, "GET", "h", "/", &[])
            .await
            .expect("request")
            .status,
        200
    );
    // While the stream is down the server drops c and adds d; the resync reports both.
    ads.push(CLUSTER_TYPE, vec![cluster("a"), cluster("c")]);
    eventually(WAIT, "cluster c", has("c"))
        .await
        .expect("added");
    let streams = ads.streams();
    ads.disconnect_all();
    ads.push(CLUSTER_TYPE, vec![cluster("a"), cluster("d")]);
    eventually(WAIT, "a new delta stream", || async {
        (ads.streams() > streams).then_some(())
    })
    .await
    .expect("reconnect");
    eventually(WAIT, "cluster d", has("d"))
        .await
        .expect("added after reconnect");
    eventually(WAIT, "cluster c removed", lacks("c"))
        .await
        .expect("removed after reconnect");
}

#[tokio::test]
async fn logging_endpoint_reads_and_sets_the_filter() {
    let ads = FakeAds::start().await.expect("ads");
    let current = std::sync::Arc::new(std::sync::Mutex::new("info".to_string()));
    let seen = current.clone();
    let control: plexus_proxy::LogControl = std::sync::Arc::new(move |new: Option<&str>| {
        let mut cur = seen.lock().map_err(|e| e.to_string())?;
        match new {
            Some("bad!") => return Err("bad filter".into()),
            Some(f) => *cur = f.to_string(),
            None => {}
        }
        Ok(cur.clone())
    });
    let cfg = plexus_proxy::ProxyConfig {
        xds_address: ads.url(),
        node: identity(),
        admin_address: "127.0.0.1:0".parse().expect("addr"),
        drain: Duration::from_secs(1),
        backoff: plexus_xds::client::Backoff::default(),
        delta: false,
        log_control: Some(control),
    };
    let proxy = plexus_proxy::start(cfg).await.expect("proxy");
    let base = format!("http://{}/logging", proxy.admin);
    assert_eq!(http_get(&base).await, Some((200, "info\n".to_string())));
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let post = |q: &str| {
        let req = http::Request::post(format!("{base}?level={q}"))
            .body(http_body_util::Empty::new())
            .expect("req");
        client.request(req)
    };
    assert_eq!(
        post("plexus_proxy%3Ddebug%2Cinfo")
            .await
            .expect("post")
            .status(),
        200
    );
    assert_eq!(
        current.lock().map(|c| c.clone()).ok(),
        Some("plexus_proxy=debug,info".to_string())
    );
    assert_eq!(post("bad!").await.expect("post").status(), 400);
    assert_eq!(
        http_get(&base).await.map(|r| r.1),
        Some("plexus_proxy=debug,info\n".to_string())
    );
}
