//! Istio's analyzer test table (`analyzers/expected-messages.json` in the conformance corpus):
//! every case runs one analyzer over its input files and must report exactly the expected
//! multiset of (code, resource), as Istio's own test does (`ConsistOf`).

use std::collections::BTreeMap;
use std::path::Path;

use plexus_api::load_file;
use plexus_pilot::analysis::{Options, analyzer_by_name, run};
use plexus_pilot::{MeshConfig, MeshNetworks};
use serde::Deserialize;

// The one copy of the corpus-location helper (see BRIEF: resolve the corpus in one place).
#[allow(dead_code)]
#[path = "../../api/tests/common/mod.rs"]
mod common;

/// Cases known not to match, keyed as `name [first input file]`, with the reason. The test
/// fails when a listed case starts matching, so this list stays true.
const KNOWN_MISSES: &[(&str, &str)] = &[];

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
    let dir = common::corpus_dir().join("analyzers");
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

/// The catalogue Plexus renders from matches Istio's `messages.yaml` entry for entry.
#[test]
fn analyzer_corpus_catalogue_matches_istio() {
    let path = common::corpus_dir().join("analyzers/messages.yaml");
    let text = std::fs::read_to_string(&path).expect("read messages.yaml");
    let (docs, err) = plexus_api::yaml::parse_stream(&text);
    assert!(err.is_none(), "{err:?}");
    let root = docs.into_iter().find_map(|d| d.root).expect("a document");
    let json = root.to_json();
    let entries = json["messages"].as_array().expect("messages list");
    let ours = plexus_pilot::analysis::catalogue::ALL;
    assert_eq!(entries.len(), ours.len());
    for (theirs, ours) in entries.iter().zip(ours) {
        assert_eq!(theirs["name"].as_str(), Some(ours.name));
        assert_eq!(theirs["code"].as_str(), Some(ours.code), "{}", ours.name);
        assert_eq!(
            theirs["level"].as_str(),
            Some(ours.level.as_str()),
            "{}",
            ours.name
        );
        assert_eq!(
            theirs["template"].as_str(),
            Some(ours.template),
            "{}",
            ours.name
        );
    }
}
