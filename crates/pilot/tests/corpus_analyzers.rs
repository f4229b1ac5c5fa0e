//! Istio's analyzer test table (`analyzers/expected-messages.json` in the conformance corpus):
//! every case runs one analyzer over its input files and must report exactly the expected
//! multiset of (code, resource), as Istio's own test does (`ConsistOf`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plexus_api::load_file;
use plexus_pilot::analysis::{Options, analyzer_by_name, run};
use plexus_pilot::{MeshConfig, MeshNetworks};
use serde::Deserialize;

/// Cases known not to match, keyed as `name [first input file]`, with the reason. The test
/// fails when a listed case starts matching, so this list stays true.
const KNOWN_MISSES: &[(&str, &str)] = &[];

/// The corpus: `PLEXUS_CONFORMANCE_DIR`, else `../shared/conformance/istio` beside the
/// workspace, else `/work/shared/conformance/istio`.
fn conformance_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PLEXUS_CONFORMANCE_DIR") {
        return PathBuf::from(dir);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let beside = workspace.join("../shared/conformance/istio");
    if beside.is_dir() {
        return beside;
    }
    PathBuf::from("/work/shared/conformance/istio")
}

#[derive(Deserialize)]
struct Table {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Case {
    name: String,
    analyzer: String,
    input_files: Vec<String>,
    mesh_config_file: Option<String>,
    mesh_networks_file: Option<String>,
    expected: Vec<Expected>,
}

#[derive(Deserialize)]
struct Expected {
    code: String,
    resource: String,
}

fn case_key(c: &Case) -> String {
    format!(
        "{} [{}]",
        c.name,
        c.input_files.first().map(String::as_str).unwrap_or("")
    )
}

/// Run one case; `Err` describes the mismatch.
fn run_case(dir: &Path, c: &Case) -> Result<(), String> {
    let analyzer = analyzer_by_name(&c.analyzer)
        .ok_or_else(|| format!("analyzer {} is not implemented", c.analyzer))?;
    let mut opts = Options {
        default_ingress: true,
        ..Options::default()
    };
    if let Some(f) = &c.mesh_config_file {
        opts.mesh = MeshConfig::load(&dir.join(f)).map_err(|e| e.to_string())?.0;
    }
    if let Some(f) = &c.mesh_networks_file {
        opts.networks = Some(MeshNetworks::load(&dir.join(f)).map_err(|e| e.to_string())?);
    }
    let mut objects = Vec::new();
    for f in &c.input_files {
        let loaded = load_file(&dir.join(f));
        if let Some(d) = loaded.diagnostics.first() {
            return Err(format!("input does not load: {d}"));
        }
        objects.extend(loaded.objects);
    }
    let messages = run(&objects, &opts, &[analyzer]);
    let mut got: Vec<(String, String)> = messages
        .iter()
        .map(|m| (m.code.to_string(), m.resource.clone()))
        .collect();
    let mut want: Vec<(String, String)> = c
        .expected
        .iter()
        .map(|e| (e.code.clone(), e.resource.clone()))
        .collect();
    got.sort();
    want.sort();
    if got == want {
        return Ok(());
    }
    let mut text = String::new();
    for m in &messages {
        text.push_str(&format!(
            "\n      got  {} {} ({}:{}) {}",
            m.code, m.resource, m.path, m.line, m.message
        ));
    }
    for w in &want {
        text.push_str(&format!("\n      want {} {}", w.0, w.1));
    }
    Err(text)
}

#[test]
fn analyzer_corpus_cases_match_istio() {
    let dir = conformance_dir().join("analyzers");
    let text = std::fs::read_to_string(dir.join("expected-messages.json"))
        .unwrap_or_else(|e| panic!("cannot read the analyzer table in {}: {e}", dir.display()));
    let table: Table = serde_json::from_str(&text).expect("expected-messages.json parses");
    let known: BTreeMap<&str, &str> = KNOWN_MISSES.iter().copied().collect();
    assert!(known.len() <= 8, "at most 8 known misses are allowed");
    let mut matched = 0;
    let mut failures = Vec::new();
    for c in &table.cases {
        let key = case_key(c);
        match run_case(&dir, c) {
            Ok(()) => {
                matched += 1;
                if known.contains_key(key.as_str()) {
                    failures.push(format!("{key}: listed as a known miss but now matches"));
                }
            }
            Err(why) => {
                println!("MISMATCH {key} ({}):{why}", c.analyzer);
                if !known.contains_key(key.as_str()) {
                    failures.push(format!("{key}: unexpected mismatch"));
                }
            }
        }
    }
    println!(
        "analyzer corpus: {matched}/{} cases match exactly",
        table.cases.len()
    );
    for (k, why) in &known {
        println!("known miss: {k}: {why}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
