//! VirtualService analyzers: destinations (hosts, ports, subsets), gateways, hosts shared by
//! several mesh VirtualServices, and JWT-claim routing without a RequestAuthentication.

mod conflicting_hosts;
mod destinations;
mod gateways;
mod jwt_claim_route;

use super::Analyzer;
use super::context::{Entry, group};
use super::istio::{Destination, VirtualService};
pub(crate) use super::istio::{host, port, subset};

pub static ANALYZERS: &[&dyn Analyzer] = &[
    &destinations::DestinationHostAnalyzer,
    &destinations::DestinationRuleAnalyzer,
    &gateways::GatewayAnalyzer,
    &conflicting_hosts::ConflictingMeshGatewayHostsAnalyzer,
    &jwt_claim_route::JwtClaimRouteAnalyzer,
];

/// A destination with the field path it was written at.
pub(crate) struct AnnotatedDestination {
    pub field: String,
    pub mirror: bool,
    /// A missing `destination` reads as an empty one, as Istio's getters do.
    pub dest: Destination,
}

/// Route destinations of tcp, tls and http rules, in that order (Istio's order).
pub(crate) fn route_destinations(vs: &VirtualService) -> Vec<AnnotatedDestination> {
    let mut out = Vec::new();
    let rules = [
        (
            "tcp",
            vs.tcp
                .iter()
                .map(|r| r.route.iter().map(|d| &d.destination).collect())
                .collect::<Vec<Vec<_>>>(),
        ),
        (
            "tls",
            vs.tls
                .iter()
                .map(|r| r.route.iter().map(|d| &d.destination).collect())
                .collect(),
        ),
        (
            "http",
            vs.http
                .iter()
                .map(|r| r.route.iter().map(|d| &d.destination).collect())
                .collect(),
        ),
    ];
    for (kind, routes) in rules {
        for (i, route) in routes.into_iter().enumerate() {
            for (j, rd) in route.iter().enumerate() {
                out.push(AnnotatedDestination {
                    field: format!("spec.{kind}[{i}].route[{j}].destination.host"),
                    mirror: false,
                    dest: (*rd).clone().unwrap_or_default(),
                });
            }
        }
    }
    out
}

/// `mirror` and `mirrors[]` destinations of http rules.
pub(crate) fn mirror_destinations(vs: &VirtualService) -> Vec<AnnotatedDestination> {
    let mut out = Vec::new();
    for (i, r) in vs.http.iter().enumerate() {
        if let Some(m) = &r.mirror {
            out.push(AnnotatedDestination {
                field: format!("spec.http[{i}].mirror.host"),
                mirror: true,
                dest: m.clone(),
            });
        }
        for (j, m) in r.mirrors.iter().enumerate() {
            out.push(AnnotatedDestination {
                field: format!("spec.http[{i}].mirrors[{j}].destination.host"),
                mirror: true,
                dest: m.destination.clone().unwrap_or_default(),
            });
        }
    }
    out
}

/// Every VirtualService with its decoded spec.
pub(crate) fn virtual_services<'c, 'a>(
    ctx: &'c super::Context<'a>,
) -> impl Iterator<Item = (&'c Entry<'a>, VirtualService)> {
    ctx.of(group::NETWORKING, "VirtualService")
        .iter()
        .filter_map(|e| e.spec::<VirtualService>().map(|vs| (e, vs)))
}
