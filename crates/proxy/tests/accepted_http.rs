//! Socket tests of connection-manager and route fields translation sets for Istio's defaults:
//! absolute-form URIs (HTTP_PROXY), path normalization, forwarded headers, attempt counts,
//! ORIGINAL_DST with `x-envoy-original-dst-host`, `require_tls`, `ignore_port_in_host_matching`
//! and CORS.

mod accepted;
mod common;

use accepted::*;
use common::*;
use envoy_types::pb::envoy::config::cluster::v3 as c;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;

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
