//! `sidecar.SelectorAnalyzer`: Sidecar workload selectors must select pods, must not overlap,
//! a namespace may have only one selector-less Sidecar, and a Sidecar has no effect on
//! ambient-mode workloads (they have no sidecar).

use super::Analyzer;
use super::catalogue::{
    CONFLICTING_SIDECAR_WORKLOAD_SELECTORS, INEFFECTIVE_POLICY,
    MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
};
use super::context::{Context, Entry, group};
use super::istio::Sidecar;
use super::message::Message;
use super::selection::{self, Selecting};
use super::{k8s, selector};

pub static ANALYZERS: &[&dyn Analyzer] = &[&SelectorAnalyzer];

pub struct SelectorAnalyzer;

/// A namespace in ambient mode that does not also ask for sidecar injection.
pub(crate) fn namespace_is_ambient(ctx: &Context<'_>, ns: &str) -> bool {
    ctx.find(group::CORE, "Namespace", "", ns).is_some_and(|n| {
        let l = n.labels();
        l.get("istio.io/dataplane-mode").map(String::as_str) == Some("ambient")
            && l.get("istio-injection").map(String::as_str) != Some("enabled")
            && !l.contains_key("istio.io/rev")
    })
}

/// A pod whose traffic is redirected to ztunnel (ambient mode).
pub(crate) fn pod_is_ambient(pod: &Entry<'_>) -> bool {
    pod.annotations()
        .get("ambient.istio.io/redirection")
        .map(String::as_str)
        == Some("enabled")
}

impl Analyzer for SelectorAnalyzer {
    fn name(&self) -> &'static str {
        "sidecar.SelectorAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let items: Vec<Selecting<'_, '_>> = ctx
            .of(group::NETWORKING, "Sidecar")
            .iter()
            .filter_map(|e| {
                let sc = e.spec::<Sidecar>()?;
                Some(Selecting {
                    entry: e,
                    labels: sc.workload_selector.map(|w| w.labels),
                    field: "spec.workloadSelector",
                })
            })
            .collect();
        selection::check_selectors(ctx, &items, &CONFLICTING_SIDECAR_WORKLOAD_SELECTORS, out);
        selection::check_defaults(&items, &MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS, out);
        for it in &items {
            let reason = match &it.labels {
                None if namespace_is_ambient(ctx, &it.entry.ns) => {
                    format!(
                        "namespace {} is in ambient mode, which has no sidecars",
                        it.entry.ns
                    )
                }
                Some(labels) => {
                    let ambient_pod = k8s::pods(ctx).iter().find(|p| {
                        p.ns == it.entry.ns
                            && selector::matches(labels, p.labels())
                            && pod_is_ambient(p)
                    });
                    match ambient_pod {
                        Some(p) => {
                            format!("pod {} is in ambient mode, which has no sidecar", p.name())
                        }
                        None => continue,
                    }
                }
                None => continue,
            };
            out.push(Message::new(
                &INEFFECTIVE_POLICY,
                it.entry,
                "",
                &[reason.into()],
            ));
        }
    }
}
