//! Scenario: a workload moves (its WorkloadEntry gets a new address). Only endpoints change, so
//! only EDS is pushed — listeners, routes and clusters are not resent — and traffic through each
//! sidecar reaches the new instance.

mod common;

use common::*;
use plexus_testkit::echo::{self, EchoConfig};
use plexus_xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};

fn pushes(mesh: &Mesh, id: &str) -> Vec<(String, u64)> {
    let p = mesh.control.hub.proxy(id).expect("connected");
    [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE]
        .iter()
        .map(|t| {
            (
                plexus_xds::short_type(t).to_string(),
                p.types.get(*t).map_or(0, |s| s.pushes),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_endpoint_move_pushes_eds_only() {
    let mut mesh = Mesh::start().await;
    let mut sidecars = vec![Sidecar::plexus(&mesh, false).await];
    if let Some(e) = Sidecar::envoy(&mesh, "scenario_endpoint_move_pushes_eds_only", false).await {
        sidecars.push(e);
    }
    let vs = only_kind(&bookinfo("virtual-service-all-v1.yaml"), "VirtualService");
    mesh.write("vs.yaml", &vs);
    let mut failures = Vec::new();
    let mut ready = Vec::new();
    let mut not_ready = Vec::new();
    for s in sidecars {
        match s.wait_ready("reviews").await {
            Ok(()) => ready.push(s),
            Err(e) => {
                failures.push(format!("[{}] never routed: {e}", s.plane));
                not_ready.push(s);
            }
        }
    }
    let ids: Vec<String> = ready.iter().map(|s| s.node_id.clone()).collect();
    mesh.settle_of("vs.yaml", &vs, Some(&ids))
        .await
        .expect("settled");
    let before: Vec<_> = ids.iter().map(|id| pushes(&mesh, id)).collect();

    let moved = echo::start_http(
        EchoConfig {
            workload: "reviews".into(),
            version: "v1".into(),
            replica: "moved".into(),
            ..Default::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("echo");
    for r in &mut mesh.registered {
        if r.0 == "reviews" && r.1 == "v1" {
            r.2 = moved.addr;
        }
    }
    let text = registry_yaml(&mesh.registered);
    mesh.write("registry.yaml", &text);
    mesh.settle_of("registry.yaml", &text, Some(&ids))
        .await
        .expect("settled");
    for (s, before) in ready.iter().zip(&before) {
        let after = pushes(&mesh, &s.node_id);
        for ((t, b), (_, a)) in before.iter().zip(&after) {
            let want_more = t == "EDS";
            if (a > b) != want_more {
                failures.push(format!(
                    "[{}] {t} pushes {b} -> {a} (only EDS should be pushed)",
                    s.plane
                ));
            }
        }
        match s.get("reviews", "/", &[]).await {
            Ok(r) if r.status == 200 && r.version == "v1" => {}
            other => failures.push(format!("[{}] after the move: {other:?}", s.plane)),
        }
        if moved.requests.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            failures.push(format!("[{}] the moved instance got no request", s.plane));
        }
    }
    println!(
        "scenario: endpoint move reached {} sidecars with EDS only",
        ready.len()
    );
    let nacked = mesh.nacks();
    if !nacked.is_empty() {
        failures.push(format!("NACKs: {nacked:#?}"));
    }
    drop(not_ready);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
