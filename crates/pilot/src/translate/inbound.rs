//! Inbound side of a sidecar: the workload ports the proxy serves (ports of the registry
//! endpoints at the proxy's addresses), their `inbound|<port>||` HTTP route configs, and the
//! filter chain for each port.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::listener::v3::FilterChain;
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, VirtualHost, route, route_action,
};
use plexus_model::Protocol;

use super::listener::{Filters, RouteSpec, hcm_chain};
use super::virtual_host::catch_all;
use super::{Ctx, inbound_cluster_name, pb, tcp};

/// A port the proxy's workload listens on, and its protocol (from the service port).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InboundPort {
    pub port: u16,
    pub protocol: Protocol,
}

/// Workload ports of services with an endpoint at one of the proxy's IPs, by port number (the
/// first service port seen decides the protocol).
pub(crate) fn ports(ctx: &Ctx<'_>) -> Vec<InboundPort> {
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
        .map(|(port, protocol)| InboundPort { port, protocol })
        .collect()
}

/// The filter chain serving inbound traffic for `p`: HTTP through an HCM with an inline route
/// to the app (no retries, no timeout), anything else through tcp_proxy.
pub(crate) fn chain(p: InboundPort) -> FilterChain {
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
                    max_stream_duration: Some(route_action::MaxStreamDuration {
                        grpc_timeout_header_max: Some(pb::duration(std::time::Duration::ZERO)),
                        ..Default::default()
                    }),
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
