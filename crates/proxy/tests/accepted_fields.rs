//! Runtime behaviour, with real sockets, of the fields the control plane sets for Istio's
//! defaults: absolute-form URIs (HTTP_PROXY), path normalization, forwarded headers,
//! `x-envoy-attempt-count`, consistent hashing, priorities, upstream connection lifetime,
//! ORIGINAL_DST clusters, `require_tls` and `ignore_port_in_host_matching`.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use envoy_types::pb::envoy::config::cluster::v3 as c;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as e;
use envoy_types::pb::envoy::config::listener::v3 as l;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as uh;
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration as PbDuration, UInt32Value};
use envoy_types::util::pack_any;
use plexus_testkit::{FakeAds, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn ms(n: i32) -> PbDuration {
    PbDuration {
        seconds: 0,
        nanos: n * 1_000_000,
    }
}

/// An HTTP listener on 127.0.0.1:0 with an inline route config and manager options.
fn listener(
    name: &str,
    rc: rt::RouteConfiguration,
    tweak: impl FnOnce(&mut hcm::HttpConnectionManager),
) -> (String, Any) {
    let mut m = hcm::HttpConnectionManager {
        stat_prefix: name.into(),
        http_filters: vec![hcm::HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(hcm::http_filter::ConfigType::TypedConfig(pack_any(
                Router::default(),
            ))),
            ..Default::default()
        }],
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::RouteConfig(
            rc,
        )),
        ..Default::default()
    };
    tweak(&mut m);
    let li = l::Listener {
        name: name.into(),
        address: Some(socket("127.0.0.1:0".parse().expect("addr"))),
        filter_chains: vec![l::FilterChain {
            filters: vec![l::Filter {
                name: "hcm".into(),
                config_type: Some(l::filter::ConfigType::TypedConfig(pack_any(m))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    (name.to_string(), pack_any(li))
}

async fn run(
    listeners: Vec<(String, Any)>,
    clusters: Vec<c::Cluster>,
) -> (FakeAds, plexus_proxy::ProxyHandle) {
    let ads = FakeAds::start().await.expect("ads");
    let names: Vec<String> = listeners.iter().map(|(n, _)| n.clone()).collect();
    push(
        &ads,
        &Config {
            listeners,
            routes: vec![],
            clusters,
            endpoints: vec![],
        },
    );
    let proxy = start_proxy(&ads).await;
    for n in names {
        wait_listener(&proxy, &n).await;
    }
    (ads, proxy)
}

fn with_retries(m: rt::RouteMatch, cluster: &str, n: u32) -> rt::Route {
    route(
        m,
        rt::route::Action::Route(rt::RouteAction {
            cluster_specifier: Some(rt::route_action::ClusterSpecifier::Cluster(cluster.into())),
            retry_policy: Some(rt::RetryPolicy {
                retry_on: "5xx".into(),
                num_retries: Some(UInt32Value { value: n }),
                retry_back_off: Some(rt::retry_policy::RetryBackOff {
                    base_interval: Some(ms(1)),
                    max_interval: Some(ms(2)),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    )
}

/// One raw HTTP/1.1 exchange (`Connection: close`), bounded by `WAIT`.
async fn raw(addr: SocketAddr, head: &str) -> String {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(head.as_bytes()).await.ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        Some(String::from_utf8_lossy(&out).into_owned())
    };
    tokio::time::timeout(WAIT, io)
        .await
        .ok()
        .flatten()
        .expect("raw exchange")
}

fn echo_json(resp: &str) -> serde_json::Value {
    let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

#[tokio::test]
async fn absolute_form_uri_routes_on_its_authority_end_to_end() {
    let reviews = echo_named("reviews").await;
    let other = echo_named("other").await;
    let rc = route_config(
        "http_proxy",
        vec![
            vhost(
                "reviews",
                &["reviews:9080"],
                vec![route(prefix("/"), to_cluster("reviews"))],
            ),
            vhost(
                "rest",
                &["*"],
                vec![route(prefix("/"), to_cluster("other"))],
            ),
        ],
    );
    let (_ads, proxy) = run(
        vec![
            listener("http_proxy", rc.clone(), |m| {
                m.http_protocol_options = Some(core::Http1ProtocolOptions {
                    allow_absolute_url: Some(BoolValue { value: true }),
                    ..Default::default()
                });
            }),
            listener("strict", rc, |m| {
                m.http_protocol_options = Some(core::Http1ProtocolOptions {
                    allow_absolute_url: Some(BoolValue { value: false }),
                    ..Default::default()
                });
            }),
        ],
        vec![
            static_cluster("reviews", &[reviews.addr]),
            static_cluster("other", &[other.addr]),
        ],
    )
    .await;
    let addr = proxy.listener_addr("http_proxy").expect("bound");
    // What an app with HTTP_PROXY sends: the absolute URI; Host may even disagree.
    let resp = raw(
        addr,
        "GET http://reviews:9080/reviews/1?x=1 HTTP/1.1\r\nHost: elsewhere\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let got = echo_json(&resp);
    assert_eq!(got["workload"], "reviews", "{resp}");
    assert_eq!(got["path"], "/reviews/1?x=1");
    assert_eq!(got["headers"]["host"], "reviews:9080");
    // Without allow_absolute_url the whole URL is the path, so `prefix: /` cannot match.
    let strict = proxy.listener_addr("strict").expect("bound");
    let resp = raw(
        strict,
        "GET http://reviews:9080/reviews/1 HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
}

#[tokio::test]
async fn normalize_path_routes_and_forwards_the_normalized_path() {
    let a = echo_named("a").await;
    let rc = route_config(
        "r",
        vec![vhost(
            "v",
            &["*"],
            vec![route(prefix("/public"), to_cluster("a"))],
        )],
    );
    let (_ads, proxy) = run(
        vec![
            listener("norm", rc.clone(), |m| {
                m.normalize_path = Some(BoolValue { value: true })
            }),
            listener("raw", rc, |_| {}),
        ],
        vec![static_cluster("a", &[a.addr])],
    )
    .await;
    let norm = proxy.listener_addr("norm").expect("bound");
    let got = request(norm, false, "GET", "h", "/x/../public/%7Efoo/./b", &[])
        .await
        .expect("request");
    assert_eq!(got.status, 200);
    assert_eq!(got.json()["path"], "/public/~foo/b");
    let escape = request(norm, false, "GET", "h", "/public/../admin", &[])
        .await
        .expect("request");
    assert_eq!(
        escape.status, 404,
        "dot segments are resolved before routing"
    );
    // Without normalize_path the path is routed and forwarded as received.
    let plain = proxy.listener_addr("raw").expect("bound");
    let got = request(plain, false, "GET", "h", "/public/../admin", &[])
        .await
        .expect("request");
    assert_eq!(
        (got.status, got.json()["path"].as_str()),
        (200, Some("/public/../admin"))
    );
}

#[tokio::test]
async fn attempt_count_and_forwarded_headers_reach_the_upstream() {
    let a = echo_named("a").await;
    let mut vh = vhost("v", &["*"], vec![with_retries(prefix("/"), "a", 2)]);
    vh.include_request_attempt_count = true;
    let counted = route_config("counted", vec![vh]);
    let plain = route_config(
        "plain",
        vec![vhost("v", &["*"], vec![with_retries(prefix("/"), "a", 2)])],
    );
    let (_ads, proxy) = run(
        vec![
            listener("edge", counted, |m| {
                m.use_remote_address = Some(BoolValue { value: true })
            }),
            listener("sidecar", plain, |_| {}),
        ],
        vec![static_cluster("a", &[a.addr])],
    )
    .await;
    let edge = proxy.listener_addr("edge").expect("bound");
    let ok = request(
        edge,
        false,
        "GET",
        "h",
        "/",
        &[("x-forwarded-for", "1.2.3.4")],
    )
    .await
    .expect("request");
    let h = &ok.json()["headers"];
    assert_eq!(h["x-envoy-attempt-count"], "1");
    assert_eq!(h["x-forwarded-for"], "1.2.3.4,127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-envoy-external-address"], "127.0.0.1");
    // Every attempt fails: the last one that reached the upstream was attempt 3.
    let failed = request(edge, false, "GET", "h", "/", &[("x-echo-status", "503")])
        .await
        .expect("request");
    assert_eq!(failed.status, 503);
    assert_eq!(failed.json()["headers"]["x-envoy-attempt-count"], "3");
    let side = proxy.listener_addr("sidecar").expect("bound");
    let got = request(
        side,
        false,
        "GET",
        "h",
        "/",
        &[("x-forwarded-for", "1.2.3.4")],
    )
    .await
    .expect("request");
    let h = &got.json()["headers"];
    assert_eq!(h["x-forwarded-for"], "1.2.3.4");
    assert!(
        h.get("x-envoy-attempt-count").is_none() && h.get("x-envoy-external-address").is_none()
    );
}

fn hashed_route(policy: rt::route_action::hash_policy::PolicySpecifier) -> rt::Route {
    route(
        prefix("/"),
        rt::route::Action::Route(rt::RouteAction {
            cluster_specifier: Some(rt::route_action::ClusterSpecifier::Cluster("h".into())),
            hash_policy: vec![rt::route_action::HashPolicy {
                policy_specifier: Some(policy),
                terminal: false,
            }],
            ..Default::default()
        }),
    )
}

#[tokio::test]
async fn ring_hash_and_maglev_keep_each_key_on_one_endpoint() {
    use rt::route_action::hash_policy::{self as hp, PolicySpecifier as P};
    let echoes = [
        echo_named("e0").await,
        echo_named("e1").await,
        echo_named("e2").await,
    ];
    let addrs: Vec<SocketAddr> = echoes.iter().map(|e| e.addr).collect();
    for policy in [c::cluster::LbPolicy::RingHash, c::cluster::LbPolicy::Maglev] {
        let mut cl = static_cluster("h", &addrs);
        cl.lb_policy = policy as i32;
        let header = P::Header(hp::Header {
            header_name: "x-user".into(),
            regex_rewrite: None,
        });
        let query = P::QueryParameter(hp::QueryParameter { name: "u".into() });
        let (_ads, proxy) = run(
            vec![
                listener(
                    "hdr",
                    route_config("a", vec![vhost("v", &["*"], vec![hashed_route(header)])]),
                    |_| {},
                ),
                listener(
                    "qry",
                    route_config("b", vec![vhost("v", &["*"], vec![hashed_route(query)])]),
                    |_| {},
                ),
            ],
            vec![cl],
        )
        .await;
        let hdr = proxy.listener_addr("hdr").expect("bound");
        let qry = proxy.listener_addr("qry").expect("bound");
        let mut seen = std::collections::BTreeSet::new();
        for user in 0..12 {
            let u = format!("user{user}");
            let mut picks = std::collections::BTreeSet::new();
            for _ in 0..3 {
                let query_path = format!("/?u={u}");
                let by_header =
                    request(hdr, false, "GET", "h", "/", &[("x-user", u.as_str())]).await;
                let by_query = request(qry, false, "GET", "h", &query_path, &[]).await;
                for got in [by_header, by_query] {
                    let got = got.expect("request");
                    picks.insert(got.json()["workload"].as_str().unwrap_or("").to_string());
                }
            }
            // Both listeners hash the same key, so they agree too.
            assert_eq!(picks.len(), 1, "{policy:?}: {u} went to {picks:?}");
            seen.extend(picks);
        }
        assert!(seen.len() >= 2, "{policy:?}: 12 keys all on {seen:?}");
    }
}

#[tokio::test]
async fn hash_cookie_is_generated_then_followed() {
    use rt::route_action::hash_policy::{self as hp, PolicySpecifier as P};
    let echoes = [
        echo_named("e0").await,
        echo_named("e1").await,
        echo_named("e2").await,
    ];
    let addrs: Vec<SocketAddr> = echoes.iter().map(|e| e.addr).collect();
    let mut cl = static_cluster("h", &addrs);
    cl.lb_policy = c::cluster::LbPolicy::RingHash as i32;
    let cookie = P::Cookie(hp::Cookie {
        name: "session".into(),
        ttl: Some(PbDuration {
            seconds: 60,
            nanos: 0,
        }),
        path: "/".into(),
        attributes: vec![],
    });
    let rc = route_config("a", vec![vhost("v", &["*"], vec![hashed_route(cookie)])]);
    let (_ads, proxy) = run(vec![listener("main", rc, |_| {})], vec![cl]).await;
    let addr = proxy.listener_addr("main").expect("bound");
    let first = request(addr, false, "GET", "h", "/", &[])
        .await
        .expect("request");
    let set = first.header("set-cookie").expect("generated cookie");
    assert!(
        set.starts_with("session=\"") && set.ends_with("; Max-Age=60; Path=/; HttpOnly"),
        "{set}"
    );
    let pair = set.split(';').next().unwrap_or_default().to_string();
    let want = first.json()["workload"].clone();
    for _ in 0..6 {
        let got = request(addr, false, "GET", "h", "/", &[("cookie", pair.as_str())])
            .await
            .expect("request");
        assert_eq!(got.json()["workload"], want);
        assert!(got.header("set-cookie").is_none());
    }
}

fn prioritized(name: &str, groups: &[(u32, SocketAddr)]) -> c::Cluster {
    let mut cl = static_cluster(name, &[]);
    if let Some(la) = cl.load_assignment.as_mut() {
        la.endpoints = groups
            .iter()
            .map(|(prio, addr)| e::LocalityLbEndpoints {
                priority: *prio,
                ..lb_endpoints(&[*addr]).remove(0)
            })
            .collect();
    }
    cl
}

#[tokio::test]
async fn priorities_fail_over_when_the_preferred_level_is_ejected() {
    let p0 = echo_named("p0").await;
    let p1 = echo_named("p1").await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let steady = prioritized("steady", &[(0, p0.addr), (1, p1.addr)]);
    let mut failing = prioritized("failing", &[(0, closed), (1, p1.addr)]);
    failing.outlier_detection = Some(c::OutlierDetection {
        consecutive_5xx: Some(UInt32Value { value: 1 }),
        interval: Some(PbDuration {
            seconds: 10,
            nanos: 0,
        }),
        base_ejection_time: Some(PbDuration {
            seconds: 30,
            nanos: 0,
        }),
        max_ejection_percent: Some(UInt32Value { value: 100 }),
        ..Default::default()
    });
    failing.common_lb_config = Some(c::cluster::CommonLbConfig {
        healthy_panic_threshold: Some(envoy_types::pb::envoy::r#type::v3::Percent { value: 0.0 }),
        ..Default::default()
    });
    let rc = route_config(
        "r",
        vec![vhost(
            "v",
            &["*"],
            vec![
                route(prefix("/steady"), to_cluster("steady")),
                route(prefix("/failing"), to_cluster("failing")),
            ],
        )],
    );
    let (_ads, proxy) = run(vec![listener("main", rc, |_| {})], vec![steady, failing]).await;
    let addr = proxy.listener_addr("main").expect("bound");
    for _ in 0..5 {
        let got = request(addr, false, "GET", "h", "/steady", &[])
            .await
            .expect("request");
        assert_eq!(
            got.json()["workload"],
            "p0",
            "priority 0 takes all traffic while healthy"
        );
    }
    // The first request fails on the closed priority-0 host, which is then ejected.
    let first = request(addr, false, "GET", "h", "/failing", &[])
        .await
        .expect("request");
    assert_eq!(first.status, 503);
    for _ in 0..5 {
        let got = request(addr, false, "GET", "h", "/failing", &[])
            .await
            .expect("request");
        assert_eq!(
            (got.status, got.json()["workload"].as_str()),
            (200, Some("p1"))
        );
    }
}

/// An HTTP/1.1 upstream that counts connections opened and closed.
async fn counting_upstream() -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let lis = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = lis.local_addr().expect("addr");
    let (opened, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (o, cl) = (opened.clone(), closed.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = lis.accept().await {
            o.fetch_add(1, Ordering::SeqCst);
            let cl = cl.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
                cl.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, opened, closed)
}

fn with_pool(mut cl: c::Cluster, opts: core::HttpProtocolOptions) -> c::Cluster {
    let o = uh::HttpProtocolOptions {
        common_http_protocol_options: Some(opts),
        upstream_protocol_options: Some(uh::http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
            uh::http_protocol_options::ExplicitHttpConfig {
                protocol_config: Some(
                    uh::http_protocol_options::explicit_http_config::ProtocolConfig::HttpProtocolOptions(
                        Default::default(),
                    ),
                ),
            },
        )),
        ..Default::default()
    };
    cl.typed_extension_protocol_options.insert(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".into(),
        pack_any(o),
    );
    cl
}

#[tokio::test]
async fn upstream_connections_retire_per_common_http_protocol_options() {
    let (idle_up, _, idle_closed) = counting_upstream().await;
    let (max_up, max_opened, _) = counting_upstream().await;
    let (age_up, _, age_closed) = counting_upstream().await;
    let (keep_up, _, keep_closed) = counting_upstream().await;
    let idle = with_pool(
        static_cluster("idle", &[idle_up]),
        core::HttpProtocolOptions {
            idle_timeout: Some(ms(150)),
            ..Default::default()
        },
    );
    let max = with_pool(
        static_cluster("max", &[max_up]),
        core::HttpProtocolOptions {
            max_requests_per_connection: Some(UInt32Value { value: 1 }),
            ..Default::default()
        },
    );
    let age = with_pool(
        static_cluster("age", &[age_up]),
        core::HttpProtocolOptions {
            max_connection_duration: Some(ms(200)),
            ..Default::default()
        },
    );
    let keep = static_cluster("keep", &[keep_up]);
    let routes = ["idle", "max", "age", "keep"]
        .iter()
        .map(|n| route(prefix(&format!("/{n}")), to_cluster(n)))
        .collect();
    let rc = route_config("r", vec![vhost("v", &["*"], routes)]);
    let (_ads, proxy) = run(
        vec![listener("main", rc, |_| {})],
        vec![idle, max, age, keep],
    )
    .await;
    let addr = proxy.listener_addr("main").expect("bound");
    for path in ["/idle", "/age", "/keep"] {
        let got = request(addr, false, "GET", "h", path, &[])
            .await
            .expect("request");
        assert_eq!(got.status, 200);
    }
    for _ in 0..4 {
        let got = request(addr, false, "GET", "h", "/max", &[])
            .await
            .expect("request");
        assert_eq!(got.status, 200);
    }
    assert_eq!(
        max_opened.load(Ordering::SeqCst),
        4,
        "one request per connection"
    );
    eventually(WAIT, "idle connection closed", || async {
        (idle_closed.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await
    .expect("idle_timeout closes the pooled connection");
    eventually(WAIT, "old connection closed", || async {
        (age_closed.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await
    .expect("max_connection_duration closes the pooled connection");
    // Envoy's default idle timeout is an hour: that connection is still open.
    assert_eq!(keep_closed.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn original_dst_cluster_follows_the_header_and_require_tls_redirects() {
    let a = echo_named("a").await;
    let passthrough = c::Cluster {
        name: "PassthroughCluster".into(),
        lb_policy: c::cluster::LbPolicy::ClusterProvided as i32,
        cluster_discovery_type: Some(c::cluster::ClusterDiscoveryType::Type(
            c::cluster::DiscoveryType::OriginalDst as i32,
        )),
        lb_config: Some(c::cluster::LbConfig::OriginalDstLbConfig(
            c::cluster::OriginalDstLbConfig {
                use_http_header: true,
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    let mut secure = vhost(
        "secure",
        &["secure.test"],
        vec![route(prefix("/"), to_cluster("PassthroughCluster"))],
    );
    secure.require_tls = rt::virtual_host::TlsRequirementType::All as i32;
    let mut rc = route_config(
        "r",
        vec![
            secure,
            vhost(
                "v",
                &["h"],
                vec![route(prefix("/"), to_cluster("PassthroughCluster"))],
            ),
        ],
    );
    rc.ignore_port_in_host_matching = true;
    let (_ads, proxy) = run(vec![listener("main", rc, |_| {})], vec![passthrough]).await;
    let addr = proxy.listener_addr("main").expect("bound");
    let target = a.addr.to_string();
    // `h:1234` only matches domain `h` because the port is ignored.
    let got = request(
        addr,
        false,
        "GET",
        "h:1234",
        "/x",
        &[("x-envoy-original-dst-host", target.as_str())],
    )
    .await
    .expect("request");
    assert_eq!(
        (got.status, got.json()["workload"].as_str()),
        (200, Some("a"))
    );
    let bad = request(
        addr,
        false,
        "GET",
        "h",
        "/x",
        &[("x-envoy-original-dst-host", "not-an-address")],
    )
    .await
    .expect("request");
    assert_eq!(bad.status, 503);
    let redirect = request(addr, false, "GET", "secure.test:8080", "/p?q=1", &[])
        .await
        .expect("request");
    assert_eq!(redirect.status, 301);
    assert_eq!(
        redirect.header("location").as_deref(),
        Some("https://secure.test:8080/p?q=1")
    );
}

#[tokio::test]
async fn previous_priorities_send_the_retry_to_the_next_level() {
    use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
    let flaky = plexus_testkit::echo::start_http(
        plexus_testkit::echo::EchoConfig {
            workload: "flaky".into(),
            fail_fraction: 1.0,
            ..Default::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("echo");
    let b = echo_named("b").await;
    let cl = prioritized("prio", &[(0, flaky.addr), (1, b.addr)]);
    let mut spread = with_retries(prefix("/spread"), "prio", 1);
    if let Some(rt::route::Action::Route(a)) = spread.action.as_mut()
        && let Some(p) = a.retry_policy.as_mut()
    {
        p.retry_priority = Some(rt::retry_policy::RetryPriority {
            name: "envoy.retry_priorities.previous_priorities".into(),
            config_type: Some(rt::retry_policy::retry_priority::ConfigType::TypedConfig(
                pack_any(PreviousPrioritiesConfig {
                    update_frequency: 1,
                }),
            )),
        });
    }
    let same = with_retries(prefix("/same"), "prio", 1);
    let rc = route_config("r", vec![vhost("v", &["*"], vec![spread, same])]);
    let (_ads, proxy) = run(vec![listener("main", rc, |_| {})], vec![cl]).await;
    let addr = proxy.listener_addr("main").expect("bound");
    for _ in 0..3 {
        let got = request(addr, false, "GET", "h", "/spread", &[])
            .await
            .expect("request");
        assert_eq!(
            (got.status, got.json()["workload"].as_str()),
            (200, Some("b"))
        );
        let got = request(addr, false, "GET", "h", "/same", &[])
            .await
            .expect("request");
        assert_eq!(
            (got.status, got.json()["workload"].as_str()),
            (503, Some("flaky"))
        );
    }
}

#[tokio::test]
async fn cors_policy_answers_preflights_and_decorates_responses() {
    use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors, CorsPolicy};
    use envoy_types::pb::envoy::r#type::matcher::v3 as m;
    let a = echo_named("a").await;
    let policy = CorsPolicy {
        allow_origin_string_match: vec![m::StringMatcher {
            match_pattern: Some(m::string_matcher::MatchPattern::Exact(
                "https://example.com".into(),
            )),
            ignore_case: false,
        }],
        allow_methods: "GET,POST".into(),
        allow_headers: "x-custom".into(),
        expose_headers: "x-reply".into(),
        max_age: "86400".into(),
        allow_credentials: Some(BoolValue { value: true }),
        forward_not_matching_preflights: Some(BoolValue { value: true }),
        ..Default::default()
    };
    let mut r = route(prefix("/"), to_cluster("a"));
    r.typed_per_filter_config
        .insert("envoy.filters.http.cors".into(), pack_any(policy));
    let rc = route_config("r", vec![vhost("v", &["*"], vec![r])]);
    let cors_filter = hcm::HttpFilter {
        name: "envoy.filters.http.cors".into(),
        config_type: Some(hcm::http_filter::ConfigType::TypedConfig(pack_any(Cors {}))),
        ..Default::default()
    };
    let (_ads, proxy) = run(
        vec![listener("main", rc, |m| {
            m.http_filters.insert(0, cors_filter)
        })],
        vec![static_cluster("a", &[a.addr])],
    )
    .await;
    let addr = proxy.listener_addr("main").expect("bound");
    let allowed = ("origin", "https://example.com");
    let preflight = ("access-control-request-method", "POST");
    let got = request(addr, false, "OPTIONS", "h", "/x", &[allowed, preflight])
        .await
        .expect("request");
    assert_eq!(got.status, 200);
    assert!(got.body.is_empty(), "answered by the proxy, not the echo");
    for (name, want) in [
        ("access-control-allow-origin", "https://example.com"),
        ("access-control-allow-methods", "GET,POST"),
        ("access-control-allow-headers", "x-custom"),
        ("access-control-max-age", "86400"),
        ("access-control-allow-credentials", "true"),
    ] {
        assert_eq!(got.header(name).as_deref(), Some(want), "{name}");
    }
    let other = ("origin", "https://evil.test");
    let got = request(addr, false, "OPTIONS", "h", "/x", &[other, preflight])
        .await
        .expect("request");
    assert_eq!(
        got.json()["workload"],
        "a",
        "a non-matching preflight goes upstream"
    );
    assert!(got.header("access-control-allow-origin").is_none());
    let got = request(addr, false, "GET", "h", "/x", &[allowed])
        .await
        .expect("request");
    assert_eq!(got.json()["workload"], "a");
    assert_eq!(
        got.header("access-control-allow-origin").as_deref(),
        Some("https://example.com")
    );
    assert_eq!(
        got.header("access-control-expose-headers").as_deref(),
        Some("x-reply")
    );
    let got = request(addr, false, "GET", "h", "/x", &[other])
        .await
        .expect("request");
    assert!(got.header("access-control-allow-origin").is_none());
}

fn chain(filter: Any, port: Option<u16>) -> l::FilterChain {
    l::FilterChain {
        filter_chain_match: port.map(|p| l::FilterChainMatch {
            destination_port: Some(UInt32Value {
                value: u32::from(p),
            }),
            ..Default::default()
        }),
        filters: vec![l::Filter {
            name: "net".into(),
            config_type: Some(l::filter::ConfigType::TypedConfig(filter)),
        }],
        ..Default::default()
    }
}

/// A free loopback port (the OS picks it; the listener binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

#[tokio::test]
async fn capture_listeners_pick_chains_by_destination_port_and_register_unbound() {
    use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
    let a = echo_named("a").await;
    let tcp_echo = plexus_testkit::echo::start_tcp("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("tcp echo");
    let rc = route_config(
        "in",
        vec![vhost(
            "v",
            &["*"],
            vec![route(prefix("/"), to_cluster("a"))],
        )],
    );
    let (_, hcm_any) = listener("x", rc, |_| {});
    let hcm_filter = {
        let li: l::Listener = prost::Message::decode(hcm_any.value.as_slice()).expect("listener");
        li.filter_chains[0].filters[0].clone()
    };
    let hcm_cfg = match hcm_filter.config_type {
        Some(l::filter::ConfigType::TypedConfig(a)) => a,
        _ => panic!("typed config"),
    };
    let tcp_cfg = pack_any(tcp::TcpProxy {
        stat_prefix: "t".into(),
        cluster_specifier: Some(tcp::tcp_proxy::ClusterSpecifier::Cluster("tcp".into())),
        ..Default::default()
    });
    let capture = |name: &str, port: u16, match_port: u16| l::Listener {
        name: name.into(),
        address: Some(socket(SocketAddr::from(([127, 0, 0, 1], port)))),
        filter_chains: vec![chain(hcm_cfg.clone(), Some(match_port))],
        default_filter_chain: Some(chain(tcp_cfg.clone(), None)),
        listener_filters: vec![l::ListenerFilter {
            name: "envoy.filters.listener.original_dst".into(),
            config_type: Some(l::listener_filter::ConfigType::TypedConfig(pack_any(
                OriginalDst {},
            ))),
            ..Default::default()
        }],
        ..Default::default()
    };
    let (p1, p2) = (free_port(), free_port());
    // The unbound listener's port is held by the test: binding it would fail the push.
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let held_port = held.local_addr().expect("addr").port();
    let unbound = l::Listener {
        bind_to_port: Some(BoolValue { value: false }),
        ..capture("unbound", held_port, 1)
    };
    let listeners = vec![
        ("matched".to_string(), pack_any(capture("matched", p1, p1))),
        ("default".to_string(), pack_any(capture("default", p2, 1))),
        ("unbound".to_string(), pack_any(unbound)),
    ];
    let (_ads, proxy) = run(
        listeners,
        vec![
            static_cluster("a", &[a.addr]),
            static_cluster("tcp", &[tcp_echo.addr]),
        ],
    )
    .await;
    // Destination port matches the chain: HTTP to `a`.
    let matched = proxy.listener_addr("matched").expect("bound");
    let got = request(matched, false, "GET", "h", "/in", &[])
        .await
        .expect("request");
    assert_eq!(
        (got.status, got.json()["workload"].as_str()),
        (200, Some("a"))
    );
    // No chain matches: the default chain proxies TCP to the byte echo.
    let default = proxy.listener_addr("default").expect("bound");
    let echoed = tokio::time::timeout(WAIT, async {
        let mut s = tokio::net::TcpStream::connect(default).await.ok()?;
        s.write_all(b"ping").await.ok()?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.ok()?;
        Some(buf)
    })
    .await
    .ok()
    .flatten();
    assert_eq!(echoed, Some(*b"ping"));
    // bind_to_port: false is registered at its configured address without taking the port.
    let unbound = proxy.listener_addr("unbound").expect("registered");
    assert_eq!(unbound.port(), held_port);
    drop(held);
}

#[tokio::test]
async fn tls_inspector_matches_chains_by_sni_without_terminating_tls() {
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
    let api = plexus_testkit::echo::start_tcp("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("tcp echo");
    let to = |cluster: &str| {
        pack_any(tcp::TcpProxy {
            stat_prefix: cluster.into(),
            cluster_specifier: Some(tcp::tcp_proxy::ClusterSpecifier::Cluster(cluster.into())),
            ..Default::default()
        })
    };
    let sni_chain = l::FilterChain {
        filter_chain_match: Some(l::FilterChainMatch {
            server_names: vec!["*.payments.test".into()],
            transport_protocol: "tls".into(),
            ..Default::default()
        }),
        ..chain(to("api"), None)
    };
    let li = l::Listener {
        name: "tls".into(),
        address: Some(socket("127.0.0.1:0".parse().expect("addr"))),
        filter_chains: vec![sni_chain],
        ..Default::default()
    };
    let (_ads, proxy) = run(
        vec![("tls".into(), pack_any(li))],
        vec![static_cluster("api", &[api.addr])],
    )
    .await;
    let addr = proxy.listener_addr("tls").expect("bound");
    let exchange = |bytes: Vec<u8>| async move {
        let io = async {
            let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
            s.write_all(&bytes).await.ok()?;
            let mut buf = vec![0u8; bytes.len()];
            s.read_exact(&mut buf).await.ok()?;
            Some(buf)
        };
        tokio::time::timeout(WAIT, io).await.ok().flatten()
    };
    // The ClientHello goes through untouched to the chain chosen by its SNI.
    let hello = plexus_proxy::tls_inspect::client_hello("api.payments.test");
    assert_eq!(exchange(hello.clone()).await, Some(hello));
    // Another name, or plaintext, matches no chain: the connection is closed.
    let other = plexus_proxy::tls_inspect::client_hello("api.other.test");
    assert_eq!(exchange(other).await, None);
    assert_eq!(exchange(b"GET / HTTP/1.1\r\n\r\n".to_vec()).await, None);
}

// `dns_refresh_rate` is deprecated in the API but is what translation sends Envoy 1.40.
#[allow(deprecated)]
#[tokio::test]
async fn strict_dns_cluster_resolves_its_hosts() {
    let a = echo_named("a").await;
    let mut cl = static_cluster("dns", &[a.addr]);
    cl.cluster_discovery_type = Some(c::cluster::ClusterDiscoveryType::Type(
        c::cluster::DiscoveryType::StrictDns as i32,
    ));
    cl.dns_lookup_family = c::cluster::DnsLookupFamily::V4Only as i32;
    cl.dns_refresh_rate = Some(ms(200));
    if let Some(e::lb_endpoint::HostIdentifier::Endpoint(ep)) = cl
        .load_assignment
        .as_mut()
        .and_then(|la| la.endpoints.first_mut())
        .and_then(|g| g.lb_endpoints.first_mut())
        .and_then(|lbe| lbe.host_identifier.as_mut())
        && let Some(core::Address {
            address: Some(core::address::Address::SocketAddress(sa)),
        }) = ep.address.as_mut()
    {
        // Resolved from /etc/hosts: no traffic leaves the machine.
        sa.address = "localhost".into();
    }
    let rc = route_config(
        "r",
        vec![vhost(
            "v",
            &["*"],
            vec![route(prefix("/"), to_cluster("dns"))],
        )],
    );
    let (_ads, proxy) = run(vec![listener("main", rc, |_| {})], vec![cl]).await;
    let addr = proxy.listener_addr("main").expect("bound");
    let got = eventually(WAIT, "DNS endpoints", || async {
        let got = request(addr, false, "GET", "h", "/", &[]).await.ok()?;
        (got.status == 200).then_some(got)
    })
    .await
    .expect("resolved");
    assert_eq!(got.json()["workload"], "a");
}
