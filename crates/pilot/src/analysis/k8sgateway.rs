//! `k8sgateway.SelectorAnalyzer`: policies attach to Gateway API gateways through `targetRef`;
//! a label `selector` that picks a Gateway API gateway's pods is ignored there.

use std::collections::BTreeMap;

use super::Analyzer;
use super::catalogue::INEFFECTIVE_SELECTOR;
use super::context::{Context, Entry, group};
use super::istio::{AuthorizationPolicy, RequestAuthentication, Telemetry, WasmPlugin};
use super::message::Message;
use super::{k8s, selector};

pub static ANALYZERS: &[&dyn Analyzer] = &[&SelectorAnalyzer];

/// Label Istio puts on the pods of a Gateway API gateway.
const GATEWAY_NAME_LABEL: &str = "gateway.networking.k8s.io/gateway-name";

pub struct SelectorAnalyzer;

/// The selector of a policy that has no target reference.
fn selector_only(entry: &Entry<'_>) -> Option<BTreeMap<String, String>> {
    let (sel, targeted) = match (entry.obj.group.as_str(), entry.obj.kind.as_str()) {
        (group::SECURITY, "RequestAuthentication") => {
            let p = entry.spec::<RequestAuthentication>()?;
            (
                p.selector,
                p.target_ref.is_some() || !p.target_refs.is_empty(),
            )
        }
        (group::SECURITY, "AuthorizationPolicy") => {
            let p = entry.spec::<AuthorizationPolicy>()?;
            (
                p.selector,
                p.target_ref.is_some() || !p.target_refs.is_empty(),
            )
        }
        (group::TELEMETRY, "Telemetry") => {
            let p = entry.spec::<Telemetry>()?;
            (
                p.selector,
                p.target_ref.is_some() || !p.target_refs.is_empty(),
            )
        }
        (group::EXTENSIONS, "WasmPlugin") => {
            let p = entry.spec::<WasmPlugin>()?;
            (
                p.selector,
                p.target_ref.is_some() || !p.target_refs.is_empty(),
            )
        }
        _ => return None,
    };
    if targeted {
        return None;
    }
    sel.map(|s| s.match_labels).filter(|l| !l.is_empty())
}

impl Analyzer for SelectorAnalyzer {
    fn name(&self) -> &'static str {
        "k8sgateway.SelectorAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let kinds = [
            (group::SECURITY, "RequestAuthentication"),
            (group::SECURITY, "AuthorizationPolicy"),
            (group::TELEMETRY, "Telemetry"),
            (group::EXTENSIONS, "WasmPlugin"),
        ];
        for (g, kind) in kinds {
            for entry in ctx.of(g, kind) {
                let Some(labels) = selector_only(entry) else {
                    continue;
                };
                let gateway_pod = k8s::pods(ctx).iter().find(|p| {
                    p.ns == entry.ns
                        && p.labels().contains_key(GATEWAY_NAME_LABEL)
                        && selector::matches(&labels, p.labels())
                });
                if let Some(pod) = gateway_pod {
                    let gateway = pod
                        .labels()
                        .get(GATEWAY_NAME_LABEL)
                        .cloned()
                        .unwrap_or_default();
                    out.push(Message::new(
                        &INEFFECTIVE_SELECTOR,
                        entry,
                        "spec.selector",
                        &[gateway.into()],
                    ));
                }
            }
        }
    }
}
