//! The stream idle timeout: the connection manager's `stream_idle_timeout` (Envoy's default
//! 5 min), replaced by the route's `idle_timeout` once a route is chosen. Until the response
//! headers, a stream with no request bytes for that long is answered locally with flag `SI`,
//! body cause `stream timeout`: 504 once the whole request was received, 408 while it was still
//! arriving (Envoy's choice). Envoy also watches the response body after the headers; Plexus
//! stops watching when the headers are sent.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

/// What the watcher needs to know about one stream.
pub struct Activity {
    start: Instant,
    /// Milliseconds after `start` of the last request frame.
    last_ms: AtomicU64,
    request_done: AtomicBool,
    /// Milliseconds; 0 means disabled.
    timeout_ms: AtomicU64,
    changed: Notify,
}

fn millis(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
    })
}

impl Activity {
    pub fn new(timeout: Option<Duration>, request_done: bool) -> Arc<Activity> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            request_done: AtomicBool::new(request_done),
            timeout_ms: AtomicU64::new(millis(timeout)),
            changed: Notify::new(),
        })
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(now, Ordering::Relaxed);
    }

    /// The route's `idle_timeout` replaces the connection manager's (`None` disables it).
    pub fn set_timeout(&self, timeout: Option<Duration>) {
        self.timeout_ms.store(millis(timeout), Ordering::Relaxed);
        self.touch();
        self.changed.notify_waiters();
    }

    /// Resolves when the stream has been idle for the timeout in force; the value says
    /// whether the whole request had arrived. Never resolves while the timeout is disabled.
    pub async fn expired(&self) -> bool {
        loop {
            let changed = self.changed.notified();
            let timeout = self.timeout_ms.load(Ordering::Relaxed);
            if timeout == 0 {
                changed.await;
                continue;
            }
            let last = self.last_ms.load(Ordering::Relaxed);
            let due = self.start + Duration::from_millis(last.saturating_add(timeout));
            if Instant::now() >= due {
                return self.request_done.load(Ordering::Relaxed);
            }
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = changed => {}
            }
        }
    }
}

/// A request body that reports its progress to the stream's `Activity`.
pub struct Watched<B> {
    inner: B,
    activity: Arc<Activity>,
}

impl<B> Watched<B> {
    pub fn new(inner: B, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Watched<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) => {
                self.activity.touch();
                if self.inner.is_end_stream() {
                    self.activity.request_done.store(true, Ordering::Relaxed);
                }
            }
            Poll::Ready(None) => self.activity.request_done.store(true, Ordering::Relaxed),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test(start_paused = true)]
    async fn expires_after_quiet_period_and_follows_the_route() {
        let a = Activity::new(Some(Duration::from_millis(100)), true);
        let started = Instant::now();
        assert!(a.expired().await);
        assert_eq!(started.elapsed(), Duration::from_millis(100));

        let a = Activity::new(Some(Duration::from_millis(100)), false);
        let watcher = {
            let a = a.clone();
            tokio::spawn(async move { a.expired().await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        a.set_timeout(None);
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(!watcher.is_finished(), "disabled by the route");
        a.set_timeout(Some(Duration::from_millis(300)));
        let started = Instant::now();
        assert!(!watcher.await.expect("joined"), "request still arriving");
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test]
    async fn body_progress_marks_the_request_done() {
        let a = Activity::new(Some(Duration::from_secs(1)), false);
        let body = Watched::new(Full::new(Bytes::from_static(b"x")), a.clone());
        let got = body.collect().await.map(|c| c.to_bytes());
        assert_eq!(got.ok(), Some(Bytes::from_static(b"x")));
        assert!(a.request_done.load(Ordering::Relaxed));
    }
}
