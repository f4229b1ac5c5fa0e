//! Scenario: a running mesh, one sidecar of each kind. Editing a VirtualService file changes
//! routing within 2 seconds with nothing restarted; writing an invalid version of it leaves
//! routing as it was, and the debug API (what `plexus proxy-status` prints) names the file,
//! line and error while every proxy stays SYNCED.

mod common;

use std::time::{Duration, Instant};

use common::*;

const REVIEWS_V1: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  hosts:\n  - reviews\n  http:\n  - route:\n    - destination:\n        host: reviews\n        subset: v1\n";
/// Line 12 has a misspelt field.
const REVIEWS_BROKEN: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n  hosts:\n  - reviews\n  http:\n  - route:\n    - destination:\n        host: reviews\n        subzet: v2\n";
const FILE: &str = "reviews.yaml";
const EDIT_DEADLINE: Duration = Duration::from_secs(2);

/// Poll until 20 requests in a row answer from `version`; the time from `since`.
async fn until_all(s: &Sidecar, version: &str, since: Instant) -> Result<Duration, String> {
    let deadline = since + Duration::from_secs(10);
    let want = format!("reviews-{version}");
    loop {
        let t = s.tally("reviews", 20, &[]).await?;
        if t.len() == 1 && t.contains_key(&want) {
            return Ok(since.elapsed());
        }
        if Instant::now() > deadline {
            return Err(format!("{}: still {t:?} after 10s", s.plane));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_edit_reroutes_within_2s_and_invalid_edit_keeps_routing() {
    let mesh = Mesh::start().await;
    let mut sidecars = vec![Sidecar::plexus(&mesh, false).await];
    if let Some(e) = Sidecar::envoy(
        &mesh,
        "scenario_edit_reroutes_within_2s_and_invalid_edit_keeps_routing",
        true,
    )
    .await
    {
        sidecars.push(e);
    }
    let mut failures = Vec::new();
    let mut ready = Vec::new();
    // Sidecars that never routed stay up, so their NACKs stay visible on the hub.
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
    mesh.write(FILE, REVIEWS_V1);
    mesh.settle_of(FILE, REVIEWS_V1, Some(&ids))
        .await
        .expect("v1 applied");
    for s in &ready {
        if let Err(e) = until_all(s, "v1", Instant::now()).await {
            failures.push(e);
        }
    }

    // Edit in place: v1 -> v3.
    let v3 = REVIEWS_V1.replace("subset: v1", "subset: v3");
    let edited = Instant::now();
    mesh.write(FILE, &v3);
    for s in &ready {
        match until_all(s, "v3", edited).await {
            Ok(took) if took <= EDIT_DEADLINE => {
                println!("scenario: {} rerouted {took:?} after the edit", s.plane)
            }
            Ok(took) => failures.push(format!("[{}] rerouted only after {took:?}", s.plane)),
            Err(e) => failures.push(e),
        }
    }
    mesh.settle_of(FILE, &v3, Some(&ids))
        .await
        .expect("v3 settled");

    // An invalid edit is rejected; routing stays on v3.
    mesh.write(FILE, REVIEWS_BROKEN);
    let rejection = plexus_testkit::eventually(
        WAIT,
        "the invalid VirtualService to be rejected",
        || async { mesh.control.config().rejected.first().cloned() },
    )
    .await
    .expect("rejected");
    let path = mesh.dir.join(FILE).display().to_string();
    assert_eq!(rejection.path, path);
    assert_eq!(rejection.line, 12, "{rejection}");
    assert_eq!(rejection.resource, "VirtualService default/reviews");
    assert!(rejection.message.contains("subzet"), "{rejection}");
    assert!(rejection.serving_previous, "{rejection}");
    let configz = plexus_control::debug::configz(&mesh.control.config());
    let text = configz["rejected"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        text.starts_with(&format!("{path}:12:")) && text.contains("subzet"),
        "{text}"
    );
    mesh.synced_of(mesh.control.config().generation, Some(&ids))
        .await
        .expect("still SYNCED");
    for s in &ready {
        match s.tally("reviews", 30, &[]).await {
            Ok(t) if t.len() == 1 && t.contains_key("reviews-v3") => {}
            Ok(t) => failures.push(format!("[{}] after the invalid edit: {t:?}", s.plane)),
            Err(e) => failures.push(e),
        }
    }
    println!(
        "scenario: {} sidecars ({}) kept routing through the invalid edit",
        ready.len(),
        ready.iter().map(|s| s.plane).collect::<Vec<_>>().join(", ")
    );
    let nacked = mesh.nacks();
    if !nacked.is_empty() {
        failures.push(format!("NACKs: {nacked:#?}"));
    }
    drop(not_ready);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
