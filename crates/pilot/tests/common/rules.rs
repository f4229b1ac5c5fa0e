//! Small-config helpers of the rule tests: a base registry (service `svc` in namespace `app`,
//! HTTP port 80 and TCP port 5432, one workload), proxies, and accessors of generated routes.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, route, route_action};
use plexus_model::{MeshConfig, ProxyNode, ReplicaAddresses, Snapshot};
use plexus_pilot::translate::{Generated, generate};
use serde_json::json;

pub const BASE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: svc, namespace: app}
spec:
  selector: {app: svc}
  ports: [{name: http, port: 80}, {name: tcp-db, port: 5432}]
---
apiVersion: plexus.dev/v1alpha1
kind: Workload
metadata: {name: svc-v1, namespace: app, labels: {app: svc, version: v1}}
spec: {}
"#;

pub fn snapshot(extra: &str) -> std::sync::Arc<Snapshot> {
    snapshot_with_mesh(extra, MeshConfig::default())
}

pub fn snapshot_with_mesh(extra: &str, mesh: MeshConfig) -> std::sync::Arc<Snapshot> {
    let text = format!("{BASE}\n---\n{extra}");
    let loaded = plexus_api::load_str(&text, "t.yaml");
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let mut r = ReplicaAddresses::default();
    r.insert("app", "svc-v1", vec!["10.0.0.2".into()]);
    let (snap, diags) = Snapshot::build("t", &loaded.objects, mesh, &r);
    assert!(diags.is_empty(), "{diags:?}");
    snap
}

pub fn node(kind: &str, ns: &str, labels: serde_json::Value, mode: &str) -> ProxyNode {
    let md: BTreeMap<String, serde_json::Value> =
        serde_json::from_value(json!({"LABELS": labels, "INTERCEPTION_MODE": mode})).expect("md");
    ProxyNode::parse(
        &format!("{kind}~10.0.0.1~client-0.{ns}~{ns}.svc.cluster.local"),
        &md,
    )
    .expect("node")
}

pub fn client() -> ProxyNode {
    node(
        "sidecar",
        "app",
        json!({"app": "client", "role": "web"}),
        "REDIRECT",
    )
}

pub fn translated(extra: &str, n: &ProxyNode) -> Generated {
    generate(&snapshot(extra), n)
}

pub fn route_config<'a>(g: &'a Generated, name: &str) -> &'a RouteConfiguration {
    g.routes
        .iter()
        .find(|r| r.name == name)
        .unwrap_or_else(|| panic!("route config {name}"))
}

/// (route name, cluster or action kind) of the routes of the svc virtual host.
pub fn svc_routes(g: &Generated, rc: &str) -> Vec<(String, String)> {
    let vh = route_config(g, rc)
        .virtual_hosts
        .iter()
        .find(|v| v.name == "svc.app.svc.cluster.local:80")
        .expect("svc vhost");
    vh.routes
        .iter()
        .map(|r| (r.name.clone(), target(r)))
        .collect()
}

pub fn target(r: &Route) -> String {
    match &r.action {
        Some(route::Action::Route(a)) => match &a.cluster_specifier {
            Some(route_action::ClusterSpecifier::Cluster(c)) => c.clone(),
            Some(route_action::ClusterSpecifier::WeightedClusters(w)) => w
                .clusters
                .iter()
                .map(|c| format!("{}={}", c.name, c.weight.as_ref().map_or(0, |w| w.value)))
                .collect::<Vec<_>>()
                .join(","),
            _ => "?".into(),
        },
        Some(route::Action::Redirect(_)) => "redirect".into(),
        Some(route::Action::DirectResponse(d)) => format!("direct {}", d.status),
        _ => "none".into(),
    }
}

pub const C: &str = "outbound|80||svc.app.svc.cluster.local";
pub const C1: &str = "outbound|80|v1|svc.app.svc.cluster.local";

pub fn vs(http: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: svc, namespace: app}}\nspec:\n  hosts: [svc]\n  http: {http}\n"
    )
}

pub fn cluster_named<'a>(g: &'a Generated, name: &str) -> &'a Cluster {
    g.clusters
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("cluster {name}"))
}
