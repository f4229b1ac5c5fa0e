//! `envoyfilter.EnvoyPatchAnalyzer`: patch operations that Istio ignores for their `applyTo`
//! (ADD/REMOVE on route configurations and routes, REPLACE outside filters and virtual
//! hosts), and relative operations (INSERT_BEFORE/AFTER, REPLACE, REMOVE) without a
//! `priority`, whose effect depends on the order filters happen to be applied in — worse when
//! a patch is pinned to a proxy version, since upgrades change that order.

use plexus_api::kinds::{ApplyTo, EnvoyConfigObjectPatch, PatchOperation};

use super::Analyzer;
use super::catalogue::{
    ENVOY_FILTER_USES_ADD_OPERATION_INCORRECTLY, ENVOY_FILTER_USES_RELATIVE_OPERATION,
    ENVOY_FILTER_USES_RELATIVE_OPERATION_WITH_PROXY_VERSION,
    ENVOY_FILTER_USES_REMOVE_OPERATION_INCORRECTLY,
    ENVOY_FILTER_USES_REPLACE_OPERATION_INCORRECTLY, MessageType,
};
use super::context::{Context, group};
use super::istio::{EnvoyFilter, s};
use super::message::Message;

pub static ANALYZERS: &[&dyn Analyzer] = &[&EnvoyPatchAnalyzer];

pub struct EnvoyPatchAnalyzer;

/// The name a patch is about: the patch value's `name`, else the matched filter's name.
fn instance_name(patch: &EnvoyConfigObjectPatch) -> String {
    if let Some(name) = patch
        .patch
        .as_ref()
        .and_then(|p| p.value.as_ref())
        .and_then(|v| v.get("name"))
        .and_then(|n| n.as_str())
    {
        return name.to_string();
    }
    let filter = patch
        .r#match
        .as_ref()
        .and_then(|m| m.listener.as_ref())
        .and_then(|l| l.filter_chain.as_ref())
        .and_then(|fc| fc.filter.as_ref());
    filter.map(|f| s(&f.name).to_string()).unwrap_or_default()
}

fn has_proxy_version(patch: &EnvoyConfigObjectPatch) -> bool {
    patch
        .r#match
        .as_ref()
        .and_then(|m| m.proxy.as_ref())
        .is_some_and(|p| !s(&p.proxy_version).is_empty())
}

/// What to report for one patch, given the names earlier patches pinned to a proxy version.
fn finding(
    patch: &EnvoyConfigObjectPatch,
    priority: i32,
    pinned: &[String],
) -> Option<&'static MessageType> {
    let op = patch.patch.as_ref()?.operation?;
    let apply_to = patch.apply_to.unwrap_or_default();
    let route_level = matches!(apply_to, ApplyTo::RouteConfiguration | ApplyTo::HttpRoute);
    let relative = || {
        if priority != 0 {
            None
        } else if pinned.contains(&instance_name(patch)) {
            Some(&ENVOY_FILTER_USES_RELATIVE_OPERATION_WITH_PROXY_VERSION)
        } else {
            Some(&ENVOY_FILTER_USES_RELATIVE_OPERATION)
        }
    };
    match op {
        PatchOperation::Add if route_level => Some(&ENVOY_FILTER_USES_ADD_OPERATION_INCORRECTLY),
        PatchOperation::Remove if route_level => {
            Some(&ENVOY_FILTER_USES_REMOVE_OPERATION_INCORRECTLY)
        }
        PatchOperation::Replace
            if !matches!(
                apply_to,
                ApplyTo::HttpFilter | ApplyTo::NetworkFilter | ApplyTo::VirtualHost
            ) =>
        {
            Some(&ENVOY_FILTER_USES_REPLACE_OPERATION_INCORRECTLY)
        }
        PatchOperation::Remove
        | PatchOperation::Replace
        | PatchOperation::InsertBefore
        | PatchOperation::InsertAfter => relative(),
        _ => None,
    }
}

impl Analyzer for EnvoyPatchAnalyzer {
    fn name(&self) -> &'static str {
        "envoyfilter.EnvoyPatchAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        // Names patched by earlier patches that are pinned to a proxy version, across filters.
        let mut pinned: Vec<String> = Vec::new();
        for entry in ctx.of(group::NETWORKING, "EnvoyFilter") {
            let Some(ef) = entry.spec::<EnvoyFilter>() else {
                continue;
            };
            let priority = ef.priority.unwrap_or(0);
            for (i, patch) in ef.config_patches.iter().enumerate() {
                if patch.patch.is_none() {
                    break;
                }
                if let Some(mt) = finding(patch, priority, &pinned) {
                    out.push(Message::new(
                        mt,
                        entry,
                        &format!("spec.configPatches[{i}]"),
                        &[],
                    ));
                }
                if has_proxy_version(patch) {
                    pinned.push(instance_name(patch));
                }
            }
        }
    }
}
