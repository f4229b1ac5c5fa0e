//! `envoy.filters.http.fault` (HTTPFault) -> `Fault`: fixed delays and aborts (HTTP or gRPC
//! status), each with its own fractional percentage, optionally only for matching headers.

use std::time::Duration;

use envoy_types::pb::envoy::extensions::filters::common::fault::v3 as common;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3 as fault;
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent::DenominatorType};

use super::route_match::{HeaderMatcher, header_matcher};
use super::{FieldError, FieldResult, duration};
use crate::deny_set;

/// Canonical name of the fault filter (the key Istio uses in `typed_per_filter_config`).
pub const FAULT_FILTER: &str = "envoy.filters.http.fault";

/// A probability as Envoy writes it: `numerator / denominator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fraction {
    pub numerator: u32,
    pub denominator: u32,
}

impl Fraction {
    /// Envoy caps the numerator at the denominator (over 100% is 100%).
    pub fn sample(&self, roll: u32) -> bool {
        roll % self.denominator.max(1) < self.numerator.min(self.denominator)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Abort {
    Http(u16),
    Grpc(u32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub delay: Option<(Duration, Fraction)>,
    pub abort: Option<(Abort, Fraction)>,
    /// The fault applies only when all of these match.
    pub headers: Vec<HeaderMatcher>,
}

fn fraction(p: &Option<FractionalPercent>) -> FieldResult<Fraction> {
    // An unset percentage is 0% (the message's default), as in Envoy.
    match p {
        Some(p) => fraction_of(p),
        None => Ok(Fraction {
            numerator: 0,
            denominator: 100,
        }),
    }
}

/// `FractionalPercent` -> `Fraction`.
pub fn fraction_of(p: &FractionalPercent) -> FieldResult<Fraction> {
    let FractionalPercent {
        numerator,
        denominator,
    } = p;
    let denominator = match DenominatorType::try_from(*denominator) {
        Ok(DenominatorType::Hundred) => 100,
        Ok(DenominatorType::TenThousand) => 10_000,
        Ok(DenominatorType::Million) => 1_000_000,
        Err(_) => {
            return Err(FieldError::invalid(
                "denominator",
                format!("unknown value {denominator}"),
            ));
        }
    };
    Ok(Fraction {
        numerator: *numerator,
        denominator,
    })
}

impl TryFrom<&fault::HttpFault> for Fault {
    type Error = FieldError;
    fn try_from(f: &fault::HttpFault) -> FieldResult<Self> {
        let fault::HttpFault {
            delay,
            abort,
            upstream_cluster,
            headers,
            downstream_nodes,
            max_active_faults,
            response_rate_limit,
            // Runtime keys only rename runtime overrides; Plexus has no runtime layer, so the
            // configured values apply, as in an Envoy without runtime overrides.
            delay_percent_runtime: _,
            abort_percent_runtime: _,
            delay_duration_runtime: _,
            abort_http_status_runtime: _,
            max_active_faults_runtime: _,
            response_rate_limit_percent_runtime: _,
            abort_grpc_status_runtime: _,
            disable_downstream_cluster_stats: _,
            filter_metadata,
        } = f;
        deny_set!(
            upstream_cluster,
            downstream_nodes,
            max_active_faults,
            response_rate_limit,
            filter_metadata
        );
        let delay = match delay {
            Some(d) => Some(fault_delay(d).map_err(|e| e.within("delay"))?),
            None => None,
        };
        let abort = match abort {
            Some(a) => Some(fault_abort(a).map_err(|e| e.within("abort"))?),
            None => None,
        };
        let headers = headers
            .iter()
            .enumerate()
            .map(|(i, h)| header_matcher(h).map_err(|e| e.within(&format!("headers[{i}]"))))
            .collect::<FieldResult<Vec<_>>>()?;
        Ok(Fault {
            delay,
            abort,
            headers,
        })
    }
}

fn fault_delay(d: &common::FaultDelay) -> FieldResult<(Duration, Fraction)> {
    let common::FaultDelay {
        percentage,
        fault_delay_secifier,
    } = d;
    let fixed = match fault_delay_secifier {
        Some(common::fault_delay::FaultDelaySecifier::FixedDelay(d)) => {
            duration(d).map_err(|e| e.within("fixed_delay"))?
        }
        Some(common::fault_delay::FaultDelaySecifier::HeaderDelay(_)) => {
            return Err(FieldError::unsupported("header_delay"));
        }
        None => return Err(FieldError::invalid("fixed_delay", "required")),
    };
    Ok((
        fixed,
        fraction(percentage).map_err(|e| e.within("percentage"))?,
    ))
}

fn fault_abort(a: &fault::FaultAbort) -> FieldResult<(Abort, Fraction)> {
    let fault::FaultAbort {
        percentage,
        response_body,
        error_type,
    } = a;
    deny_set!(response_body);
    let abort = match error_type {
        Some(fault::fault_abort::ErrorType::HttpStatus(s)) => Abort::Http(
            u16::try_from(*s)
                .ok()
                .filter(|s| (200..600).contains(s))
                .ok_or_else(|| {
                    FieldError::invalid("http_status", format!("{s} is not in [200, 600)"))
                })?,
        ),
        Some(fault::fault_abort::ErrorType::GrpcStatus(s)) => Abort::Grpc(*s),
        Some(fault::fault_abort::ErrorType::HeaderAbort(_)) => {
            return Err(FieldError::unsupported("header_abort"));
        }
        None => {
            return Err(FieldError::invalid(
                "error_type",
                "http_status or grpc_status is required",
            ));
        }
    };
    Ok((
        abort,
        fraction(percentage).map_err(|e| e.within("percentage"))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractions_sample_like_envoy() {
        let half = Fraction {
            numerator: 50,
            denominator: 100,
        };
        assert!(half.sample(49) && !half.sample(50) && half.sample(149));
        let all = Fraction {
            numerator: 250,
            denominator: 100,
        };
        assert!((0..100).all(|r| all.sample(r)));
        let none = Fraction {
            numerator: 0,
            denominator: 100,
        };
        assert!((0..100).all(|r| !none.sample(r)));
    }

    #[test]
    fn header_controlled_faults_are_rejected() {
        let f = fault::HttpFault {
            abort: Some(fault::FaultAbort {
                error_type: Some(fault::fault_abort::ErrorType::HeaderAbort(
                    Default::default(),
                )),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(Fault::try_from(&f).is_err_and(|e| e.field == "abort.header_abort"));
    }
}
