//! TLS to upstreams through the proxy with real sockets and certificates generated per test:
//! SNI, CA and SAN checks (a failure is 503 `UF`), the cluster's HTTP protocol offered by ALPN,
//! client certificates over SDS (the cluster warms until it arrives), and the TCP proxy
//! terminating and originating TLS; active health checks over the cluster's TLS context.

mod common;
mod tls_support;

use common::*;
use envoy_types::pb::envoy::config::cluster::v3 as c;
use envoy_types::pb::envoy::config::core::v3::health_check::{
    HealthChecker, HttpHealthCheck, TcpHealthCheck,
};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use plexus_proxy::ERROR_HEADER;
use plexus_testkit::FakeAds;
use plexus_testkit::echo;
use plexus_xds::SECRET_TYPE;
use tls_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Vct = tls::common_tls_context::ValidationContextType;

#[tokio::test]
#[allow(deprecated)] // http2_protocol_options is what Istio still sends
async fn upstream_tls_checks_the_ca_and_sans_and_offers_the_cluster_protocol() {
    let backend = echo_named("backend").await;
    let ca = Ca::new("ca");
    let wrong = Ca::new("wrong");
    let id = "spiffe://cluster.local/ns/default/sa/backend";
    let front = tls_front(
        backend.addr,
        &ca.leaf(&["backend.example"], &[id]),
        &["h2", "http/1.1"],
        None,
    )
    .await;
    let ads = FakeAds::start().await.expect("ads");
    let trust = |pem: &str, sans| Some(Vct::ValidationContext(validation(pem, sans)));
    let mut h2 = tls_cluster(
        "h2",
        front.addr,
        client_ctx(
            "backend.example",
            common(None, None, &[], trust(&ca.pem, vec![])),
        ),
    );
    h2.http2_protocol_options = Some(Default::default());
    let clusters = vec![
        tls_cluster(
            "ok",
            front.addr,
            client_ctx(
                "backend.example",
                common(None, None, &[], trust(&ca.pem, uri_sans(&[id]))),
            ),
        ),
        tls_cluster(
            "wrong-ca",
            front.addr,
            client_ctx(
                "backend.example",
                common(None, None, &[], trust(&wrong.pem, vec![])),
            ),
        ),
        tls_cluster(
            "wrong-san",
            front.addr,
            client_ctx(
                "backend.example",
                common(None, None, &[], trust(&ca.pem, uri_sans(&["spiffe://x/y"]))),
            ),
        ),
        h2,
    ];
    let vhosts = ["ok", "wrong-ca", "wrong-san", "h2"]
        .iter()
        .map(|c| vhost(c, &[c], vec![route(prefix("/"), to_cluster(c))]))
        .collect();
    push(
        &ads,
        &Config {
            listeners: vec![(
                "main".into(),
                http_listener_inline("main", route_config("r", vhosts)),
            )],
            routes: vec![],
            clusters,
            endpoints: vec![],
        },
    );
    let proxy = start_proxy(&ads).await;
    let addr = wait_listener(&proxy, "main").await;
    let ok = get_until(addr, "ok", "/", |g| g.status == 200).await;
    assert_eq!(ok.json()["protocol"], "HTTP/1.1");
    let h2 = request(addr, false, "GET", "h2", "/", &[])
        .await
        .expect("h2");
    assert_eq!(
        (h2.status, h2.json()["protocol"].as_str()),
        (200, Some("HTTP/2.0"))
    );
    let seen = front.seen.lock().expect("seen").clone();
    assert!(
        seen.contains(&(Some("backend.example".into()), Some("http/1.1".into()))),
        "{seen:?}"
    );
    assert!(
        seen.contains(&(Some("backend.example".into()), Some("h2".into()))),
        "{seen:?}"
    );
    for host in ["wrong-ca", "wrong-san"] {
        let got = request(addr, false, "GET", host, "/", &[])
            .await
            .expect("reply");
        let cause = got.header(ERROR_HEADER).unwrap_or_default();
        assert_eq!(got.status, 503, "{host}: {cause}");
        assert!(
            cause.starts_with("UF: ") && cause.contains("certificate"),
            "{host}: {cause}"
        );
    }
}

