//! Sidecar listeners. Interception NONE (DESIGN §9 process mode): outbound listeners bound on
//! the proxy's outbound address (or the egress listener's `bind`) per service port, a plain
//! HTTP listener usable as HTTP_PROXY, and an inbound listener per workload port. REDIRECT
//! (Istio's iptables capture): `virtualOutbound` 15001 handing connections to `0.0.0.0_<port>`
//! / `<vip>_<port>` listeners that do not bind (egress listeners with `captureMode: NONE` bind
//! on `bind`, default 127.0.0.1), and `virtualInbound` 15006 with a filter chain per workload
//! port. Each Sidecar egress listener with a port carries that port with its own hosts; the
//! catch-all carries every other port.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::{Http1ProtocolOptions, TrafficDirection};
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch, Listener};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    self as hcm, HttpConnectionManager, http_connection_manager,
};
use plexus_api::kinds::CaptureMode;
use plexus_model::{Interception, OutboundMode, Protocol, Service};

use super::http_route::{CORS_FILTER, FAULT_FILTER};
use super::scope::Egress;
use super::{
    BLACKHOLE_CLUSTER, Ctx, HTTP_PROXY_ROUTE, INBOUND_PASSTHROUGH_CLUSTER, PASSTHROUGH_CLUSTER,
    VIRTUAL_INBOUND_PORT, VIRTUAL_OUTBOUND_PORT, inbound, listener_name, pb, tcp, virtual_host,
};

pub const HCM: &str = "envoy.filters.network.http_connection_manager";
/// Address of capture-only listeners without a `bind`.
const WILDCARD: &str = "0.0.0.0";
/// Istio's default `bind` of an egress listener with `captureMode: NONE`.
const LOCALHOST: &str = "127.0.0.1";

/// Where an HCM gets its routes.
pub(crate) enum RouteSpec {
    Rds(String),
    Inline(Box<RouteConfiguration>),
}

/// Listeners and route configurations of a sidecar.
pub(crate) fn sidecar(ctx: &Ctx<'_>) -> (Vec<Listener>, Vec<RouteConfiguration>) {
    let plans = plans(ctx);
    let http_ports: BTreeSet<u16> = plans.iter().flat_map(|p| p.http.iter().copied()).collect();
    let mut routes: Vec<RouteConfiguration> = http_ports
        .iter()
        .map(|&p| {
            let egress = ctx.scope.listener_for_port(p);
            virtual_host::sidecar_routes(ctx, egress, &p.to_string(), Some(p))
        })
        .collect();
    let listeners = match ctx.node.interception {
        Interception::None => {
            let egress = ctx.scope.catch_all();
            routes.push(virtual_host::sidecar_routes(
                ctx,
                egress,
                HTTP_PROXY_ROUTE,
                None,
            ));
            bound(ctx, &plans, &routes)
        }
        Interception::Redirect => captured(ctx, &plans, &routes),
    };
    (listeners, routes)
}

/// What one egress listener carries — HTTP ports (one listener each) and TCP service ports
/// (one listener per service and address) — and where its listeners go.
struct Plan<'c> {
    egress: &'c Egress<'c>,
    http: BTreeSet<u16>,
    tcp: Vec<(&'c Service, u16)>,
    /// Listener address; `None`: `0.0.0.0` for HTTP, the service's VIPs for TCP.
    addr: Option<String>,
    /// A real socket (interception NONE, or `captureMode: NONE`), else `bind_to_port: false`.
    bind: bool,
}

/// One plan per egress listener. A listener with a port carries only that port (protocol from
/// `port.protocol`, else from the services' ports); the catch-all carries every other port.
fn plans<'c>(ctx: &'c Ctx<'_>) -> Vec<Plan<'c>> {
    let named: BTreeSet<u16> = ctx.scope.listeners.iter().filter_map(|e| e.port).collect();
    let mut out = Vec::new();
    for e in &ctx.scope.listeners {
        let (addr, bind) = placement(ctx, e);
        let mut plan = Plan {
            egress: e,
            http: BTreeSet::new(),
            tcp: Vec::new(),
            addr,
            bind,
        };
        // Istio builds an HTTP listener on a named port for the listener's services even when
        // none of them has that port; its route configuration then has only the fallback.
        if let (Some(n), Some(proto)) = (e.port, e.protocol)
            && proto.is_http()
            && !e.services.is_empty()
        {
            plan.http.insert(n);
        }
        for &si in &e.services {
            let svc = &ctx.snap.registry.services[si];
            for p in &svc.ports {
                let wanted = match e.port {
                    Some(n) => p.number == n,
                    None => !named.contains(&p.number),
                };
                if !wanted {
                    continue;
                }
                if e.protocol.map_or(p.protocol.is_http(), Protocol::is_http) {
                    plan.http.insert(p.number);
                    continue;
                }
                if p.protocol == Protocol::Unknown && e.protocol.is_none() {
                    ctx.warn_service(svc, format!("port {} has no protocol (name it http-*, tcp-*...; set appProtocol): protocol sniffing is not supported, treated as TCP", p.number));
                }
                plan.tcp.push((svc, p.number));
            }
        }
        out.push(plan);
    }
    out
}

