//! The legacy kinds, validated as Istio 1.5 did: `rbac.istio.io/v1alpha1` ServiceRole,
//! ServiceRoleBinding, RbacConfig, ClusterRbacConfig and `authentication.istio.io/v1alpha1`
//! Policy and MeshPolicy.

use super::Ctx;
use super::util;
use crate::kinds::{
    AccessRule, AuthenticationPolicy, LegacyJwt, LegacyStringMatch, RbacConfig, RbacMode,
    ServiceRole, ServiceRoleBinding,
};

/// Istio only ever honoured the singleton named `default` (ClusterRbacConfig, MeshPolicy and
/// the namespace-wide Policy).
const DEFAULT_NAME: &str = "default";

pub fn check_service_role(cx: &mut Ctx<'_>, r: &ServiceRole) {
    if r.rules.is_empty() {
        cx.err("spec.rules", "at least 1 rule must be included");
    }
    for (i, rule) in r.rules.iter().enumerate() {
        check_access_rule(cx, &format!("spec.rules[{i}]"), rule);
    }
}

fn check_access_rule(cx: &mut Ctx<'_>, path: &str, rule: &AccessRule) {
    if rule.services.is_empty() {
        cx.err(
            &format!("{path}.services"),
            "at least 1 service must be included",
        );
    }
    for (field, ports) in [("ports", &rule.ports), ("notPorts", &rule.not_ports)] {
        for (i, p) in ports.iter().enumerate() {
            cx.check(&format!("{path}.{field}[{i}]"), util::port((*p).into()));
        }
    }
    for (i, c) in rule.constraints.iter().enumerate() {
        let p = format!("{path}.constraints[{i}]");
        if c.key.as_deref().unwrap_or("").is_empty() {
            cx.err(&format!("{p}.key"), "key cannot be empty");
        }
        if c.values.is_empty() {
            cx.err(&format!("{p}.values"), "at least 1 value must be included");
        }
        if c.values.iter().any(String::is_empty) {
            cx.err(&format!("{p}.values"), "value cannot be empty");
        }
    }
}

pub fn check_service_role_binding(cx: &mut Ctx<'_>, b: &ServiceRoleBinding) {
    if b.subjects.is_empty() {
        cx.err("spec.subjects", "at least 1 subject must be included");
    }
    for (i, s) in b.subjects.iter().enumerate() {
        let empty = s.user.as_deref().unwrap_or("").is_empty()
            && s.group.as_deref().unwrap_or("").is_empty()
            && s.properties.is_empty()
            && [
                &s.names,
                &s.not_names,
                &s.groups,
                &s.not_groups,
                &s.namespaces,
                &s.not_namespaces,
                &s.ips,
                &s.not_ips,
            ]
            .iter()
            .all(|l| l.is_empty());
        if empty {
            cx.err(
                &format!("spec.subjects[{i}]"),
                "empty subjects are not allowed",
            );
        }
        for (j, ip) in s.ips.iter().chain(&s.not_ips).enumerate() {
            cx.check(
                &format!("spec.subjects[{i}].ips[{j}]"),
                util::ip_or_cidr(ip),
            );
        }
    }
    let given = [
        b.role_ref.is_some(),
        b.role.is_some(),
        !b.actions.is_empty(),
    ];
    match given.iter().filter(|g| **g).count() {
        0 => cx.err("spec.roleRef", "roleRef must be specified"),
        1 => {}
        _ => cx.err("spec", "only one of roleRef, role or actions may be set"),
    }
    if let Some(r) = &b.role_ref {
        let kind = r.kind.as_deref().unwrap_or("");
        if kind != "ServiceRole" {
            cx.err(
                "spec.roleRef.kind",
                format!(
                    "kind set to {kind:?}, currently the only supported value is \"ServiceRole\""
                ),
            );
        }
        if r.name.as_deref().unwrap_or("").is_empty() {
            cx.err("spec.roleRef.name", "name cannot be empty");
        }
    }
    for (i, rule) in b.actions.iter().enumerate() {
        check_access_rule(cx, &format!("spec.actions[{i}]"), rule);
    }
}

pub fn check_rbac_config(cx: &mut Ctx<'_>, c: &RbacConfig) {
    if cx.obj.kind == "ClusterRbacConfig" && cx.obj.name != DEFAULT_NAME {
        cx.err(
            "metadata.name",
            format!(
                "ClusterRbacConfig has invalid name {:?}, name must be \"default\"",
                cx.obj.name
            ),
        );
    }
    match c.mode.unwrap_or_default() {
        RbacMode::OnWithInclusion if c.inclusion.is_none() => {
            cx.err("spec.inclusion", "inclusion cannot be null with mode ON_WITH_INCLUSION (use 'inclusion: {}' for none)");
        }
        RbacMode::OnWithExclusion if c.exclusion.is_none() => {
            cx.err("spec.exclusion", "exclusion cannot be null with mode ON_WITH_EXCLUSION (use 'exclusion: {}' for none)");
        }
        _ => {}
    }
}

