//! Sidecar listeners. Interception NONE (DESIGN §9 process mode): outbound listeners bound on
//! the proxy's outbound address per service port, a plain HTTP listener usable as HTTP_PROXY,
//! and an inbound listener per workload port. REDIRECT (Istio's iptables capture):
//! `virtualOutbound` 15001 handing connections to `0.0.0.0_<port>` / `<vip>_<port>` listeners
//! that do not bind, and `virtualInbound` 15006 with a filter chain per workload port.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::{Http1ProtocolOptions, TrafficDirection};
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch, Listener};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    self as hcm, HttpConnectionManager, http_connection_manager,
};
use plexus_model::{Interception, OutboundMode, Service};

use super::http_route::{CORS_FILTER, FAULT_FILTER};
use super::{
    BLACKHOLE_CLUSTER, Ctx, HTTP_PROXY_ROUTE, INBOUND_PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER,
    VIRTUAL_INBOUND_PORT, VIRTUAL_OUTBOUND_PORT, inbound, listener_name, pb, tcp, virtual_host,
};

pub const HCM: &str = "envoy.filters.network.http_connection_manager";

/// Where an HCM gets its routes.
pub(crate) enum RouteSpec {
    Rds(String),
    Inline(Box<RouteConfiguration>),
}

/// Listeners and route configurations of a sidecar.
pub(crate) fn sidecar(ctx: &Ctx<'_>) -> (Vec<Listener>, Vec<RouteConfiguration>) {
    let ports = outbound_ports(ctx);
    let mut routes: Vec<RouteConfiguration> = ports
        .http
        .iter()
        .map(|p| virtual_host::sidecar_routes(ctx, &p.to_string(), Some(*p)))
        .collect();
    let listeners = match ctx.node.interception {
        Interception::None => {
            routes.push(virtual_host::sidecar_routes(ctx, HTTP_PROXY_ROUTE, None));
            bound(ctx, &ports, &routes)
        }
        Interception::Redirect => captured(ctx, &ports, &routes),
    };
    (listeners, routes)
}

/// HTTP ports (one listener each) and TCP service ports (one listener per service and VIP).
struct OutboundPorts<'a> {
    http: BTreeSet<u16>,
    tcp: Vec<(&'a Service, u16)>,
}

fn outbound_ports<'a>(ctx: &Ctx<'a>) -> OutboundPorts<'a> {
    let mut http = BTreeSet::new();
    let mut tcp = Vec::new();
    for &si in &ctx.scope.services {
        let svc = &ctx.snap.registry.services[si];
        for p in &svc.ports {
            if p.protocol.is_http() {
                http.insert(p.number);
            } else {
                if p.protocol == plexus_model::Protocol::Unknown {
                    ctx.warn_service(svc, format!("port {} has no protocol (name it http-*, tcp-*...; set appProtocol): protocol sniffing is not supported, treated as TCP", p.number));
                }
                tcp.push((svc, p.number));
            }
        }
    }
    OutboundPorts { http, tcp }
}

/// Interception NONE.
fn bound(ctx: &Ctx<'_>, ports: &OutboundPorts<'_>, routes: &[RouteConfiguration]) -> Vec<Listener> {
    let node = ctx.node;
    let addr = node.outbound_address.as_str();
    let mut b = Bound {
        taken: BTreeMap::new(),
        out: Vec::new(),
    };
    for p in inbound::ports(ctx) {
        b.take(&node.ip, p.port, format!("inbound port {}", p.port));
        let mut l = listener(
            &listener_name(&node.ip, p.port),
            &node.ip,
            p.port,
            TrafficDirection::Inbound,
        );
        l.filter_chains.push(inbound::chain(p));
        b.out.push(l);
    }
    let proxy_port = node.http_proxy_port;
    b.take(addr, proxy_port, "the HTTP_PROXY listener".into());
    let mut proxy = listener(
        &listener_name(addr, proxy_port),
        addr,
        proxy_port,
        TrafficDirection::Outbound,
    );
    proxy.filter_chains.push(http_proxy_chain(addr, routes));
    for &port in &ports.http {
        if let Some(owner) = b.owner(addr, port) {
            ctx.warn_node(format!("HTTP port {port} cannot get a bound outbound listener on {addr}: {owner} uses it; use the HTTP_PROXY listener"));
            continue;
        }
        b.take(addr, port, format!("HTTP services on port {port}"));
        let mut l = listener(
            &listener_name(addr, port),
            addr,
            port,
            TrafficDirection::Outbound,
        );
        let name = port.to_string();
        l.filter_chains.push(hcm_chain(
            &name,
            RouteSpec::Rds(name.clone()),
            needs(routes, &name),
        ));
        b.out.push(l);
    }
    for (svc, port) in &ports.tcp {
        if let Some(owner) = b.owner(addr, *port) {
            ctx.warn_service(svc, format!("TCP port {port} cannot get a bound outbound listener on {addr}: {owner} uses it"));
            continue;
        }
        b.take(addr, *port, format!("{} port {port}", svc.hostname));
        let mut l = listener(
            &listener_name(addr, *port),
            addr,
            *port,
            TrafficDirection::Outbound,
        );
        l.filter_chains = tcp::service_chains(ctx, svc, *port);
        b.out.push(l);
    }
    b.out.push(proxy);
    b.out
}