/// Istio's placement: a proxy in interception NONE binds every outbound listener, on `bind`
/// or (Plexus) its outbound address; under REDIRECT, `captureMode: NONE` binds on `bind` or
/// 127.0.0.1, other capture modes give capture-only listeners on `bind` or the defaults.
fn placement(ctx: &Ctx<'_>, e: &Egress<'_>) -> (Option<String>, bool) {
    match ctx.node.interception {
        Interception::None => (
            Some(
                e.bind
                    .clone()
                    .unwrap_or_else(|| ctx.node.outbound_address.clone()),
            ),
            true,
        ),
        Interception::Redirect if e.capture == Some(CaptureMode::None) => (
            Some(e.bind.clone().unwrap_or_else(|| LOCALHOST.into())),
            true,
        ),
        Interception::Redirect => (e.bind.clone(), false),
    }
}

/// Interception NONE.
fn bound(ctx: &Ctx<'_>, plans: &[Plan<'_>], routes: &[RouteConfiguration]) -> Vec<Listener> {
    let node = ctx.node;
    let addr = node.outbound_address.as_str();
    let mut out = Out::default();
    for p in inbound::ports(ctx) {
        let ip = p.bind.clone().unwrap_or_else(|| node.ip.clone());
        out.take(&ip, p.port, format!("inbound port {}", p.port));
        let mut l = listener(
            &listener_name(&ip, p.port),
            &ip,
            p.port,
            TrafficDirection::Inbound,
        );
        l.filter_chains.push(inbound::chain(&p));
        out.listeners.push(l);
    }
    let proxy_port = node.http_proxy_port;
    out.take(addr, proxy_port, "the HTTP_PROXY listener".into());
    let mut proxy = listener(
        &listener_name(addr, proxy_port),
        addr,
        proxy_port,
        TrafficDirection::Outbound,
    );
    proxy.filter_chains.push(http_proxy_chain(addr, routes));
    out.outbound(ctx, plans, routes);
    out.listeners.push(proxy);
    out.listeners
}

/// Listeners so far, and who holds each address and port: a later listener that collides
/// loses, with a warning.
#[derive(Default)]
struct Out {
    taken: BTreeMap<(String, u16), String>,
    listeners: Vec<Listener>,
}

impl Out {
    fn take(&mut self, addr: &str, port: u16, owner: String) {
        self.taken.insert((addr.to_string(), port), owner);
    }

    fn owner(&self, addr: &str, port: u16) -> Option<&String> {
        self.taken.get(&(addr.to_string(), port))
    }

    fn outbound(&mut self, ctx: &Ctx<'_>, plans: &[Plan<'_>], routes: &[RouteConfiguration]) {
        for plan in plans {
            let addr = plan.addr.as_deref().unwrap_or(WILDCARD);
            for &port in &plan.http {
                self.http(ctx, addr, port, plan.bind, routes);
            }
            for &(svc, port) in &plan.tcp {
                let addrs = match &plan.addr {
                    Some(a) => vec![a.clone()],
                    None => tcp_addresses(svc),
                };
                for a in addrs {
                    self.tcp(ctx, plan, svc, port, &a);
                }
            }
        }
    }

    fn http(
        &mut self,
        ctx: &Ctx<'_>,
        addr: &str,
        port: u16,
        bind: bool,
        routes: &[RouteConfiguration],
    ) {
        if let Some(owner) = self.owner(addr, port) {
            let how = if bind { "a bound" } else { "an" };
            let hint = if ctx.node.interception == Interception::None {
                "; use the HTTP_PROXY listener"
            } else {
                ""
            };
            ctx.warn_node(format!("HTTP port {port} cannot get {how} outbound listener on {addr}: {owner} uses it{hint}"));
            return;
        }
        self.take(addr, port, format!("HTTP services on port {port}"));
        let mut l = listener(
            &listener_name(addr, port),
            addr,
            port,
            TrafficDirection::Outbound,
        );
        if !bind {
            l.bind_to_port = Some(pb::boolv(false));
        }
        let name = port.to_string();
        l.filter_chains.push(hcm_chain(
            &name,
            RouteSpec::Rds(name.clone()),
            needs(routes, &name),
        ));
        self.listeners.push(l);
    }

    fn tcp(&mut self, ctx: &Ctx<'_>, plan: &Plan<'_>, svc: &Service, port: u16, addr: &str) {
        let name = listener_name(addr, port);
        let chains = tcp_chains(ctx, plan.egress, svc, port);
        if let Some(owner) = self.owner(addr, port).cloned() {
            let shared = self.listeners.iter().any(|l| l.name == name)
                && add_chains(&mut self.listeners, &name, addr, port, chains, plan.bind);
            if !shared && plan.bind {
                ctx.warn_service(svc, format!("TCP port {port} cannot get a bound outbound listener on {addr}: {owner} uses it"));
            } else if !shared {
                ctx.warn_service(svc, format!("listener {name} is already used by {owner}; {} port {port} is reachable only by another address", svc.hostname));
            }
            return;
        }
        self.take(addr, port, format!("{} port {port}", svc.hostname));
        add_chains(&mut self.listeners, &name, addr, port, chains, plan.bind);
    }
}

