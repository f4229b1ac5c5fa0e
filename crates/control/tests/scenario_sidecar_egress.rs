//! Scenario: a Sidecar egress listener with a port, a `bind` and `captureMode: NONE` gives the
//! client proxy (Plexus and Envoy, through `plexus control`) a listener bound on that address
//! which routes to the listener's hosts only: `reviews` answers, `ratings` (not imported) gets
//! 404, and without a catch-all egress listener nothing listens on the proxy's own 9080.

mod common;

use std::time::Duration;

use common::*;

/// A Sidecar selecting `app: <app>` whose only egress listener is 9080 on `bind`, for reviews.
fn sidecar_yaml(app: &str, bind: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {app}, namespace: default}}\nspec:\n  workloadSelector: {{labels: {{app: {app}}}}}\n  egress:\n  - port: {{number: {PORT}, protocol: HTTP, name: http}}\n    bind: {bind}\n    captureMode: NONE\n    hosts: [\"./reviews.default.svc.cluster.local\"]\n"
    )
}

/// Connecting to `addr` is refused (nothing listens there) within a short deadline.
async fn refused(addr: &str) -> bool {
    matches!(
        tokio::time::timeout(Duration::from_secs(2), tokio::net::TcpStream::connect(addr)).await,
        Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_sidecar_egress_bind_routes_only_its_hosts() {
    let mesh = Mesh::start().await;
    let test = "scenario_sidecar_egress_bind_routes_only_its_hosts";
    let mut planned = vec![("plexus", "client-egress-plexus", unique_ip(), unique_ip())];
    if plexus_testkit::envoy::binary_for_test(test).is_some() {
        planned.push(("envoy", "client-egress-envoy", unique_ip(), unique_ip()));
    }
    let mut text = String::new();
    for (_, app, _, bind) in &planned {
        text.push_str(&sidecar_yaml(app, bind));
        text.push_str("---\n");
    }
    mesh.write("sidecar.yaml", &text);
    mesh.settle("sidecar.yaml", &text)
        .await
        .expect("Sidecar applied");

    let mut sidecars = Vec::new();
    for (plane, app, ip, bind) in &planned {
        let node = identity(app, ip);
        let s = match *plane {
            "plexus" => Some(Sidecar::plexus_node(&mesh, false, node).await),
            _ => Sidecar::envoy_node(&mesh, test, false, node).await,
        };
        if let Some(mut s) = s {
            // Requests go to the egress listener's bind, not the proxy's own address.
            s.addr = format!("{bind}:{PORT}").parse().expect("addr");
            sidecars.push((s, ip.clone()));
        }
    }
    let mut failures = Vec::new();
    for (s, ip) in &sidecars {
        if let Err(e) = s.wait_ready("reviews").await {
            failures.push(format!(
                "[{}] never routed reviews: {e}\n{}",
                s.plane,
                s.log()
            ));
            continue;
        }
        match s.tally("reviews", 10, &[]).await {
            Ok(t) if t.keys().all(|k| k.starts_with("reviews-")) => {}
            Ok(t) => failures.push(format!("[{}] reviews: {t:?}", s.plane)),
            Err(e) => failures.push(e),
        }
        match s.tally("ratings", 5, &[]).await {
            Ok(t) if t.len() == 1 && t.contains_key("status:404") => {}
            Ok(t) => failures.push(format!(
                "[{}] ratings is not imported, want 404: {t:?}",
                s.plane
            )),
            Err(e) => failures.push(e),
        }
        let own = format!("{ip}:{PORT}");
        if !refused(&own).await {
            failures.push(format!(
                "[{}] something listens on {own}: no catch-all egress listener should",
                s.plane
            ));
        }
        println!(
            "scenario: {} routes reviews on the bound egress listener {} and refuses ratings",
            s.plane, s.addr
        );
    }
    let nacked = mesh.nacks();
    if !nacked.is_empty() {
        failures.push(format!("NACKs: {nacked:#?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
