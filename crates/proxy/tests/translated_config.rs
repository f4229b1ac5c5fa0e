//! Conformance of the proxy's config conversion with the control plane: every resource that
//! `plexus_pilot::translate::generate` emits for the golden translation cases
//! (`crates/pilot/tests/golden/*/`) must convert with the proxy's own `TryFrom`, since a proxy
//! that NACKs translated config cannot join the mesh. Envoy 1.40 accepts all of it
//! (`crates/pilot/tests/translate_envoy.rs`).

#[path = "../../pilot/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

use plexus_proxy::config::{Cluster, FieldError, Listener, LoadAssignment, RouteConfig};

fn golden_dirs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pilot/tests/golden");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("golden dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("node.yaml").exists())
        .collect();
    dirs.sort();
    dirs
}

/// Convert every generated resource; one line per rejected resource.
fn rejections(dir: &Path) -> (usize, Vec<String>) {
    let case = common::load_case(dir);
    let g = common::translate(&case);
    let mut out = Vec::new();
    let mut n = 0;
    let mut check = |kind: &str, name: &str, r: Result<(), FieldError>| {
        n += 1;
        if let Err(e) = r {
            out.push(format!("{kind} {name:?}: {}: {}", e.field, e.reason));
        }
    };
    for l in &g.listeners {
        check("Listener", &l.name, Listener::try_from(l).map(drop));
    }
    for r in &g.routes {
        check(
            "RouteConfiguration",
            &r.name,
            RouteConfig::try_from(r).map(drop),
        );
    }
    for c in &g.clusters {
        check("Cluster", &c.name, Cluster::try_from(c).map(drop));
    }
    for e in &g.endpoints {
        let r = LoadAssignment::try_from(e).map(drop);
        check("ClusterLoadAssignment", &e.cluster_name, r);
    }
    (n, out)
}

fn interception(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("node.yaml")).unwrap_or_default();
    if text.contains("INTERCEPTION_MODE: NONE") || text.contains("id: router~") {
        "process".into()
    } else {
        "redirect".into()
    }
}

/// Rejections that stay until Plexus has the feature: (case, resource line prefix). Each must
/// still occur, so the list cannot go stale.
const KNOWN_GAPS: [(&str, &str); 0] = [];

fn run(mode: &str) {
    let mut failed = Vec::new();
    let mut gaps = Vec::new();
    let mut total = 0;
    let mut cases = 0;
    for dir in golden_dirs().iter().filter(|d| interception(d) == mode) {
        let (n, errs) = rejections(dir);
        total += n;
        cases += 1;
        let case = dir.file_name().map(|f| f.to_string_lossy().into_owned());
        let case = case.as_deref().unwrap_or("?");
        for e in errs {
            let known = KNOWN_GAPS
                .iter()
                .any(|(c, prefix)| *c == case && e.starts_with(prefix));
            if known {
                gaps.push(format!("{case}: {e}"));
            } else {
                failed.push(format!("{case}: {e}"));
            }
        }
    }
    println!(
        "translated config conformance ({mode}): {cases} cases, {total} resources, {} rejected, \
         {} known gaps",
        failed.len(),
        gaps.len()
    );
    for g in &gaps {
        println!("  known gap: {g}");
    }
    assert!(cases > 0, "no {mode} golden cases");
    assert!(failed.is_empty(), "rejected:\n{}", failed.join("\n"));
    for (case, prefix) in KNOWN_GAPS {
        let in_mode = golden_dirs()
            .iter()
            .any(|d| d.ends_with(case) && interception(d) == mode);
        let seen = gaps
            .iter()
            .any(|g| g.starts_with(&format!("{case}: {prefix}")));
        assert!(
            !in_mode || seen,
            "known gap no longer rejected: {case}: {prefix}"
        );
    }
}

#[test]
fn conformance_translated_process_mode_and_gateways() {
    run("process");
}

#[test]
fn conformance_translated_redirect_mode() {
    run("redirect");
}
