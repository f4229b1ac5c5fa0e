//! RetryPolicy -> `RetryPolicy`: Envoy's `retry_on` conditions, retry count, per-try timeout,
//! backoff and the previous-hosts predicate.

use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use prost::Name;

use super::{FieldError, FieldResult, duration};
use crate::deny_set;

/// Envoy's default retry backoff base interval.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(25);

/// The `retry_on` conditions Plexus understands (HTTP ones and the gRPC status conditions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryOn {
    /// Any 5xx response, a reset, a connect failure or a per-try timeout.
    pub server_error: bool,
    /// 502, 503, 504, a reset, a connect failure or a per-try timeout.
    pub gateway_error: bool,
    /// No response at all: disconnect, reset, connect failure or per-try timeout.
    pub reset: bool,
    pub connect_failure: bool,
    /// 409.
    pub retriable_4xx: bool,
    /// The codes in `retriable_status_codes`.
    pub retriable_status_codes: bool,
    /// An HTTP/2 upstream reset the stream with REFUSED_STREAM.
    pub refused_stream: bool,
    /// gRPC conditions: the response headers carry one of these `grpc-status` codes
    /// (cancelled 1, deadline-exceeded 4, resource-exhausted 8, internal 13, unavailable 14).
    pub grpc_codes: GrpcCodes,
}

/// Bit set of the gRPC status codes `retry_on` names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrpcCodes(pub u32);