#[tokio::test]
async fn upstream_mtls_presents_the_client_certificate_from_sds() {
    let backend = echo_named("backend").await;
    let ca = Ca::new("ca");
    let front = tls_front(
        backend.addr,
        &ca.leaf(&["backend.example"], &[]),
        &[],
        Some(&ca.pem),
    )
    .await;
    let ads = FakeAds::start().await.expect("ads");
    let trust = Some(Vct::ValidationContext(validation(&ca.pem, vec![])));
    let clusters = vec![
        tls_cluster(
            "mtls",
            front.addr,
            client_ctx(
                "backend.example",
                common(None, Some("client-cert"), &[], trust.clone()),
            ),
        ),
        tls_cluster(
            "no-cert",
            front.addr,
            client_ctx("backend.example", common(None, None, &[], trust)),
        ),
    ];
    let vhosts = ["mtls", "no-cert"]
        .iter()
        .map(|c| vhost(c, &[c], vec![route(prefix("/"), to_cluster(c))]))
        .collect();
    push(
        &ads,
        &Config {
            listeners: vec![(
                "main".into(),
                http_listener_inline("main", route_config("r", vhosts)),
            )],
            routes: vec![],
            clusters,
            endpoints: vec![],
        },
    );
    let proxy = start_proxy(&ads).await;
    let addr = wait_listener(&proxy, "main").await;
    // Warming: until the client certificate arrives the cluster is not there.
    let warming = request(addr, false, "GET", "mtls", "/", &[])
        .await
        .expect("reply");
    assert_eq!(warming.status, 503);
    assert!(
        warming
            .header(ERROR_HEADER)
            .unwrap_or_default()
            .starts_with("NC: ")
    );
    ads.push(
        SECRET_TYPE,
        vec![cert_secret("client-cert", &ca.leaf(&["client"], &[]))],
    );
    get_until(addr, "mtls", "/", |g| g.status == 200).await;
    let refused = request(addr, false, "GET", "no-cert", "/", &[])
        .await
        .expect("reply");
    assert_eq!(refused.status, 503, "{:?}", refused.header(ERROR_HEADER));
}

