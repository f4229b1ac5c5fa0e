//! Security kinds: PeerAuthentication, RequestAuthentication (issuer, JWKS URI and JSON, token
//! locations) and AuthorizationPolicy (action/provider, sources, operations, `when` keys).

use super::Ctx;
use super::util;
use crate::kinds::{
    AuthorizationAction, AuthorizationPolicy, Condition, JwtRule, Operation, PeerAuthentication,
    PolicyTargetReference, RequestAuthentication, Source, WorkloadSelector,
};

pub fn check_peer_authentication(cx: &mut Ctx<'_>, pa: &PeerAuthentication) {
    check_selector(cx, &pa.selector);
    if !pa.port_level_mtls.is_empty()
        && pa
            .selector
            .as_ref()
            .is_none_or(|s| s.match_labels.is_empty())
    {
        cx.err(
            "spec.portLevelMtls",
            "portLevelMtls requires a workload selector",
        );
    }
    for port in pa.port_level_mtls.keys() {
        let n: i64 = port.parse().unwrap_or(0);
        cx.check(&format!("spec.portLevelMtls.{port}"), util::port(n));
    }
}

fn check_selector(cx: &mut Ctx<'_>, sel: &Option<WorkloadSelector>) {
    if let Some(s) = sel {
        util::selector(cx, "spec.selector.matchLabels", &s.match_labels);
    }
}

/// `selector` and `targetRef(s)` are exclusive; target kinds are the ones Istio can attach to.
fn check_targets(
    cx: &mut Ctx<'_>,
    sel: &Option<WorkloadSelector>,
    one: &Option<PolicyTargetReference>,
    many: &[PolicyTargetReference],
) {
    check_selector(cx, sel);
    if sel.is_some() && (one.is_some() || !many.is_empty()) {
        cx.err(
            "spec",
            "only one of selector or targetRef/targetRefs may be set",
        );
    }
    if one.is_some() && !many.is_empty() {
        cx.err("spec", "only one of targetRef or targetRefs may be set");
    }
    let refs = one.iter().map(|r| ("spec.targetRef".to_string(), r));
    let refs = refs.chain(
        many.iter()
            .enumerate()
            .map(|(i, r)| (format!("spec.targetRefs[{i}]"), r)),
    );
    for (path, r) in refs {
        let group = r.group.as_deref().unwrap_or("");
        let kind = r.kind.as_deref().unwrap_or("");
        let known = matches!(
            (group, kind),
            ("gateway.networking.k8s.io", "Gateway" | "GatewayClass")
                | ("" | "core", "Service")
                | ("networking.istio.io", "ServiceEntry")
        );
        if !known {
            cx.err(&path, format!("unsupported targetRef {group}/{kind}: must be a Gateway, GatewayClass, Service or ServiceEntry"));
        }
        if r.name.as_deref().unwrap_or("").is_empty() {
            cx.err(&format!("{path}.name"), "name is required");
        }
        if let Some(ns) = r.namespace.as_deref()
            && ns != cx.namespace()
        {
            cx.err(
                &format!("{path}.namespace"),
                format!("cross-namespace targetRef {ns:?} is not allowed"),
            );
        }
    }
}

pub fn check_request_authentication(cx: &mut Ctx<'_>, ra: &RequestAuthentication) {
    check_targets(cx, &ra.selector, &ra.target_ref, &ra.target_refs);
    for (i, rule) in ra.jwt_rules.iter().enumerate() {
        check_jwt_rule(cx, &format!("spec.jwtRules[{i}]"), rule);
    }
}

