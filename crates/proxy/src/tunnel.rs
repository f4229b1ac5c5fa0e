//! The byte tunnel of an upgraded stream (WebSocket after 101, CONNECT after 2xx) and the
//! stream timers that still watch it, as in Envoy: the idle timeout in force (the route's
//! `idle_timeout`, else the connection manager's `stream_idle_timeout`) closes both sides once
//! no bytes moved either way for that long (flag `SI`), and the duration limit
//! (`max_stream_duration`) still counted from the request's arrival closes them when it ends
//! (flag `DT`).
//!
//! Each chunk only sets a flag (one relaxed atomic store: no clock read, no allocation); the
//! watcher wakes every quarter of the idle timeout and takes a set flag as activity at that
//! moment, so an idle tunnel closes between the timeout and a quarter more after its last byte.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::idle::{Activity, Expiry};
use crate::store::Store;

/// Carry bytes both ways between the two sides until either closes or a timer expires; on
/// expiry both are dropped (closed) and the flag counted.
pub async fn carry<D, U>(down: D, up: U, activity: Arc<Activity>, store: Arc<Store>)
where
    D: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let seen = Arc::new(AtomicBool::new(false));
    let mut down = Marked {
        inner: down,
        seen: seen.clone(),
    };
    let mut up = Marked {
        inner: up,
        seen: seen.clone(),
    };
    let (idle, deadline) = activity.tunnel_timers();
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut down, &mut up) => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "tunnel ended with an error");
            }
        }
        expiry = expired(&seen, idle, deadline) => {
            store.stats.flag(expiry.flag());
            tracing::debug!(flag = expiry.flag().code(), "tunnel closed by a stream timer");
        }
    }
}

/// Resolves when the tunnel has been quiet for `idle` or `deadline` has passed; never when
/// both are off.
async fn expired(seen: &AtomicBool, idle: Option<Duration>, deadline: Option<Instant>) -> Expiry {
    let step = idle.map(|t| (t / 4).max(Duration::from_millis(1)));
    let mut last = Instant::now();
    loop {
        let now = Instant::now();
        if seen.swap(false, Ordering::Relaxed) {
            last = now;
        }
        if deadline.is_some_and(|d| now >= d) {
            return Expiry::Duration;
        }
        if idle.is_some_and(|t| now >= last + t) {
            return Expiry::Idle;
        }
        let next_check = match (idle, step) {
            (Some(t), Some(s)) => Some((now + s).min(last + t)),
            _ => None,
        };
        match [next_check, deadline].into_iter().flatten().min() {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending::<()>().await,
        }
    }
}

/// One side of the tunnel, marking any bytes it reads or writes as activity.
struct Marked<T> {
    inner: T,
    seen: Arc<AtomicBool>,
}

impl<T: AsyncRead + Unpin> AsyncRead for Marked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.seen.store(true, Ordering::Relaxed);
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Marked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Reads already mark every byte that moves; writes pass straight through.
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn quiet_tunnel_expires_within_a_quarter_past_the_timeout() {
        let seen = AtomicBool::new(false);
        let started = Instant::now();
        let e = expired(&seen, Some(Duration::from_millis(400)), None).await;
        assert_eq!(e, Expiry::Idle);
        assert_eq!(started.elapsed(), Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn activity_defers_expiry_and_the_deadline_still_ends_it() {
        let seen = Arc::new(AtomicBool::new(false));
        let marker = {
            let seen = seen.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    tokio::time::sleep(Duration::from_millis(150)).await;
                    seen.store(true, Ordering::Relaxed);
                }
            })
        };
        let started = Instant::now();
        let e = expired(&seen, Some(Duration::from_millis(400)), None).await;
        assert_eq!(e, Expiry::Idle);
        let waited = started.elapsed();
        // Last mark at 1.5 s, noticed by 1.6 s; quiet for 400 ms after that.
        assert!(
            waited >= Duration::from_millis(1900) && waited <= Duration::from_millis(2000),
            "{waited:?}"
        );
        marker.await.expect("joined");

        let deadline = Instant::now() + Duration::from_millis(250);
        assert_eq!(expired(&seen, None, Some(deadline)).await, Expiry::Duration);
        assert_eq!(Instant::now(), deadline);
    }

    #[tokio::test]
    async fn carries_bytes_and_closes_both_sides_when_idle() {
        let (mut client, down) = tokio::io::duplex(64);
        let (up, mut server) = tokio::io::duplex(64);
        let store = Arc::new(Store::default());
        let activity = Activity::new(Some(Duration::from_millis(100)), None, true);
        let task = tokio::spawn(carry(down, up, activity, store.clone()));
        client.write_all(b"ping").await.expect("write");
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.expect("read");
        assert_eq!(&buf, b"ping");
        let closed = tokio::time::timeout(Duration::from_secs(5), async {
            let a = client.read(&mut buf).await.map_or(0, |n| n);
            let b = server.read(&mut buf).await.map_or(0, |n| n);
            (a, b)
        })
        .await;
        assert_eq!(closed.ok(), Some((0, 0)), "both sides see EOF");
        task.await.expect("joined");
        assert!(store.stats.render().contains("flag=\"SI\"} 1"));
    }
}
