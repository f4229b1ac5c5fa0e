//! Listener -> `Listener`: one bound address and one filter chain holding either an
//! HTTP connection manager (router filter only) or a TCP proxy.

use std::net::SocketAddr;
use std::sync::Arc;

use envoy_types::pb::envoy::config::listener::v3 as l;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
use prost::Name;

use super::fault::Fault;
use super::{FieldError, FieldResult, RouteConfig, duration, socket_address, unpack_field};
use crate::deny_set;

#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    pub name: String,
    /// Port 0 binds an ephemeral port (tests); the bound address is reported by the proxy.
    pub address: SocketAddr,
    /// The only filter chain, or the default (else first) one of a capture listener.
    pub kind: ListenerKind,
    /// REDIRECT-mode fields; `Capture::default()` for an ordinary listener.
    pub capture: super::capture::Capture,
}

impl ListenerKind {
    /// The chain's TLS termination, if any.
    pub fn tls(&self) -> Option<&Arc<crate::tls::DownstreamTls>> {
        match self {
            ListenerKind::Http(m) => m.tls.as_ref(),
            ListenerKind::Tcp(t) => t.tls.as_ref(),
        }
    }
}

impl Listener {
    /// The filter chain for a connection (Envoy: no match and no default chain closes the
    /// connection).
    pub fn chain_for(&self, key: &super::capture::ChainKey) -> Option<&ListenerKind> {
        if self.capture.matched.is_empty() && self.capture.default_chain.is_none() {
            return Some(&self.kind);
        }
        super::capture::select(&self.capture.matched, key).or(self.capture.default_chain.as_ref())
    }

