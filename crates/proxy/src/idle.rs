//! The stream timers of the HTTP connection manager, for the whole life of a stream:
//! - the idle timeout: `stream_idle_timeout` (Envoy's default 5 min), replaced by the route's
//!   `idle_timeout` once a route is chosen; any request or response body bytes restart it;
//! - the duration limit (`max_stream_duration`, see `crate::grpc_timeout`), counted from the
//!   moment the request arrived;
//! - the route timeout once the response headers are in: Envoy's router timeout also covers
//!   the response body (flag `UT`).
//!
//! Once an upgraded stream's tunnel is up, `crate::tunnel` watches it with the idle timeout
//! and duration limit in force (`Activity::tunnel_timers`).
//!
//! Before the response headers, an expiry is answered locally: flag `SI` "stream timeout" or
//! flag `DT` "downstream duration timeout", 504 once the whole request was received and 408
//! while it was still arriving (Envoy's choice). After the headers the stream is reset, as Envoy
//! does: the response body fails, so HTTP/1.1 closes the connection (the response is cut short)
//! and HTTP/2 sends RST_STREAM (INTERNAL_ERROR).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::flags::ResponseFlag;
use crate::store::Store;

/// Which timer ended the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// No body bytes either way for the idle timeout in force.
    Idle,
    /// The stream outlived its `max_stream_duration`.
    Duration,
    /// The route timeout ran out while the response body was still coming.
    Route,
}

impl Expiry {
    pub fn flag(self) -> ResponseFlag {
        match self {
            Expiry::Idle => ResponseFlag::StreamIdleTimeout,
            Expiry::Duration => ResponseFlag::DurationTimeout,
            Expiry::Route => ResponseFlag::UpstreamRequestTimeout,
        }
    }

    /// Envoy's response body / `grpc-message` for the local reply.
    pub fn cause(self) -> &'static str {
        match self {
            Expiry::Idle => "stream timeout",
            Expiry::Duration => "downstream duration timeout",
            Expiry::Route => "upstream request timeout",
        }
    }

    /// Status of the local reply when the headers are not sent yet: Envoy's 408 while the
    /// request is still arriving, else 504.
    pub fn status(self, request_done: bool) -> u16 {
        match self {
            Expiry::Idle | Expiry::Duration if !request_done => 408,
            _ => 504,
        }
    }
}

/// `deadline_ms` value meaning no duration limit.
const NO_DEADLINE: u64 = u64::MAX;

/// What the timers need to know about one stream.
pub struct Activity {
    start: Instant,
    /// Milliseconds after `start` of the last body frame, either way.
    last_ms: AtomicU64,
    request_done: AtomicBool,
    /// Milliseconds; 0 means disabled.
    timeout_ms: AtomicU64,
    /// Milliseconds after `start` at which the duration limit ends.
    deadline_ms: AtomicU64,
    /// Milliseconds after `start` at which the route timeout ends.
    route_ms: AtomicU64,
    changed: Notify,
}

fn millis(d: Option<Duration>) -> u64 {
    d.map_or(0, |d| {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
    })
}

impl Activity {
    pub fn new(
        timeout: Option<Duration>,
        limit: Option<Duration>,
        request_done: bool,
    ) -> Arc<Activity> {
        let a = Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            request_done: AtomicBool::new(request_done),
            timeout_ms: AtomicU64::new(millis(timeout)),
            deadline_ms: AtomicU64::new(NO_DEADLINE),
            route_ms: AtomicU64::new(NO_DEADLINE),
            changed: Notify::new(),
        };
        a.store_limit(limit);
        Arc::new(a)
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

    fn store_limit(&self, limit: Option<Duration>) {
        let ms = limit.map_or(NO_DEADLINE, |d| {
            u64::try_from(d.as_millis()).unwrap_or(NO_DEADLINE - 1)
        });
        self.deadline_ms.store(ms, Ordering::Relaxed);
    }

