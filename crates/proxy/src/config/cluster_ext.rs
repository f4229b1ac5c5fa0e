//! Cluster fields beyond discovery and protocol: upstream connection lifetime
//! (`common_http_protocol_options`), consistent-hash load balancers (`lb_config` ring hash /
//! maglev), `common_lb_config` (healthy panic threshold) and ORIGINAL_DST clusters
//! (`CLUSTER_PROVIDED` with `original_dst_lb_config`).

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3 as c;
use envoy_types::pb::envoy::config::core::v3 as core;
use http::HeaderName;

use super::{FieldError, FieldResult, LbPolicy, duration};
use crate::deny_set;

/// Envoy's default upstream connection idle timeout.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
/// Envoy's default `healthy_panic_threshold`.
pub const DEFAULT_PANIC_PERCENT: f64 = 50.0;
/// The header ORIGINAL_DST clusters read with `use_http_header` and no `http_header_name`.
pub const ORIGINAL_DST_HEADER: &str = "x-envoy-original-dst-host";

/// How long an upstream connection may live and how much it may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolPolicy {
    /// Close a connection with no active request for this long (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Drain a connection this long after it was opened.
    pub max_connection_duration: Option<Duration>,
    /// Stop sending on a connection after this many requests.
    pub max_requests_per_connection: Option<u32>,
}

impl Default for PoolPolicy {
    fn default() -> Self {
        PoolPolicy {
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            max_connection_duration: None,
            max_requests_per_connection: None,
        }
    }
}

/// `HttpProtocolOptions.common_http_protocol_options` of a cluster.
pub fn pool_policy(o: Option<&core::HttpProtocolOptions>) -> FieldResult<PoolPolicy> {
    let Some(o) = o else {
        return Ok(PoolPolicy::default());
    };
    let core::HttpProtocolOptions {
        idle_timeout,
        max_connection_duration,
        max_connection_duration_jitter,
        max_headers_count,
        max_response_headers_kb,
        max_stream_duration,
        headers_with_underscores_action,
        max_requests_per_connection,
    } = o;
    (|| {
        deny_set!(
            max_connection_duration_jitter,
            max_headers_count,
            max_response_headers_kb,
            max_stream_duration,
            headers_with_underscores_action
        );
        Ok(())
    })()
    .map_err(|e: FieldError| e.within("common_http_protocol_options"))?;
    // Zero disables a timeout in Envoy.
    let opt = |d: &Option<_>, at: &str| -> FieldResult<Option<Duration>> {
        match d {
            Some(d) => Ok(Some(duration(d).map_err(|e| e.within(at))?).filter(|d| !d.is_zero())),
            None => Ok(None),
        }
    };
    let idle = match idle_timeout {
        Some(_) => opt(idle_timeout, "common_http_protocol_options.idle_timeout")?,
        None => Some(DEFAULT_IDLE_TIMEOUT),
    };
    Ok(PoolPolicy {
        idle_timeout: idle,
        max_connection_duration: opt(
            max_connection_duration,
            "common_http_protocol_options.max_connection_duration",
        )?,
        max_requests_per_connection: max_requests_per_connection
            .as_ref()
            .map(|v| v.value)
            .filter(|v| *v > 0),
    })
}

/// RING_HASH and MAGLEV with their optional `lb_config`.
pub fn hash_lb(
    policy: c::cluster::LbPolicy,
    cfg: Option<&c::cluster::LbConfig>,
) -> FieldResult<LbPolicy> {
    use c::cluster::LbConfig as L;
    match (policy, cfg) {
        (c::cluster::LbPolicy::RingHash, None) => Ok(LbPolicy::RingHash {
            min_ring: 1024,
            max_ring: 8 * 1024 * 1024,
        }),
        (c::cluster::LbPolicy::RingHash, Some(L::RingHashLbConfig(r))) => {
            ring_hash(r).map_err(|e| e.within("ring_hash_lb_config"))
        }
        (c::cluster::LbPolicy::Maglev, None) => Ok(LbPolicy::Maglev { table_size: 65537 }),
        (c::cluster::LbPolicy::Maglev, Some(L::MaglevLbConfig(m))) => {
            let size = m.table_size.as_ref().map_or(65537, |v| v.value);
            if !is_prime(size) {
                return Err(FieldError::invalid(
                    "maglev_lb_config.table_size",
                    format!("{size} is not a prime number"),
                ));
            }
            Ok(LbPolicy::Maglev {
                table_size: size as usize,
            })
        }
        _ => Err(FieldError::invalid(
            "lb_config",
            format!("does not match lb_policy {}", policy.as_str_name()),
        )),
    }
}

