//! `plexus analyze` as a user runs it: the built binary on a corpus case, JSON output.

use std::process::Command;

use serde_json::Value;

#[allow(dead_code)]
#[path = "../../api/tests/common/mod.rs"]
mod common;

/// The Istio test case `virtualServiceDestinationHosts`: every object has a namespace, so the
/// CLI (which puts namespace-less objects in `default`) must report exactly Istio's messages
/// for that case's analyzer (the CLI runs every analyzer; each message names its analyzer).
#[test]
fn analyze_json_reports_the_corpus_case_messages() {
    let dir = common::corpus_dir().join("analyzers");
    let input = dir.join("testdata/virtualservice_destinationhosts.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_plexus"))
        .args(["analyze", "--output", "json"])
        .arg(&input)
        .output()
        .expect("run plexus");
    assert_eq!(
        out.status.code(),
        Some(1),
        "errors found means exit 1: {out:?}"
    );
    let messages: Vec<Value> = serde_json::from_slice(&out.stdout).expect("stdout is a JSON array");
    for m in &messages {
        let obj = m.as_object().expect("each message is an object");
        for key in [
            "code", "level", "message", "resource", "path", "line", "analyzer",
        ] {
            assert!(obj.contains_key(key), "missing {key} in {m}");
        }
        assert!(["Error", "Warning", "Info"].contains(&m["level"].as_str().unwrap_or("")));
        assert_eq!(m["path"].as_str(), Some(input.to_str().unwrap_or_default()));
        assert!(m["line"].as_u64().is_some_and(|l| l > 0), "{m}");
    }
    let mut got: Vec<(String, String)> = messages
        .iter()
        .filter(|m| m["analyzer"] == "virtualservice.DestinationHostAnalyzer")
        .map(|m| {
            (
                m["code"].as_str().unwrap_or("").into(),
                m["resource"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    let table: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expected-messages.json")).expect("read table"),
    )
    .expect("table is JSON");
    let case = table["cases"]
        .as_array()
        .and_then(|cases| {
            cases
                .iter()
                .find(|c| c["name"] == "virtualServiceDestinationHosts")
        })
        .expect("case present");
    // The CLI validates first: objects that fail validation are reported as IST0106 and left
    // out of analysis, so their analyzer messages are not expected here.
    let invalid: Vec<&str> = messages
        .iter()
        .filter(|m| m["code"] == "IST0106")
        .filter_map(|m| m["resource"].as_str())
        .collect();
    assert!(!invalid.is_empty(), "the input holds invalid objects");
    let mut want: Vec<(String, String)> = case["expected"]
        .as_array()
        .expect("expected list")
        .iter()
        .filter(|e| !invalid.contains(&e["resource"].as_str().unwrap_or("")))
        .map(|e| {
            (
                e["code"].as_str().unwrap_or("").into(),
                e["resource"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn analyze_text_output_and_clean_exit() {
    let dir = common::corpus_dir().join("analyzers/testdata");
    let out = Command::new(env!("CARGO_BIN_EXE_plexus"))
        .arg("analyze")
        .arg(dir.join("gateway-no-port.yaml"))
        .output()
        .expect("run plexus");
    // Only a warning: exit 0.
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].ends_with("gateway-no-port.yaml:17: Warning [IST0162] (Gateway default/httpbin-gateway) The gateway is listening on a target port (port 8004) that is not defined in the Service associated with its workload instances (Pod selector istio=ingressgateway). If you need to access the gateway port through the gateway Service, it will not be available."),
        "{text}"
    );
}

#[test]
fn unusable_mesh_config_exits_2_naming_the_field() {
    let tmp = std::env::temp_dir().join(format!("plexus-analyze-mesh-{}.yaml", std::process::id()));
    std::fs::write(&tmp, "rootNamespace: [not, a, string]\n").expect("write temp mesh config");
    let out = Command::new(env!("CARGO_BIN_EXE_plexus"))
        .args(["analyze", "--meshconfig"])
        .arg(&tmp)
        .arg(common::corpus_dir().join("analyzers/testdata/gateway-no-port.yaml"))
        .output()
        .expect("run plexus");
    let _ = std::fs::remove_file(&tmp);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("rootNamespace"),
        "{out:?}"
    );
}