    /// The duration limit chosen with the route, still counted from the stream's start
    /// (`None` lifts it).
    pub fn set_limit(&self, limit: Option<Duration>) {
        self.store_limit(limit);
        self.changed.notify_waiters();
    }

    /// The route timeout's deadline, watched from here on (the response headers are in).
    pub fn set_route_deadline(&self, at: Instant) {
        let ms = u64::try_from(at.saturating_duration_since(self.start).as_millis())
            .unwrap_or(NO_DEADLINE - 1);
        self.route_ms.store(ms, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// What still watches an upgraded stream's tunnel (`crate::tunnel`): the idle timeout in
    /// force and the end of the duration limit.
    pub fn tunnel_timers(&self) -> (Option<Duration>, Option<Instant>) {
        let timeout = self.timeout_ms.load(Ordering::Relaxed);
        let deadline = self.deadline_ms.load(Ordering::Relaxed);
        (
            (timeout != 0).then(|| Duration::from_millis(timeout)),
            (deadline != NO_DEADLINE).then(|| self.start + Duration::from_millis(deadline)),
        )
    }

    pub fn request_done(&self) -> bool {
        self.request_done.load(Ordering::Relaxed)
    }

    /// The earliest due timer, if any is armed.
    fn next_due(&self) -> Option<(Instant, Expiry)> {
        let at = |ms: u64| self.start + Duration::from_millis(ms);
        let fixed = |ms: u64, which| (ms != NO_DEADLINE).then(|| (at(ms), which));
        let limit = fixed(self.deadline_ms.load(Ordering::Relaxed), Expiry::Duration);
        let route = fixed(self.route_ms.load(Ordering::Relaxed), Expiry::Route);
        let timeout = self.timeout_ms.load(Ordering::Relaxed);
        let last = self.last_ms.load(Ordering::Relaxed);
        let idle = (timeout != 0).then(|| (at(last.saturating_add(timeout)), Expiry::Idle));
        // The earliest wins; on a tie the duration limit, then the route timeout.
        [limit, route, idle]
            .into_iter()
            .flatten()
            .min_by_key(|(due, _)| *due)
    }

    /// Resolves when a timer expires. Never resolves while both are disabled.
    pub async fn expired(&self) -> Expiry {
        loop {
            let changed = self.changed.notified();
            let Some((due, which)) = self.next_due() else {
                changed.await;
                continue;
            };
            if Instant::now() >= due {
                return which;
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

/// Errors of the body sent downstream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a response body stopped short: the stream was reset by one of its timers.
#[derive(Debug)]
pub struct StreamReset(pub Expiry);

impl std::fmt::Display for StreamReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stream reset: {}", self.0.cause())
    }
}

impl std::error::Error for StreamReset {}

/// The timers of a stream whose response headers have been sent.
struct Watch {
    activity: Arc<Activity>,
    store: Arc<Store>,
    /// Made on the first wait, so bodies that are ready at once never arm it.
    timer: Option<Pin<Box<dyn Future<Output = Expiry> + Send>>>,
}

/// The response body as sent downstream: its frames restart the idle timer, and an expiry
/// fails it (the reset described in the module header).
pub struct Streamed {
    inner: crate::pool::Body,
    watch: Option<Watch>,
}

impl Streamed {
    pub fn watched(inner: crate::pool::Body, activity: Arc<Activity>, store: Arc<Store>) -> Self {
        let watch = Watch {
            activity,
            store,
            timer: None,
        };
        Streamed {
            inner,
            watch: Some(watch),
        }
    }

    /// A body no stream timer watches (replies made outside a stream).
    pub fn plain(inner: crate::pool::Body) -> Self {
        Streamed { inner, watch: None }
    }
}

impl Body for Streamed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(w) = &this.watch {
                    w.activity.touch();
                }
                return Poll::Ready(Some(Ok(frame)));
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                this.watch = None;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        let Some(w) = &mut this.watch else {
            return Poll::Pending;
        };
        let activity = w.activity.clone();
        let timer = w
            .timer
            .get_or_insert_with(|| Box::pin(async move { activity.expired().await }));
        let Poll::Ready(expiry) = timer.as_mut().poll(cx) else {
            return Poll::Pending;
        };
        w.store.stats.flag(expiry.flag());
        tracing::debug!(
            flag = expiry.flag().code(),
            "stream reset after the response headers"
        );
        this.watch = None;
        Poll::Ready(Some(Err(Box::new(StreamReset(expiry)))))
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
        let a = Activity::new(Some(Duration::from_millis(100)), None, true);
        let started = Instant::now();
        assert_eq!(a.expired().await, Expiry::Idle);
        assert_eq!(started.elapsed(), Duration::from_millis(100));

        let a = Activity::new(Some(Duration::from_millis(100)), None, false);
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
        assert_eq!(watcher.await.expect("joined"), Expiry::Idle);
        assert!(!a.request_done(), "request still arriving");
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }

    #[tokio::test]
    async fn body_progress_marks_the_request_done() {
        let a = Activity::new(Some(Duration::from_secs(1)), None, false);
        let body = Watched::new(Full::new(Bytes::from_static(b"x")), a.clone());
        let got = body.collect().await.map(|c| c.to_bytes());
        assert_eq!(got.ok(), Some(Bytes::from_static(b"x")));
        assert!(a.request_done.load(Ordering::Relaxed));
    }

    #[tokio::test(start_paused = true)]
    async fn duration_limit_counts_from_the_start_and_the_route_can_lift_it() {
        let a = Activity::new(
            Some(Duration::from_secs(1)),
            Some(Duration::from_millis(250)),
            true,
        );
        let started = Instant::now();
        assert_eq!(a.expired().await, Expiry::Duration);
        assert_eq!(started.elapsed(), Duration::from_millis(250));

        let a = Activity::new(
            Some(Duration::from_secs(1)),
            Some(Duration::from_millis(250)),
            true,
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        a.set_limit(Some(Duration::from_millis(400)));
        let started = Instant::now();
        assert_eq!(a.expired().await, Expiry::Duration);
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(300),
            "400 ms from the start"
        );
        a.set_limit(None);
        let started = Instant::now();
        assert_eq!(a.expired().await, Expiry::Idle);
        assert!(started.elapsed() <= Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn the_route_timeout_runs_on_over_the_body() {
        let a = Activity::new(
            Some(Duration::from_secs(5)),
            Some(Duration::from_secs(2)),
            true,
        );
        a.set_route_deadline(Instant::now() + Duration::from_millis(700));
        let started = Instant::now();
        assert_eq!(a.expired().await, Expiry::Route);
        assert_eq!(started.elapsed(), Duration::from_millis(700));
        assert_eq!(Expiry::Route.status(false), 504);
        assert_eq!(Expiry::Idle.status(false), 408);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_response_body_is_reset_and_counted() {
        let store = Arc::new(Store::default());
        let a = Activity::new(Some(Duration::from_millis(100)), None, true);
        let mut body = Streamed::watched(OneThenStall(true).boxed(), a, store.clone());
        let first = body
            .frame()
            .await
            .and_then(|f| f.ok())
            .and_then(|f| f.into_data().ok());
        assert_eq!(first, Some(Bytes::from_static(b"a")));
        let started = Instant::now();
        let err = body
            .frame()
            .await
            .and_then(|f| f.err())
            .map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("stream reset: stream timeout"));
        assert_eq!(started.elapsed(), Duration::from_millis(100));
        assert!(store.stats.render().contains("flag=\"SI\"} 1"));
    }

    /// One data frame, then nothing ever again.
    struct OneThenStall(bool);

    impl Body for OneThenStall {
        type Data = Bytes;
        type Error = hyper::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
            if std::mem::take(&mut self.0) {
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"a")))));
            }
            Poll::Pending
        }
    }
}