fn check_jwt_rule(cx: &mut Ctx<'_>, path: &str, r: &JwtRule) {
    if r.issuer.as_deref().unwrap_or("").is_empty() {
        cx.err(&format!("{path}.issuer"), "issuer is required");
    }
    if r.jwks_uri.is_some() && r.jwks_uri_snake.is_some() {
        cx.err(path, "only one of jwksUri or jwks_uri may be set");
    }
    let uri = r
        .jwks_uri
        .as_ref()
        .map(|u| ("jwksUri", u))
        .or(r.jwks_uri_snake.as_ref().map(|u| ("jwks_uri", u)));
    if let Some((field, u)) = uri {
        cx.check(&format!("{path}.{field}"), jwks_uri(u));
        if r.jwks.is_some() {
            cx.err(path, "only one of jwksUri or jwks may be set");
        }
    }
    if let Some(jwks) = &r.jwks {
        cx.check(&format!("{path}.jwks"), jwks_json(jwks));
    }
    for (i, a) in r.audiences.iter().enumerate() {
        if a.is_empty() {
            cx.err(
                &format!("{path}.audiences[{i}]"),
                "audience must not be empty",
            );
        }
    }
    for (i, h) in r.from_headers.iter().enumerate() {
        let p = format!("{path}.fromHeaders[{i}].name");
        match h.name.as_deref() {
            None | Some("") => cx.err(&p, "header name is required"),
            Some(n) => cx.check(&p, util::header_name(n)),
        }
    }
    for (i, q) in r.from_params.iter().enumerate() {
        if q.is_empty() {
            cx.err(
                &format!("{path}.fromParams[{i}]"),
                "parameter name must not be empty",
            );
        }
    }
    for (i, c) in r.output_claim_to_headers.iter().enumerate() {
        let p = format!("{path}.outputClaimToHeaders[{i}]");
        match c.header.as_deref() {
            None | Some("") => cx.err(&format!("{p}.header"), "header is required"),
            Some(h) => cx.check(&format!("{p}.header"), util::header_name(h)),
        }
        if c.claim.as_deref().unwrap_or("").is_empty() {
            cx.err(&format!("{p}.claim"), "claim is required");
        }
    }
    if let Some(h) = &r.output_payload_to_header {
        cx.check(
            &format!("{path}.outputPayloadToHeader"),
            util::header_name(h),
        );
    }
    util::opt_duration(
        cx,
        &format!("{path}.timeout"),
        &r.timeout,
        util::duration_min_1ms,
    );
}

/// An absolute `http`/`https` URL with a host.
fn jwks_uri(u: &str) -> Result<(), String> {
    let rest = u
        .strip_prefix("https://")
        .or_else(|| u.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    match host {
        Some(h) if !h.is_empty() && !h.contains(char::is_whitespace) => Ok(()),
        _ => Err(format!(
            "jwksUri {u:?} must be an http:// or https:// URL with a host"
        )),
    }
}

/// Inline JWKS: a JSON object with a `keys` array.
fn jwks_json(text: &str) -> Result<(), String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("jwks is not valid JSON: {e}"))?;
    if v.get("keys").is_some_and(serde_json::Value::is_array) {
        Ok(())
    } else {
        Err("jwks must be a JSON object with a \"keys\" array".into())
    }
}

pub fn check_authorization_policy(cx: &mut Ctx<'_>, ap: &AuthorizationPolicy) {
    check_targets(cx, &ap.selector, &ap.target_ref, &ap.target_refs);
    let action = ap.action.unwrap_or_default();
    match (action, &ap.provider) {
        (AuthorizationAction::Custom, None) => {
            cx.err("spec.provider", "action CUSTOM requires provider.name")
        }
        (AuthorizationAction::Custom, Some(p)) if p.name.as_deref().unwrap_or("").is_empty() => {
            cx.err("spec.provider.name", "provider name is required")
        }
        (AuthorizationAction::Custom, Some(_)) => {}
        (_, Some(_)) => cx.err(
            "spec.provider",
            format!(
                "provider can only be used with action CUSTOM, not {}",
                util::yaml_name(&action)
            ),
        ),
        (_, None) => {}
    }
    for (i, rule) in ap.rules.iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        for (j, f) in rule.from.iter().enumerate() {
            let p = format!("{path}.from[{j}].source");
            match &f.source {
                None => cx.err(&p, "source is required"),
                Some(s) => check_source(cx, &p, s),
            }
        }
        for (j, t) in rule.to.iter().enumerate() {
            let p = format!("{path}.to[{j}].operation");
            match &t.operation {
                None => cx.err(&p, "operation is required"),
                Some(o) => check_operation(cx, &p, o),
            }
        }
        for (j, c) in rule.when.iter().enumerate() {
            check_condition(cx, &format!("{path}.when[{j}]"), c);
        }
    }
}

fn check_source(cx: &mut Ctx<'_>, path: &str, s: &Source) {
    let lists: [(&str, &Vec<String>); 14] = [
        ("principals", &s.principals),
        ("notPrincipals", &s.not_principals),
        ("requestPrincipals", &s.request_principals),
        ("notRequestPrincipals", &s.not_request_principals),
        ("namespaces", &s.namespaces),
        ("notNamespaces", &s.not_namespaces),
        ("serviceAccounts", &s.service_accounts),
        ("notServiceAccounts", &s.not_service_accounts),
        ("ipBlocks", &s.ip_blocks),
        ("notIpBlocks", &s.not_ip_blocks),
        ("remoteIpBlocks", &s.remote_ip_blocks),
        ("notRemoteIpBlocks", &s.not_remote_ip_blocks),
        ("trustDomains", &s.trust_domains),
        ("notTrustDomains", &s.not_trust_domains),
    ];
    if lists.iter().all(|(_, l)| l.is_empty()) {
        cx.err(path, "source must set at least one field");
    }
    for (field, list) in lists {
        for (i, v) in list.iter().enumerate() {
            let p = format!("{path}.{field}[{i}]");
            if v.is_empty() {
                cx.err(&p, "empty value is not allowed");
            } else if field.to_ascii_lowercase().ends_with("ipblocks") {
                cx.check(&p, util::ip_or_cidr(v));
            } else if field.to_ascii_lowercase().ends_with("serviceaccounts") && v.contains('*') {
                cx.err(
                    &p,
                    format!("wildcard is not allowed in service account {v:?}"),
                );
            }
        }
    }
    if !s.service_accounts.is_empty() && (!s.principals.is_empty() || !s.namespaces.is_empty()) {
        cx.err(
            &format!("{path}.serviceAccounts"),
            "serviceAccounts cannot be combined with principals or namespaces",
        );
    }
}

