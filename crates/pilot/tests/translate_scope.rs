//! Table-driven checks of Istio's scoping and lookup rules: DestinationRule lookup order,
//! VirtualService precedence, exportTo and Sidecar scoping, outbound traffic policy, gateway
//! merging, resolution → cluster type, untranslated config, push scoping, process-mode listeners.

mod common;

use std::collections::BTreeMap;

use common::rules::*;
use envoy_types::pb::envoy::config::cluster::v3::cluster;
use plexus_model::ProxyNode;
use plexus_pilot::translate::{self, Change, Generated, affects};
use serde_json::json;

#[test]
fn destination_rule_lookup_order() {
    let dr = |name: &str, ns: &str, export: &str, lb: &str| {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  host: svc.app.svc.cluster.local\n  exportTo: [{export}]\n  trafficPolicy: {{loadBalancer: {{simple: {lb}}}}}\n"
        )
    };
    let other = node("sidecar", "other", json!({}), "REDIRECT");
    let cases = vec![
        (
            "client namespace beats the service's",
            dr("a", "other", "\"*\"", "RANDOM") + &dr("b", "app", "\"*\"", "ROUND_ROBIN"),
            cluster::LbPolicy::Random,
        ),
        (
            "service namespace when exported",
            dr("b", "app", "\"*\"", "ROUND_ROBIN"),
            cluster::LbPolicy::RoundRobin,
        ),
        (
            "not exported: default",
            dr("b", "app", "\".\"", "ROUND_ROBIN"),
            cluster::LbPolicy::LeastRequest,
        ),
        (
            "root namespace last",
            dr("r", "istio-system", "\"*\"", "RANDOM"),
            cluster::LbPolicy::Random,
        ),
        (
            "service namespace beats root",
            dr("r", "istio-system", "\"*\"", "RANDOM") + &dr("b", "app", "\"*\"", "ROUND_ROBIN"),
            cluster::LbPolicy::RoundRobin,
        ),
    ];
    for (what, extra, want) in cases {
        let g = translated(&extra, &other);
        assert_eq!(cluster_named(&g, C).lb_policy, want as i32, "{what}");
    }
}

#[test]
fn virtual_service_precedence_and_scoping() {
    let vs_in = |ns: &str, subset: &str, export: &str| {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: v-{ns}, namespace: {ns}}}\nspec:\n  hosts: [svc.app.svc.cluster.local]\n  exportTo: [{export}]\n  http: [{{route: [{{destination: {{host: svc.app.svc.cluster.local, subset: {subset}}}}}]}}]\n"
        )
    };
    let other = node("sidecar", "other", json!({}), "REDIRECT");
    let rc = |g: &Generated| {
        route_config(g, "80")
            .virtual_hosts
            .iter()
            .find(|v| v.name.starts_with("svc."))
            .map(|v| target(&v.routes[0]))
    };
    let own_first = translated(
        &(vs_in("app", "a", "\"*\"") + &vs_in("other", "b", "\"*\"")),
        &other,
    );
    assert_eq!(
        rc(&own_first).as_deref(),
        Some("outbound|80|b|svc.app.svc.cluster.local"),
        "the proxy's namespace wins"
    );
    let hidden = translated(&vs_in("app", "a", "\".\""), &other);
    assert_eq!(
        rc(&hidden).as_deref(),
        Some(C),
        "a VS exported to its namespace only is not seen"
    );
    let svc_hidden = translated(
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: private, namespace: app, annotations: {networking.istio.io/exportTo: \".\"}}\nspec: {ports: [{name: http, port: 80}]}\n",
        &other,
    );
    assert!(
        !svc_hidden
            .clusters
            .iter()
            .any(|c| c.name.contains("private")),
        "Service exportTo annotation"
    );
    let sidecar = "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: default, namespace: other}\nspec:\n  egress: [{hosts: [\"./*\"]}]\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n";
    let scoped = translated(sidecar, &other);
    assert!(
        !scoped.clusters.iter().any(|c| c.name == C),
        "egress hosts import nothing from app"
    );
    let vo = scoped
        .listeners
        .iter()
        .find(|l| l.name == "virtualOutbound")
        .expect("virtualOutbound");
    let dump = translate::dump::message(vo);
    assert!(
        dump.contains("BlackHoleCluster"),
        "REGISTRY_ONLY sends unknown traffic to BlackHoleCluster"
    );
    let own = translated(
        &sidecar.replace("namespace: other", "namespace: app"),
        &client(),
    );
    assert!(
        own.clusters.iter().any(|c| c.name == C),
        "./* imports the own namespace"
    );
    let block = route_config(&own, "80")
        .virtual_hosts
        .iter()
        .any(|v| v.name == "block_all");
    assert!(block, "REGISTRY_ONLY adds block_all");
    let allow = translated("", &client());
    assert!(
        route_config(&allow, "80")
            .virtual_hosts
            .iter()
            .any(|v| v.name == "allow_any"),
        "ALLOW_ANY adds allow_any in REDIRECT mode"
    );
}

