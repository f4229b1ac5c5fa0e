//! The loader and validator never panic on damaged input: every corpus file cut short at many
//! points, and with structural characters swapped in, still yields diagnostics rather than a
//! crash. (The fuzz target in `fuzz/` explores further; this runs on every test run, bounded.)

use std::path::{Path, PathBuf};

fn corpus_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("PLEXUS_CONFORMANCE_DIR") {
        return PathBuf::from(dir);
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/istio");
    if beside.is_dir() {
        return beside;
    }
    PathBuf::from("/work/shared/conformance/istio")
}

fn check(text: &str) {
    let loaded = plexus_api::load_str(text, "cut.yaml");
    let _ = plexus_api::validate_all(&loaded, plexus_api::Options::default());
}

#[test]
fn damaged_corpus_files_never_panic() {
    let root = corpus_dir();
    let mut files = Vec::new();
    for dir in [
        "validation/dataset",
        "samples/bookinfo/networking",
        "pilot/config",
    ] {
        files.extend(plexus_api::load::config_files(&root.join(dir)));
    }
    assert!(
        files.len() > 20,
        "corpus not found under {}",
        root.display()
    );
    let mut cases = 0usize;
    for file in &files {
        let text = std::fs::read_to_string(file).expect("corpus file is UTF-8");
        // Truncations at ~40 points per file.
        let step = (text.len() / 40).max(1);
        for cut in (0..text.len()).step_by(step) {
            if text.is_char_boundary(cut) {
                check(&text[..cut]);
                cases += 1;
            }
        }
        // Structural characters swapped in at a few places.
        let bytes = text.as_bytes();
        let swaps = [
            (3usize, b'['),
            (11, b'{'),
            (17, b':'),
            (29, b'-'),
            (41, b'&'),
            (53, b'*'),
        ];
        for (i, repl) in swaps {
            if bytes.is_empty() {
                break;
            }
            let pos = (i * 7919) % bytes.len();
            let mut b = bytes.to_vec();
            b[pos] = repl;
            if let Ok(t) = String::from_utf8(b) {
                check(&t);
                cases += 1;
            }
        }
    }
    assert!(cases > 1000, "only {cases} damaged inputs tried");
    println!("loader robustness: {cases} damaged inputs handled without panic");
}
