//! Gateway (router) nodes (istio-api.md §5): the Gateway servers selecting the node become
//! listeners per port; plaintext HTTP servers share the `http.<port>` route configuration,
//! TLS-terminating servers get an SNI filter chain (TLS settings in `gateway_tls`) and their own
//! `https.<port>.<server>.<gateway>.<ns>` routes, PASSTHROUGH servers route on SNI with the
//! VirtualServices' `tls` routes, TCP servers use their `tcp` routes.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::envoy::config::core::v3::{
    TrafficDirection, TransportSocket, transport_socket,
};
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, FilterChainMatch, Listener};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteConfiguration, VirtualHost, route, route_match, virtual_host,
};
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use plexus_api::kinds::{self, ServerTlsMode, VirtualService};
use plexus_model::host::{self, DEFAULT_DOMAIN_SUFFIX, exported_to, fqdn};
use plexus_model::{Config, Protocol, selects};

use super::gateway_tls::{ServerTls, downstream_tls};
use super::listener::{HCM, RouteSpec, http_manager, listener, needs};
use super::route_match::{Site, bound_to};
use super::virtual_host::catch_all;
use super::{Ctx, http_route, listener_name, pb, tcp};

/// One server of a Gateway selecting this node.
struct Server<'a> {
    gw: &'a Config<kinds::Gateway>,
    index: usize,
    server: &'a kinds::Server,
    port: u16,
    protocol: Protocol,
}

impl Server<'_> {
    fn gateway_ref(&self) -> String {
        format!("{}/{}", self.gw.namespace(), self.gw.name())
    }

    fn field(&self) -> String {
        format!("spec.servers[{}]", self.index)
    }

    /// `(namespace part, host)` pairs, `.` resolved, no part meaning any namespace.
    fn hosts(&self) -> Vec<(String, String)> {
        self.server
            .hosts
            .iter()
            .map(|h| match h.split_once('/') {
                Some((".", host)) => (self.gw.namespace().to_string(), host.to_string()),
                Some((ns, host)) => (ns.to_string(), host.to_string()),
                None => ("*".to_string(), h.clone()),
            })
            .collect()
    }
}

pub(crate) fn build(ctx: &Ctx<'_>) -> (Vec<Listener>, Vec<RouteConfiguration>) {
    let mut by_port: BTreeMap<(String, u16), Vec<Server<'_>>> = BTreeMap::new();
    for gw in &ctx.snap.config.gateways {
        if !selects(&gw.spec.selector, &ctx.node.labels) {
            continue;
        }
        for (i, s) in gw.spec.servers.iter().enumerate() {
            let Some(port) = s
                .port
                .as_ref()
                .and_then(|p| p.number)
                .and_then(|n| u16::try_from(n).ok())
            else {
                continue;
            };
            let proto = s
                .port
                .as_ref()
                .and_then(|p| p.protocol.as_deref())
                .and_then(Protocol::parse)
                .unwrap_or(Protocol::Unknown);
            if s.bind.as_deref().is_some_and(|b| b.starts_with("unix://")) {
                ctx.warn(
                    &gw.object,
                    &format!("spec.servers[{i}].bind"),
                    "unix socket binds are not supported; server left out",
                );
                continue;
            }
            if s.default_endpoint.is_some() {
                ctx.warn(
                    &gw.object,
                    &format!("spec.servers[{i}].defaultEndpoint"),
                    "not implemented (as in Istio)",
                );
            }
            let bind = s.bind.clone().unwrap_or_else(|| ctx.node.ip.clone());
            by_port.entry((bind, port)).or_default().push(Server {
                gw,
                index: i,
                server: s,
                port,
                protocol: proto,
            });
        }
    }
    let mut listeners = Vec::new();
    let mut routes = Vec::new();
    for ((bind, port), servers) in by_port {
        if let Some(l) = port_listener(ctx, &bind, port, &servers, &mut routes) {
            listeners.push(l);
        }
    }
    (listeners, routes)
}

