//! Circuit breaking: per-cluster counters of open connections, pending requests, active
//! requests and active retries, checked against the cluster's `Limits` (Envoy's default-priority
//! thresholds). Overflow is answered 503 with flag `UO`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::Notify;

use crate::config::Limits;
use crate::pool::Body;

#[derive(Debug, Default)]
pub struct Budget {
    pub limits: Limits,
    pub requests: AtomicU32,
    pub retries: AtomicU32,
    pub connections: AtomicU32,
    pub pending: AtomicU32,
    /// Woken when a connection closes or goes back to a pool idle.
    pub freed: Notify,
}

/// Which counter a guard holds; released on drop.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Request,
    Retry,
    Connection,
    Pending,
}

/// Holds one unit of a `Budget` counter until dropped.
#[derive(Debug)]
pub struct Guard {
    budget: Arc<Budget>,
    kind: Kind,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.budget
            .counter(self.kind)
            .fetch_sub(1, Ordering::AcqRel);
        if matches!(self.kind, Kind::Connection) {
            self.budget.freed.notify_waiters();
        }
    }
}

impl Budget {
    pub fn new(limits: Limits) -> Arc<Self> {
        Arc::new(Budget {
            limits,
            ..Default::default()
        })
    }

    fn counter(&self, kind: Kind) -> &AtomicU32 {
        match kind {
            Kind::Request => &self.requests,
            Kind::Retry => &self.retries,
            Kind::Connection => &self.connections,
            Kind::Pending => &self.pending,
        }
    }

    fn max(&self, kind: Kind) -> u32 {
        match kind {
            Kind::Request => self.limits.max_requests,
            Kind::Retry => self.limits.max_retries,
            Kind::Connection => self.limits.max_connections,
            Kind::Pending => self.limits.max_pending_requests,
        }
    }

    fn try_take(self: &Arc<Self>, kind: Kind) -> Option<Guard> {
        let max = self.max(kind);
        self.counter(kind)
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Guard {
                budget: self.clone(),
                kind,
            })
    }

    pub fn try_request(self: &Arc<Self>) -> Option<Guard> {
        self.try_take(Kind::Request)
    }
    pub fn try_retry(self: &Arc<Self>) -> Option<Guard> {
        self.try_take(Kind::Retry)
    }
    pub fn try_connection(self: &Arc<Self>) -> Option<Guard> {
        self.try_take(Kind::Connection)
    }
    pub fn try_pending(self: &Arc<Self>) -> Option<Guard> {
        self.try_take(Kind::Pending)
    }
}

/// One active request at an endpoint, counted until dropped.
#[derive(Debug)]
pub struct Active(Arc<AtomicU32>);

impl Active {
    pub fn start(counter: &Arc<AtomicU32>) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Active(counter.clone())
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps budget guards (the active request) until it is dropped, so a
/// request counts against `max_requests` until its response has been streamed.
pub struct Guarded {
    pub inner: Body,
    pub _guards: Vec<Guard>,
    pub _active: Option<Active>,
}

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = hyper::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
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

    #[test]
    fn guards_count_and_release() {
        let b = Budget::new(Limits {
            max_requests: 2,
            ..Limits::default()
        });
        let one = b.try_request();
        let two = b.try_request();
        assert!(one.is_some() && two.is_some());
        assert!(b.try_request().is_none());
        drop(one);
        assert!(b.try_request().is_some());
        let zero = Budget::new(Limits {
            max_pending_requests: 0,
            ..Limits::default()
        });
        assert!(zero.try_pending().is_none());
    }
}
