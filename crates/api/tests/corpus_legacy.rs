//! The Istio 1.5 validation datasets for the legacy kinds: every document of a `*-valid.yaml`
//! file is accepted and every document of a `*-invalid.yaml` file is rejected, by the same
//! pipeline `plexus validate` runs.

mod common;

use plexus_api::{Level, Options, load_file, validate_object};

#[test]
fn corpus_legacy_validation_sets() {
    let dir = common::corpus_dir().join("legacy/validation-1.5.0");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    let (mut accepted, mut rejected, mut failures) = (0, 0, Vec::new());
    for path in files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let expect_valid = name.contains("-valid");
        let loaded = load_file(&path);
        assert!(
            loaded.diagnostics.is_empty(),
            "{name}: {:?}",
            loaded.diagnostics
        );
        assert!(!loaded.objects.is_empty(), "{name}: no objects");
        for obj in &loaded.objects {
            let errors: Vec<String> = validate_object(obj, Options { strict: true })
                .into_iter()
                .filter(|d| d.level == Level::Error)
                .map(|d| d.to_string())
                .collect();
            match (expect_valid, errors.is_empty()) {
                (true, true) => accepted += 1,
                (false, false) => {
                    println!("rejected as expected: {}", errors.join("; "));
                    rejected += 1;
                }
                (true, false) => failures.push(format!("{name}: {}", errors.join("; "))),
                (false, true) => {
                    failures.push(format!("{name}: {} {} was accepted", obj.kind, obj.name))
                }
            }
        }
    }
    println!(
        "corpus legacy: {accepted} valid documents accepted, {rejected} invalid documents rejected"
    );
    assert_eq!(accepted + rejected, 12, "{failures:?}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
