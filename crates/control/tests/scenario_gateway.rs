//! Scenario: an ingress gateway. A proxy of type `router` labelled `istio: ingressgateway` (as
//! an Istio install provides) joins the control plane; Bookinfo's `bookinfo-gateway.yaml`,
//! unchanged, makes it serve port 8080 and route `/productpage` to productpage. For Envoy the
//! gateway is a stock Envoy started from `plexus envoy-bootstrap --type router`'s bootstrap.

mod common;

use std::collections::BTreeMap;

use common::*;
use plexus_xds::node::ProxyType;

fn gateway(name: &str) -> plexus_xds::node::NodeIdentity {
    let mut node = identity(name, &unique_ip());
    node.proxy_type = ProxyType::Router;
    node.namespace = "istio-system".into();
    node.labels = BTreeMap::from([
        ("istio".to_string(), "ingressgateway".to_string()),
        ("app".to_string(), "istio-ingressgateway".to_string()),
    ]);
    node
}

async fn check(g: &Sidecar) -> Result<(), String> {
    let r = g
        .request_path("GET", "bookinfo.example", 8080, "/productpage", &[])
        .await?;
    if r.status != 200 || r.json["workload"] != "productpage" || r.json["path"] != "/productpage" {
        return Err(format!(
            "[{}] /productpage: {} {}",
            g.plane, r.status, r.json
        ));
    }
    let r = g
        .request_path("GET", "bookinfo.example", 8080, "/admin", &[])
        .await?;
    if r.status != 404 {
        return Err(format!(
            "[{}] /admin: {} (want 404: no route)",
            g.plane, r.status
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_ingress_gateway_serves_bookinfo_gateway() {
    let mesh = Mesh::start().await;
    let text = bookinfo("bookinfo-gateway.yaml");
    mesh.write("bookinfo-gateway.yaml", &text);
    let mut gateways = vec![Sidecar::plexus_node(&mesh, false, gateway("gw-plexus")).await];
    if let Some(e) = Sidecar::envoy_node(
        &mesh,
        "scenario_ingress_gateway_serves_bookinfo_gateway",
        false,
        gateway("gw-envoy"),
    )
    .await
    {
        gateways.push(e);
    }
    let ids: Vec<String> = gateways.iter().map(|g| g.node_id.clone()).collect();
    let mut failures = Vec::new();
    let settled = mesh
        .settle_of("bookinfo-gateway.yaml", &text, Some(&ids))
        .await;
    if let Err(e) = settled {
        failures.push(e);
    }
    let mut passed = Vec::new();
    for g in &gateways {
        let r =
            plexus_testkit::eventually(WAIT, &format!("{} gateway to route", g.plane), || async {
                check(g).await.ok()
            })
            .await;
        match r {
            Ok(()) => passed.push(g.plane),
            Err(_) => failures.push(check(g).await.err().unwrap_or_default()),
        }
    }
    println!("scenario: ingress gateway routed /productpage on {passed:?}");
    let nacked = mesh.nacks();
    if !nacked.is_empty() {
        failures.push(format!("NACKs: {nacked:#?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
