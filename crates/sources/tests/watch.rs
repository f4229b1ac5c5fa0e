//! The watched directory end to end: a burst of writes becomes one reload, an edit is served,
//! an invalid edit is rejected with file:line while the last good version stays served.

use std::time::Duration;

use plexus_sources::FileSource;
use plexus_testkit::eventually;

const VS: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: default}\nspec:\n  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r, subset: SUBSET}\n";

fn subset(src: &FileSource) -> Option<String> {
    let state = src.current();
    let obj = state
        .accepted
        .values()
        .find(|o| o.kind == "VirtualService")?;
    obj.root
        .to_json()
        .pointer("/spec/http/0/route/0/destination/subset")
        .and_then(|v| v.as_str())
        .map(str::to_string)
}

#[tokio::test]
async fn edits_are_reloaded_once_per_burst_and_invalid_edits_keep_the_last_good_version() {
    let dir = std::env::temp_dir().join(format!("plexus-sources-watch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("vs.yaml");
    std::fs::write(&file, VS.replace("SUBSET", "v1")).expect("write");
    let src = FileSource::start(&dir, Default::default()).expect("watch");
    assert_eq!(subset(&src).as_deref(), Some("v1"));
    let first = src.current().generation;

    // Ten writes in a burst: one reload, serving the last.
    for i in 2..=11 {
        std::fs::write(&file, VS.replace("SUBSET", &format!("v{i}"))).expect("write");
    }
    let wait = Duration::from_secs(5);
    eventually(wait, "the last write served", || async {
        (subset(&src).as_deref() == Some("v11")).then_some(())
    })
    .await
    .expect("reloaded");
    let after_burst = src.current().generation;
    assert!(
        after_burst - first <= 2,
        "a burst of 10 writes gave {} reloads",
        after_burst - first
    );

    // An invalid edit: rejected with its place, v11 still served.
    std::fs::write(&file, VS.replace("subset: SUBSET", "subzet: v12")).expect("write");
    let state = eventually(wait, "the rejection", || async {
        let s = src.current();
        (!s.rejected.is_empty()).then_some(s)
    })
    .await
    .expect("rejected");
    let r = &state.rejected[0];
    assert_eq!(
        (r.path.as_str(), r.line),
        (file.display().to_string().as_str(), 8),
        "{r}"
    );
    assert!(r.message.contains("subzet") && r.serving_previous, "{r}");
    assert_eq!(subset(&src).as_deref(), Some("v11"));

    // Deleting the file stops serving it.
    std::fs::remove_file(&file).expect("rm");
    eventually(wait, "the object gone", || async {
        subset(&src).is_none().then_some(())
    })
    .await
    .expect("removed");
    let _ = std::fs::remove_dir_all(&dir);
}