/// Capture-only TCP listeners listen on the service's VIPs, or `0.0.0.0` without one.
fn tcp_addresses(svc: &Service) -> Vec<String> {
    let vips: Vec<String> = svc
        .vips
        .iter()
        .filter(|v| !v.contains('/'))
        .cloned()
        .collect();
    if vips.is_empty() {
        vec![WILDCARD.to_string()]
    } else {
        vips
    }
}

/// Filter chains of a TCP-class service port. On TLS ports a chain without its own match
/// matches the service's host by SNI, so TLS services without a VIP can share a listener
/// (Istio does the same).
fn tcp_chains(ctx: &Ctx<'_>, egress: &Egress<'_>, svc: &Service, port: u16) -> Vec<FilterChain> {
    let mut chains = tcp::service_chains(ctx, egress, svc, port);
    if svc.port(port).is_some_and(|p| p.protocol.is_tls()) {
        for c in chains.iter_mut().filter(|c| c.filter_chain_match.is_none()) {
            c.filter_chain_match = Some(FilterChainMatch {
                server_names: vec![svc.hostname.clone()],
                transport_protocol: "tls".into(),
                ..Default::default()
            });
        }
    }
    chains
}

fn matches_sni(c: &FilterChain) -> bool {
    c.filter_chain_match
        .as_ref()
        .is_some_and(|m| !m.server_names.is_empty())
}

/// Put `chains` on listener `name` in `out`, creating it. An existing listener takes them only
/// when every chain on both sides matches on SNI; server names it already serves are dropped.
/// `false`: the listener is taken.
fn add_chains(
    out: &mut Vec<Listener>,
    name: &str,
    addr: &str,
    port: u16,
    chains: Vec<FilterChain>,
    bind: bool,
) -> bool {
    if let Some(l) = out.iter_mut().find(|l| l.name == name) {
        if !(l.filter_chains.iter().all(matches_sni) && chains.iter().all(matches_sni)) {
            return false;
        }
        let mut seen: BTreeSet<String> = l
            .filter_chains
            .iter()
            .filter_map(|c| c.filter_chain_match.as_ref())
            .flat_map(|m| m.server_names.iter().cloned())
            .collect();
        for mut c in chains {
            if let Some(m) = c.filter_chain_match.as_mut() {
                m.server_names.retain(|n| seen.insert(n.clone()));
                if m.server_names.is_empty() {
                    continue;
                }
            }
            l.filter_chains.push(c);
        }
        return true;
    }
    let mut l = listener(name, addr, port, TrafficDirection::Outbound);
    if !bind {
        l.bind_to_port = Some(pb::boolv(false));
    }
    if chains.iter().any(matches_sni) {
        l.listener_filters.push(pb::listener_filter(
            "envoy.filters.listener.tls_inspector",
            TlsInspector::default(),
        ));
    }
    l.filter_chains = chains;
    out.push(l);
    true
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
fn captured(ctx: &Ctx<'_>, plans: &[Plan<'_>], routes: &[RouteConfiguration]) -> Vec<Listener> {
    let mut out = Out::default();
    out.outbound(ctx, plans, routes);
    out.listeners.push(virtual_outbound(ctx));
    out.listeners.push(virtual_inbound(ctx));
    out.listeners
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
        let mut chain = inbound::chain(&p);
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
        // Istio's `server` response header for sidecars and gateways.
        server_name: ISTIO_SERVER_NAME.into(),
        ..Default::default()
    }
}

/// What Istio's proxies answer in the `server` header.
pub const ISTIO_SERVER_NAME: &str = "istio-envoy";

fn http_filter(name: &str, config: envoy_types::pb::google::protobuf::Any) -> hcm::HttpFilter {
    hcm::HttpFilter {
        name: name.into(),
        config_type: Some(hcm::http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}
