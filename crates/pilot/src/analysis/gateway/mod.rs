//! Istio Gateway analyzers: gateway ports against the workload's Service, TLS credentials,
//! gateways that claim the same host and port, and certificates shared across gateways.

mod certificate;
mod conflicting;
mod ingress_port;
mod secret;

use std::collections::BTreeMap;

use super::Analyzer;
use super::context::{Context, Entry, group};
use super::istio::Gateway;
use super::k8s;
use super::selector;

pub static ANALYZERS: &[&dyn Analyzer] = &[
    &ingress_port::IngressGatewayPortAnalyzer,
    &secret::SecretAnalyzer,
    &conflicting::ConflictingGatewayAnalyzer,
    &certificate::CertificateAnalyzer,
];

/// Every Istio Gateway with its decoded spec.
pub(crate) fn gateways<'c, 'a>(
    ctx: &'c Context<'a>,
) -> impl Iterator<Item = (&'c Entry<'a>, Gateway)> {
    ctx.of(group::NETWORKING, "Gateway")
        .iter()
        .filter_map(|e| e.spec::<Gateway>().map(|g| (e, g)))
}

/// Pods a gateway selector picks (any namespace: a Gateway may select gateway pods anywhere).
pub(crate) fn selected_pods<'c, 'a>(
    ctx: &'c Context<'a>,
    sel: &BTreeMap<String, String>,
) -> Vec<&'c Entry<'a>> {
    k8s::pods(ctx)
        .iter()
        .filter(|p| selector::matches(sel, p.labels()))
        .collect()
}
