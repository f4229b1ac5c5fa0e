//! DestinationRule analyzers: TLS origination without a CA to verify the server, and subsets
//! (or hosts) that match nothing in the mesh.

use std::collections::BTreeMap;

use plexus_api::kinds::{ClientTlsMode, ClientTlsSettings};

use super::Analyzer;
use super::catalogue::{
    DESTINATION_RULE_SUBSET_NOT_SELECT_PODS, NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
    NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL, UNKNOWN_DESTINATION_RULE_HOST,
};
use super::context::{Context, Entry, group};
use super::istio::{DestinationRule, s};
use super::k8s::{self, ServiceSpec};
use super::message::Message;
use super::{registry, selector, util};

pub static ANALYZERS: &[&dyn Analyzer] = &[&CaCertificateAnalyzer, &PodNotSelectedAnalyzer];

fn destination_rules<'c, 'a>(ctx: &'c Context<'a>) -> Vec<(&'c Entry<'a>, DestinationRule)> {
    ctx.of(group::NETWORKING, "DestinationRule")
        .iter()
        .filter_map(|e| e.spec::<DestinationRule>().map(|dr| (e, dr)))
        .collect()
}

/// `destinationrule.CaCertificateAnalyzer`: SIMPLE or MUTUAL TLS without `caCertificates` does
/// not verify the server. A `credentialName` on a DestinationRule with a workload selector
/// (a gateway's) brings its own CA, so that case is fine.
pub struct CaCertificateAnalyzer;

fn mode_name(tls: &ClientTlsSettings) -> Option<&'static str> {
    match tls.mode {
        Some(ClientTlsMode::Simple) => Some("SIMPLE"),
        Some(ClientTlsMode::Mutual) => Some("MUTUAL"),
        _ => None,
    }
}

fn unverified(tls: &ClientTlsSettings, has_selector: bool) -> Option<&'static str> {
    let mode = mode_name(tls)?;
    let has_ca = !s(&tls.ca_certificates).is_empty();
    let credential_with_selector = !s(&tls.credential_name).is_empty() && has_selector;
    let skip = tls.insecure_skip_verify == Some(true);
    (!has_ca && !credential_with_selector && !skip).then_some(mode)
}

impl Analyzer for CaCertificateAnalyzer {
    fn name(&self) -> &'static str {
        "destinationrule.CaCertificateAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for (entry, dr) in destination_rules(ctx) {
            let Some(policy) = &dr.traffic_policy else {
                continue;
            };
            let has_selector = dr.workload_selector.is_some();
            let host = s(&dr.host);
            if let Some(mode) = policy
                .tls
                .as_ref()
                .and_then(|t| unverified(t, has_selector))
            {
                out.push(Message::new(
                    &NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
                    entry,
                    "spec.trafficPolicy.tls.mode",
                    &[
                        entry.name().into(),
                        entry.ns.clone().into(),
                        mode.into(),
                        host.into(),
                    ],
                ));
            }
            for (i, p) in policy.port_level_settings.iter().enumerate() {
                let Some(mode) = p.tls.as_ref().and_then(|t| unverified(t, has_selector)) else {
                    continue;
                };
                let port = p.port.as_ref().and_then(|p| p.number).unwrap_or_default();
                out.push(Message::new(
                    &NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
                    entry,
                    &format!("spec.trafficPolicy.portLevelSettings[{i}].tls.mode"),
                    &[
                        entry.name().into(),
                        entry.ns.clone().into(),
                        mode.into(),
                        host.into(),
                        port.to_string().into(),
                    ],
                ));
            }
        }
    }
}

/// `destinationrule.PodNotSelectedAnalyzer`: the host must be a known service, and each subset
/// must select at least one of its pods. Pod labels include the topology labels of the pod's
/// node, which is how locality subsets match.
pub struct PodNotSelectedAnalyzer;

/// Node labels the proxy reports as pod labels (locality).
const TOPOLOGY_LABELS: &[&str] = &[
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "topology.istio.io/subzone",
    "kubernetes.io/hostname",
];

fn pod_labels(ctx: &Context<'_>, pod: &Entry<'_>) -> BTreeMap<String, String> {
    let mut labels = pod.labels().clone();
    let node_name = pod
        .spec_node()
        .and_then(|s| s.get("nodeName"))
        .and_then(|n| n.as_str());
    if let Some(node) = node_name.and_then(|n| ctx.find(group::CORE, "Node", "", n)) {
        for key in TOPOLOGY_LABELS {
            match node.labels().get(*key) {
                Some(v) if !v.is_empty() => {
                    labels.insert(key.to_string(), v.clone());
                }
                _ => {}
            }
        }
    }
    labels
}

impl Analyzer for PodNotSelectedAnalyzer {
    fn name(&self) -> &'static str {
        "destinationrule.PodNotSelectedAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let known = registry::known_hosts(ctx);
        for (entry, dr) in destination_rules(ctx) {
            let host = s(&dr.host);
            if host.is_empty() || host.contains('*') {
                continue;
            }
            let fqdn = util::to_fqdn(&entry.ns, host);
            let (ns, name) = util::service_of_host(&entry.ns, &fqdn);
            let service = ctx.find(group::CORE, "Service", ns, name);
            if service.is_none() && !known.iter().any(|k| k.fqdn == fqdn) {
                out.push(Message::new(
                    &UNKNOWN_DESTINATION_RULE_HOST,
                    entry,
                    "spec.host",
                    &[host.into()],
                ));
                continue;
            }
            let Some(svc) = service.and_then(|e| e.spec::<ServiceSpec>()) else {
                continue;
            };
            let pods: Vec<BTreeMap<String, String>> = k8s::pods(ctx)
                .iter()
                .filter(|p| {
                    p.ns == ns
                        && !svc.selector.is_empty()
                        && selector::matches(&svc.selector, p.labels())
                })
                .map(|p| pod_labels(ctx, p))
                .collect();
            for (i, subset) in dr.subsets.iter().enumerate() {
                if !pods
                    .iter()
                    .any(|labels| selector::matches(&subset.labels, labels))
                {
                    out.push(Message::new(
                        &DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
                        entry,
                        &format!("spec.subsets[{i}]"),
                        &[s(&subset.name).into()],
                    ));
                }
            }
        }
    }
}