/// Bound listeners so far, and who holds each address and port: a later listener that
/// collides loses, with a warning.
struct Bound {
    taken: BTreeMap<(String, u16), String>,
    out: Vec<Listener>,
}

impl Bound {
    fn take(&mut self, addr: &str, port: u16, owner: String) {
        self.taken.insert((addr.to_string(), port), owner);
    }

    fn owner(&self, addr: &str, port: u16) -> Option<&String> {
        self.taken.get(&(addr.to_string(), port))
    }
}

/// The HTTP_PROXY listener's chain: absolute-form request URIs (`GET http://host:port/path`) are
/// routed by their host, as Istio's HTTP proxy listener does.
fn http_proxy_chain(addr: &str, routes: &[RouteConfiguration]) -> FilterChain {
    let filters = needs(routes, HTTP_PROXY_ROUTE);
    let mut hcm = http_manager(
        addr,
        RouteSpec::Rds(HTTP_PROXY_ROUTE.into()),
        filters,
        false,
    );
    hcm.http_protocol_options = Some(Http1ProtocolOptions {
        allow_absolute_url: Some(pb::boolv(true)),
        ..Default::default()
    });
    FilterChain {
        filters: vec![pb::network_filter(HCM, hcm)],
        ..Default::default()
    }
}

/// Interception REDIRECT.
fn captured(
    ctx: &Ctx<'_>,
    ports: &OutboundPorts<'_>,
    routes: &[RouteConfiguration],
) -> Vec<Listener> {
    let mut out = Vec::new();
    let mut names = BTreeSet::new();
    for &port in &ports.http {
        let name = listener_name("0.0.0.0", port);
        names.insert(name.clone());
        let mut l = listener(&name, "0.0.0.0", port, TrafficDirection::Outbound);
        l.bind_to_port = Some(pb::boolv(false));
        l.filter_chains.push(hcm_chain(
            &port.to_string(),
            RouteSpec::Rds(port.to_string()),
            needs(routes, &port.to_string()),
        ));
        out.push(l);
    }
    for (svc, port) in &ports.tcp {
        let vips: Vec<String> = svc
            .vips
            .iter()
            .filter(|v| !v.contains('/'))
            .cloned()
            .collect();
        let addrs = if vips.is_empty() {
            vec!["0.0.0.0".to_string()]
        } else {
            vips
        };
        for a in addrs {
            let name = listener_name(&a, *port);
            if !names.insert(name.clone()) {
                ctx.warn_service(svc, format!("listener {name} is already used by another service; {} port {port} is reachable only by another address", svc.hostname));
                continue;
            }
            let mut l = listener(&name, &a, *port, TrafficDirection::Outbound);
            l.bind_to_port = Some(pb::boolv(false));
            l.filter_chains = tcp::service_chains(ctx, svc, *port);
            out.push(l);
        }
    }
    out.push(virtual_outbound(ctx));
    out.push(virtual_inbound(ctx));
    out
}

