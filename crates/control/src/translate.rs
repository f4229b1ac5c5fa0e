//! The production generator: each snapshot version is a `plexus_model::Snapshot` built from the
//! accepted objects, and each proxy's resources come from `plexus_pilot::translate::generate`
//! for the `ProxyNode` parsed from its node id and metadata, plus the SDS Secrets of the
//! proxy's namespace (`crate::secrets`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::util::pack_any;
use plexus_model::{ProxyNode, ReplicaAddresses, Snapshot};
use plexus_xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE};
use serde_json::{Value, json};

use crate::ads::{Generator, Resources};
use crate::bootstrap::struct_json;
use crate::push::Inputs;
use crate::secrets::SecretStore;

/// One snapshot, translated per proxy on demand.
pub struct SnapshotGenerator {
    pub snapshot: Arc<Snapshot>,
    /// TLS Secrets of the snapshot, served over SDS to proxies of their namespace.
    pub secrets: SecretStore,
    /// Translation warnings already logged for this snapshot (each once, not once per proxy).
    logged: Mutex<BTreeSet<String>>,
}

/// Build the snapshot for `inputs`; decode problems are logged, never fatal.
pub fn build(inputs: &Inputs, replicas: &ReplicaAddresses) -> Arc<dyn Generator> {
    let (snapshot, diags) = Snapshot::build(
        inputs.version.to_string(),
        &inputs.objects,
        inputs.mesh.clone(),
        replicas,
    );
    for d in diags {
        tracing::warn!("registry: {d}");
    }
    Arc::new(SnapshotGenerator {
        snapshot,
        secrets: SecretStore::from_objects(&inputs.objects),
        logged: Mutex::new(BTreeSet::new()),
    })
}

/// Parse the node the way translation needs it.
pub fn proxy_node(node: &Node) -> Result<ProxyNode, String> {
    let md: BTreeMap<String, Value> = match node.metadata.as_ref().map(struct_json) {
        Some(Value::Object(m)) => m.into_iter().collect(),
        _ => BTreeMap::new(),
    };
    ProxyNode::parse(&node.id, &md).map_err(|e| e.to_string())
}

impl Generator for SnapshotGenerator {
    fn version(&self) -> String {
        self.snapshot.version.clone()
    }

    fn generate(&self, node: &Node) -> Result<Resources, String> {
        let proxy = proxy_node(node)?;
        let g = plexus_pilot::translate::generate(&self.snapshot, &proxy);
        {
            let mut logged = crate::ads::hub::lock(&self.logged);
            for w in &g.warnings {
                let text = w.to_string();
                if logged.insert(text.clone()) {
                    tracing::warn!("translation: {text}");
                }
            }
        }
        let mut out = Resources::new();
        let mut put = |t: &str, name: String, any| {
            out.entry(t.to_string()).or_default().insert(name, any);
        };
        for l in g.listeners {
            put(LISTENER_TYPE, l.name.clone(), pack_any(l));
        }
        for r in g.routes {
            put(ROUTE_TYPE, r.name.clone(), pack_any(r));
        }
        for c in g.clusters {
            put(CLUSTER_TYPE, c.name.clone(), pack_any(c));
        }
        for e in g.endpoints {
            put(ENDPOINT_TYPE, e.cluster_name.clone(), pack_any(e));
        }
        for (name, any) in self.secrets.resources(&proxy.namespace) {
            put(SECRET_TYPE, name, any);
        }
        Ok(out)
    }

    fn describe(&self) -> Value {
        let reg = &self.snapshot.registry;
        let services: Vec<Value> = reg
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let endpoints: BTreeMap<String, Vec<String>> = reg
                    .endpoints
                    .get(i)
                    .into_iter()
                    .flatten()
                    .map(|(port, eps)| {
                        let list = eps
                            .iter()
                            .map(|e| {
                                let w = reg.workloads.get(e.workload).map(|w| w.name.as_str());
                                format!("{}:{} ({})", e.address, e.port, w.unwrap_or("?"))
                            })
                            .collect();
                        (port.to_string(), list)
                    })
                    .collect();
                json!({
                    "hostname": s.hostname,
                    "namespace": s.namespace,
                    "source": format!("{} {}/{}", s.source.kind, s.source.namespace, s.source.name),
                    "ports": s.ports.iter().map(|p| json!({"name": p.name, "port": p.number, "protocol": format!("{:?}", p.protocol)})).collect::<Vec<_>>(),
                    "vips": s.vips,
                    "resolution": format!("{:?}", s.resolution),
                    "location": format!("{:?}", s.location),
                    "endpoints": endpoints,
                })
            })
            .collect();
        let workloads: Vec<Value> = reg
            .workloads
            .iter()
            .map(|w| {
                json!({
                    "name": w.name,
                    "namespace": w.namespace,
                    "kind": format!("{:?}", w.kind),
                    "addresses": w.addresses,
                    "labels": w.labels,
                    "ports": w.ports,
                    "service_account": w.service_account,
                })
            })
            .collect();
        let warnings: Vec<String> = crate::ads::hub::lock(&self.logged)
            .iter()
            .cloned()
            .collect();
        json!({"services": services, "workloads": workloads, "translation_warnings": warnings})
    }
}
