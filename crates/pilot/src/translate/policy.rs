//! DestinationRule traffic policy applied to one cluster (istio-api.md §4.3, §17): load
//! balancer, connection pool → circuit breakers and protocol options, outlier detection,
//! upstream TLS; Istio's defaults where they differ from Envoy's. Route-side consistent hashing
//! lives in [`hash_policy`].

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3::{
    self as cv3, CircuitBreakers, Cluster, UpstreamConnectionOptions, circuit_breakers, cluster,
};
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::route::v3::route_action::{HashPolicy, hash_policy};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::envoy::r#type::v3::Percent;
use plexus_api::Object;
use plexus_api::kinds::{self, ClientTlsMode, ConsistentHashLb, LoadBalancerSettings, SimpleLb};
use plexus_model::duration;
use plexus_model::{Protocol, Service};

use super::destination_rule::Policy;
use super::{Ctx, pb};

/// Istio's circuit-breaker default: effectively unlimited.
const MAX: u32 = u32::MAX;
/// Istio's default idle timeout of upstream HTTP connections.
const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);
const HTTP_OPTIONS_KEY: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// Locality failover in effect for a cluster (outlier detection set, locality LB enabled).
#[derive(Clone, Debug, Default)]
pub(crate) struct Failover {
    /// `failover[]` `(from region, to region)` pairs.
    pub regions: Vec<(String, String)>,
}

/// What the endpoints of the cluster need to know.
#[derive(Default)]
pub(crate) struct Applied {
    pub failover: Option<Failover>,
}

