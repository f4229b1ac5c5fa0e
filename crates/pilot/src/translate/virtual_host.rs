//! Sidecar outbound route configurations: one per HTTP service port (named by the port, with
//! the services of the egress listener for that port) and the `http_proxy` one behind the
//! HTTP_PROXY listener (the catch-all egress listener's services). One virtual host per service with
//! Istio's domain forms; the owning VirtualService's routes, or Istio's default route; and the
//! `allow_any` / `block_all` fallback per outboundTrafficPolicy.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, route,
    route_action, route_match,
};
use plexus_model::{Interception, OutboundMode, Service};

use super::route_match::Site;
use super::scope::Egress;
use super::{
    Ctx, PASSTHROUGH_CLUSTER, destination_rule, http_route, outbound_cluster_name, pb, policy,
    route_action as ra,
};

/// The route configuration for the HTTP services `egress` imports on `port` (`None`: every
/// HTTP service port, for the HTTP_PROXY listener, under `name`). No listener: only the
/// fallback virtual host.
pub(crate) fn sidecar_routes(
    ctx: &Ctx<'_>,
    egress: Option<&Egress<'_>>,
    name: &str,
    port: Option<u16>,
) -> RouteConfiguration {
    let mut seen = BTreeSet::new();
    let mut vhosts = Vec::new();
    let services = egress.map(|e| e.services.as_slice()).unwrap_or_default();
    for &si in services {
        let svc = &ctx.snap.registry.services[si];
        for p in &svc.ports {
            // An egress listener that declares its port HTTP routes every service on that port
            // as HTTP, whatever the service's own port protocol (the listener's wins in Istio).
            let declared_http = egress.is_some_and(|e| {
                e.port == Some(p.number) && e.protocol.is_some_and(|x| x.is_http())
            });
            if !(p.protocol.is_http() || declared_http) || port.is_some_and(|want| want != p.number)
            {
                continue;
            }
            let domains: Vec<String> = domains(ctx, svc, p.number, port.is_none())
                .into_iter()
                .filter(|d| seen.insert(d.clone()))
                .collect();
            if domains.is_empty() {
                continue;
            }
            vhosts.push(VirtualHost {
                name: format!("{}:{}", svc.hostname, p.number),
                domains,
                routes: service_routes(ctx, egress, svc, p.number),
                include_request_attempt_count: true,
                ..Default::default()
            });
        }
    }
    vhosts.extend(fallback(ctx, &mut seen));
    RouteConfiguration {
        name: name.to_string(),
        virtual_hosts: vhosts,
        validate_clusters: Some(pb::boolv(false)),
        ..Default::default()
    }
}

/// Istio's domain forms: FQDN, short forms within the cluster domain (the bare name only in
/// the proxy's namespace), VIPs; each also with `:port`. For the HTTP_PROXY configuration the
/// bare forms are kept only for port 80 (a client's Host header omits it).
fn domains(ctx: &Ctx<'_>, svc: &Service, port: u16, proxy: bool) -> Vec<String> {
    let mut names = vec![svc.hostname.clone()];
    let suffix = ".svc.cluster.local";
    if let Some(stem) = svc.hostname.strip_suffix(suffix)
        && let Some((name, ns)) = stem.split_once('.')
    {
        names.push(format!("{name}.{ns}.svc.cluster"));
        names.push(format!("{name}.{ns}.svc"));
        names.push(format!("{name}.{ns}"));
        if ns == ctx.node.namespace {
            names.push(name.to_string());
        }
    }
    names.extend(svc.vips.iter().filter(|v| !v.contains('/')).cloned());
    let mut out = Vec::new();
    for n in names {
        if !proxy || port == 80 {
            out.push(n.clone());
        }
        if !n.starts_with('*') {
            out.push(format!("{n}:{port}"));
        }
    }
    out
}

/// The VirtualService's routes for this host and port, or the default route.
fn service_routes(
    ctx: &Ctx<'_>,
    egress: Option<&Egress<'_>>,
    svc: &Service,
    port: u16,
) -> Vec<Route> {
    let site = Site {
        port: Some(port),
        gateway: None,
    };
    match egress.and_then(|e| e.virtual_service_for(&svc.hostname)) {
        Some(vs) if !vs.spec.http.is_empty() => http_route::routes(ctx, vs, &site),
        _ => vec![default_route(ctx, svc, port)],
    }
}

/// Istio's `default` route: everything to the service port's cluster, no timeout, the default
/// retry policy (without previous-hosts under consistent hashing).
pub(crate) fn default_route(ctx: &Ctx<'_>, svc: &Service, port: u16) -> Route {
    let hashing = destination_rule::lookup(ctx, &svc.hostname, &svc.namespace)
        .map(|r| r.policy(port, None))
        .and_then(|p| p.load_balancer)
        .and_then(|lb| lb.consistent_hash);
    let action = RouteAction {
        cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
            outbound_cluster_name(port, "", &svc.hostname),
        )),
        timeout: Some(pb::duration(std::time::Duration::ZERO)),
        max_stream_duration: Some(ra::no_stream_limit()),
        retry_policy: ra::retry_policy(None, hashing.is_some()),
        hash_policy: hashing
            .as_ref()
            .map(policy::hash_policy)
            .unwrap_or_default(),
        ..Default::default()
    };
    Route {
        name: "default".into(),
        r#match: Some(catch_all()),
        action: Some(route::Action::Route(action)),
        ..Default::default()
    }
}

pub(crate) fn catch_all() -> RouteMatch {
    RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
        ..Default::default()
    }
}

/// `allow_any` (REDIRECT mode, ALLOW_ANY: unknown hosts pass through to their original
/// destination) or `block_all` (REGISTRY_ONLY: 502). In mode NONE under ALLOW_ANY there is no
/// original destination to pass to, so unknown hosts get Envoy's 404.
fn fallback(ctx: &Ctx<'_>, seen: &mut BTreeSet<String>) -> Option<VirtualHost> {
    if !seen.insert("*".into()) {
        return None;
    }
    let (name, action) = match ctx.scope.outbound_mode {
        OutboundMode::RegistryOnly => (
            "block_all",
            route::Action::DirectResponse(DirectResponseAction {
                status: 502,
                ..Default::default()
            }),
        ),
        OutboundMode::AllowAny if ctx.node.interception == Interception::Redirect => (
            "allow_any",
            route::Action::Route(RouteAction {
                cluster_specifier: Some(route_action::ClusterSpecifier::Cluster(
                    PASSTHROUGH_CLUSTER.into(),
                )),
                timeout: Some(pb::duration(std::time::Duration::ZERO)),
                ..Default::default()
            }),
        ),
        OutboundMode::AllowAny => return None,
    };
    Some(VirtualHost {
        name: name.into(),
        domains: vec!["*".into()],
        routes: vec![Route {
            name: name.into(),
            r#match: Some(catch_all()),
            action: Some(action),
            ..Default::default()
        }],
        include_request_attempt_count: true,
        ..Default::default()
    })
}
