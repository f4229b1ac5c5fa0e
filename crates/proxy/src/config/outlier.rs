//! OutlierDetection -> `OutlierDetection`: consecutive-5xx and consecutive-gateway-failure
//! ejection with Envoy's defaults, interval, growing ejection time and ejection cap.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3 as c;
use envoy_types::pb::google::protobuf::{BoolValue, Duration as PbDuration, UInt32Value};

use super::{FieldError, FieldResult, duration};
use crate::deny_set;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierDetection {
    pub consecutive_5xx: u32,
    /// Percent chance an ejection for consecutive 5xx is enforced.
    pub enforcing_consecutive_5xx: u32,
    pub consecutive_gateway_failure: u32,
    /// Envoy's default is 0: gateway-failure ejection is off unless enabled.
    pub enforcing_consecutive_gateway_failure: u32,
    pub interval: Duration,
    pub base_ejection_time: Duration,
    pub max_ejection_time: Duration,
    pub max_ejection_percent: u32,
    pub always_eject_one_host: bool,
}

fn u32_or(v: &Option<UInt32Value>, default: u32) -> u32 {
    v.as_ref().map_or(default, |v| v.value)
}

fn duration_or(v: &Option<PbDuration>, default: Duration, field: &str) -> FieldResult<Duration> {
    match v {
        Some(d) => duration(d).map_err(|e| e.within(field)),
        None => Ok(default),
    }
}

fn percent(v: &Option<UInt32Value>, default: u32, field: &str) -> FieldResult<u32> {
    let p = u32_or(v, default);
    if p > 100 {
        return Err(FieldError::invalid(
            field,
            format!("{p} is not a percentage"),
        ));
    }
    Ok(p)
}

impl TryFrom<&c::OutlierDetection> for OutlierDetection {
    type Error = FieldError;
    fn try_from(o: &c::OutlierDetection) -> FieldResult<Self> {
        let c::OutlierDetection {
            consecutive_5xx,
            interval,
            base_ejection_time,
            max_ejection_percent,
            enforcing_consecutive_5xx,
            enforcing_success_rate,
            // These only tune success-rate ejection, which must be off (see below).
            success_rate_minimum_hosts: _,
            success_rate_request_volume: _,
            success_rate_stdev_factor: _,
            consecutive_gateway_failure,
            enforcing_consecutive_gateway_failure,
            split_external_local_origin_errors,
            consecutive_local_origin_failure,
            enforcing_consecutive_local_origin_failure,
            enforcing_local_origin_success_rate,
            failure_percentage_threshold,
            enforcing_failure_percentage,
            enforcing_failure_percentage_local_origin,
            failure_percentage_minimum_hosts,
            failure_percentage_request_volume,
            max_ejection_time,
            max_ejection_time_jitter,
            successful_active_health_check_uneject_host,
            monitors,
            always_eject_one_host,
            detect_degraded_hosts,
        } = o;
        deny_set!(
            split_external_local_origin_errors,
            consecutive_local_origin_failure,
            enforcing_consecutive_local_origin_failure,
            enforcing_local_origin_success_rate,
            failure_percentage_threshold,
            enforcing_failure_percentage_local_origin,
            failure_percentage_minimum_hosts,
            failure_percentage_request_volume,
            max_ejection_time_jitter,
            successful_active_health_check_uneject_host,
            monitors,
            detect_degraded_hosts
        );
        // Success-rate and failure-percentage ejection are statistical passes Plexus does not
        // run; configs that turn them on explicitly are refused.
        if u32_or(enforcing_success_rate, 0) > 0 {
            return Err(FieldError::unsupported(
                "enforcing_success_rate (success-rate ejection; set it to 0)",
            ));
        }
        if u32_or(enforcing_failure_percentage, 0) > 0 {
            return Err(FieldError::unsupported("enforcing_failure_percentage"));
        }
        let base = duration_or(
            base_ejection_time,
            Duration::from_secs(30),
            "base_ejection_time",
        )?;
        let max = duration_or(
            max_ejection_time,
            Duration::from_secs(300),
            "max_ejection_time",
        )?;
        let interval = duration_or(interval, Duration::from_secs(10), "interval")?;
        if interval.is_zero() {
            return Err(FieldError::invalid("interval", "must be greater than 0"));
        }
        Ok(OutlierDetection {
            consecutive_5xx: u32_or(consecutive_5xx, 5),
            enforcing_consecutive_5xx: percent(
                enforcing_consecutive_5xx,
                100,
                "enforcing_consecutive_5xx",
            )?,
            consecutive_gateway_failure: u32_or(consecutive_gateway_failure, 5),
            enforcing_consecutive_gateway_failure: percent(
                enforcing_consecutive_gateway_failure,
                0,
                "enforcing_consecutive_gateway_failure",
            )?,
            interval,
            base_ejection_time: base,
            // Envoy: the cap is never below the base ejection time.
            max_ejection_time: max.max(base),
            max_ejection_percent: percent(max_ejection_percent, 10, "max_ejection_percent")?,
            always_eject_one_host: always_eject_one_host
                .as_ref()
                .is_some_and(|b: &BoolValue| b.value),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_envoy() {
        let got = OutlierDetection::try_from(&c::OutlierDetection::default());
        assert_eq!(
            got,
            Ok(OutlierDetection {
                consecutive_5xx: 5,
                enforcing_consecutive_5xx: 100,
                consecutive_gateway_failure: 5,
                enforcing_consecutive_gateway_failure: 0,
                interval: Duration::from_secs(10),
                base_ejection_time: Duration::from_secs(30),
                max_ejection_time: Duration::from_secs(300),
                max_ejection_percent: 10,
                always_eject_one_host: false,
            })
        );
        let sr = c::OutlierDetection {
            enforcing_success_rate: Some(UInt32Value { value: 100 }),
            ..Default::default()
        };
        assert!(OutlierDetection::try_from(&sr).is_err());
    }
}