pub(crate) fn default_circuit_breakers() -> CircuitBreakers {
    CircuitBreakers {
        thresholds: vec![circuit_breakers::Thresholds {
            max_connections: Some(pb::u32v(MAX)),
            max_pending_requests: Some(pb::u32v(MAX)),
            max_requests: Some(pb::u32v(MAX)),
            max_retries: Some(pb::u32v(MAX)),
            track_remaining: true,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Apply `pol` (already merged for this port and subset) to `c`. `dr` is the rule's object,
/// named in warnings.
pub(crate) fn apply(
    ctx: &Ctx<'_>,
    c: &mut Cluster,
    pol: &Policy,
    dr: Option<&Object>,
    svc: &Service,
    port: u16,
) -> Applied {
    let protocol = svc.port(port).map(|p| p.protocol).unwrap_or(Protocol::Tcp);
    let warn = |field: &str, what: &str| {
        if let Some(o) = dr {
            ctx.warn(o, field, format!("{what} is not translated yet"));
        }
    };
    if pol.proxy_protocol {
        warn("spec.trafficPolicy.proxyProtocol", "proxyProtocol");
    }
    if pol.tunnel {
        warn("spec.trafficPolicy.tunnel", "tunnel");
    }
    if pol.retry_budget {
        warn("spec.trafficPolicy.retryBudget", "retryBudget");
    }
    let mut http = protocol
        .is_http()
        .then(|| http_options(protocol, h2_upgrade(ctx, pol, protocol)));
    if let Some(pool) = &pol.connection_pool {
        connection_pool(c, pool, http.as_mut(), &warn);
    }
    if let Some(http) = http {
        c.typed_extension_protocol_options
            .insert(HTTP_OPTIONS_KEY.into(), pb::any(http));
    }
    if let Some(lb) = &pol.load_balancer {
        load_balancer(c, lb, &warn);
    }
    let mut applied = Applied::default();
    if let Some(od) = &pol.outlier_detection {
        outlier(c, od, &warn);
        let locality = pol
            .load_balancer
            .as_ref()
            .and_then(|l| l.locality_lb_setting.as_ref());
        if locality.and_then(|l| l.enabled) != Some(false) {
            let regions = locality
                .map(|l| {
                    l.failover
                        .iter()
                        .filter_map(|f| Some((f.from.clone()?, f.to.clone()?)))
                        .collect()
                })
                .unwrap_or_default();
            applied.failover = Some(Failover { regions });
        }
    }
    if let Some(t) = &pol.tls {
        upstream_tls(ctx, c, t, svc, &warn);
    }
    applied
}

/// Istio's `h2UpgradePolicy`: an HTTP/1.1 service port talks HTTP/2 to its endpoints when the
/// DestinationRule says `UPGRADE`, or says nothing (`DEFAULT`) and the mesh default is `UPGRADE`.
fn h2_upgrade(ctx: &Ctx<'_>, pol: &Policy, protocol: Protocol) -> bool {
    use kinds::H2UpgradePolicy as P;
    let policy = pol
        .connection_pool
        .as_ref()
        .and_then(|p| p.http.as_ref())
        .and_then(|h| h.h2_upgrade_policy);
    protocol == Protocol::Http
        && match policy {
            Some(P::Upgrade) => true,
            Some(P::DoNotUpgrade) => false,
            Some(P::Default) | None => ctx.snap.mesh.h2_upgrade,
        }
}

fn http_options(protocol: Protocol, h2_upgrade: bool) -> HttpProtocolOptions {
    use http_protocol_options::explicit_http_config::ProtocolConfig;
    let config = if protocol.is_http2() || h2_upgrade {
        ProtocolConfig::Http2ProtocolOptions(Default::default())
    } else {
        ProtocolConfig::HttpProtocolOptions(Default::default())
    };
    HttpProtocolOptions {
        common_http_protocol_options: Some(core::HttpProtocolOptions {
            idle_timeout: Some(pb::duration(HTTP_IDLE_TIMEOUT)),
            ..Default::default()
        }),
        upstream_protocol_options: Some(
            http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                http_protocol_options::ExplicitHttpConfig {
                    protocol_config: Some(config),
                },
            ),
        ),
        ..Default::default()
    }
}

fn dur(text: Option<&String>) -> Option<Duration> {
    text.and_then(|t| duration::parse(t))
}

fn connection_pool(
    c: &mut Cluster,
    pool: &kinds::ConnectionPoolSettings,
    http: Option<&mut HttpProtocolOptions>,
    warn: &dyn Fn(&str, &str),
) {
    let thresholds = c
        .circuit_breakers
        .get_or_insert_with(default_circuit_breakers)
        .thresholds
        .first_mut();
    let Some(th) = thresholds else { return };
    let pos = |v: Option<i32>| v.filter(|n| *n > 0).map(|n| pb::u32v(n as u32));
    if let Some(tcp) = &pool.tcp {
        if let Some(v) = pos(tcp.max_connections) {
            th.max_connections = Some(v);
        }
        if let Some(d) = dur(tcp.connect_timeout.as_ref()) {
            c.connect_timeout = Some(pb::duration(d));
        }
        if let Some(k) = &tcp.tcp_keepalive {
            c.upstream_connection_options = Some(UpstreamConnectionOptions {
                tcp_keepalive: Some(core::TcpKeepalive {
                    keepalive_probes: k.probes.map(pb::u32v),
                    keepalive_time: dur(k.time.as_ref()).map(|d| pb::u32v(d.as_secs() as u32)),
                    keepalive_interval: dur(k.interval.as_ref())
                        .map(|d| pb::u32v(d.as_secs() as u32)),
                }),
                ..Default::default()
            });
        }
    }
    let Some(hs) = &pool.http else {
        if let (Some(tcp), Some(http)) = (&pool.tcp, http) {
            tcp_into_http(tcp, http);
        }
        return;
    };
    if let Some(v) = pos(hs.http1_max_pending_requests) {
        th.max_pending_requests = Some(v);
    }
    if let Some(v) = pos(hs.http2_max_requests) {
        th.max_requests = Some(v);
    }
    if let Some(v) = pos(hs.max_retries) {
        th.max_retries = Some(v);
    }
    let Some(http) = http else {
        return;
    };
    if let Some(tcp) = &pool.tcp {
        tcp_into_http(tcp, http);
    }
    let common = http
        .common_http_protocol_options
        .get_or_insert_with(Default::default);
    if let Some(d) = dur(hs.idle_timeout.as_ref()) {
        common.idle_timeout = Some(pb::duration(d));
    }
    if let Some(v) = pos(hs.max_requests_per_connection) {
        common.max_requests_per_connection = Some(v);
    }
    if hs.use_client_protocol == Some(true) {
        http.upstream_protocol_options = Some(
            http_protocol_options::UpstreamProtocolOptions::UseDownstreamProtocolConfig(
                Default::default(),
            ),
        );
    }
    h2_settings(hs, http, warn);
}

/// `tcp.idleTimeout` is the HTTP idle timeout too unless `http.idleTimeout` is set (later);
/// `tcp.maxConnectionDuration` bounds HTTP connections.
fn tcp_into_http(tcp: &kinds::TcpSettings, http: &mut HttpProtocolOptions) {
    let common = http
        .common_http_protocol_options
        .get_or_insert_with(Default::default);
    if let Some(d) = dur(tcp.idle_timeout.as_ref()) {
        common.idle_timeout = Some(pb::duration(d));
    }
    if let Some(d) = dur(tcp.max_connection_duration.as_ref()) {
        common.max_connection_duration = Some(pb::duration(d));
    }
}

fn h2_settings(
    hs: &kinds::HttpSettings,
    http: &mut HttpProtocolOptions,
    warn: &dyn Fn(&str, &str),
) {
    use http_protocol_options::UpstreamProtocolOptions as U;
    use http_protocol_options::explicit_http_config::ProtocolConfig as P;
    let h2 = match &mut http.upstream_protocol_options {
        Some(U::ExplicitHttpConfig(e)) => match &mut e.protocol_config {
            Some(P::Http2ProtocolOptions(h2)) => Some(h2),
            _ => None,
        },
        _ => None,
    };
    let Some(h2) = h2 else {
        if hs.max_concurrent_streams.is_some() || hs.http2_keep_alive.is_some() {
            warn(
                "spec.trafficPolicy.connectionPool.http",
                "HTTP/2 settings on an HTTP/1.1 port",
            );
        }
        return;
    };
    if let Some(n) = hs.max_concurrent_streams.filter(|n| *n > 0) {
        h2.max_concurrent_streams = Some(pb::u32v(n as u32));
    }
    if let Some(k) = &hs.http2_keep_alive {
        h2.connection_keepalive = Some(core::KeepaliveSettings {
            interval: dur(k.interval.as_ref()).map(pb::duration),
            timeout: dur(k.timeout.as_ref()).map(pb::duration),
            ..Default::default()
        });
    }
}

fn load_balancer(c: &mut Cluster, lb: &LoadBalancerSettings, warn: &dyn Fn(&str, &str)) {
    let field = "spec.trafficPolicy.loadBalancer";
    if lb.warmup.is_some() || lb.warmup_duration_secs.is_some() {
        warn(field, "loadBalancer.warmup");
    }
    if lb.zone_aware_lb_setting.is_some() {
        warn(field, "loadBalancer.zoneAwareLbSetting");
    }
    if lb.backend_utilization.is_some() {
        warn(field, "loadBalancer.backendUtilization");
    }
    if let Some(l) = &lb.locality_lb_setting {
        if !l.distribute.is_empty() {
            warn(field, "loadBalancer.localityLbSetting.distribute");
        }
        if !l.failover_priority.is_empty() {
            warn(field, "loadBalancer.localityLbSetting.failoverPriority");
        }
    }
    if let Some(simple) = lb.simple {
        c.lb_policy = match simple {
            SimpleLb::RoundRobin => cluster::LbPolicy::RoundRobin,
            SimpleLb::Random => cluster::LbPolicy::Random,
            SimpleLb::Passthrough => {
                c.cluster_discovery_type = Some(super::cluster::discovery(
                    cluster::DiscoveryType::OriginalDst,
                ));
                c.eds_cluster_config = None;
                c.load_assignment = None;
                cluster::LbPolicy::ClusterProvided
            }
            SimpleLb::Unspecified | SimpleLb::LeastConn | SimpleLb::LeastRequest => {
                cluster::LbPolicy::LeastRequest
            }
        } as i32;
    }
    if let Some(ch) = &lb.consistent_hash {
        if ch
            .http_cookie
            .as_ref()
            .is_some_and(|c| !c.attributes.is_empty())
        {
            warn(field, "loadBalancer.consistentHash.httpCookie.attributes");
        }
        if let Some(m) = &ch.maglev {
            c.lb_policy = cluster::LbPolicy::Maglev as i32;
            c.lb_config = Some(cluster::LbConfig::MaglevLbConfig(cluster::MaglevLbConfig {
                table_size: m.table_size.map(|n| pb::u64v(n.max(0) as u64)),
            }));
        } else {
            c.lb_policy = cluster::LbPolicy::RingHash as i32;
            let size = ch
                .ring_hash
                .as_ref()
                .and_then(|r| r.minimum_ring_size)
                .or(ch.minimum_ring_size)
                .unwrap_or(1024);
            c.lb_config = Some(cluster::LbConfig::RingHashLbConfig(
                cluster::RingHashLbConfig {
                    minimum_ring_size: Some(pb::u64v(size.max(1) as u64)),
                    ..Default::default()
                },
            ));
        }
    }
}

fn outlier(c: &mut Cluster, od: &kinds::OutlierDetection, warn: &dyn Fn(&str, &str)) {
    if !od.outlier_detection_http_error_codes.is_empty() {
        warn(
            "spec.trafficPolicy.outlierDetection",
            "outlierDetection.outlierDetectionHttpErrorCodes",
        );
    }
    let mut o = cv3::OutlierDetection {
        // Istio never turns on success-rate ejection.
        enforcing_success_rate: Some(pb::u32v(0)),
        interval: dur(od.interval.as_ref()).map(pb::duration),
        base_ejection_time: dur(od.base_ejection_time.as_ref()).map(pb::duration),
        max_ejection_percent: od
            .max_ejection_percent
            .map(|p| pb::u32v(p.clamp(0, 100) as u32)),
        split_external_local_origin_errors: od.split_external_local_origin_errors == Some(true),
        consecutive_local_origin_failure: od.consecutive_local_origin_failures.map(pb::u32v),
        ..Default::default()
    };
    let five_xx = od
        .consecutive5xx_errors
        .or(od.consecutive_errors.map(|n| n.max(0) as u32));
    if let Some(n) = five_xx {
        o.consecutive_5xx = Some(pb::u32v(n));
        o.enforcing_consecutive_5xx = Some(pb::u32v(if n > 0 { 100 } else { 0 }));
    }
    if let Some(n) = od.consecutive_gateway_errors {
        o.consecutive_gateway_failure = Some(pb::u32v(n));
        o.enforcing_consecutive_gateway_failure = Some(pb::u32v(if n > 0 { 100 } else { 0 }));
    }
    if o.consecutive_local_origin_failure.is_some() {
        o.enforcing_consecutive_local_origin_failure = Some(pb::u32v(100));
    }
    c.outlier_detection = Some(o);
    // Istio: panic threshold = minHealthPercent, 0 (panic mode off) by default.
    let panic = od.min_health_percent.unwrap_or(0).clamp(0, 100);
    c.common_lb_config
        .get_or_insert_with(Default::default)
        .healthy_panic_threshold = Some(Percent {
        value: f64::from(panic),
    });
}

fn upstream_tls(
    ctx: &Ctx<'_>,
    c: &mut Cluster,
    t: &kinds::ClientTlsSettings,
    svc: &Service,
    warn: &dyn Fn(&str, &str),
) {
    let field = "spec.trafficPolicy.tls";
    match t.mode.unwrap_or(ClientTlsMode::Disable) {
        ClientTlsMode::Disable => return,
        ClientTlsMode::IstioMutual => {
            warn(field, "tls.mode ISTIO_MUTUAL (mesh mTLS)");
            return;
        }
        ClientTlsMode::Simple | ClientTlsMode::Mutual => {}
    }
    for (set, name) in [
        (t.credential_name.is_some(), "tls.credentialName"),
        (t.ca_crl.is_some(), "tls.caCrl"),
    ] {
        if set {
            warn(field, name);
        }
    }
    let file = |p: &Option<String>| {
        p.as_ref().map(|f| core::DataSource {
            specifier: Some(core::data_source::Specifier::Filename(f.clone())),
            ..Default::default()
        })
    };
    let mut common = tls::CommonTlsContext::default();
    if t.mode == Some(ClientTlsMode::Mutual) {
        common.tls_certificates.push(tls::TlsCertificate {
            certificate_chain: file(&t.client_certificate),
            private_key: file(&t.private_key),
            ..Default::default()
        });
    }
    if t.insecure_skip_verify != Some(true) {
        let trusted = file(&t.ca_certificates);
        if trusted.is_none() {
            ctx.warn_service(svc, "upstream TLS without caCertificates: the server certificate is not verified (system roots are not configured)");
        }
        // DestinationRule SANs win over the ServiceEntry's.
        let sans = if t.subject_alt_names.is_empty() {
            &svc.subject_alt_names
        } else {
            &t.subject_alt_names
        };
        common.validation_context_type = trusted.map(|ca| {
            tls::common_tls_context::ValidationContextType::ValidationContext(
                tls::CertificateValidationContext {
                    trusted_ca: Some(ca),
                    match_typed_subject_alt_names: sans.iter().map(|s| san_matcher(s)).collect(),
                    ..Default::default()
                },
            )
        });
    }
    let sni = t.sni.clone().unwrap_or_else(|| {
        if svc.hostname.starts_with('*') {
            String::new()
        } else {
            svc.hostname.clone()
        }
    });
    let ctx_tls = tls::UpstreamTlsContext {
        common_tls_context: Some(common),
        sni,
        ..Default::default()
    };
    c.transport_socket = Some(core::TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(core::transport_socket::ConfigType::TypedConfig(pb::any(
            ctx_tls,
        ))),
    });
}

/// A SAN to verify: SPIFFE ids are URI SANs, anything else a DNS SAN.
fn san_matcher(san: &str) -> tls::SubjectAltNameMatcher {
    let san_type = if san.starts_with("spiffe://") {
        tls::subject_alt_name_matcher::SanType::Uri
    } else {
        tls::subject_alt_name_matcher::SanType::Dns
    };
    tls::SubjectAltNameMatcher {
        san_type: san_type as i32,
        matcher: pb::string_match(Some(san), None, None),
        ..Default::default()
    }
}

/// Route `hash_policy` for a consistent-hash load balancer.
pub(crate) fn hash_policy(ch: &ConsistentHashLb) -> Vec<HashPolicy> {
    use hash_policy::PolicySpecifier as S;
    let spec = if let Some(h) = &ch.http_header_name {
        S::Header(hash_policy::Header {
            header_name: h.clone(),
            ..Default::default()
        })
    } else if let Some(cookie) = &ch.http_cookie {
        S::Cookie(hash_policy::Cookie {
            name: cookie.name.clone().unwrap_or_default(),
            path: cookie.path.clone().unwrap_or_default(),
            ttl: dur(cookie.ttl.as_ref()).map(pb::duration),
            ..Default::default()
        })
    } else if ch.use_source_ip == Some(true) {
        S::ConnectionProperties(hash_policy::ConnectionProperties { source_ip: true })
    } else if let Some(q) = &ch.http_query_parameter_name {
        S::QueryParameter(hash_policy::QueryParameter { name: q.clone() })
    } else {
        return Vec::new();
    };
    vec![HashPolicy {
        policy_specifier: Some(spec),
        terminal: false,
    }]
}
