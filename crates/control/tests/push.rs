//! The control loop coalesces: a burst of config changes becomes one snapshot build, published
//! to the hub with the config generation it was built from.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use plexus_control::{BuildGenerator, ControlConfig, Generator, Inputs, Resources};
use plexus_testkit::eventually;

struct Count(u64, usize);

impl Generator for Count {
    fn version(&self) -> String {
        self.0.to_string()
    }
    fn generate(&self, _node: &Node) -> Result<Resources, String> {
        Ok(Resources::new())
    }
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({"objects": self.1})
    }
}

const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: NAME, namespace: default}\nspec:\n  ports:\n  - {name: http, port: 80}\n";

#[tokio::test]
async fn a_burst_of_changes_is_one_snapshot() {
    let dir = std::env::temp_dir().join(format!("plexus-push-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let builds = Arc::new(AtomicUsize::new(0));
    let counter = builds.clone();
    let build: BuildGenerator = Arc::new(move |inputs: &Inputs| {
        counter.fetch_add(1, Ordering::SeqCst);
        Arc::new(Count(inputs.version, inputs.objects.len())) as Arc<dyn Generator>
    });
    let cfg = ControlConfig {
        config_dir: dir.clone(),
        xds_address: "127.0.0.1:0".parse().expect("addr"),
        debug_address: "127.0.0.1:0".parse().expect("addr"),
        mesh: Default::default(),
        replicas: Default::default(),
    };
    let control = plexus_control::start_with(cfg, build).await.expect("start");
    assert_eq!(builds.load(Ordering::SeqCst), 1);
    for i in 0..10 {
        std::fs::write(
            dir.join(format!("s{i}.yaml")),
            SVC.replace("NAME", &format!("s{i}")),
        )
        .expect("write");
    }
    eventually(
        Duration::from_secs(5),
        "all ten services in the snapshot",
        || async { (control.hub.generator().describe()["objects"] == 10).then_some(()) },
    )
    .await
    .expect("published");
    assert_eq!(control.hub.config_generation(), control.config().generation);
    let n = builds.load(Ordering::SeqCst);
    assert!(
        (2..=3).contains(&n),
        "ten writes in a burst gave {} builds",
        n - 1
    );

    // The debug API over HTTP.
    let base = format!("http://{}", control.debug_address);
    let (status, metrics) = get(&base, "/metrics").await.expect("metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("plexus_xds_connected_proxies 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("plexus_config_objects{state=\"accepted\"} 10"),
        "{metrics}"
    );
    let (status, registry) = get(&base, "/debug/registryz").await.expect("registryz");
    assert_eq!(status, 200);
    let registry: serde_json::Value = serde_json::from_str(&registry).expect("json");
    assert_eq!(registry["registry"]["objects"], 10, "{registry}");
    let (status, dump) = get(&base, "/debug/config_dump?proxyID=nobody")
        .await
        .expect("dump");
    assert_eq!(status, 404, "{dump}");
    assert!(dump.contains("no connected proxy"), "{dump}");
    let (status, configz) = get(&base, "/debug/configz").await.expect("configz");
    assert_eq!(status, 200);
    assert!(configz.contains("\"rejected\": []"), "{configz}");
    let _ = std::fs::remove_dir_all(&dir);
}

async fn get(base: &str, path: &str) -> Option<(u16, String)> {
    plexus_testkit::envoy::http_get(&format!("{base}{path}")).await
}
