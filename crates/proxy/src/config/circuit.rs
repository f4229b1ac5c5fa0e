//! CircuitBreakers -> `Limits`: the default-priority thresholds Envoy applies per cluster.

use envoy_types::pb::envoy::config::cluster::v3 as c;
use envoy_types::pb::envoy::config::core::v3::RoutingPriority;

use super::{FieldError, FieldResult};
use crate::deny_set;

/// Per-cluster limits. Envoy applies these defaults even when `circuit_breakers` is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: u32,
    pub max_pending_requests: u32,
    pub max_requests: u32,
    pub max_retries: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1024,
            max_pending_requests: 1024,
            max_requests: 1024,
            max_retries: 3,
        }
    }
}

impl TryFrom<&c::CircuitBreakers> for Limits {
    type Error = FieldError;
    fn try_from(cb: &c::CircuitBreakers) -> FieldResult<Self> {
        let c::CircuitBreakers {
            thresholds,
            per_host_thresholds,
        } = cb;
        deny_set!(per_host_thresholds);
        let mut limits = Limits::default();
        for (i, t) in thresholds.iter().enumerate() {
            let at = format!("thresholds[{i}]");
            let c::circuit_breakers::Thresholds {
                priority,
                max_connections,
                max_pending_requests,
                max_requests,
                max_retries,
                retry_budget,
                // Only adds `remaining_*` gauges in Envoy; no effect on traffic.
                track_remaining: _,
                max_connection_pools,
            } = t;
            (|| {
                deny_set!(retry_budget, max_connection_pools);
                Ok(())
            })()
            .map_err(|e: FieldError| e.within(&at))?;
            match RoutingPriority::try_from(*priority) {
                Ok(RoutingPriority::Default) => {}
                // Plexus has no priority routing; HIGH thresholds can never apply.
                Ok(RoutingPriority::High) => {
                    return Err(FieldError::unsupported(format!("{at}.priority (HIGH)")));
                }
                Err(_) => {
                    return Err(FieldError::invalid(
                        format!("{at}.priority"),
                        "unknown value",
                    ));
                }
            }
            let or = |v: &Option<envoy_types::pb::google::protobuf::UInt32Value>, d: u32| {
                v.as_ref().map_or(d, |v| v.value)
            };
            limits = Limits {
                max_connections: or(max_connections, limits.max_connections),
                max_pending_requests: or(max_pending_requests, limits.max_pending_requests),
                max_requests: or(max_requests, limits.max_requests),
                max_retries: or(max_retries, limits.max_retries),
            };
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::UInt32Value;

    #[test]
    fn thresholds_override_defaults() {
        let cb = c::CircuitBreakers {
            thresholds: vec![c::circuit_breakers::Thresholds {
                max_requests: Some(UInt32Value { value: 7 }),
                track_remaining: true,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            Limits::try_from(&cb),
            Ok(Limits {
                max_requests: 7,
                ..Limits::default()
            })
        );
        let high = c::CircuitBreakers {
            thresholds: vec![c::circuit_breakers::Thresholds {
                priority: 1,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(Limits::try_from(&high).is_err_and(|e| e.field == "thresholds[0].priority (HIGH)"));
    }
}
