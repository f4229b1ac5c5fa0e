//! EnvoyFilter, ProxyConfig, Telemetry, WasmPlugin and TrafficExtension rules.

use std::collections::BTreeSet;

use super::Ctx;
use super::util;
use crate::kinds::{
    ApplyTo, EnvVar, EnvoyFilter, PatchOperation, ProxyConfig, TagOperation, Telemetry,
    TrafficExtension, TrafficSelector, WasmPlugin,
};

pub fn check_envoy_filter(cx: &mut Ctx<'_>, ef: &EnvoyFilter) {
    if let Some(sel) = &ef.workload_selector {
        util::selector(cx, "spec.workloadSelector.labels", &sel.labels);
    }
    if ef.workload_selector.is_some() && !ef.target_refs.is_empty() {
        cx.err(
            "spec",
            "only one of workloadSelector or targetRefs may be set",
        );
    }
    for (i, cp) in ef.config_patches.iter().enumerate() {
        let path = format!("spec.configPatches[{i}]");
        let apply_to = cp.apply_to.unwrap_or_default();
        if apply_to == ApplyTo::Invalid {
            cx.err(&format!("{path}.applyTo"), "applyTo is required");
        }
        let Some(patch) = &cp.patch else {
            cx.err(&format!("{path}.patch"), "patch is required");
            continue;
        };
        let op = patch.operation.unwrap_or_default();
        match op {
            PatchOperation::Invalid => {
                cx.err(&format!("{path}.patch.operation"), "operation is required")
            }
            PatchOperation::Remove => {}
            _ if patch.value.is_none() => cx.err(
                &format!("{path}.patch.value"),
                format!("value is required for operation {}", util::yaml_name(&op)),
            ),
            _ => {}
        }
        if let Some(m) = &cp.r#match {
            check_patch_match(cx, &path, apply_to, m);
        }
    }
}

/// The match must fit the object class the patch applies to.
fn check_patch_match(
    cx: &mut Ctx<'_>,
    path: &str,
    apply_to: ApplyTo,
    m: &crate::kinds::EnvoyConfigObjectMatch,
) {
    use ApplyTo as A;
    let listener_class = matches!(
        apply_to,
        A::Listener | A::FilterChain | A::NetworkFilter | A::HttpFilter | A::ListenerFilter
    );
    let route_class = matches!(
        apply_to,
        A::RouteConfiguration | A::VirtualHost | A::HttpRoute
    );
    let cluster_class = apply_to == A::Cluster;
    let wrong = (listener_class && (m.route_configuration.is_some() || m.cluster.is_some()))
        || (route_class && (m.listener.is_some() || m.cluster.is_some()))
        || (cluster_class && (m.listener.is_some() || m.route_configuration.is_some()));
    if wrong {
        cx.err(
            &format!("{path}.match"),
            format!(
                "the match does not fit applyTo {}",
                util::yaml_name(&apply_to)
            ),
        );
    }
    if let Some(v) = m.proxy.as_ref().and_then(|p| p.proxy_version.as_deref()) {
        cx.check(&format!("{path}.match.proxy.proxyVersion"), util::regex(v));
    }
}

pub fn check_proxy_config(cx: &mut Ctx<'_>, pc: &ProxyConfig) {
    if let Some(sel) = &pc.selector {
        util::selector(cx, "spec.selector.matchLabels", &sel.match_labels);
    }
    if let Some(c) = pc.concurrency
        && c < 0
    {
        cx.err(
            "spec.concurrency",
            format!("concurrency {c} must not be negative"),
        );
    }
}