fn check_operation(cx: &mut Ctx<'_>, path: &str, o: &Operation) {
    let lists: [(&str, &Vec<String>); 8] = [
        ("hosts", &o.hosts),
        ("notHosts", &o.not_hosts),
        ("ports", &o.ports),
        ("notPorts", &o.not_ports),
        ("methods", &o.methods),
        ("notMethods", &o.not_methods),
        ("paths", &o.paths),
        ("notPaths", &o.not_paths),
    ];
    if lists.iter().all(|(_, l)| l.is_empty()) {
        cx.err(path, "operation must set at least one field");
    }
    for (field, list) in lists {
        for (i, v) in list.iter().enumerate() {
            let p = format!("{path}.{field}[{i}]");
            if v.is_empty() {
                cx.err(&p, "empty value is not allowed");
            } else if field.ends_with("orts") {
                let n: i64 = v.parse().unwrap_or(-1);
                if !(0..=65535).contains(&n) {
                    cx.err(&p, format!("invalid port {v:?}"));
                }
            } else if field.ends_with("aths") && v.contains('{') {
                cx.check(&p, path_template(v));
            }
        }
    }
}

/// URI templates: `{*}` matches one segment, `{**}` any number of segments; each occupies a
/// whole segment.
fn path_template(p: &str) -> Result<(), String> {
    for seg in p.split('/') {
        if !seg.contains(['{', '}']) {
            continue;
        }
        match seg {
            "{*}" | "{**}" => {}
            _ => {
                return Err(format!(
                    "invalid path template {p:?}: use {{*}} or {{**}} as a whole segment"
                ));
            }
        }
    }
    Ok(())
}

/// Keys Istio's authorization model understands in `when`.
fn known_condition_key(key: &str) -> bool {
    const PLAIN: &[&str] = &[
        "source.ip",
        "remote.ip",
        "source.namespace",
        "source.principal",
        "source.serviceAccount",
        "source.trustDomain",
        "request.auth.principal",
        "request.auth.audiences",
        "request.auth.presenter",
        "destination.ip",
        "destination.port",
        "connection.sni",
    ];
    if PLAIN.contains(&key) || key.starts_with("experimental.envoy.filters.") {
        return true;
    }
    let bracketed = |prefix: &str| {
        key.strip_prefix(prefix).is_some_and(|rest| {
            rest.starts_with('[')
                && rest.ends_with(']')
                && rest[1..rest.len() - 1]
                    .split("][")
                    .all(|c| !c.is_empty() && !c.contains(['[', ']']))
        })
    };
    bracketed("request.headers") || bracketed("request.auth.claims")
}

fn check_condition(cx: &mut Ctx<'_>, path: &str, c: &Condition) {
    let key = c.key.as_deref().unwrap_or("");
    if key.is_empty() {
        cx.err(&format!("{path}.key"), "key is required");
        return;
    }
    if !known_condition_key(key) {
        cx.err(&format!("{path}.key"), format!("unknown attribute {key:?}"));
        return;
    }
    if c.values.is_empty() && c.not_values.is_empty() {
        cx.err(
            path,
            format!("at least one of values or notValues must be set for key {key:?}"),
        );
    }
    for (field, list) in [("values", &c.values), ("notValues", &c.not_values)] {
        for (i, v) in list.iter().enumerate() {
            let p = format!("{path}.{field}[{i}]");
            match key {
                "source.ip" | "remote.ip" | "destination.ip" => cx.check(&p, util::ip_or_cidr(v)),
                "destination.port" => {
                    let n: i64 = v.parse().unwrap_or(-1);
                    if !(0..=65535).contains(&n) {
                        cx.err(&p, format!("invalid port {v:?}"));
                    }
                }
                _ if v.is_empty() => cx.err(&p, "empty value is not allowed"),
                _ => {}
            }
        }
    }
}
