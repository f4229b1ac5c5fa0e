//! Table-driven checks of Istio's HTTP route rules on small configs: route order and
//! catch-all truncation, default routes and Istio defaults, match selectors, weights, retry
//! policy conversion, gRPC status names.

mod common;

use common::rules::*;
use envoy_types::pb::envoy::config::cluster::v3::cluster;
use envoy_types::pb::envoy::config::route::v3::route;
use plexus_api::kinds::HttpRetry;
use plexus_pilot::translate::{self, retry_policy};

/// (what, extra config, expected (route name, target)).
type RouteCase<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);
/// (what, retries, consistent hash, expected (retry_on, codes, host predicates)).
type RetryCase<'a> = (
    &'a str,
    Option<HttpRetry>,
    bool,
    Option<(&'a str, Vec<u32>, usize)>,
);

#[test]
fn http_route_rules() {
    let cases: Vec<RouteCase<'_>> = vec![
        (
            "no VirtualService: Istio's default route",
            String::new(),
            vec![("default", C)],
        ),
        (
            "catch-all truncates later routes",
            vs(
                "[{name: a, route: [{destination: {host: svc}}]}, {name: b, route: [{destination: {host: svc}}]}]",
            ),
            vec![("a", C)],
        ),
        (
            "prefix / without conditions is a catch-all too",
            vs(
                "[{name: a, match: [{uri: {prefix: /}}], route: [{destination: {host: svc}}]}, {name: b, route: [{destination: {host: svc}}]}]",
            ),
            vec![("a", C)],
        ),
        (
            "nothing matches: no fallback (404)",
            vs("[{name: a, match: [{uri: {prefix: /x}}], route: [{destination: {host: svc}}]}]"),
            vec![("a", C)],
        ),
        (
            "sourceLabels select client proxies",
            vs(
                "[{name: web, match: [{sourceLabels: {role: web}}], route: [{destination: {host: svc}}]}, {name: db, match: [{sourceLabels: {role: db}}], route: [{destination: {host: svc}}]}]",
            ),
            vec![("web", C)],
        ),
        (
            "port selects the service port",
            vs(
                "[{name: p81, match: [{port: 81}], route: [{destination: {host: svc}}]}, {name: p80, match: [{port: 80}], route: [{destination: {host: svc}}]}]",
            ),
            vec![("p80", C)],
        ),
        (
            "zero weights are dropped, others kept in order",
            vs(
                "[{name: w, route: [{destination: {host: svc, subset: v1}, weight: 90}, {destination: {host: svc}, weight: 10}, {destination: {host: svc}, weight: 0}]}]",
            ),
            vec![(
                "w",
                "outbound|80|v1|svc.app.svc.cluster.local=90,outbound|80||svc.app.svc.cluster.local=10",
            )],
        ),
        (
            "each match block is its own route; names joined",
            vs(
                "[{name: r, match: [{name: a, uri: {exact: /a}}, {name: b, uri: {exact: /b}}], redirect: {uri: /c}}]",
            ),
            vec![("r.a", "redirect"), ("r.b", "redirect")],
        ),
        (
            "gateways without mesh: not for sidecars",
            format!(
                "{}  gateways: [gw]\n",
                vs("[{name: a, route: [{destination: {host: svc}}]}]")
            ),
            vec![("default", C)],
        ),
    ];
    for (what, extra, want) in cases {
        let g = translated(&extra, &client());
        let got = svc_routes(&g, "80");
        let want: Vec<(String, String)> = want
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn istio_route_defaults() {
    let g = translated(&vs("[{route: [{destination: {host: svc}}]}]"), &client());
    let vh = &route_config(&g, "80").virtual_hosts[0];
    let Some(route::Action::Route(a)) = &vh.routes[0].action else {
        panic!("route")
    };
    let t = a.timeout.as_ref().expect("timeout");
    assert_eq!(
        (t.seconds, t.nanos),
        (0, 0),
        "Istio disables the route timeout"
    );
    let r = a.retry_policy.as_ref().expect("default retry policy");
    assert_eq!(r.retry_on, translate::DEFAULT_RETRY_ON);
    assert_eq!(r.num_retries.as_ref().map(|n| n.value), Some(2));
    assert_eq!(r.retry_host_predicate.len(), 1);
    let cl = cluster_named(&g, C);
    assert_eq!(cl.lb_policy, cluster::LbPolicy::LeastRequest as i32);
    let th = &cl.circuit_breakers.as_ref().expect("cb").thresholds[0];
    assert_eq!(th.max_connections.as_ref().map(|v| v.value), Some(u32::MAX));
    let ct = cl.connect_timeout.as_ref().expect("connect timeout");
    assert_eq!(ct.seconds, 10);
}

#[test]
fn retry_policy_table() {
    let retry = |attempts: Option<i32>, on: Option<&str>| HttpRetry {
        attempts,
        retry_on: on.map(String::from),
        ..Default::default()
    };
    let cases: Vec<RetryCase<'_>> = vec![
        (
            "default",
            None,
            false,
            Some((translate::DEFAULT_RETRY_ON, vec![], 1)),
        ),
        (
            "default under consistent hash: no previous_hosts",
            None,
            true,
            Some((translate::DEFAULT_RETRY_ON, vec![], 0)),
        ),
        (
            "attempts 0 disables",
            Some(retry(Some(0), None)),
            false,
            None,
        ),
        (
            "codes become retriable_status_codes",
            Some(retry(Some(3), Some("gateway-error,503, 504"))),
            false,
            Some(("gateway-error,retriable-status-codes", vec![503, 504], 1)),
        ),
        (
            "gRPC conditions kept",
            Some(retry(Some(1), Some("cancelled,resource-exhausted"))),
            false,
            Some(("cancelled,resource-exhausted", vec![], 1)),
        ),
        (
            "retryOn unset keeps Istio's default conditions",
            Some(retry(Some(5), None)),
            false,
            Some((translate::DEFAULT_RETRY_ON, vec![], 1)),
        ),
    ];
    for (what, input, hashing, want) in cases {
        let got = retry_policy(input.as_ref(), hashing);
        match (got, want) {
            (None, None) => {}
            (Some(p), Some((on, codes, predicates))) => {
                assert_eq!(p.retry_on, on, "{what}");
                assert_eq!(p.retriable_status_codes, codes, "{what}");
                assert_eq!(p.retry_host_predicate.len(), predicates, "{what}");
            }
            (got, want) => panic!("{what}: got {got:?}, want {want:?}"),
        }
    }
    let ignore = HttpRetry {
        attempts: Some(2),
        retry_ignore_previous_hosts: Some(false),
        ..Default::default()
    };
    assert!(
        retry_policy(Some(&ignore), false)
            .expect("policy")
            .retry_host_predicate
            .is_empty()
    );
}

