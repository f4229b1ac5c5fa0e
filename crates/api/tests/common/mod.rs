//! Shared helpers for corpus-driven tests: where the Istio conformance corpus lives and which of
//! its files parse as plain YAML.

use std::path::{Path, PathBuf};

/// The corpus directory: `PLEXUS_CONFORMANCE_DIR` if set, else `../shared/conformance/istio`
/// relative to the workspace root if it exists, else `/work/shared/conformance/istio`.
pub fn corpus_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PLEXUS_CONFORMANCE_DIR") {
        return PathBuf::from(dir);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let relative = workspace.join("../shared/conformance/istio");
    if relative.is_dir() {
        return relative;
    }
    PathBuf::from("/work/shared/conformance/istio")
}

/// Corpus files (relative paths) that parse as plain YAML, per `SOURCES.json`.
pub fn plain_yaml_files() -> Vec<String> {
    let path = corpus_dir().join("SOURCES.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let sources: serde_json::Value = serde_json::from_str(&text).expect("SOURCES.json is JSON");
    let files = sources["files"].as_array().expect("SOURCES.json has files");
    let mut out: Vec<String> = files
        .iter()
        .filter(|f| f["parses_as_yaml"].as_bool() == Some(true))
        .filter_map(|f| f["file"].as_str())
        .filter(|f| f.ends_with(".yaml") || f.ends_with(".yml") || f.ends_with(".golden"))
        .map(str::to_string)
        .collect();
    out.sort();
    out
}

/// The object's kind is known and its version served (the envelope check would accept it).
pub fn is_served(obj: &plexus_api::Object) -> bool {
    obj.kind_info()
        .is_some_and(|k| k.versions.contains(&obj.version.as_str()))
}
