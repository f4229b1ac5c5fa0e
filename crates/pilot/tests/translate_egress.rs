//! Sidecar egress listeners (istio-api.md §7): a listener with a `port` gets its own outbound
//! listener whose routes see only its `hosts`; the port-less listener is the catch-all for
//! every other port; `captureMode: NONE` (or a proxy in interception NONE) binds on `bind`
//! (Istio's default 127.0.0.1; Plexus' outbound address in mode NONE), other capture modes give
//! capture-only listeners; route configurations are named by port, as Istio does.

mod common;

use std::collections::BTreeMap;

use common::rules::*;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use plexus_model::ProxyNode;
use plexus_pilot::translate::{self, Generated};
use serde_json::json;

/// `reviews` and `ratings` on HTTP 9080 beside the base `svc` (HTTP 80, TCP 5432), and a
/// VirtualService for `reviews` in namespace `other` exported everywhere.
const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: app}
spec:
  clusterIP: 10.96.0.10
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: app}
spec:
  clusterIP: 10.96.0.11
  selector: {app: ratings}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews-from-other, namespace: other}
spec:
  hosts: [reviews.app.svc.cluster.local]
  http: [{route: [{destination: {host: reviews.app.svc.cluster.local, subset: v2}}]}]
"#;

fn sidecar(egress: &str) -> String {
    format!(
        "{SERVICES}---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: default, namespace: app}}\nspec:\n  egress:\n{egress}"
    )
}

fn process_node(outbound: &str) -> ProxyNode {
    let md: BTreeMap<String, serde_json::Value> = serde_json::from_value(json!({
        "INTERCEPTION_MODE": "NONE", "PLEXUS_OUTBOUND_ADDRESS": outbound,
        "LABELS": {"app": "client"}
    }))
    .expect("md");
    ProxyNode::parse("sidecar~127.0.9.1~client-0.app~app.svc.cluster.local", &md).expect("node")
}

fn listener<'a>(g: &'a Generated, name: &str) -> &'a Listener {
    g.listeners
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("listener {name} in {:?}", names(g)))
}

fn names(g: &Generated) -> Vec<&str> {
    g.listeners.iter().map(|l| l.name.as_str()).collect()
}

fn binds(l: &Listener) -> bool {
    l.bind_to_port.as_ref().is_none_or(|b| b.value)
}

fn rds(l: &Listener) -> bool {
    translate::dump::message(l).contains("route_config_name: \"9080\"")
}

fn vhosts(g: &Generated, rc: &str) -> Vec<String> {
    route_config(g, rc)
        .virtual_hosts
        .iter()
        .map(|v| v.name.clone())
        .collect()
}

fn warnings(g: &Generated) -> Vec<String> {
    g.warnings.iter().map(|w| w.to_string()).collect()
}

const REVIEWS_ON_9080: &str = "  - port: {number: 9080, protocol: HTTP, name: http}\n    hosts: [./reviews.app.svc.cluster.local]\n";

#[test]
fn port_listener_scopes_its_port_and_catch_all_takes_the_rest() {
    let g = translated(
        &sidecar(&format!("{REVIEWS_ON_9080}  - hosts: [\"*/*\"]\n")),
        &client(),
    );
    let l = listener(&g, "0.0.0.0_9080");
    assert!(!binds(l), "REDIRECT: capture only");
    assert!(rds(l), "{}", translate::dump::message(l));
    let on_9080 = vhosts(&g, "9080");
    assert!(
        on_9080.contains(&"reviews.app.svc.cluster.local:9080".to_string()),
        "{on_9080:?}"
    );
    assert!(
        !on_9080.iter().any(|v| v.starts_with("ratings.")),
        "ratings is imported only by the catch-all, which does not own port 9080: {on_9080:?}"
    );
    assert!(
        vhosts(&g, "80").contains(&"svc.app.svc.cluster.local:80".to_string()),
        "the catch-all still serves the other ports"
    );
    assert!(
        names(&g).iter().any(|n| n.ends_with("_5432")),
        "{:?}",
        names(&g)
    );
    // The VirtualService in `other` is imported by the catch-all only: port 9080 keeps the
    // default route of reviews.
    let rc = route_config(&g, "9080");
    let vh = rc
        .virtual_hosts
        .iter()
        .find(|v| v.name.starts_with("reviews."))
        .expect("reviews vhost");
    assert_eq!(
        target(&vh.routes[0]),
        "outbound|9080||reviews.app.svc.cluster.local"
    );
    // Clusters cover every listener's hosts.
    cluster_named(&g, "outbound|9080||ratings.app.svc.cluster.local");
    let w = warnings(&g);
    assert!(
        !w.iter()
            .any(|w| w.contains("spec.egress[0].port") || w.contains("captureMode")),
        "{w:?}"
    );
}