#[test]
fn resolution_gives_cluster_type() {
    let se = |res: &str, extra: &str| {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: e, namespace: app}}\nspec:\n  hosts: [ext.example.com]\n  ports: [{{number: 443, name: tls, protocol: TLS}}]\n  resolution: {res}\n{extra}"
        )
    };
    use cluster::DiscoveryType as D;
    let cases = [
        ("DNS", "", D::StrictDns),
        ("DNS_ROUND_ROBIN", "", D::LogicalDns),
        ("NONE", "", D::OriginalDst),
        ("STATIC", "  endpoints: [{address: 1.2.3.4}]\n", D::Eds),
    ];
    for (res, extra, want) in cases {
        let g = translated(&se(res, extra), &client());
        let c = cluster_named(&g, "outbound|443||ext.example.com");
        assert_eq!(
            c.cluster_discovery_type,
            Some(cluster::ClusterDiscoveryType::Type(want as i32)),
            "{res}"
        );
    }
}

#[test]
fn gateway_concatenates_virtual_services_and_sorts_catch_alls_last() {
    let extra = r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: gw, namespace: app}
spec:
  selector: {istio: ingressgateway}
  servers: [{port: {number: 8080, name: http, protocol: HTTP}, hosts: ["*"]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: a, namespace: app}
spec:
  hosts: [shop.example.com]
  gateways: [gw]
  http: [{name: a-all, route: [{destination: {host: svc, port: {number: 80}}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b, namespace: app}
spec:
  hosts: [shop.example.com]
  gateways: [app/gw]
  http: [{name: b-api, match: [{uri: {prefix: /api}}], route: [{destination: {host: svc, subset: v1, port: {number: 80}}}]}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mesh-only, namespace: app}
spec:
  hosts: [other.example.com]
  http: [{route: [{destination: {host: svc}}]}]
"#;
    let gw = node(
        "router",
        "istio-system",
        json!({"istio": "ingressgateway"}),
        "REDIRECT",
    );
    let g = translated(extra, &gw);
    let rc = route_config(&g, "http.8080");
    assert_eq!(
        rc.virtual_hosts.len(),
        1,
        "mesh-only VS is not bound to the gateway"
    );
    let names: Vec<(&str, String)> = rc.virtual_hosts[0]
        .routes
        .iter()
        .map(|r| (r.name.as_str(), target(r)))
        .collect();
    assert_eq!(
        names,
        vec![("b-api", C1.to_string()), ("a-all", C.to_string())]
    );
    assert!(rc.ignore_port_in_host_matching);
    let sidecar = translated(extra, &client());
    assert!(
        sidecar.listeners.iter().all(|l| !l.name.contains("8080")),
        "sidecars get no gateway listeners"
    );
}

#[test]
fn untranslated_config_is_reported() {
    let extra = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: app}
spec: {}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc, namespace: app}
spec:
  host: svc
  trafficPolicy:
    tunnel: {targetHost: proxy.example.com, targetPort: 3128}
    loadBalancer: {warmup: {duration: 10s}}
"#;
    let g = translated(extra, &client());
    let text: Vec<String> = g.warnings.iter().map(|w| w.to_string()).collect();
    for want in [
        "AuthorizationPolicy is not translated yet",
        "tunnel is not translated yet",
        "loadBalancer.warmup is not translated yet",
    ] {
        assert!(
            text.iter().any(|t| t.contains(want)),
            "missing {want:?} in {text:#?}"
        );
    }
}

#[test]
fn push_scoping() {
    let snap = snapshot("");
    let load = |y: &str| plexus_api::load_str(y, "c.yaml").objects.remove(0);
    let vs_mesh = load(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v, namespace: app}\nspec: {hosts: [svc], http: [{route: [{destination: {host: svc}}]}]}\n",
    );
    let vs_private = load(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: v, namespace: app}\nspec: {hosts: [svc], exportTo: [\".\"], http: [{route: [{destination: {host: svc}}]}]}\n",
    );
    let gw = load(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g, namespace: app}\nspec: {selector: {istio: ingressgateway}, servers: [{port: {number: 80, name: http, protocol: HTTP}, hosts: [\"*\"]}]}\n",
    );
    let sc = load(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s, namespace: app}\nspec: {workloadSelector: {labels: {app: other}}, egress: [{hosts: [\"./*\"]}]}\n",
    );
    let other = node("sidecar", "other", json!({}), "REDIRECT");
    let router = node(
        "router",
        "istio-system",
        json!({"istio": "ingressgateway"}),
        "REDIRECT",
    );
    let cases = [
        (
            "mesh VS reaches sidecars of other namespaces",
            Change::Object(&vs_mesh),
            &other,
            true,
        ),
        (
            "private VS does not",
            Change::Object(&vs_private),
            &other,
            false,
        ),
        (
            "private VS reaches its own namespace",
            Change::Object(&vs_private),
            &client(),
            true,
        ),
        (
            "mesh-only VS does not reach gateways",
            Change::Object(&vs_mesh),
            &router,
            false,
        ),
        (
            "Gateway reaches its selected router",
            Change::Object(&gw),
            &router,
            true,
        ),
        (
            "Gateway does not reach sidecars",
            Change::Object(&gw),
            &client(),
            false,
        ),
        (
            "Sidecar selecting other workloads",
            Change::Object(&sc),
            &client(),
            false,
        ),
        (
            "endpoints of an exported service",
            Change::Endpoints {
                hostname: "svc.app.svc.cluster.local",
                namespace: "app",
            },
            &other,
            true,
        ),
        ("mesh config", Change::Mesh, &other, true),
    ];
    for (what, change, n, want) in cases {
        assert_eq!(affects(&snap, change, n), want, "{what}");
    }
}

#[test]
fn process_mode_listeners() {
    let md: BTreeMap<String, serde_json::Value> = serde_json::from_value(json!({
        "INTERCEPTION_MODE": "NONE", "PLEXUS_OUTBOUND_ADDRESS": "127.0.1.1", "HTTP_PROXY_PORT": "15080",
        "LABELS": {"app": "svc", "version": "v1"}, "PLEXUS_APP_ADDRESS": "127.0.0.99"
    })).expect("md");
    let n =
        ProxyNode::parse("sidecar~10.0.0.2~svc-v1-0.app~app.svc.cluster.local", &md).expect("node");
    let g = translated("", &n);
    let mut names: Vec<&str> = g.listeners.iter().map(|l| l.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "10.0.0.2_5432",
            "10.0.0.2_80",
            "127.0.1.1_15080",
            "127.0.1.1_5432",
            "127.0.1.1_80"
        ]
    );
    assert!(
        g.routes
            .iter()
            .any(|r| r.name == translate::HTTP_PROXY_ROUTE)
    );
    let inbound = cluster_named(&g, "inbound|80||");
    assert!(
        translate::dump::message(inbound).contains("127.0.0.99"),
        "inbound cluster targets the app address"
    );
}