impl GrpcCodes {
    pub fn contains(self, code: u32) -> bool {
        code < 32 && self.0 & (1 << code) != 0
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    pub on: RetryOn,
    pub num_retries: u32,
    pub per_try_timeout: Option<Duration>,
    pub retriable_status_codes: Vec<u16>,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// `envoy.retry_host_predicates.previous_hosts`: retries avoid hosts already tried.
    pub avoid_previous_hosts: bool,
    pub host_selection_max_attempts: u32,
    /// `envoy.retry_priorities.previous_priorities` with this `update_frequency`: retries
    /// avoid priority levels earlier attempts used.
    pub previous_priorities: Option<u32>,
}

impl TryFrom<&rt::RetryPolicy> for RetryPolicy {
    type Error = FieldError;
    fn try_from(p: &rt::RetryPolicy) -> FieldResult<Self> {
        let rt::RetryPolicy {
            retry_on,
            num_retries,
            per_try_timeout,
            per_try_idle_timeout,
            retry_priority,
            retry_host_predicate,
            retry_options_predicates,
            host_selection_retry_max_attempts,
            retriable_status_codes,
            retry_back_off,
            rate_limited_retry_back_off,
            retriable_headers,
            retriable_request_headers,
            refresh_cluster_on_retry,
        } = p;
        deny_set!(
            per_try_idle_timeout,
            retry_options_predicates,
            rate_limited_retry_back_off,
            retriable_headers,
            retriable_request_headers,
            refresh_cluster_on_retry
        );
        let on = parse_retry_on(retry_on).map_err(|e| e.within("retry_on"))?;
        let codes = retriable_status_codes
            .iter()
            .map(|c| u16::try_from(*c).ok().filter(|c| (100..600).contains(c)))
            .collect::<Option<Vec<u16>>>()
            .ok_or_else(|| FieldError::invalid("retriable_status_codes", "not an HTTP status"))?;
        let per_try_timeout = match per_try_timeout {
            Some(d) => {
                Some(duration(d).map_err(|e| e.within("per_try_timeout"))?).filter(|d| !d.is_zero())
            }
            None => None,
        };
        let (backoff_base, backoff_max) =
            backoff(retry_back_off.as_ref()).map_err(|e| e.within("retry_back_off"))?;
        let mut avoid_previous_hosts = false;
        for (i, pred) in retry_host_predicate.iter().enumerate() {
            let is_previous = match &pred.config_type {
                Some(rt::retry_policy::retry_host_predicate::ConfigType::TypedConfig(any)) => {
                    any.type_url == PreviousHostsPredicate::type_url()
                }
                None => pred.name == "envoy.retry_host_predicates.previous_hosts",
            };
            if !is_previous {
                return Err(FieldError::unsupported(format!(
                    "retry_host_predicate[{i}] ({})",
                    pred.name
                )));
            }
            avoid_previous_hosts = true;
        }
        let previous_priorities = match retry_priority {
            Some(p) => Some(previous_priorities(p).map_err(|e| e.within("retry_priority"))?),
            None => None,
        };
        Ok(RetryPolicy {
            previous_priorities,
            on,
            num_retries: num_retries.as_ref().map_or(1, |n| n.value),
            per_try_timeout,
            retriable_status_codes: codes,
            backoff_base,
            backoff_max,
            avoid_previous_hosts,
            host_selection_max_attempts: u32::try_from((*host_selection_retry_max_attempts).max(1))
                .unwrap_or(1),
        })
    }
}

fn backoff(b: Option<&rt::retry_policy::RetryBackOff>) -> FieldResult<(Duration, Duration)> {
    let Some(rt::retry_policy::RetryBackOff {
        base_interval,
        max_interval,
    }) = b
    else {
        return Ok((DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_BASE * 10));
    };
    let base = match base_interval {
        Some(d) => duration(d).map_err(|e| e.within("base_interval"))?,
        None => return Err(FieldError::invalid("base_interval", "required")),
    };
    if base.is_zero() {
        return Err(FieldError::invalid(
            "base_interval",
            "must be greater than 0",
        ));
    }
    let max = match max_interval {
        Some(d) => duration(d).map_err(|e| e.within("max_interval"))?,
        None => base * 10,
    };
    if max < base {
        return Err(FieldError::invalid(
            "max_interval",
            "must not be less than base_interval",
        ));
    }
    Ok((base, max))
}

impl RetryOn {
    /// Add the conditions of an `x-envoy-retry-on` header (`grpc` false: HTTP conditions) or
    /// an `x-envoy-retry-grpc-on` header (`grpc` true: gRPC conditions). Unknown tokens, and
    /// tokens of the other kind, are ignored, as Envoy does for these headers.
    pub fn merge_header(&mut self, value: &str, grpc: bool) {
        const GRPC: [&str; 5] = [
            "cancelled",
            "deadline-exceeded",
            "resource-exhausted",
            "internal",
            "unavailable",
        ];
        for token in value.split(',').map(str::trim) {
            if GRPC.contains(&token) != grpc {
                continue;
            }
            let mut one = RetryOn::default();
            if parse_retry_on(token).map(|o| one = o).is_ok() {
                self.server_error |= one.server_error;
                self.gateway_error |= one.gateway_error;
                self.reset |= one.reset;
                self.connect_failure |= one.connect_failure;
                self.retriable_4xx |= one.retriable_4xx;
                self.retriable_status_codes |= one.retriable_status_codes;
                self.refused_stream |= one.refused_stream;
                self.grpc_codes.0 |= one.grpc_codes.0;
            }
        }
    }
}

impl RetryPolicy {
    /// The policy Envoy builds when a request asks for retries on a route that has none.
    pub fn from_header_only() -> Self {
        RetryPolicy {
            on: RetryOn::default(),
            num_retries: 1,
            per_try_timeout: None,
            retriable_status_codes: Vec::new(),
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_BASE * 10,
            avoid_previous_hosts: false,
            host_selection_max_attempts: 1,
            previous_priorities: None,
        }
    }
}

fn previous_priorities(p: &rt::retry_policy::RetryPriority) -> FieldResult<u32> {
    use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
    let any = match &p.config_type {
        Some(rt::retry_policy::retry_priority::ConfigType::TypedConfig(any))
            if any.type_url == PreviousPrioritiesConfig::type_url() =>
        {
            any
        }
        _ => return Err(FieldError::unsupported(format!("name ({})", p.name))),
    };
    let cfg: PreviousPrioritiesConfig = super::unpack_field(any, "typed_config")?;
    if cfg.update_frequency <= 0 {
        return Err(FieldError::invalid(
            "typed_config.update_frequency",
            "must be greater than 0",
        ));
    }
    Ok(cfg.update_frequency.unsigned_abs())
}

fn parse_retry_on(s: &str) -> FieldResult<RetryOn> {
    let mut on = RetryOn::default();
    for cond in s.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        match cond {
            "5xx" => on.server_error = true,
            "gateway-error" => on.gateway_error = true,
            "reset" => on.reset = true,
            "connect-failure" => on.connect_failure = true,
            "refused-stream" => on.refused_stream = true,
            "cancelled" => on.grpc_codes.0 |= 1 << 1,
            "deadline-exceeded" => on.grpc_codes.0 |= 1 << 4,
            "resource-exhausted" => on.grpc_codes.0 |= 1 << 8,
            "internal" => on.grpc_codes.0 |= 1 << 13,
            "unavailable" => on.grpc_codes.0 |= 1 << 14,
            "retriable-4xx" => on.retriable_4xx = true,
            "retriable-status-codes" => on.retriable_status_codes = true,
            other => return Err(FieldError::unsupported(format!("condition {other:?}"))),
        }
    }
    Ok(on)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_conditions_and_defaults() {
        let p = rt::RetryPolicy {
            retry_on: "5xx, connect-failure".into(),
            ..Default::default()
        };
        let got = RetryPolicy::try_from(&p);
        assert!(
            got.as_ref().is_ok_and(|r| r.on.server_error
                && r.on.connect_failure
                && !r.on.reset
                && r.num_retries == 1
                && r.backoff_base == DEFAULT_BACKOFF_BASE
                && r.backoff_max == DEFAULT_BACKOFF_BASE * 10),
            "{got:?}"
        );
        let istio = rt::RetryPolicy {
            retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
                .into(),
            ..Default::default()
        };
        let got = RetryPolicy::try_from(&istio);
        assert!(
            got.as_ref().is_ok_and(|r| r.on.refused_stream
                && r.on.grpc_codes.contains(14)
                && r.on.grpc_codes.contains(1)
                && !r.on.grpc_codes.contains(4)),
            "{got:?}"
        );
        let unknown = rt::RetryPolicy {
            retry_on: "envoy-ratelimited".into(),
            ..Default::default()
        };
        assert!(
            RetryPolicy::try_from(&unknown)
                .is_err_and(|e| e.field == "retry_on.condition \"envoy-ratelimited\"")
        );
    }
}
