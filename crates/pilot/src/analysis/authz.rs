//! `authz.AuthorizationPoliciesAnalyzer`: a policy must apply to some workload (its selector,
//! or its namespace, or the whole mesh from the root namespace), and the namespaces its
//! sources name must exist.

use std::collections::BTreeSet;

use super::Analyzer;
use super::catalogue::{NO_MATCHING_WORKLOADS_FOUND, REFERENCED_RESOURCE_NOT_FOUND};
use super::context::{Context, Entry, group};
use super::istio::AuthorizationPolicy;
use super::message::Message;
use super::{k8s, selector};

pub static ANALYZERS: &[&dyn Analyzer] = &[&AuthorizationPoliciesAnalyzer];

pub struct AuthorizationPoliciesAnalyzer;

/// Istio's namespace patterns: exact, `prefix*`, `*suffix`, or `*`.
fn namespace_matches(pattern: &str, ns: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return ns.starts_with(prefix);
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return ns.ends_with(suffix);
    }
    pattern == ns
}

/// Namespaces the input knows of: Namespace objects and the namespaces objects live in.
fn known_namespaces(ctx: &Context<'_>) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = ctx
        .of(group::CORE, "Namespace")
        .iter()
        .map(|n| n.name().to_string())
        .collect();
    out.extend(ctx.all().map(|e| e.ns.clone()).filter(|ns| !ns.is_empty()));
    out
}

fn applies_to_some_workload(
    ctx: &Context<'_>,
    entry: &Entry<'_>,
    ap: &AuthorizationPolicy,
) -> bool {
    let mesh_wide = entry.ns == ctx.root_namespace();
    let labels = ap
        .selector
        .as_ref()
        .map(|s| s.match_labels.clone())
        .unwrap_or_default();
    k8s::pods(ctx)
        .iter()
        .any(|p| (mesh_wide || p.ns == entry.ns) && selector::matches(&labels, p.labels()))
}

impl Analyzer for AuthorizationPoliciesAnalyzer {
    fn name(&self) -> &'static str {
        "authz.AuthorizationPoliciesAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let namespaces = known_namespaces(ctx);
        for entry in ctx.of(group::SECURITY, "AuthorizationPolicy") {
            let Some(ap) = entry.spec::<AuthorizationPolicy>() else {
                continue;
            };
            // Policies attached by targetRef apply to what they name, not to pods.
            let targeted = ap.target_ref.is_some() || !ap.target_refs.is_empty();
            if !targeted && !applies_to_some_workload(ctx, entry, &ap) {
                let labels = ap
                    .selector
                    .as_ref()
                    .map(|s| selector::to_string(&s.match_labels));
                out.push(Message::new(
                    &NO_MATCHING_WORKLOADS_FOUND,
                    entry,
                    "spec.selector",
                    &[labels.unwrap_or_default().into()],
                ));
            }
            for (i, rule) in ap.rules.iter().enumerate() {
                for (j, from) in rule.from.iter().enumerate() {
                    let Some(source) = &from.source else { continue };
                    let lists = [
                        ("namespaces", &source.namespaces),
                        ("notNamespaces", &source.not_namespaces),
                    ];
                    for (field, list) in lists {
                        for (k, pattern) in list.iter().enumerate() {
                            if !namespaces.iter().any(|ns| namespace_matches(pattern, ns)) {
                                out.push(Message::new(
                                    &REFERENCED_RESOURCE_NOT_FOUND,
                                    entry,
                                    &format!("spec.rules[{i}].from[{j}].source.{field}[{k}]"),
                                    &["namespace".into(), pattern.into()],
                                ));
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::namespace_matches;

    #[test]
    fn namespace_patterns() {
        assert!(namespace_matches("*", "a"));
        assert!(namespace_matches("prod-*", "prod-x"));
        assert!(namespace_matches("*-test", "x-test"));
        assert!(!namespace_matches("*-test", "x-prod"));
        assert!(namespace_matches("a", "a"));
        assert!(!namespace_matches("a", "b"));
    }
}