    /// Every filter chain (RDS subscriptions).
    pub fn chains(&self) -> impl Iterator<Item = &ListenerKind> {
        std::iter::once(&self.kind)
            .chain(self.capture.matched.iter().map(|(_, k)| k))
            .chain(self.capture.default_chain.iter())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ListenerKind {
    Http(HttpManager),
    Tcp(TcpProxy),
}

/// Which HTTP versions the downstream codec accepts (`codec_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    Auto,
    Http1,
    Http2,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpManager {
    pub codec: Codec,
    pub routes: RouteSource,
    /// The fault filter in the chain, if any (its name keys per-route overrides).
    pub fault: Option<FaultFilter>,
    /// `upgrade_configs` allows `websocket` (routes may override).
    pub websocket: bool,
    /// `upgrade_configs` allows `CONNECT` (routes may override): CONNECT requests are
    /// forwarded upstream unless the route terminates them (`connect_config`).
    pub connect: bool,
    /// What the manager does to requests before routing (see `crate::downstream`).
    pub options: super::hcm_options::ManagerOptions,
    /// `envoy.filters.http.cors` is in the chain (after the fault filter, if any).
    pub cors: bool,
    /// The chain's `transport_socket` terminates TLS.
    pub tls: Option<Arc<crate::tls::DownstreamTls>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultFilter {
    pub name: String,
    /// Filter-level config; a route's or virtual host's `typed_per_filter_config` replaces it.
    pub config: Arc<Fault>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RouteSource {
    /// Route configuration fetched over RDS by name.
    Rds(String),
    Inline(Arc<RouteConfig>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TcpProxy {
    /// (cluster, weight); a single `cluster` is one entry of weight 1.
    pub clusters: Vec<(String, u32)>,
    /// Envoy closes a connection with no bytes either way for this long (default 1 h).
    pub idle_timeout: Option<std::time::Duration>,
    /// The chain's `transport_socket` terminates TLS.
    pub tls: Option<Arc<crate::tls::DownstreamTls>>,
}

/// Envoy's default TCP proxy idle timeout.
pub const TCP_DEFAULT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

impl TryFrom<&l::Listener> for Listener {
    type Error = FieldError;
    fn try_from(li: &l::Listener) -> FieldResult<Self> {
        let l::Listener {
            name,
            address,
            additional_addresses,
            stat_prefix: _,
            stats_matcher,
            filter_chains,
            fcds_config,
            filter_chain_matcher,
            use_original_dst,
            default_filter_chain,
            per_connection_buffer_limit_bytes,
            per_connection_buffer_high_watermark_timeout,
            metadata: _,
            deprecated_v1,
            drain_type,
            listener_filters,
            listener_filters_timeout,
            continue_on_listener_filters_timeout,
            transparent,
            freebind,
            socket_options,
            tcp_fast_open_queue_length,
            // Informational for Envoy's own stats and filters; does not change forwarding.
            traffic_direction: _,
            udp_listener_config,
            api_listener,
            connection_balance_config,
            reuse_port,
            enable_reuse_port,
            access_log,
            tcp_backlog_size,
            max_connections_to_accept_per_socket_event,
            bind_to_port,
            enable_mptcp,
            ignore_global_conn_limit,
            bypass_overload_manager,
            tcp_keepalive,
            listener_specifier,
        } = li;
        deny_set!(
            additional_addresses,
            stats_matcher,
            fcds_config,
            filter_chain_matcher,
            per_connection_buffer_limit_bytes,
            per_connection_buffer_high_watermark_timeout,
            deprecated_v1,
            drain_type,
            transparent,
            freebind,
            socket_options,
            tcp_fast_open_queue_length,
            udp_listener_config,
            api_listener,
            connection_balance_config,
            reuse_port,
            enable_reuse_port,
            access_log,
            tcp_backlog_size,
            max_connections_to_accept_per_socket_event,
            enable_mptcp,
            ignore_global_conn_limit,
            bypass_overload_manager,
            tcp_keepalive,
            listener_specifier
        );
        let address = socket_address(address).map_err(|e| e.within("address"))?;
        let (kind, capture) = super::capture::parse(
            bind_to_port.as_ref(),
            listener_filters_timeout.as_ref(),
            *continue_on_listener_filters_timeout,
            use_original_dst.as_ref(),
            listener_filters,
            filter_chains,
            default_filter_chain.as_ref(),
        )?;
        Ok(Listener {
            name: name.clone(),
            address,
            kind,
            capture,
        })
    }
}

pub(super) fn filter_chain(c: &l::FilterChain) -> FieldResult<ListenerKind> {
    let l::FilterChain {
        filter_chain_match,
        filters,
        use_proxy_proto,
        metadata: _,
        transport_socket,
        transport_socket_connect_timeout,
        name: _,
    } = c;
    deny_set!(filter_chain_match, use_proxy_proto);
    let handshake_timeout = match transport_socket_connect_timeout {
        Some(d) => Some(duration(d).map_err(|e| e.within("transport_socket_connect_timeout"))?)
            .filter(|d| !d.is_zero()),
        None => None,
    };
    let tls = crate::tls::context::downstream(transport_socket.as_ref(), handshake_timeout)
        .map_err(|e| e.within("transport_socket"))?;
    let [filter] = filters.as_slice() else {
        return Err(FieldError::unsupported(format!(
            "filters (exactly one network filter is supported, got {})",
            filters.len()
        )));
    };
    let any = match &filter.config_type {
        Some(l::filter::ConfigType::TypedConfig(any)) => any,
        Some(l::filter::ConfigType::ConfigDiscovery(_)) => {
            return Err(FieldError::unsupported("filters[0].config_discovery"));
        }
        None => return Err(FieldError::invalid("filters[0].typed_config", "required")),
    };
    if any.type_url == hcm::HttpConnectionManager::type_url() {
        let m: hcm::HttpConnectionManager = unpack_field(any, "filters[0].typed_config")?;
        let manager = http_manager(&m).map_err(|e| e.within("filters[0].typed_config"))?;
        Ok(ListenerKind::Http(HttpManager { tls, ..manager }))
    } else if any.type_url == tcp::TcpProxy::type_url() {
        let t: tcp::TcpProxy = unpack_field(any, "filters[0].typed_config")?;
        let proxy = tcp_proxy(&t).map_err(|e| e.within("filters[0].typed_config"))?;
        Ok(ListenerKind::Tcp(TcpProxy { tls, ..proxy }))
    } else {
        Err(FieldError::unsupported(format!(
            "filters[0].typed_config ({})",
            any.type_url
        )))
    }
}

fn http_manager(m: &hcm::HttpConnectionManager) -> FieldResult<HttpManager> {
    let hcm::HttpConnectionManager {
        codec_type,
        stat_prefix: _,
        http_filters,
        add_user_agent,
        tracing,
        // Read by `ManagerOptions::parse` (only `max_stream_duration` is accepted).
        common_http_protocol_options: _,
        http1_safe_max_connection_duration,
        http_protocol_options: _,
        http2_protocol_options,
        http3_protocol_options,
        // Read by `ManagerOptions::parse` (with the fields marked below).
        server_name: _,
        server_header_transformation: _,
        scheme_header_transformation,
        max_request_headers_kb,
        // Read by `ManagerOptions::parse` with the other request options.
        stream_idle_timeout: _,
        stream_flush_timeout,
        request_timeout,
        request_headers_timeout,
        drain_timeout,
        drain_timeout_jitter,
        delayed_close_timeout,
        access_log,
        access_log_flush_interval,
        flush_access_log_on_new_request,
        access_log_options,
        use_remote_address: _,
        // Read by `ManagerOptions::parse`, as are the request-id fields below.
        xff_num_trusted_hops: _,
        original_ip_detection_extensions,
        early_header_mutation_extensions,
        internal_address_config: _,
        skip_xff_append,
        via,
        generate_request_id: _,
        preserve_external_request_id: _,
        always_set_request_id_in_response: _,
        forward_client_cert_details,
        set_current_client_cert_details,
        forward_client_cert_matcher,
        proxy_100_continue,
        represent_ipv4_remote_address_as_ipv4_mapped_ipv6,
        upgrade_configs,
        normalize_path: _,
        merge_slashes,
        path_with_escaped_slashes_action,
        request_id_extension: _,
        local_reply_config,
        strip_matching_host_port,
        stream_error_on_invalid_http_message,
        path_normalization_options,
        strip_trailing_host_dot,
        proxy_status_config,
        typed_header_validation_config,
        append_x_forwarded_port,
        append_local_overload,
        add_proxy_protocol_connection_state,
        forward_proto_config,
        route_specifier,
        strip_port_mode,
    } = m;
    deny_set!(
        add_user_agent,
        tracing,
        http1_safe_max_connection_duration,
        http2_protocol_options,
        http3_protocol_options,
        scheme_header_transformation,
        max_request_headers_kb,
        stream_flush_timeout,
        request_timeout,
        request_headers_timeout,
        drain_timeout,
        drain_timeout_jitter,
        delayed_close_timeout,
        access_log,
        access_log_flush_interval,
        flush_access_log_on_new_request,
        access_log_options,
        original_ip_detection_extensions,
        early_header_mutation_extensions,
        skip_xff_append,
        via,
        forward_client_cert_details,
        set_current_client_cert_details,
        forward_client_cert_matcher,
        proxy_100_continue,
        represent_ipv4_remote_address_as_ipv4_mapped_ipv6,
        merge_slashes,
        path_with_escaped_slashes_action,
        local_reply_config,
        strip_matching_host_port,
        stream_error_on_invalid_http_message,
        path_normalization_options,
        strip_trailing_host_dot,
        proxy_status_config,
        typed_header_validation_config,
        append_x_forwarded_port,
        append_local_overload,
        add_proxy_protocol_connection_state,
        forward_proto_config,
        strip_port_mode
    );
    let codec = match codec_type {
        0 => Codec::Auto,
        1 => Codec::Http1,
        2 => Codec::Http2,
        n => return Err(FieldError::unsupported(format!("codec_type ({n})"))),
    };
    let (fault, cors, envoy_headers) =
        filter_chain_http(http_filters).map_err(|e| e.within("http_filters"))?;
    let routes = match route_specifier {
        Some(hcm::http_connection_manager::RouteSpecifier::Rds(hcm::Rds {
            config_source,
            route_config_name,
        })) => {
            if config_source.is_none() {
                return Err(FieldError::invalid("rds.config_source", "required"));
            }
            RouteSource::Rds(route_config_name.clone())
        }
        Some(hcm::http_connection_manager::RouteSpecifier::RouteConfig(rc)) => RouteSource::Inline(
            Arc::new(RouteConfig::try_from(rc).map_err(|e| e.within("route_config"))?),
        ),
        Some(hcm::http_connection_manager::RouteSpecifier::ScopedRoutes(_)) => {
            return Err(FieldError::unsupported("scoped_routes"));
        }
        None => {
            return Err(FieldError::invalid(
                "route_specifier",
                "rds or route_config is required",
            ));
        }
    };
    let Upgrades { websocket, connect } =
        upgrades(upgrade_configs).map_err(|e| e.within("upgrade_configs"))?;
    let options = super::hcm_options::ManagerOptions {
        envoy_headers,
        ..super::hcm_options::ManagerOptions::parse(m)?
    };
    Ok(HttpManager {
        codec,
        routes,
        fault,
        websocket,
        connect,
        options,
        cors,
        tls: None,
    })
}

/// The HTTP filter chain: an optional fault filter, an optional CORS filter after it, then the
/// router (the returned flag: it adds its `x-envoy-*` headers). Plexus has no other HTTP
/// filters yet, and skipping one silently would change behaviour.
fn filter_chain_http(
    filters: &[hcm::HttpFilter],
) -> FieldResult<(Option<FaultFilter>, bool, bool)> {
    let Some((router, before)) = filters.split_last() else {
        return Err(FieldError::invalid("", "the router filter is required"));
    };
    let at = filters.len() - 1;
    let envoy_headers = router_filter(router).map_err(|e| e.within(&format!("[{at}]")))?;
    let mut fault = None;
    let mut cors = false;
    for (i, f) in before.iter().enumerate() {
        let any = typed_config(f).map_err(|e| e.within(&format!("[{i}]")))?;
        if super::cors::is_filter(any) {
            super::cors::filter(any).map_err(|e| e.within(&format!("[{i}]")))?;
            cors = true;
            continue;
        }
        if cors {
            return Err(FieldError::unsupported(format!(
                "[{i}] (a filter after envoy.filters.http.cors)"
            )));
        }
        let parsed = fault_filter(f).map_err(|e| e.within(&format!("[{i}]")))?;
        if fault.is_some() {
            return Err(FieldError::unsupported(format!(
                "[{i}] (a second fault filter)"
            )));
        }
        fault = Some(parsed);
    }
    Ok((fault, cors, envoy_headers))
}

fn typed_config(f: &hcm::HttpFilter) -> FieldResult<&envoy_types::pb::google::protobuf::Any> {
    let hcm::HttpFilter {
        name,
        is_optional: _,
        disabled,
        config_type,
    } = f;
    if *disabled {
        return Err(FieldError::unsupported(format!("disabled ({name})")));
    }
    match config_type {
        Some(hcm::http_filter::ConfigType::TypedConfig(any)) => Ok(any),
        Some(hcm::http_filter::ConfigType::ConfigDiscovery(_)) => Err(FieldError::unsupported(
            format!("config_discovery ({name})"),
        )),
        None => Err(FieldError::invalid(
            "typed_config",
            format!("filter {name:?} needs a typed_config"),
        )),
    }
}

fn router_filter(f: &hcm::HttpFilter) -> FieldResult<bool> {
    let any = typed_config(f)?;
    if any.type_url != Router::type_url() {
        return Err(FieldError::unsupported(format!(
            "typed_config ({}; the last filter must be envoy.filters.http.router)",
            any.type_url
        )));
    }
    let r: Router = unpack_field(any, "typed_config")?;
    super::hcm_options::router_options(&r).map_err(|e| e.within("typed_config"))
}

fn fault_filter(f: &hcm::HttpFilter) -> FieldResult<FaultFilter> {
    let any = typed_config(f)?;
    if any.type_url != HttpFault::type_url() {
        return Err(FieldError::unsupported(format!(
            "typed_config ({}; only envoy.filters.http.fault may precede the router)",
            any.type_url
        )));
    }
    let cfg: HttpFault = unpack_field(any, "typed_config")?;
    let fault = Fault::try_from(&cfg).map_err(|e| e.within("typed_config"))?;
    Ok(FaultFilter {
        name: f.name.clone(),
        config: Arc::new(fault),
    })
}

/// The upgrades a connection manager allows.
#[derive(Default)]
struct Upgrades {
    websocket: bool,
    connect: bool,
}

/// WebSocket and CONNECT upgrades without upgrade filters are supported.
fn upgrades(configs: &[hcm::http_connection_manager::UpgradeConfig]) -> FieldResult<Upgrades> {
    let mut out = Upgrades::default();
    for (i, c) in configs.iter().enumerate() {
        let hcm::http_connection_manager::UpgradeConfig {
            upgrade_type,
            filters,
            enabled,
        } = c;
        let slot = if upgrade_type.eq_ignore_ascii_case("websocket") {
            &mut out.websocket
        } else if upgrade_type.eq_ignore_ascii_case("connect") {
            &mut out.connect
        } else {
            return Err(FieldError::unsupported(format!(
                "[{i}].upgrade_type ({upgrade_type})"
            )));
        };
        if !filters.is_empty() {
            return Err(FieldError::unsupported(format!("[{i}].filters")));
        }
        *slot = enabled.as_ref().is_none_or(|b| b.value);
    }
    Ok(out)
}

fn tcp_proxy(t: &tcp::TcpProxy) -> FieldResult<TcpProxy> {
    let tcp::TcpProxy {
        stat_prefix: _,
        on_demand,
        metadata_match,
        idle_timeout,
        downstream_idle_timeout,
        upstream_idle_timeout,
        access_log,
        max_connect_attempts,
        backoff_options,
        hash_policy,
        tunneling_config,
        max_downstream_connection_duration,
        max_downstream_connection_duration_jitter_percentage,
        access_log_flush_interval,
        flush_access_log_on_connected,
        access_log_options,
        proxy_protocol_tlvs,
        proxy_protocol_tlv_merge_policy,
        upstream_connect_mode,
        max_early_data_bytes,
        check_drain_close,
        cluster_specifier,
    } = t;
    deny_set!(
        on_demand,
        metadata_match,
        downstream_idle_timeout,
        upstream_idle_timeout,
        access_log,
        max_connect_attempts,
        backoff_options,
        hash_policy,
        tunneling_config,
        max_downstream_connection_duration,
        max_downstream_connection_duration_jitter_percentage,
        access_log_flush_interval,
        flush_access_log_on_connected,
        access_log_options,
        proxy_protocol_tlvs,
        proxy_protocol_tlv_merge_policy,
        upstream_connect_mode,
        max_early_data_bytes,
        check_drain_close
    );
    let clusters = match cluster_specifier {
        Some(tcp::tcp_proxy::ClusterSpecifier::Cluster(c)) => vec![(c.clone(), 1)],
        Some(tcp::tcp_proxy::ClusterSpecifier::WeightedClusters(w)) => {
            tcp_weighted(w).map_err(|e| e.within("weighted_clusters"))?
        }
        None => {
            return Err(FieldError::invalid(
                "cluster_specifier",
                "a cluster is required",
            ));
        }
    };
    let idle_timeout = match idle_timeout {
        Some(d) => {
            Some(duration(d).map_err(|e| e.within("idle_timeout"))?).filter(|d| !d.is_zero())
        }
        None => Some(TCP_DEFAULT_IDLE_TIMEOUT),
    };
    Ok(TcpProxy {
        clusters,
        idle_timeout,
        tls: None,
    })
}

fn tcp_weighted(w: &tcp::tcp_proxy::WeightedCluster) -> FieldResult<Vec<(String, u32)>> {
    let mut out = Vec::new();
    for (i, c) in w.clusters.iter().enumerate() {
        let tcp::tcp_proxy::weighted_cluster::ClusterWeight {
            name,
            weight,
            metadata_match,
        } = c;
        if metadata_match.is_some() {
            return Err(FieldError::unsupported(format!(
                "clusters[{i}].metadata_match"
            )));
        }
        out.push((name.clone(), *weight));
    }
    if out.iter().map(|(_, w)| u64::from(*w)).sum::<u64>() == 0 {
        return Err(FieldError::invalid(
            "clusters",
            "the sum of weights must be greater than 0",
        ));
    }
    Ok(out)
}
