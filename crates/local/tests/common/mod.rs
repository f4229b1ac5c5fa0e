//! Shared by the local-mesh test files.

/// Skip a scenario whose prerequisite is missing, with the reason printed. Under CI
/// (`CI=true`) a missing prerequisite is a failure instead: CI has root, Envoy and the tools.
pub fn skip(reason: &str) {
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "scenario cannot run in CI: {reason}"
    );
    eprintln!("scenario skipped: {reason}");
}
