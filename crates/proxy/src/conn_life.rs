//! Upstream connection lifetime per the cluster's `common_http_protocol_options`: a pooled
//! connection is retired once it has been idle for `idle_timeout`, has lived for
//! `max_connection_duration`, or has carried `max_requests_per_connection` requests. A retired
//! connection takes no new request and closes once its last response is done (dropping the
//! pool's sender lets hyper close it), as Envoy drains it.

use tokio::time::Instant;

use crate::config::cluster_ext::PoolPolicy;

/// A pooled connection's sender and its history.
#[derive(Debug)]
pub struct Tracked<S> {
    pub sender: S,
    pub opened: Instant,
    pub requests: u32,
    pub idle_since: Instant,
}

impl<S> Tracked<S> {
    pub fn new(sender: S) -> Self {
        let now = Instant::now();
        Tracked {
            sender,
            opened: now,
            requests: 0,
            idle_since: now,
        }
    }

    /// Whether another request may start on this connection now.
    pub fn usable(&self, policy: &PoolPolicy, now: Instant) -> bool {
        !self.worn_out(policy, now)
            && policy
                .idle_timeout
                .is_none_or(|t| now < self.idle_since + t)
    }

    /// Too old or carried too many requests: never reused, whether idle or not.
    pub fn worn_out(&self, policy: &PoolPolicy, now: Instant) -> bool {
        policy
            .max_connection_duration
            .is_some_and(|d| now >= self.opened + d)
            || policy
                .max_requests_per_connection
                .is_some_and(|m| self.requests >= m)
    }

    /// When this idle connection must be closed, if ever.
    pub fn expires_at(&self, policy: &PoolPolicy) -> Option<Instant> {
        let idle = policy.idle_timeout.map(|t| self.idle_since + t);
        let age = policy.max_connection_duration.map(|d| self.opened + d);
        match (idle, age) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn retirement_rules() {
        let policy = PoolPolicy {
            idle_timeout: Some(Duration::from_secs(10)),
            max_connection_duration: Some(Duration::from_secs(25)),
            max_requests_per_connection: Some(3),
        };
        let mut t = Tracked::new(());
        let start = Instant::now();
        assert!(t.usable(&policy, start));
        assert_eq!(t.expires_at(&policy), Some(start + Duration::from_secs(10)));
        assert!(!t.usable(&policy, start + Duration::from_secs(10)));
        t.idle_since = start + Duration::from_secs(20);
        assert!(t.usable(&policy, start + Duration::from_secs(21)));
        assert_eq!(t.expires_at(&policy), Some(start + Duration::from_secs(25)));
        assert!(t.worn_out(&policy, start + Duration::from_secs(25)));
        t.requests = 3;
        assert!(t.worn_out(&policy, start));
        let forever = PoolPolicy {
            idle_timeout: None,
            max_connection_duration: None,
            max_requests_per_connection: None,
        };
        assert!(t.usable(&forever, start + Duration::from_secs(1 << 30)));
        assert_eq!(t.expires_at(&forever), None);
    }
}