fn virtual_outbound(ctx: &Ctx<'_>) -> Listener {
    let target = match ctx.scope.outbound_mode {
        OutboundMode::AllowAny => PASSTHROUGH_CLUSTER,
        OutboundMode::RegistryOnly => BLACKHOLE_CLUSTER,
    };
    let mut l = listener(
        "virtualOutbound",
        "0.0.0.0",
        VIRTUAL_OUTBOUND_PORT,
        TrafficDirection::Outbound,
    );
    l.use_original_dst = Some(pb::boolv(true));
    l.listener_filters.push(pb::listener_filter(
        "envoy.filters.listener.original_dst",
        OriginalDst {},
    ));
    l.filter_chains
        .push(tcp::chain(None, tcp::to_cluster(target)));
    l
}

fn virtual_inbound(ctx: &Ctx<'_>) -> Listener {
    let mut l = listener(
        "virtualInbound",
        "0.0.0.0",
        VIRTUAL_INBOUND_PORT,
        TrafficDirection::Inbound,
    );
    l.listener_filters.push(pb::listener_filter(
        "envoy.filters.listener.original_dst",
        OriginalDst {},
    ));
    for p in inbound::ports(ctx) {
        let mut chain = inbound::chain(p);
        chain.filter_chain_match = Some(FilterChainMatch {
            destination_port: Some(pb::u32v(u32::from(p.port))),
            ..Default::default()
        });
        chain.name = super::inbound_cluster_name(p.port);
        l.filter_chains.push(chain);
    }
    l.default_filter_chain = Some(tcp::chain(
        None,
        tcp::to_cluster(INBOUND_PASSTHROUGH_CLUSTER),
    ));
    l
}

pub(crate) fn listener(name: &str, ip: &str, port: u16, dir: TrafficDirection) -> Listener {
    Listener {
        name: name.to_string(),
        address: Some(pb::socket(ip, port)),
        traffic_direction: dir as i32,
        ..Default::default()
    }
}

/// Whether the named route configuration uses per-route fault and CORS configs (the HCM then
/// needs those filters; otherwise the chain is only the router).
pub(crate) fn needs(routes: &[RouteConfiguration], name: &str) -> Filters {
    let mut f = Filters::default();
    for rc in routes.iter().filter(|r| r.name == name) {
        for r in rc.virtual_hosts.iter().flat_map(|v| &v.routes) {
            f.fault |= r.typed_per_filter_config.contains_key(FAULT_FILTER);
            f.cors |= r.typed_per_filter_config.contains_key(CORS_FILTER);
        }
    }
    f
}

/// Optional HTTP filters in front of the router.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Filters {
    pub fault: bool,
    pub cors: bool,
}

/// A filter chain with an HTTP connection manager: fault, CORS (when routes use them), router.
pub(crate) fn hcm_chain(stat_prefix: &str, routes: RouteSpec, filters: Filters) -> FilterChain {
    FilterChain {
        filters: vec![pb::network_filter(
            HCM,
            http_manager(stat_prefix, routes, filters, false),
        )],
        ..Default::default()
    }
}

pub(crate) fn http_manager(
    stat_prefix: &str,
    routes: RouteSpec,
    filters: Filters,
    gateway: bool,
) -> HttpConnectionManager {
    let mut http_filters = Vec::new();
    if filters.fault {
        http_filters.push(http_filter(FAULT_FILTER, pb::any(HttpFault::default())));
    }
    if filters.cors {
        http_filters.push(http_filter(CORS_FILTER, pb::any(Cors::default())));
    }
    http_filters.push(http_filter(
        "envoy.filters.http.router",
        pb::any(Router::default()),
    ));
    let route_specifier = match routes {
        RouteSpec::Rds(name) => http_connection_manager::RouteSpecifier::Rds(hcm::Rds {
            config_source: Some(pb::ads()),
            route_config_name: name,
        }),
        RouteSpec::Inline(rc) => http_connection_manager::RouteSpecifier::RouteConfig(*rc),
    };
    HttpConnectionManager {
        stat_prefix: stat_prefix.to_string(),
        route_specifier: Some(route_specifier),
        http_filters,
        // Istio: gateways see external clients; sidecars keep Envoy's default (false) and so
        // trust the app's x-envoy-* headers.
        use_remote_address: gateway.then(|| pb::boolv(true)),
        normalize_path: Some(pb::boolv(true)),
        ..Default::default()
    }
}

fn http_filter(name: &str, config: envoy_types::pb::google::protobuf::Any) -> hcm::HttpFilter {
    hcm::HttpFilter {
        name: name.into(),
        config_type: Some(hcm::http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}