#[tokio::test]
async fn tcp_proxy_terminates_and_originates_tls() {
    let tcp_echo = echo::start_tcp("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("tcp echo");
    let ca = Ca::new("ca");
    let front = tls_front(tcp_echo.addr, &ca.leaf(&["db.example"], &[]), &[], None).await;
    let leaf = ca.leaf(&["main.example"], &[]);
    let ads = FakeAds::start().await.expect("ads");
    let listener = with_tls(
        tcp_listener("main", "db"),
        downstream_socket(server_ctx(common(Some(&leaf), None, &[], None), false)),
    );
    let trust = Some(Vct::ValidationContext(validation(&ca.pem, vec![])));
    push(
        &ads,
        &Config {
            listeners: vec![("main".into(), listener)],
            routes: vec![],
            clusters: vec![tls_cluster(
                "db",
                front.addr,
                client_ctx("db.example", common(None, None, &[], trust)),
            )],
            endpoints: vec![],
        },
    );
    let proxy = start_proxy(&ads).await;
    let addr = wait_listener(&proxy, "main").await;
    let (mut s, _) = connect(addr, &opts(&ca, &[])).await.expect("handshake");
    s.write_all(b"ping over two TLS hops").await.expect("write");
    let mut buf = [0u8; 22];
    tokio::time::timeout(WAIT, s.read_exact(&mut buf))
        .await
        .expect("in time")
        .expect("read");
    assert_eq!(&buf, b"ping over two TLS hops");
    let seen = front.seen.lock().expect("seen").clone();
    assert_eq!(
        seen,
        vec![(Some("db.example".into()), None)],
        "the TCP proxy offers no ALPN"
    );
}

#[tokio::test]
async fn websocket_upgrades_reach_a_tls_upstream() {
    let backend = echo::start_http(Default::default(), "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("echo");
    let ca = Ca::new("ca");
    let front = tls_front(
        backend.addr,
        &ca.leaf(&["backend.example"], &[]),
        &["http/1.1"],
        None,
    )
    .await;
    let ads = FakeAds::start().await.expect("ads");
    let trust = Some(Vct::ValidationContext(validation(&ca.pem, vec![])));
    let cluster = tls_cluster(
        "ws",
        front.addr,
        client_ctx("backend.example", common(None, None, &[], trust)),
    );
    push(
        &ads,
        &Config {
            listeners: vec![("main".into(), http_listener_rds_with_fault("main", "r1"))],
            routes: vec![route_config(
                "r1",
                vec![vhost(
                    "all",
                    &["*"],
                    vec![route(prefix("/"), to_cluster("ws"))],
                )],
            )],
            clusters: vec![cluster],
            endpoints: vec![],
        },
    );
    let proxy = start_proxy(&ads).await;
    let addr = wait_listener(&proxy, "main").await;
    get_until(addr, "ws.example", "/", |g| g.status == 200).await;
    let up = upgrade_request(addr, "ws.example", "/chat", "websocket")
        .await
        .expect("upgrade");
    assert_eq!((up.status, up.echoed), (101, true), "{}", up.head);
    let seen = front.seen.lock().expect("seen").clone();
    assert!(
        seen.iter()
            .all(|(sni, _)| sni.as_deref() == Some("backend.example"))
    );
}

fn tls_check(checker: HealthChecker) -> envoy_types::pb::envoy::config::core::v3::HealthCheck {
    let ms = |n: u32| {
        Some(envoy_types::pb::google::protobuf::Duration {
            seconds: 0,
            nanos: i32::try_from(n * 1_000_000).unwrap_or(0),
        })
    };
    let one = Some(envoy_types::pb::google::protobuf::UInt32Value { value: 1 });
    envoy_types::pb::envoy::config::core::v3::HealthCheck {
        timeout: ms(500),
        interval: ms(50),
        no_traffic_interval: ms(50),
        unhealthy_threshold: one,
        healthy_threshold: one,
        health_checker: Some(checker),
        ..Default::default()
    }
}

/// Envoy runs a TLS cluster's health checks over its transport socket: SNI and CA checks
/// apply, only the context's own ALPN is offered, and a host whose handshake fails (wrong CA,
/// or a plaintext server) is marked failed.
#[tokio::test]
async fn health_checks_on_a_tls_cluster_use_its_tls_context() {
    let backend = echo_named("backend").await;
    let ca = Ca::new("ca");
    let wrong = Ca::new("wrong");
    let front = tls_front(
        backend.addr,
        &ca.leaf(&["backend.example"], &[]),
        &["h2", "http/1.1"],
        None,
    )
    .await;
    let trust = |pem: &str| {
        client_ctx(
            "backend.example",
            common(
                None,
                None,
                &[],
                Some(Vct::ValidationContext(validation(pem, vec![]))),
            ),
        )
    };
    let http = || {
        tls_check(HealthChecker::HttpHealthCheck(HttpHealthCheck {
            path: "/hc".into(),
            ..Default::default()
        }))
    };
    let tcp = || tls_check(HealthChecker::TcpHealthCheck(TcpHealthCheck::default()));
    let with = |name: &str, addr, ctx, check| c::Cluster {
        health_checks: vec![check],
        ..tls_cluster(name, addr, ctx)
    };
    let clusters = vec![
        with("http-ok", front.addr, trust(&ca.pem), http()),
        with("tcp-ok", front.addr, trust(&ca.pem), tcp()),
        with("http-wrong-ca", front.addr, trust(&wrong.pem), http()),
        with("tcp-plaintext", backend.addr, trust(&ca.pem), tcp()),
    ];
    let ads = FakeAds::start().await.expect("ads");
    push(
        &ads,
        &Config {
            listeners: vec![],
            routes: vec![],
            clusters,
            endpoints: vec![],
        },
    );
    let proxy = start_proxy(&ads).await;
    wait_flags(proxy.admin, "http-ok", front.addr, "").await;
    wait_flags(proxy.admin, "tcp-ok", front.addr, "").await;
    wait_flags(
        proxy.admin,
        "http-wrong-ca",
        front.addr,
        "/failed_active_hc",
    )
    .await;
    wait_flags(
        proxy.admin,
        "tcp-plaintext",
        backend.addr,
        "/failed_active_hc",
    )
    .await;
    let seen = front.seen.lock().expect("seen").clone();
    assert!(
        seen.iter()
            .all(|(sni, alpn)| sni.as_deref() == Some("backend.example") && alpn.is_none()),
        "health checks send the cluster's SNI and no ALPN of their own: {seen:?}"
    );
    assert!(!seen.is_empty());
    drop(proxy);
}