#[test]
fn virtual_services_apply_on_the_listener_that_imports_them() {
    let egress = "  - port: {number: 9080, protocol: HTTP, name: http}\n    hosts: [\"other/*\", ./reviews.app.svc.cluster.local]\n  - hosts: [./*]\n";
    let g = translated(&sidecar(egress), &client());
    let rc = route_config(&g, "9080");
    let vh = rc
        .virtual_hosts
        .iter()
        .find(|v| v.name.starts_with("reviews."))
        .expect("reviews vhost");
    assert_eq!(
        target(&vh.routes[0]),
        "outbound|9080|v2|reviews.app.svc.cluster.local",
        "the port listener imports other/* and so the VirtualService"
    );
}

#[test]
fn without_catch_all_only_the_named_ports_get_listeners() {
    let g = translated(&sidecar(REVIEWS_ON_9080), &client());
    let outbound: Vec<&str> = names(&g)
        .into_iter()
        .filter(|n| !n.starts_with("virtual"))
        .collect();
    assert_eq!(outbound, vec!["0.0.0.0_9080"]);
    assert!(
        g.clusters.iter().all(|c| !c.name.contains("svc.app")),
        "svc is not imported"
    );
}

#[test]
fn capture_mode_none_binds_on_bind_or_localhost_under_redirect() {
    let egress = "  - port: {number: 9080, protocol: HTTP, name: http}\n    captureMode: NONE\n    hosts: [./reviews.app.svc.cluster.local]\n  - port: {number: 8080, protocol: HTTP, name: http-alt}\n    bind: 127.0.3.3\n    captureMode: NONE\n    hosts: [./ratings.app.svc.cluster.local]\n  - port: {number: 80, protocol: HTTP, name: http-svc}\n    bind: 127.0.4.4\n    captureMode: IPTABLES\n    hosts: [./svc.app.svc.cluster.local]\n  - hosts: [./*]\n";
    let g = translated(&sidecar(egress), &client());
    assert!(
        binds(listener(&g, "127.0.0.1_9080")),
        "Istio's default bind"
    );
    let l = listener(&g, "127.0.3.3_8080");
    assert!(binds(l));
    assert!(
        translate::dump::message(l).contains("route_config_name: \"8080\""),
        "route configurations are named by port"
    );
    assert!(
        !vhosts(&g, "8080").iter().any(|v| v.starts_with("ratings.")),
        "ratings has no port 8080: only the fallback"
    );
    assert!(
        !binds(listener(&g, "127.0.4.4_80")),
        "IPTABLES: capture only"
    );
    assert!(
        !names(&g).contains(&"0.0.0.0_9080") && !names(&g).contains(&"0.0.0.0_80"),
        "named ports are not repeated by the catch-all: {:?}",
        names(&g)
    );
}