fn ring_hash(r: &c::cluster::RingHashLbConfig) -> FieldResult<LbPolicy> {
    let c::cluster::RingHashLbConfig {
        minimum_ring_size,
        hash_function,
        maximum_ring_size,
    } = r;
    if *hash_function != 0 {
        return Err(FieldError::unsupported(
            "hash_function (only XX_HASH semantics)",
        ));
    }
    let min_ring = minimum_ring_size.as_ref().map_or(1024, |v| v.value);
    let max_ring = maximum_ring_size
        .as_ref()
        .map_or(8 * 1024 * 1024, |v| v.value);
    if min_ring > max_ring || max_ring > 8 * 1024 * 1024 {
        return Err(FieldError::invalid(
            "minimum_ring_size",
            "must not exceed maximum_ring_size (at most 8M)",
        ));
    }
    Ok(LbPolicy::RingHash {
        min_ring: min_ring as usize,
        max_ring: max_ring as usize,
    })
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

/// `common_lb_config`: the healthy panic threshold in percent.
pub fn panic_threshold(cfg: Option<&c::cluster::CommonLbConfig>) -> FieldResult<f64> {
    let Some(cfg) = cfg else {
        return Ok(DEFAULT_PANIC_PERCENT);
    };
    let c::cluster::CommonLbConfig {
        healthy_panic_threshold,
        update_merge_window,
        ignore_new_hosts_until_first_hc,
        close_connections_on_host_set_change,
        consistent_hashing_lb_config,
        override_host_status,
        locality_config_specifier,
    } = cfg;
    (|| {
        deny_set!(
            update_merge_window,
            ignore_new_hosts_until_first_hc,
            close_connections_on_host_set_change,
            consistent_hashing_lb_config,
            override_host_status,
            locality_config_specifier
        );
        Ok(())
    })()
    .map_err(|e: FieldError| e.within("common_lb_config"))?;
    let pct = healthy_panic_threshold
        .as_ref()
        .map_or(DEFAULT_PANIC_PERCENT, |p| p.value);
    if !(0.0..=100.0).contains(&pct) {
        return Err(FieldError::invalid(
            "common_lb_config.healthy_panic_threshold",
            format!("{pct} is not a percentage"),
        ));
    }
    Ok(pct)
}

/// ORIGINAL_DST with CLUSTER_PROVIDED: the header that may name the destination.
pub fn original_dst(cfg: Option<&c::cluster::LbConfig>) -> FieldResult<Option<HeaderName>> {
    let o = match cfg {
        None => return Ok(None),
        Some(c::cluster::LbConfig::OriginalDstLbConfig(o)) => o,
        Some(_) => {
            return Err(FieldError::invalid(
                "lb_config",
                "only original_dst_lb_config fits an ORIGINAL_DST cluster",
            ));
        }
    };
    let c::cluster::OriginalDstLbConfig {
        use_http_header,
        http_header_name,
        upstream_port_override,
        metadata_key,
    } = o;
    (|| {
        deny_set!(upstream_port_override, metadata_key);
        Ok(())
    })()
    .map_err(|e: FieldError| e.within("original_dst_lb_config"))?;
    if !use_http_header {
        return Ok(None);
    }
    let name = if http_header_name.is_empty() {
        ORIGINAL_DST_HEADER
    } else {
        http_header_name
    };
    HeaderName::from_bytes(name.as_bytes())
        .map(Some)
        .map_err(|_| {
            FieldError::invalid(
                "original_dst_lb_config.http_header_name",
                "not a header name",
            )
        })
}
