//! Inbound side of a sidecar: the workload ports the proxy serves (ports of the registry
//! endpoints at the proxy's addresses), their `inbound|<port>||` HTTP route configs, and the
//! filter chain for each port.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::listener::v3::FilterChain;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, VirtualHost, route, route_action,
};
use plexus_api::kinds::{IstioIngressListener, Sidecar};
use plexus_model::{Config, Protocol};

use super::listener::{Filters, RouteSpec, hcm_chain};
use super::virtual_host::catch_all;
use super::{Ctx, inbound_cluster_name, pb, tcp};

/// A port the proxy accepts inbound traffic on, its protocol, and where the application is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InboundPort {
    pub port: u16,
    pub protocol: Protocol,
    /// The application's address and port (`inbound|<port>||` forwards there).
    pub app: (String, u16),
    /// Sidecar `ingress[].bind`: the address to listen on instead of the proxy's IP.
    pub bind: Option<String>,
}

/// The Sidecar's `ingress` listeners when it has any (Istio: then only those ports), else the
/// workload ports of services with an endpoint at one of the proxy's IPs (the first service
/// port seen decides the protocol), served by the app on `PLEXUS_APP_ADDRESS:<port>`.
pub(crate) fn ports(ctx: &Ctx<'_>) -> Vec<InboundPort> {
    if let Some(sc) = ctx.scope.sidecar.filter(|sc| !sc.spec.ingress.is_empty()) {
        return sc
            .spec
            .ingress
            .iter()
            .enumerate()
            .filter_map(|(i, l)| ingress_port(ctx, sc, i, l))
            .collect();
    }
    let reg = &ctx.snap.registry;
    let mut out: BTreeMap<u16, Protocol> = BTreeMap::new();
    for (si, svc) in reg.services.iter().enumerate() {
        for p in &svc.ports {
            for e in reg.endpoints_of(si, p.number) {
                if ctx.node.ips.contains(&e.address) {
                    out.entry(e.port).or_insert(p.protocol);
                }
            }
        }
    }
    out.into_iter()
        .map(|(port, protocol)| InboundPort {
            port,
            protocol,
            app: (ctx.node.app_address.clone(), port),
            bind: None,
        })
        .collect()
}

/// One Sidecar `ingress` listener: `port` (number, protocol), `defaultEndpoint`
/// (`127.0.0.1:PORT`, `[::1]:PORT`, `0.0.0.0:PORT` meaning the proxy's IP), `bind`.
fn ingress_port(
    ctx: &Ctx<'_>,
    sc: &Config<Sidecar>,
    i: usize,
    l: &IstioIngressListener,
) -> Option<InboundPort> {
    let field = format!("spec.ingress[{i}]");
    let p = l.port.as_ref()?;
    let port = p.number.and_then(|n| u16::try_from(n).ok())?;
    let protocol = p
        .protocol
        .as_deref()
        .and_then(Protocol::parse)
        .unwrap_or_else(|| Protocol::of_port(p.name.as_deref(), None));
    for (set, name) in [
        (l.tls.is_some(), "tls"),
        (l.connection_pool.is_some(), "connectionPool"),
    ] {
        if set {
            ctx.warn(&sc.object, &format!("{field}.{name}"), "not translated yet");
        }
    }
    let endpoint = l.default_endpoint.as_deref().unwrap_or("127.0.0.1:0");
    let parsed = endpoint
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h, p.parse::<u16>().ok()?)));
    let Some((host, target)) = parsed else {
        ctx.warn(
            &sc.object,
            &format!("{field}.defaultEndpoint"),
            format!(
                "{endpoint:?} is not host:port (unix sockets are not supported); listener left out"
            ),
        );
        return None;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host == "0.0.0.0" || host == "::" {
        ctx.node.ip.clone()
    } else {
        host.to_string()
    };
    let target = if target == 0 { port } else { target };
    Some(InboundPort {
        port,
        protocol,
        app: (host, target),
        bind: l.bind.clone(),
    })
}

/// The filter chain serving inbound traffic for `p`: HTTP through an HCM with an inline route
/// to the app (no retries, no timeout), anything else through tcp_proxy.
pub(crate) fn chain(p: &InboundPort) -> FilterChain {
    let cluster = inbound_cluster_name(p.port);
    if !p.protocol.is_http() {
        return tcp::chain(None, tcp::to_cluster(&cluster));
    }
    let rc = RouteConfiguration {
        name: cluster.clone(),
        virtual_hosts: vec![VirtualHost {
            name: format!("inbound|http|{}", p.port),
            domains: vec!["*".into()],
            routes: vec![Route {
                name: "default".into(),
                r#match: Some(catch_all()),
                action: Some(route::Action::Route(RouteAction {
                    cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                        cluster.clone(),
                    )),
                    timeout: Some(pb::duration(std::time::Duration::ZERO)),
                    max_stream_duration: Some(super::route_action::no_stream_limit()),
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        }],
        validate_clusters: Some(pb::boolv(false)),
        ..Default::default()
    };
    hcm_chain(
        &cluster,
        RouteSpec::Inline(Box::new(rc)),
        Filters::default(),
    )
}
