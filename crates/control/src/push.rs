//! The control loop: config reloads and proxy connections come in, are debounced (100 ms
//! quiet, 1 s at most — DESIGN §8) and coalesced, and each burst becomes one new snapshot
//! version published to the ADS hub. Also owns WorkloadGroup auto-registration: a proxy whose
//! node metadata names `AUTO_REGISTER_GROUP` (Istio's key) gets a WorkloadEntry built from that
//! group's template, with the proxy's address, for as long as it stays connected.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind;
use plexus_api::Object;
use plexus_pilot::MeshConfig;
use plexus_sources::ConfigState;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use crate::ads::{Generator, Hub, ProxyEvent};

/// Wait this long without new changes before pushing.
pub const PUSH_QUIET: Duration = Duration::from_millis(100);
/// Push at the latest this long after the first change of a burst.
pub const PUSH_MAX_DELAY: Duration = Duration::from_secs(1);
/// Node metadata key naming the WorkloadGroup a proxy registers into (Istio's).
pub const AUTO_REGISTER_GROUP: &str = "AUTO_REGISTER_GROUP";
/// Source name of auto-registered WorkloadEntries in diagnostics and the debug API.
pub const AUTO_REGISTERED_SOURCE: &str = "<auto-registered>";

/// What a generator is built from.
pub struct Inputs {
    /// Increases with every published snapshot.
    pub version: u64,
    /// Accepted config objects plus the control plane's own (auto-registered entries).
    pub objects: Vec<Object>,
    pub mesh: MeshConfig,
}

/// Builds the generator for one snapshot (translation, or a test double).
pub type BuildGenerator = Arc<dyn Fn(&Inputs) -> Arc<dyn Generator> + Send + Sync>;

pub(crate) struct Loop {
    pub hub: Arc<Hub>,
    pub config: watch::Receiver<Arc<ConfigState>>,
    pub events: mpsc::UnboundedReceiver<ProxyEvent>,
    pub build: BuildGenerator,
    pub mesh: MeshConfig,
    pub generated: watch::Sender<Vec<Object>>,
    pub version: u64,
}

impl Loop {
    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        // conn id → (node, entry) for auto-registered proxies.
        let mut registered: BTreeMap<u64, (Node, Object)> = BTreeMap::new();
        loop {
            tokio::select! {
                r = self.config.changed() => if r.is_err() { return },
                ev = self.events.recv() => match ev {
                    Some(ev) => {
                        if !self.on_event(ev, &mut registered) {
                            continue;
                        }
                    }
                    None => return,
                },
                _ = stop.wait_for(|s| *s) => return,
            }
            self.debounce(&mut registered).await;
            self.publish(&registered);
        }
    }

    /// Swallow further changes until 100 ms pass without one, or 1 s since the first.
    async fn debounce(&mut self, registered: &mut BTreeMap<u64, (Node, Object)>) {
        let deadline = tokio::time::Instant::now() + PUSH_MAX_DELAY;
        loop {
            let quiet = (tokio::time::Instant::now() + PUSH_QUIET).min(deadline);
            tokio::select! {
                r = self.config.changed() => if r.is_err() { return },
                ev = self.events.recv() => match ev {
                    Some(ev) => { self.on_event(ev, registered); }
                    None => return,
                },
                _ = tokio::time::sleep_until(quiet) => return,
            }
        }
    }

    /// Build and publish the next snapshot version.
    pub(crate) fn publish(&mut self, registered: &BTreeMap<u64, (Node, Object)>) {
        self.version += 1;
        let generated: Vec<Object> = registered.values().map(|(_, o)| o.clone()).collect();
        let config = self.config.borrow_and_update().clone();
        let mut objects = config.objects();
        objects.extend(generated.iter().cloned());
        let inputs = Inputs {
            version: self.version,
            objects,
            mesh: self.mesh.clone(),
        };
        let started = std::time::Instant::now();
        let g = (self.build)(&inputs);
        tracing::info!(version = self.version, took = ?started.elapsed(), "pushing new snapshot");
        self.generated.send_replace(generated);
        self.hub.set_config_generation(config.generation);
        self.hub.publish(g);
    }

    /// Returns whether the event changes the config (and so needs a push).
    fn on_event(&self, ev: ProxyEvent, registered: &mut BTreeMap<u64, (Node, Object)>) -> bool {
        match ev {
            ProxyEvent::Connected { conn, node } => {
                let Some(group) = metadata_str(&node, AUTO_REGISTER_GROUP) else {
                    return false;
                };
                let config = self.config.borrow().clone();
                match workload_entry(&config, &node, &group) {
                    Ok(entry) => {
                        tracing::info!(proxy = %node.id, entry = %entry.resource_name(), "auto-registered");
                        registered.insert(conn, (node, entry));
                        true
                    }
                    Err(e) => {
                        tracing::warn!(proxy = %node.id, "cannot auto-register: {e}");
                        false
                    }
                }
            }
            ProxyEvent::Disconnected { conn, .. } => registered.remove(&conn).is_some(),
        }
    }
}

