//! Shared helpers of the translation tests: the corpus location, loading a case (objects,
//! node, replica addresses, mesh config) and translating it.

#![allow(dead_code)]

pub mod rules;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plexus_model::{MeshConfig, ProxyNode, ReplicaAddresses, Snapshot};
use plexus_pilot::translate::{Generated, generate};

/// The Istio corpus: `PLEXUS_CONFORMANCE_DIR`, else `../shared/conformance/istio` relative to
/// the workspace root, else `/work/shared/conformance/istio`.
pub fn corpus_dir() -> PathBuf {
    if let Ok(d) = std::env::var("PLEXUS_CONFORMANCE_DIR") {
        return PathBuf::from(d);
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let rel = root.join("../shared/conformance/istio");
    if rel.exists() {
        return rel;
    }
    PathBuf::from("/work/shared/conformance/istio")
}

/// A translation case: config objects plus the proxy asking.
pub struct Case {
    pub objects: Vec<plexus_api::Object>,
    pub node: ProxyNode,
    pub replicas: ReplicaAddresses,
    pub mesh: MeshConfig,
}

/// Parse `node.yaml`: `id`, `metadata`, `replicas` (`ns/workload: [ip...]`), `mesh` (MeshConfig
/// text), `include` (files relative to the golden dir, or `corpus:<path>`).
pub fn load_case(dir: &Path) -> Case {
    let node_text = std::fs::read_to_string(dir.join("node.yaml")).expect("node.yaml");
    let (docs, err) = plexus_api::yaml::parse_stream(&node_text);
    assert!(err.is_none(), "{}: {err:?}", dir.display());
    let root = docs
        .into_iter()
        .find_map(|d| d.root)
        .expect("node.yaml document");
    let json = root.to_json();
    let id = json["id"].as_str().expect("node.yaml: id");
    let metadata: BTreeMap<String, serde_json::Value> = serde_json::from_value(
        json.get("metadata")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({})),
    )
    .expect("metadata map");
    let node = ProxyNode::parse(id, &metadata).expect("node");
    let mut replicas = ReplicaAddresses::default();
    if let Some(map) = json.get("replicas").and_then(|r| r.as_object()) {
        for (k, v) in map {
            let (ns, name) = k.split_once('/').expect("replicas key ns/name");
            let addrs = v
                .as_array()
                .expect("list")
                .iter()
                .map(|a| a.as_str().expect("ip").to_string())
                .collect();
            replicas.insert(ns, name, addrs);
        }
    }
    let mesh = match json.get("mesh").and_then(|m| m.as_str()) {
        Some(text) => MeshConfig::parse(text, "node.yaml#mesh").expect("mesh").0,
        None => MeshConfig::default(),
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for inc in json
        .get("include")
        .and_then(|i| i.as_array())
        .into_iter()
        .flatten()
    {
        let s = inc.as_str().expect("include path");
        files.push(match s.strip_prefix("corpus:") {
            Some(p) => corpus_dir().join(p),
            None => dir.join(s),
        });
    }
    let input = dir.join("input.yaml");
    if input.exists() {
        files.push(input);
    }
    let loaded = plexus_api::load_paths(&files);
    assert!(
        loaded.diagnostics.is_empty(),
        "{}: {:?}",
        dir.display(),
        loaded.diagnostics
    );
    Case {
        objects: loaded.objects,
        node,
        replicas,
        mesh,
    }
}

pub fn translate(case: &Case) -> Generated {
    let (snap, diags) = Snapshot::build("test", &case.objects, case.mesh.clone(), &case.replicas);
    assert!(diags.is_empty(), "{diags:?}");
    generate(&snap, &case.node)
}