pub fn check_authn_policy(cx: &mut Ctx<'_>, p: &AuthenticationPolicy, mesh: bool) {
    let name = cx.obj.name.clone();
    if mesh {
        if name != DEFAULT_NAME {
            cx.err(
                "metadata.name",
                format!("a MeshPolicy must be named \"default\", found {name:?}"),
            );
        }
        if !p.targets.is_empty() {
            cx.err("spec.targets", "a MeshPolicy must not have targets");
        }
    } else if name == DEFAULT_NAME && !p.targets.is_empty() {
        cx.err(
            "spec.targets",
            "a Policy named \"default\" applies to the whole namespace and must not have targets",
        );
    } else if name != DEFAULT_NAME && p.targets.is_empty() {
        cx.err(
            "spec.targets",
            format!("a Policy without targets must be named \"default\", found {name:?}"),
        );
    }
    for (i, t) in p.targets.iter().enumerate() {
        let path = format!("spec.targets[{i}]");
        match t.name.as_deref() {
            None | Some("") => cx.err(&format!("{path}.name"), "target name is required"),
            Some(n) if !crate::validate::is_dns1123_label(n) => cx.err(
                &format!("{path}.name"),
                format!("target name {n:?} must be a short service name (DNS label)"),
            ),
            Some(_) => {}
        }
        for (j, port) in t.ports.iter().enumerate() {
            let pp = format!("{path}.ports[{j}]");
            match (port.number, port.name.as_deref()) {
                (Some(n), None) => cx.check(&format!("{pp}.number"), util::port(n.into())),
                (None, Some(n)) if crate::validate::is_dns1123_label(n) => {}
                (None, Some(n)) => {
                    cx.err(&format!("{pp}.name"), format!("invalid port name {n:?}"))
                }
                _ => cx.err(&pp, "exactly one of number or name must be set"),
            }
        }
    }
    let mtls = p.peers.iter().filter(|m| m.jwt.is_none()).count();
    if mtls > 1 {
        cx.err("spec.peers", "at most one mutual TLS method may be set");
    }
    for (i, peer) in p.peers.iter().enumerate() {
        if let Some(jwt) = &peer.jwt {
            check_jwt(cx, &format!("spec.peers[{i}].jwt"), jwt);
        }
    }
    for (i, o) in p.origins.iter().enumerate() {
        match &o.jwt {
            Some(jwt) => check_jwt(cx, &format!("spec.origins[{i}].jwt"), jwt),
            None => cx.err(&format!("spec.origins[{i}].jwt"), "jwt is required"),
        }
    }
}

fn check_jwt(cx: &mut Ctx<'_>, path: &str, jwt: &LegacyJwt) {
    if jwt.issuer.as_deref().unwrap_or("").is_empty() {
        cx.err(&format!("{path}.issuer"), "issuer must be set");
    }
    if let Some(u) = &jwt.jwks_uri
        && !(u.starts_with("http://") || u.starts_with("https://"))
    {
        cx.err(
            &format!("{path}.jwksUri"),
            format!("jwksUri {u:?} must be an http:// or https:// URL"),
        );
    }
    for (i, rule) in jwt.trigger_rules.iter().enumerate() {
        let p = format!("{path}.triggerRules[{i}]");
        if rule.excluded_paths.is_empty() && rule.included_paths.is_empty() {
            cx.err(
                &p,
                "a trigger rule must have excludedPaths or includedPaths",
            );
        }
        for (field, list) in [
            ("excludedPaths", &rule.excluded_paths),
            ("includedPaths", &rule.included_paths),
        ] {
            for (j, m) in list.iter().enumerate() {
                cx.check(&format!("{p}.{field}[{j}]"), string_match(m));
            }
        }
    }
}

fn string_match(m: &LegacyStringMatch) -> Result<(), String> {
    let set: Vec<&String> = [&m.exact, &m.prefix, &m.suffix, &m.regex]
        .into_iter()
        .flatten()
        .collect();
    if set.len() != 1 {
        return Err("exactly one of exact, prefix, suffix or regex must be set".into());
    }
    if set[0].is_empty() {
        return Err("the match value must not be empty".into());
    }
    match &m.regex {
        Some(re) => util::regex(re),
        None => Ok(()),
    }
}