#[test]
fn process_mode_binds_on_bind_and_keeps_the_outbound_address_for_the_rest() {
    let egress = "  - port: {number: 9080, protocol: HTTP, name: http}\n    bind: 127.0.2.2\n    captureMode: NONE\n    hosts: [./reviews.app.svc.cluster.local]\n  - hosts: [./*]\n";
    let g = translated(&sidecar(egress), &process_node("127.0.1.1"));
    let l = listener(&g, "127.0.2.2_9080");
    assert!(binds(l) && rds(l));
    assert!(binds(listener(&g, "127.0.1.1_80")));
    assert!(!names(&g).contains(&"127.0.1.1_9080"), "{:?}", names(&g));
    let on_9080 = vhosts(&g, "9080");
    assert!(
        !on_9080.iter().any(|v| v.starts_with("ratings.")),
        "{on_9080:?}"
    );
    let proxy = vhosts(&g, "http_proxy");
    assert!(
        proxy.iter().any(|v| v.starts_with("ratings.")),
        "the HTTP_PROXY route configuration follows the catch-all: {proxy:?}"
    );
    // Without a bind, a process-mode proxy binds its outbound address (Plexus' stand-in for
    // Istio's 127.0.0.1, as several local proxies share the loopback).
    let g = translated(
        &sidecar(&format!("{REVIEWS_ON_9080}  - hosts: [./*]\n")),
        &process_node("127.0.1.1"),
    );
    assert!(binds(listener(&g, "127.0.1.1_9080")));
}

#[test]
fn tcp_port_listener_carries_its_services() {
    let egress = "  - port: {number: 5432, protocol: TCP, name: tcp}\n    bind: 127.0.5.5\n    captureMode: NONE\n    hosts: [./svc.app.svc.cluster.local]\n";
    let g = translated(&sidecar(egress), &client());
    let l = listener(&g, "127.0.5.5_5432");
    assert!(binds(l));
    let text = translate::dump::message(l);
    assert!(
        text.contains("outbound|5432||svc.app.svc.cluster.local"),
        "{text}"
    );
    assert!(
        !names(&g).iter().any(|n| n.ends_with("_80")),
        "{:?}",
        names(&g)
    );
}

#[test]
fn declared_http_port_routes_a_tcp_service_port_as_http() {
    let egress = "  - port: {number: 5432, protocol: HTTP, name: http-db}\n    hosts: [./svc.app.svc.cluster.local]\n";
    let g = translated(&sidecar(egress), &client());
    assert!(
        vhosts(&g, "5432").contains(&"svc.app.svc.cluster.local:5432".to_string()),
        "{:?}",
        vhosts(&g, "5432")
    );
    let text = translate::dump::message(listener(&g, "0.0.0.0_5432"));
    assert!(text.contains("route_config_name: \"5432\""), "{text}");
}

#[test]
fn untranslated_egress_fields_are_reported() {
    let egress = "  - port: {number: 0, protocol: HTTP, name: uds}\n    bind: unix:///var/run/egress.sock\n    hosts: [./reviews.app.svc.cluster.local]\n  - hosts: [./*]\n";
    let g = translated(&sidecar(egress), &client());
    let w = warnings(&g);
    assert!(
        w.iter()
            .any(|w| w.contains("spec.egress[0].bind") && w.contains("unix")),
        "{w:?}"
    );
    assert!(
        names(&g).contains(&"0.0.0.0_9080"),
        "the catch-all still serves 9080"
    );

    let egress = "  - port: {number: 9080, protocol: HTTP, name: http}\n    captureMode: IPTABLES\n    hosts: [./reviews.app.svc.cluster.local]\n  - port: {number: 9080, protocol: HTTP, name: http2}\n    bind: 127.0.6.6\n    hosts: [./ratings.app.svc.cluster.local]\n";
    let g = translated(&sidecar(egress), &process_node("127.0.1.1"));
    let w = warnings(&g);
    assert!(
        w.iter().any(|w| w.contains("spec.egress[0].captureMode")),
        "IPTABLES on a NONE proxy: {w:?}"
    );
    assert!(
        w.iter().any(|w| w.contains("spec.egress[1].port")),
        "a second listener on 9080 shares route configuration 9080: {w:?}"
    );
    assert!(binds(listener(&g, "127.0.6.6_9080")));
    assert!(binds(listener(&g, "127.0.1.1_9080")));
}
