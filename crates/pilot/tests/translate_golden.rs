//! Golden tests: each `tests/golden/<case>/` holds `node.yaml` (the proxy, replica addresses,
//! included config files), optionally `input.yaml`, and `expected.txt`, the translation dumped
//! by `plexus_pilot::translate::dump::dump`. Regenerate with
//! `PLEXUS_BLESS=1 cargo test -p plexus-pilot --test translate_golden`.

mod common;

use std::path::Path;

use plexus_pilot::translate::dump::dump;

#[test]
fn golden_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let bless = std::env::var_os("PLEXUS_BLESS").is_some();
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("golden dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("node.yaml").exists())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no golden cases");
    let mut failed = Vec::new();
    for dir in &dirs {
        let case = common::load_case(dir);
        // Warnings name files: keep the expected output independent of the checkout's path.
        let got = dump(&common::translate(&case))
            .replace(&format!("{}/", root.display()), "")
            .replace(&format!("{}/", common::corpus_dir().display()), "corpus:");
        let expected_path = dir.join("expected.txt");
        if bless {
            std::fs::write(&expected_path, &got).expect("write expected");
            continue;
        }
        let want = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if want != got {
            let line = want
                .lines()
                .zip(got.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            failed.push(format!(
                "{}: differs from line {} (run with PLEXUS_BLESS=1 to regenerate)",
                dir.display(),
                line + 1
            ));
        }
    }
    println!("golden cases: {} checked", dirs.len());
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
