//! Poll a condition until it holds or a deadline passes: tests never sleep blindly.

use std::future::Future;
use std::time::Duration;

/// Poll `check` every 20 ms until it returns `Some`, or give up after `within` with the last
/// description of what was missing.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("timed out after {within:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
