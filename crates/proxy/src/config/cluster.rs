//! Cluster and ClusterLoadAssignment -> `Cluster`, `LoadAssignment`.

use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3 as c;
use envoy_types::pb::envoy::config::endpoint::v3 as e;
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as uh;

use super::cluster_ext::{self, PoolPolicy};
use super::{
    FieldError, FieldResult, Limits, OutlierDetection, duration, socket_address, unpack_field,
};
use crate::deny_set;

/// Envoy's default `connect_timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub name: String,
    pub discovery: Discovery,
    pub lb: LbPolicy,
    pub connect_timeout: Duration,
    pub protocol: UpstreamProtocol,
    pub limits: Limits,
    pub outlier: Option<OutlierDetection>,
    /// Active health check (`health_checks`; at most one).
    pub health: Option<super::health::HealthCheck>,
    /// TCP keepalive on upstream connections (`upstream_connection_options`).
    pub keepalive: Option<super::keepalive::Keepalive>,
    /// Upstream connection lifetime (`common_http_protocol_options`).
    pub pool: PoolPolicy,
    /// `common_lb_config.healthy_panic_threshold`, percent.
    pub panic_threshold: f64,
    /// `transport_socket`: TLS to the endpoints.
    pub tls: Option<std::sync::Arc<crate::tls::UpstreamTls>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Discovery {
    Static(Vec<Endpoint>),
    /// Endpoints arrive over EDS under this service name.
    Eds(String),
    /// STRICT_DNS and LOGICAL_DNS: hosts resolved into endpoints (`crate::dns`).
    Dns(super::dns::DnsTargets),
    /// ORIGINAL_DST: each request goes where the downstream connection was headed, or to the
    /// address in this header when it is set.
    OriginalDst(Option<http::HeaderName>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LbPolicy {
    RoundRobin,
    Random,
    /// Envoy's LEAST_REQUEST: the fewest active requests among `choices` random picks.
    LeastRequest {
        choices: u32,
    },
    /// Ketama ring with between `min_ring` and `max_ring` entries.
    RingHash {
        min_ring: usize,
        max_ring: usize,
    },
    Maglev {
        table_size: usize,
    },
    /// The cluster picks (ORIGINAL_DST).
    ClusterProvided,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    Http1,
    /// Prior-knowledge cleartext HTTP/2.
    Http2,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub weight: u32,
    /// Locality priority: lower is preferred while it has healthy endpoints.
    pub priority: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoadAssignment {
    pub cluster_name: String,
    pub endpoints: Vec<Endpoint>,
}

impl TryFrom<&c::Cluster> for Cluster {
    type Error = FieldError;
    fn try_from(cl: &c::Cluster) -> FieldResult<Self> {
        let c::Cluster {
            transport_socket_matches,
            transport_socket_matcher,
            name,
            alt_stat_name: _,
            stats_matcher,
            eds_cluster_config,
            connect_timeout,
            per_connection_buffer_limit_bytes,
            per_connection_buffer_high_watermark_timeout,
            lb_policy,
            load_assignment,
            health_checks,
            max_requests_per_connection,
            circuit_breakers,
            upstream_http_protocol_options,
            common_http_protocol_options,
            http_protocol_options,
            http2_protocol_options,
            typed_extension_protocol_options,
            dns_refresh_rate,
            dns_jitter,
            dns_failure_refresh_rate,
            respect_dns_ttl,
            dns_lookup_family,
            dns_resolvers,
            use_tcp_for_dns_lookups,
            dns_resolution_config,
            typed_dns_resolver_config,
            wait_for_warm_on_init,
            outlier_detection,
            cleanup_interval,
            upstream_bind_config,
            lb_subset_config,
            common_lb_config,
            transport_socket,
            metadata: _,
            protocol_selection,
            upstream_connection_options,
            close_connections_on_host_health_failure,
            ignore_health_on_host_removal,
            filters,
            load_balancing_policy,
            lrs_server,
            lrs_report_endpoint_metrics,
            track_timeout_budgets,
            upstream_config,
            track_cluster_stats,
            preconnect_policy,
            connection_pool_per_downstream_connection,
            queuing_policies,
            cluster_discovery_type,
            lb_config,
        } = cl;
        deny_set!(
            transport_socket_matches,
            transport_socket_matcher,
            stats_matcher,
            per_connection_buffer_limit_bytes,
            per_connection_buffer_high_watermark_timeout,
            max_requests_per_connection,
            upstream_http_protocol_options,
            common_http_protocol_options,
            http_protocol_options,
            dns_jitter,
            dns_failure_refresh_rate,
            respect_dns_ttl,
            dns_resolvers,
            use_tcp_for_dns_lookups,
            dns_resolution_config,
            typed_dns_resolver_config,
            wait_for_warm_on_init,
            cleanup_interval,
            upstream_bind_config,
            lb_subset_config,
            protocol_selection,
            close_connections_on_host_health_failure,
            ignore_health_on_host_removal,
            filters,
            load_balancing_policy,
            lrs_server,
            lrs_report_endpoint_metrics,
            track_timeout_budgets,
            upstream_config,
            track_cluster_stats,
            preconnect_policy,
            connection_pool_per_downstream_connection,
            queuing_policies
        );
        let health = super::health::from_cluster(health_checks)?;
        let lb = match c::cluster::LbPolicy::try_from(*lb_policy) {
            Ok(c::cluster::LbPolicy::RoundRobin) if lb_config.is_none() => LbPolicy::RoundRobin,
            Ok(c::cluster::LbPolicy::Random) if lb_config.is_none() => LbPolicy::Random,
            Ok(c::cluster::LbPolicy::LeastRequest) => least_request(lb_config.as_ref())?,
            Ok(p @ (c::cluster::LbPolicy::RingHash | c::cluster::LbPolicy::Maglev)) => {
                cluster_ext::hash_lb(p, lb_config.as_ref())?
            }
            Ok(c::cluster::LbPolicy::ClusterProvided) => LbPolicy::ClusterProvided,
            Ok(_) if lb_config.is_some() => return Err(FieldError::unsupported("lb_config")),
            Ok(other) => {
                return Err(FieldError::unsupported(format!(
                    "lb_policy ({})",
                    other.as_str_name()
                )));
            }
            Err(_) => {
                return Err(FieldError::invalid(
                    "lb_policy",
                    format!("unknown value {lb_policy}"),
                ));
            }
        };
        let mut discovery = discovery(
            cluster_discovery_type,
            eds_cluster_config,
            load_assignment,
            name,
        )?;
        match (&mut discovery, lb) {
            (Discovery::OriginalDst(header), LbPolicy::ClusterProvided) => {
                *header = cluster_ext::original_dst(lb_config.as_ref())?;
            }
            (Discovery::OriginalDst(_), _) => {
                return Err(FieldError::invalid(
                    "lb_policy",
                    "an ORIGINAL_DST cluster needs CLUSTER_PROVIDED",
                ));
            }
            (_, LbPolicy::ClusterProvided) => {
                return Err(FieldError::invalid(
                    "lb_policy",
                    "CLUSTER_PROVIDED is only valid for ORIGINAL_DST clusters",
                ));
            }
            _ => {}
        }
        if let (Discovery::Dns(t), Some(la)) = (&discovery, load_assignment) {
            discovery = Discovery::Dns(super::dns::targets(
                la,
                dns_refresh_rate.as_ref(),
                *dns_lookup_family,
                t.logical,
                lb_endpoint,
            )?);
        }
        let panic_threshold = cluster_ext::panic_threshold(common_lb_config.as_ref())?;
        let mut pool = PoolPolicy::default();
        let mut protocol = if http2_protocol_options.is_some() {
            UpstreamProtocol::Http2
        } else {
            UpstreamProtocol::Http1
        };
        for (key, any) in typed_extension_protocol_options {
            if key != HTTP_PROTOCOL_OPTIONS {
                return Err(FieldError::unsupported(format!(
                    "typed_extension_protocol_options[{key:?}]"
                )));
            }
            let at = format!("typed_extension_protocol_options[{key:?}]");
            let opts: uh::HttpProtocolOptions = unpack_field(any, &at)?;
            protocol = upstream_protocol(&opts).map_err(|e| e.within(&at))?;
            pool = cluster_ext::pool_policy(opts.common_http_protocol_options.as_ref())
                .map_err(|e| e.within(&at))?;
        }
        let connect_timeout = match connect_timeout {
            Some(d) => duration(d).map_err(|e| e.within("connect_timeout"))?,
            None => DEFAULT_CONNECT_TIMEOUT,
        };
        let limits = match circuit_breakers {
            Some(cb) => Limits::try_from(cb).map_err(|e| e.within("circuit_breakers"))?,
            None => Limits::default(),
        };
        let outlier = match outlier_detection {
            Some(o) => {
                Some(OutlierDetection::try_from(o).map_err(|e| e.within("outlier_detection"))?)
            }
            None => None,
        };
        let keepalive = super::keepalive::from_options(upstream_connection_options.as_ref())
            .map_err(|e| e.within("upstream_connection_options"))?;
        let tls = crate::tls::context::upstream(transport_socket.as_ref())
            .map_err(|e| e.within("transport_socket"))?;
        Ok(Cluster {
            name: name.clone(),
            discovery,
            lb,
            connect_timeout,
            protocol,
            limits,
            outlier,
            health,
            keepalive,
            pool,
            panic_threshold,
            tls,
        })
    }
}

fn least_request(cfg: Option<&c::cluster::LbConfig>) -> FieldResult<LbPolicy> {
    let lr = match cfg {
        None => return Ok(LbPolicy::LeastRequest { choices: 2 }),
        Some(c::cluster::LbConfig::LeastRequestLbConfig(lr)) => lr,
        Some(_) => {
            return Err(FieldError::invalid(
                "lb_config",
                "does not match lb_policy LEAST_REQUEST",
            ));
        }
    };
    let c::cluster::LeastRequestLbConfig {
        choice_count,
        active_request_bias,
        slow_start_config,
    } = lr;
    (|| {
        deny_set!(active_request_bias, slow_start_config);
        Ok(())
    })()
    .map_err(|e: FieldError| e.within("least_request_lb_config"))?;
    let choices = choice_count.as_ref().map_or(2, |c| c.value);
    if choices < 2 {
        return Err(FieldError::invalid(
            "least_request_lb_config.choice_count",
            "must be at least 2",
        ));
    }
    Ok(LbPolicy::LeastRequest { choices })
}

fn discovery(
    kind: &Option<c::cluster::ClusterDiscoveryType>,
    eds: &Option<c::cluster::EdsClusterConfig>,
    load_assignment: &Option<e::ClusterLoadAssignment>,
    name: &str,
) -> FieldResult<Discovery> {
    use c::cluster::{ClusterDiscoveryType as K, DiscoveryType as D};
    let ty = match kind {
        Some(K::Type(t)) => D::try_from(*t)
            .map_err(|_| FieldError::invalid("type", format!("unknown value {t}")))?,
        Some(K::ClusterType(_)) => return Err(FieldError::unsupported("cluster_type")),
        None => D::Static,
    };
    match ty {
        D::Static => {
            if eds.is_some() {
                return Err(FieldError::invalid(
                    "eds_cluster_config",
                    "only valid with type EDS",
                ));
            }
            let la = load_assignment.as_ref().ok_or_else(|| {
                FieldError::invalid("load_assignment", "a STATIC cluster needs endpoints")
            })?;
            let la = LoadAssignment::try_from(la).map_err(|e| e.within("load_assignment"))?;
            Ok(Discovery::Static(la.endpoints))
        }
        D::Eds => {
            if load_assignment.is_some() {
                return Err(FieldError::unsupported("load_assignment (with type EDS)"));
            }
            let service = eds
                .as_ref()
                .map(|c| c.service_name.clone())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| name.to_string());
            if eds.as_ref().and_then(|c| c.eds_config.as_ref()).is_none() {
                return Err(FieldError::invalid(
                    "eds_cluster_config.eds_config",
                    "required",
                ));
            }
            Ok(Discovery::Eds(service))
        }
        D::StrictDns | D::LogicalDns => {
            if load_assignment.is_none() {
                return Err(FieldError::invalid(
                    "load_assignment",
                    format!("a {} cluster needs hosts", ty.as_str_name()),
                ));
            }
            // Filled in by the caller, which has the DNS fields.
            Ok(Discovery::Dns(super::dns::DnsTargets {
                hosts: Vec::new(),
                refresh: super::dns::DEFAULT_REFRESH,
                family: super::dns::DnsFamily::Auto,
                logical: ty == D::LogicalDns,
            }))
        }
        D::OriginalDst => {
            if load_assignment.is_some() || eds.is_some() {
                return Err(FieldError::invalid(
                    "load_assignment",
                    "an ORIGINAL_DST cluster has no configured endpoints",
                ));
            }
            Ok(Discovery::OriginalDst(None))
        }
    }
}

fn upstream_protocol(o: &uh::HttpProtocolOptions) -> FieldResult<UpstreamProtocol> {
    use uh::http_protocol_options::{
        UpstreamProtocolOptions as U, explicit_http_config::ProtocolConfig as P,
    };
    let uh::HttpProtocolOptions {
        // Connection lifetime: `cluster_ext::pool_policy`.
        common_http_protocol_options: _,
        upstream_http_protocol_options,
        http_filters,
        header_validation_config,
        outlier_detection,
        request_mirror_policies,
        hash_policy,
        retry_policy,
        upstream_protocol_options,
    } = o;
    deny_set!(
        upstream_http_protocol_options,
        http_filters,
        header_validation_config,
        outlier_detection,
        request_mirror_policies,
        hash_policy,
        retry_policy
    );
    match upstream_protocol_options {
        Some(U::ExplicitHttpConfig(cfg)) => match &cfg.protocol_config {
            Some(P::HttpProtocolOptions(_)) => Ok(UpstreamProtocol::Http1),
            Some(P::Http2ProtocolOptions(_)) => Ok(UpstreamProtocol::Http2),
            Some(P::Http3ProtocolOptions(_)) => Err(FieldError::unsupported(
                "explicit_http_config.http3_protocol_options",
            )),
            None => Err(FieldError::invalid(
                "explicit_http_config",
                "a protocol is required",
            )),
        },
        Some(U::UseDownstreamProtocolConfig(_)) => {
            Err(FieldError::unsupported("use_downstream_protocol_config"))
        }
        Some(U::AutoConfig(_)) => Err(FieldError::unsupported("auto_config")),
        None => Ok(UpstreamProtocol::Http1),
    }
}

impl TryFrom<&e::ClusterLoadAssignment> for LoadAssignment {
    type Error = FieldError;
    fn try_from(la: &e::ClusterLoadAssignment) -> FieldResult<Self> {
        let e::ClusterLoadAssignment {
            cluster_name,
            endpoints,
            named_endpoints,
            policy,
        } = la;
        deny_set!(named_endpoints, policy);
        let mut out = Vec::new();
        for (i, group) in endpoints.iter().enumerate() {
            let at = format!("endpoints[{i}]");
            locality(group, &mut out).map_err(|e| e.within(&at))?;
        }
        Ok(LoadAssignment {
            cluster_name: cluster_name.clone(),
            endpoints: out,
        })
    }
}

fn locality(group: &e::LocalityLbEndpoints, out: &mut Vec<Endpoint>) -> FieldResult<()> {
    let e::LocalityLbEndpoints {
        // Locality weights and zone-aware routing are not done (their fields are rejected);
        // the locality itself then only names the group, and `priority` is honoured.
        locality: _,
        metadata: _,
        lb_endpoints,
        load_balancing_weight,
        priority,
        proximity,
        lb_config,
    } = group;
    deny_set!(load_balancing_weight, proximity, lb_config);
    for (j, lbe) in lb_endpoints.iter().enumerate() {
        let mut ep = lb_endpoint(lbe).map_err(|e| e.within(&format!("lb_endpoints[{j}]")))?;
        ep.priority = *priority;
        out.push(ep);
    }
    Ok(())
}

fn lb_endpoint(lbe: &e::LbEndpoint) -> FieldResult<Endpoint> {
    use envoy_types::pb::envoy::config::core::v3::HealthStatus;
    let e::LbEndpoint {
        health_status,
        metadata: _,
        load_balancing_weight,
        host_identifier,
    } = lbe;
    match HealthStatus::try_from(*health_status) {
        Ok(HealthStatus::Unknown | HealthStatus::Healthy) => {}
        _ => {
            return Err(FieldError::unsupported(format!(
                "health_status ({health_status}): only HEALTHY/UNKNOWN endpoints"
            )));
        }
    }
    let endpoint = match host_identifier {
        Some(e::lb_endpoint::HostIdentifier::Endpoint(ep)) => ep,
        Some(e::lb_endpoint::HostIdentifier::EndpointName(_)) => {
            return Err(FieldError::unsupported("endpoint_name"));
        }
        None => return Err(FieldError::invalid("endpoint", "required")),
    };
    let e::Endpoint {
        address,
        health_check_config,
        hostname: _,
        additional_addresses,
        observability_name: _,
    } = endpoint;
    (|| {
        deny_set!(health_check_config, additional_addresses);
        Ok(())
    })()
    .map_err(|e: FieldError| e.within("endpoint"))?;
    let addr = socket_address(address).map_err(|e| e.within("endpoint.address"))?;
    let weight = load_balancing_weight.as_ref().map_or(1, |w| w.value);
    if weight == 0 {
        return Err(FieldError::invalid(
            "load_balancing_weight",
            "must be at least 1",
        ));
    }
    Ok(Endpoint {
        addr,
        weight,
        priority: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3 as core;

    fn endpoint(port: u32) -> e::LbEndpoint {
        e::LbEndpoint {
            host_identifier: Some(e::lb_endpoint::HostIdentifier::Endpoint(e::Endpoint {
                address: Some(core::Address {
                    address: Some(core::address::Address::SocketAddress(core::SocketAddress {
                        address: "127.0.0.1".into(),
                        port_specifier: Some(core::socket_address::PortSpecifier::PortValue(port)),
                        ..Default::default()
                    })),
                }),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn static_cluster_with_h2() {
        let cl = c::Cluster {
            name: "a".into(),
            load_assignment: Some(e::ClusterLoadAssignment {
                endpoints: vec![e::LocalityLbEndpoints {
                    lb_endpoints: vec![endpoint(80)],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            http2_protocol_options: Some(Default::default()),
            ..Default::default()
        };
        let got = Cluster::try_from(&cl);
        assert!(
            got.as_ref()
                .is_ok_and(|c| c.protocol == UpstreamProtocol::Http2
                    && c.connect_timeout == DEFAULT_CONNECT_TIMEOUT
                    && matches!(&c.discovery, Discovery::Static(eps) if eps.len() == 1)),
            "{got:?}"
        );
    }

    #[test]
    fn unsupported_policy_is_named() {
        let cl = c::Cluster {
            lb_policy: c::cluster::LbPolicy::LoadBalancingPolicyConfig as i32,
            ..Default::default()
        };
        assert!(
            Cluster::try_from(&cl)
                .is_err_and(|e| e.field == "lb_policy (LOAD_BALANCING_POLICY_CONFIG)")
        );
        let cl = c::Cluster {
            health_checks: vec![Default::default(), Default::default()],
            ..Default::default()
        };
        assert!(Cluster::try_from(&cl).is_err_and(|e| e.field == "health_checks[1]"));
    }
}