fn port_listener(
    ctx: &Ctx<'_>,
    bind: &str,
    port: u16,
    servers: &[Server<'_>],
    routes: &mut Vec<RouteConfiguration>,
) -> Option<Listener> {
    let mut l = listener(
        &listener_name(bind, port),
        bind,
        port,
        TrafficDirection::Outbound,
    );
    let plain: Vec<&Server<'_>> = servers.iter().filter(|s| s.protocol.is_http()).collect();
    let mut sni_seen = BTreeSet::new();
    if !plain.is_empty() {
        let name = format!("http.{port}");
        routes.push(route_config(ctx, &name, &plain, port));
        let hcm = http_manager(
            &name,
            RouteSpec::Rds(name.clone()),
            needs(routes, &name),
            true,
        );
        l.filter_chains.push(FilterChain {
            filters: vec![pb::network_filter(HCM, hcm)],
            ..Default::default()
        });
    }
    for s in servers.iter().filter(|s| !s.protocol.is_http()) {
        let mode = s
            .server
            .tls
            .as_ref()
            .and_then(|t| t.mode)
            .unwrap_or(ServerTlsMode::Passthrough);
        let f = s.field();
        match (s.protocol, mode) {
            (
                Protocol::Https,
                ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual,
            ) => {
                if let Some(chain) = terminated(ctx, s, port, &mut sni_seen, routes) {
                    l.filter_chains.push(chain);
                }
            }
            (Protocol::Https | Protocol::Tls, ServerTlsMode::Passthrough) => {
                l.filter_chains.extend(passthrough(ctx, s, &mut sni_seen));
            }
            (Protocol::Tcp | Protocol::Mongo | Protocol::Mysql | Protocol::Redis, _) => {
                l.filter_chains.extend(tcp_server(ctx, s));
            }
            (p, m) => ctx.warn(
                &s.gw.object,
                &format!("{f}.port.protocol"),
                format!("{p} with TLS mode {m:?} is not translated yet; server left out"),
            ),
        }
    }
    if l.filter_chains.iter().any(|c| {
        c.filter_chain_match
            .as_ref()
            .is_some_and(|m| !m.server_names.is_empty() || m.transport_protocol == "tls")
    }) {
        l.listener_filters.push(pb::listener_filter(
            "envoy.filters.listener.tls_inspector",
            TlsInspector::default(),
        ));
    }
    (!l.filter_chains.is_empty()).then_some(l)
}

/// VirtualServices bound to the server's gateway and exported to its namespace, with the VS
/// hosts that intersect the server's hosts.
fn bound_virtual_services<'a>(
    ctx: &Ctx<'a>,
    s: &Server<'_>,
) -> Vec<(&'a Config<VirtualService>, Vec<String>)> {
    let gw_ns = s.gw.namespace();
    let site = Site {
        port: Some(s.port),
        gateway: Some(s.gateway_ref()),
    };
    let default = &ctx.snap.mesh.default_virtual_service_export_to;
    let server_hosts = s.hosts();
    let mut out = Vec::new();
    for vs in &ctx.snap.config.virtual_services {
        let binds = bound_to(&vs.spec.gateways, vs.namespace(), &site)
            || vs
                .spec
                .http
                .iter()
                .flat_map(|r| &r.r#match)
                .any(|m| bound_to(&m.gateways, vs.namespace(), &site));
        if !binds || !exported_to(&vs.spec.export_to, default, vs.namespace(), gw_ns) {
            continue;
        }
        let hosts: Vec<String> = vs
            .spec
            .hosts
            .iter()
            .map(|h| fqdn(h, vs.namespace(), DEFAULT_DOMAIN_SUFFIX))
            .filter(|h| {
                server_hosts.iter().any(|(ns, sh)| {
                    (ns == "*" || ns == vs.namespace())
                        && (host::matches(sh, h) || host::matches(h, sh))
                })
            })
            .collect();
        if !hosts.is_empty() {
            out.push((vs, hosts));
        }
    }
    out
}

/// Route configuration for HTTP servers: a virtual host per VirtualService host, routes of
/// every bound VirtualService concatenated with catch-alls moved last; 404 when none.
fn route_config(
    ctx: &Ctx<'_>,
    name: &str,
    servers: &[&Server<'_>],
    port: u16,
) -> RouteConfiguration {
    let mut hosts: BTreeMap<String, Vec<Route>> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut redirect_hosts = BTreeSet::new();
    for s in servers {
        let site = Site {
            port: Some(port),
            gateway: Some(s.gateway_ref()),
        };
        let https_redirect = s.server.tls.as_ref().and_then(|t| t.https_redirect) == Some(true);
        for (vs, vs_hosts) in bound_virtual_services(ctx, s) {
            let rs = http_route::routes(ctx, vs, &site);
            for h in vs_hosts {
                if https_redirect {
                    redirect_hosts.insert(h.clone());
                }
                if !hosts.contains_key(&h) {
                    order.push(h.clone());
                }
                hosts.entry(h).or_default().extend(rs.iter().cloned());
            }
        }
    }
    let mut vhosts: Vec<VirtualHost> = order
        .into_iter()
        .map(|h| {
            let mut routes = hosts.remove(&h).unwrap_or_default();
            // Istio's SortVHostRoutes: catch-alls last, order otherwise kept.
            routes.sort_by_key(is_catch_all_route);
            VirtualHost {
                name: format!("{h}:{port}"),
                domains: vec![h.clone()],
                routes,
                require_tls: if redirect_hosts.contains(&h) {
                    virtual_host::TlsRequirementType::All as i32
                } else {
                    0
                },
                include_request_attempt_count: true,
                ..Default::default()
            }
        })
        .collect();
    if vhosts.is_empty() {
        vhosts.push(VirtualHost {
            name: "blackhole".into(),
            domains: vec!["*".into()],
            routes: vec![Route {
                name: "default".into(),
                r#match: Some(catch_all()),
                action: Some(route::Action::DirectResponse(DirectResponseAction {
                    status: 404,
                    ..Default::default()
                })),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    RouteConfiguration {
        name: name.into(),
        virtual_hosts: vhosts,
        validate_clusters: Some(pb::boolv(false)),
        ignore_port_in_host_matching: true,
        ..Default::default()
    }
}

fn is_catch_all_route(r: &Route) -> bool {
    r.r#match.as_ref().is_some_and(|m| {
        matches!(&m.path_specifier, Some(route_match::PathSpecifier::Prefix(p)) if p == "/")
            && m.headers.is_empty()
            && m.query_parameters.is_empty()
    })
}

/// SNI names for a server's hosts (`*` means any, so no SNI condition).
fn server_names(s: &Server<'_>) -> Vec<String> {
    let hosts: Vec<String> = s.hosts().into_iter().map(|(_, h)| h).collect();
    if hosts.iter().any(|h| h == "*") {
        Vec::new()
    } else {
        hosts
    }
}

fn terminated(
    ctx: &Ctx<'_>,
    s: &Server<'_>,
    port: u16,
    seen: &mut BTreeSet<String>,
    routes: &mut Vec<RouteConfiguration>,
) -> Option<FilterChain> {
    let f = s.field();
    let names: Vec<String> = server_names(s)
        .into_iter()
        .filter(|n| seen.insert(n.clone()))
        .collect();
    if names.is_empty() && !s.hosts().iter().any(|(_, h)| h == "*") {
        ctx.warn(
            &s.gw.object,
            &format!("{f}.hosts"),
            "every host is already served on this port by an older server; left out",
        );
        return None;
    }
    let tls_ctx = downstream_tls(
        ctx,
        &ServerTls {
            obj: &s.gw.object,
            f: format!("{}.tls", s.field()),
            t: s.server.tls.as_ref()?,
        },
    )?;
    let server_name = s.server.name.clone().unwrap_or_else(|| {
        s.server
            .port
            .as_ref()
            .and_then(|p| p.name.clone())
            .unwrap_or_default()
    });
    let name = format!(
        "https.{port}.{server_name}.{}.{}",
        s.gw.name(),
        s.gw.namespace()
    );
    routes.push(route_config(ctx, &name, &[s], port));
    let hcm = http_manager(
        &name,
        RouteSpec::Rds(name.clone()),
        needs(routes, &name),
        true,
    );
    Some(FilterChain {
        filter_chain_match: Some(FilterChainMatch {
            server_names: names,
            transport_protocol: "tls".into(),
            ..Default::default()
        }),
        filters: vec![pb::network_filter(HCM, hcm)],
        transport_socket: Some(TransportSocket {
            name: "envoy.transport_sockets.tls".into(),
            config_type: Some(transport_socket::ConfigType::TypedConfig(pb::any(tls_ctx))),
        }),
        ..Default::default()
    })
}

fn passthrough(ctx: &Ctx<'_>, s: &Server<'_>, seen: &mut BTreeSet<String>) -> Vec<FilterChain> {
    let site = Site {
        port: Some(s.port),
        gateway: Some(s.gateway_ref()),
    };
    let mut out = Vec::new();
    for (vs, _) in bound_virtual_services(ctx, s) {
        for mut chain in tcp::tls_chains(ctx, vs, &site) {
            if let Some(m) = chain.filter_chain_match.as_mut() {
                // A name served for some CIDRs only does not take it for other addresses.
                let cidrs: Vec<String> = m
                    .prefix_ranges
                    .iter()
                    .map(|r| {
                        let len = r.prefix_len.as_ref().map_or(0, |l| l.value);
                        format!(" {}/{len}", r.address_prefix)
                    })
                    .collect();
                let cidrs = cidrs.concat();
                m.server_names
                    .retain(|n| seen.insert(format!("{n}{cidrs}")));
                if m.server_names.is_empty() {
                    continue;
                }
            }
            out.push(chain);
        }
    }
    out
}

fn tcp_server(ctx: &Ctx<'_>, s: &Server<'_>) -> Vec<FilterChain> {
    let site = Site {
        port: Some(s.port),
        gateway: Some(s.gateway_ref()),
    };
    bound_virtual_services(ctx, s)
        .into_iter()
        .map(|(vs, _)| tcp::tcp_chains(ctx, vs, &site))
        .find(|chains| !chains.is_empty())
        .unwrap_or_default()
}
