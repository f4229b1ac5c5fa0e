//! Socket tests of cluster fields translation sets for Istio's defaults: ring hash and maglev
//! with hash policies, generated hash cookies, priorities and panic threshold,
//! `previous_priorities`, upstream connection lifetime and STRICT_DNS.

mod accepted;
mod common;

use accepted::*;
use common::*;
use envoy_types::pb::envoy::config::cluster::v3 as c;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as e;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::google::protobuf::{Duration as PbDuration, UInt32Value};
use envoy_types::util::pack_any;
use plexus_testkit::eventually;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

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

#[tokio::test]
async fn priorities_fail_over_when_the_preferred_level_is_ejected() {
    let p0 = echo_named("p0").await;
    let p1 = echo_named("p1").await;
    let closed_port = plexus_testkit::ClosedPort::new().expect("closed port");
    let closed = closed_port.addr;
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

/// LOGICAL_DNS: the single host resolves to one address (the first of the answer), which
/// `/clusters` lists as the cluster's only endpoint; a second endpoint is refused by name.
#[tokio::test]
async fn logical_dns_cluster_connects_to_the_first_address() {
    let a = echo_named("a").await;
    let cl = dns_cluster(
        "logical",
        c::cluster::DiscoveryType::LogicalDns,
        "localhost",
        a.addr.port(),
        200,
    );
    let rc = route_config(
        "r",
        vec![vhost(
            "v",
            &["*"],
            vec![route(prefix("/"), to_cluster("logical"))],
        )],
    );
    let (ads, proxy) = run(vec![listener("main", rc, |_| {})], vec![cl.clone()]).await;
    let addr = proxy.listener_addr("main").expect("bound");
    let got = eventually(WAIT, "the resolved endpoint", || async {
        let got = request(addr, false, "GET", "h", "/", &[]).await.ok()?;
        (got.status == 200).then_some(got)
    })
    .await
    .expect("resolved");
    assert_eq!(got.json()["workload"], "a");
    let (_, body) = plexus_testkit::envoy::http_get(&format!("http://{}/clusters", proxy.admin))
        .await
        .expect("/clusters");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let cluster = v["clusters"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "logical"))
        .expect("cluster listed");
    let eps: Vec<String> = cluster["endpoints"]
        .as_array()
        .map(|eps| {
            eps.iter()
                .filter_map(|e| e["address"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(eps, vec![a.addr.to_string()]);

    let mut two = cl;
    if let Some(la) = two.load_assignment.as_mut() {
        let first = la.endpoints[0].lb_endpoints[0].clone();
        la.endpoints[0].lb_endpoints.push(first);
    }
    let err = plexus_proxy::config::Cluster::try_from(&two).expect_err("two endpoints");
    assert_eq!(err.field, "load_assignment.endpoints");
    drop(ads);
}
