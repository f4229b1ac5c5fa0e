//! Shared by the local-mesh test files.

use std::time::{Duration, Instant};

/// Skip a scenario whose prerequisite is missing, with the reason printed. Under CI
/// (`CI=true`) a missing prerequisite is a failure instead: CI has root, Envoy and the tools.
pub fn skip(reason: &str) {
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "scenario cannot run in CI: {reason}"
    );
    eprintln!("scenario skipped: {reason}");
}

/// Poll `f` every 100 ms until it yields a value; fail naming `what` after `secs` seconds.
pub fn eventually<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}