#[test]
fn grpc_status_names() {
    assert_eq!(translate::grpc_code("UNAVAILABLE"), Some(14));
    assert_eq!(translate::grpc_code("OK"), Some(0));
    assert_eq!(translate::grpc_code("14"), None);
}

/// Whether the cluster's upstream HTTP protocol options ask for HTTP/2.
fn upstream_h2(g: &translate::Generated, name: &str) -> bool {
    use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
        HttpProtocolOptions, http_protocol_options as hpo,
    };
    use prost::Message;
    let any = cluster_named(g, name)
        .typed_extension_protocol_options
        .get("envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
        .expect("HTTP protocol options");
    let opts = HttpProtocolOptions::decode(any.value.as_slice()).expect("decodes");
    matches!(
        opts.upstream_protocol_options,
        Some(hpo::UpstreamProtocolOptions::ExplicitHttpConfig(
            hpo::ExplicitHttpConfig {
                protocol_config: Some(
                    hpo::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(_)
                ),
            }
        ))
    )
}

#[test]
fn h2_upgrade_policy_from_destination_rule_and_mesh() {
    let dr = |policy: &str| {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: svc, namespace: app}}\nspec:\n  host: svc\n  trafficPolicy: {{connectionPool: {{http: {{h2UpgradePolicy: {policy}}}}}}}\n"
        )
    };
    let upgrade = plexus_model::MeshConfig {
        h2_upgrade: true,
        ..Default::default()
    };
    let cases = [
        (
            "no rule, mesh default DO_NOT_UPGRADE",
            String::new(),
            false,
            false,
        ),
        ("rule UPGRADE", dr("UPGRADE"), false, true),
        (
            "rule DEFAULT follows the mesh (off)",
            dr("DEFAULT"),
            false,
            false,
        ),
        ("no rule, mesh UPGRADE", String::new(), true, true),
        (
            "rule DEFAULT follows the mesh (on)",
            dr("DEFAULT"),
            true,
            true,
        ),
        (
            "rule DO_NOT_UPGRADE beats the mesh",
            dr("DO_NOT_UPGRADE"),
            true,
            false,
        ),
    ];
    for (what, extra, mesh_upgrade, want) in cases {
        let mesh = if mesh_upgrade {
            upgrade.clone()
        } else {
            plexus_model::MeshConfig::default()
        };
        let g = translate::generate(&snapshot_with_mesh(&extra, mesh), &client());
        assert_eq!(upstream_h2(&g, C), want, "{what}");
        assert!(g.warnings.is_empty(), "{what}: {:?}", g.warnings);
    }
}

#[test]
fn redirect_derive_port_from_request_port() {
    let g = translated(
        &vs(
            "[{name: d, match: [{uri: {prefix: /d}}], redirect: {authority: other, derivePort: FROM_REQUEST_PORT}}, {name: e, redirect: {authority: other, port: 8443, derivePort: FROM_REQUEST_PORT}}]",
        ),
        &client(),
    );
    let ports: Vec<(String, u32)> = route_config(&g, "80").virtual_hosts[0]
        .routes
        .iter()
        .filter_map(|r| match &r.action {
            Some(route::Action::Redirect(rd)) => Some((r.name.clone(), rd.port_redirect)),
            _ => None,
        })
        .collect();
    assert_eq!(ports, vec![("d".into(), 80), ("e".into(), 8443)]);
    assert!(g.warnings.is_empty(), "{:?}", g.warnings);
}