pub fn check_telemetry(cx: &mut Ctx<'_>, t: &Telemetry) {
    if let Some(sel) = &t.selector {
        util::selector(cx, "spec.selector.matchLabels", &sel.match_labels);
    }
    for (i, tr) in t.tracing.iter().enumerate() {
        let path = format!("spec.tracing[{i}]");
        if tr.providers.len() > 1 {
            cx.err(
                &format!("{path}.providers"),
                "at most one tracing provider may be set",
            );
        }
        if let Some(p) = tr.random_sampling_percentage
            && !(0.0..=100.0).contains(&p)
        {
            cx.err(
                &format!("{path}.randomSamplingPercentage"),
                format!("{p} must be in the range 0..100"),
            );
        }
        for (name, tag) in &tr.custom_tags {
            let kinds = [
                tag.literal.is_some(),
                tag.environment.is_some(),
                tag.header.is_some(),
                tag.formatter.is_some(),
            ];
            if kinds.iter().filter(|k| **k).count() != 1 {
                cx.err(
                    &format!("{path}.customTags.{name}"),
                    "exactly one of literal, environment, header or formatter must be set",
                );
            }
        }
    }
    for (i, m) in t.metrics.iter().enumerate() {
        let path = format!("spec.metrics[{i}]");
        util::opt_duration(
            cx,
            &format!("{path}.reportingInterval"),
            &m.reporting_interval,
            util::duration_min_1ms,
        );
        for (j, o) in m.overrides.iter().enumerate() {
            for (tag, ov) in &o.tag_overrides {
                let p = format!("{path}.overrides[{j}].tagOverrides.{tag}");
                match (ov.operation.unwrap_or_default(), ov.value.as_deref()) {
                    (TagOperation::Upsert, None | Some("")) => {
                        cx.err(&p, "operation UPSERT requires a value")
                    }
                    (TagOperation::Remove, Some(_)) => {
                        cx.err(&p, "operation REMOVE must not have a value")
                    }
                    _ => {}
                }
            }
        }
    }
    for (i, a) in t.access_logging.iter().enumerate() {
        if let Some(f) = &a.filter
            && f.expression.as_deref().unwrap_or("").is_empty()
        {
            cx.err(
                &format!("spec.accessLogging[{i}].filter.expression"),
                "filter expression must not be empty",
            );
        }
    }
}

fn check_traffic_selectors(cx: &mut Ctx<'_>, selectors: &[TrafficSelector]) {
    for (i, s) in selectors.iter().enumerate() {
        for (j, p) in s.ports.iter().enumerate() {
            cx.check(
                &format!("spec.match[{i}].ports[{j}].number"),
                util::port(p.number.unwrap_or(0).into()),
            );
        }
    }
}

fn check_wasm_source(
    cx: &mut Ctx<'_>,
    path: &str,
    url: Option<&str>,
    sha256: Option<&str>,
    env: &[EnvVar],
) {
    match url {
        None | Some("") => cx.err(&format!("{path}.url"), "url is required"),
        Some(u) if u.contains(char::is_whitespace) => {
            cx.err(&format!("{path}.url"), format!("invalid url {u:?}"))
        }
        Some(_) => {}
    }
    if let Some(sum) = sha256
        && (sum.len() != 64 || !sum.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        cx.err(
            &format!("{path}.sha256"),
            format!("sha256 {sum:?} must be 64 hex digits"),
        );
    }
    let mut names = BTreeSet::new();
    for (i, e) in env.iter().enumerate() {
        let p = format!("{path}.vmConfig.env[{i}].name");
        match e.name.as_deref() {
            None | Some("") => cx.err(&p, "env name is required"),
            Some(n) if !names.insert(n) => cx.err(&p, format!("duplicate env name {n:?}")),
            Some(_) => {}
        }
    }
}

pub fn check_wasm_plugin(cx: &mut Ctx<'_>, w: &WasmPlugin) {
    if let Some(sel) = &w.selector {
        util::selector(cx, "spec.selector.matchLabels", &sel.match_labels);
    }
    let env = w
        .vm_config
        .as_ref()
        .map(|v| v.env.as_slice())
        .unwrap_or_default();
    check_wasm_source(cx, "spec", w.url.as_deref(), w.sha256.as_deref(), env);
    check_traffic_selectors(cx, &w.r#match);
}

pub fn check_traffic_extension(cx: &mut Ctx<'_>, t: &TrafficExtension) {
    if let Some(sel) = &t.selector {
        util::selector(cx, "spec.selector.matchLabels", &sel.match_labels);
    }
    match (&t.wasm, &t.lua) {
        (Some(_), Some(_)) => cx.err("spec", "only one of wasm or lua may be set"),
        (None, None) => cx.err("spec", "one of wasm or lua is required"),
        (Some(w), None) => {
            let env = w
                .vm_config
                .as_ref()
                .map(|v| v.env.as_slice())
                .unwrap_or_default();
            check_wasm_source(cx, "spec.wasm", w.url.as_deref(), w.sha256.as_deref(), env);
        }
        (None, Some(l)) => {
            if l.inline_code.as_deref().unwrap_or("").trim().is_empty() {
                cx.err("spec.lua.inlineCode", "inlineCode is required");
            }
        }
    }
    check_traffic_selectors(cx, &t.r#match);
}