fn metadata_str(node: &Node, key: &str) -> Option<String> {
    let v = node.metadata.as_ref()?.fields.get(key)?;
    match &v.kind {
        Some(Kind::StringValue(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// The node's namespace: `NAMESPACE` metadata, else the id's `<pod>.<namespace>` part.
fn node_namespace(node: &Node) -> Option<String> {
    metadata_str(node, "NAMESPACE").or_else(|| {
        let pod = node.id.split('~').nth(2)?;
        pod.split_once('.').map(|(_, ns)| ns.to_string())
    })
}

/// The node's address: first of `INSTANCE_IPS`, else the id's IP part.
fn node_ip(node: &Node) -> Option<String> {
    metadata_str(node, "INSTANCE_IPS")
        .and_then(|l| l.split(',').next().map(|s| s.trim().to_string()))
        .or_else(|| node.id.split('~').nth(1).map(str::to_string))
        .filter(|s| !s.is_empty())
}

/// Istio's auto-registration: a WorkloadEntry named `<group>-<ip>` in the group's namespace,
/// labels from the group's `metadata.labels` and template, spec from `template`, address from
/// the proxy.
pub fn workload_entry(config: &ConfigState, node: &Node, group: &str) -> Result<Object, String> {
    let ns = node_namespace(node).ok_or("node has no namespace")?;
    let ip = node_ip(node).ok_or("node has no IP address")?;
    let wg = config
        .accepted
        .values()
        .find(|o| {
            o.kind == "WorkloadGroup"
                && o.group == "networking.istio.io"
                && o.name == group
                && o.namespace_or_default() == ns
        })
        .ok_or_else(|| format!("{AUTO_REGISTER_GROUP}={group}: no WorkloadGroup {ns}/{group}"))?;
    let spec = wg
        .root
        .to_json()
        .get("spec")
        .cloned()
        .unwrap_or(Value::Null);
    let mut template = spec.get("template").cloned().unwrap_or_else(|| json!({}));
    let mut labels = spec
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let (Some(l), Some(t)) = (
        labels.as_object_mut(),
        template.get("labels").and_then(Value::as_object),
    ) {
        for (k, v) in t {
            l.insert(k.clone(), v.clone());
        }
    }
    template["address"] = json!(ip);
    if let Some(t) = template.as_object_mut()
        && !labels.as_object().is_some_and(|l| l.is_empty())
    {
        t.insert("labels".into(), labels.clone());
    }
    let doc = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "WorkloadEntry",
        "metadata": {
            "name": format!("{group}-{}", ip.replace([':', '.'], "-")),
            "namespace": ns,
            "labels": labels,
            "annotations": {"istio.io/autoRegistrationGroup": group, "plexus.dev/proxy": node.id},
        },
        "spec": template,
    });
    let loaded = plexus_api::load_str(&doc.to_string(), AUTO_REGISTERED_SOURCE);
    if let Some(d) = loaded.diagnostics.first() {
        return Err(d.to_string());
    }
    loaded
        .objects
        .into_iter()
        .next()
        .ok_or_else(|| "WorkloadEntry did not parse".to_string())
}
