//! Plexus `Workload` and the Kubernetes kinds: the Kubernetes API's own field rules (ports,
//! names, protocols, IPs) for what Plexus reads from them.

use std::collections::BTreeSet;

use super::Ctx;
use super::util;
use crate::kinds::Workload;
use crate::kinds::k8s::{EndpointPort, EndpointSlice, Endpoints, IntOrString, Service};

const K8S_PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

/// Kubernetes IANA_SVC_NAME: ≤15 lowercase alphanumerics or `-`, with a letter, no `--`, not
/// starting or ending with `-`.
fn port_name(n: &str) -> Result<(), String> {
    let ok = !n.is_empty()
        && n.len() <= 15
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && n.bytes().any(|b| b.is_ascii_lowercase())
        && !n.starts_with('-')
        && !n.ends_with('-')
        && !n.contains("--");
    if ok {
        Ok(())
    } else {
        Err(format!("invalid port name {n:?}"))
    }
}

fn k8s_protocol(p: &Option<String>) -> Result<(), String> {
    match p.as_deref() {
        None => Ok(()),
        Some(p) if K8S_PROTOCOLS.contains(&p) => Ok(()),
        Some(p) => Err(format!(
            "unsupported protocol {p:?}: must be TCP, UDP or SCTP"
        )),
    }
}

/// An environment variable name as Kubernetes accepts it.
fn env_name(n: &str) -> Result<(), String> {
    let ok = n
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b"-._".contains(&b))
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid environment variable name {n:?}"))
    }
}

pub fn check_workload(cx: &mut Ctx<'_>, w: &Workload) {
    if let Some(r) = w.replicas
        && r < 0
    {
        cx.err(
            "spec.replicas",
            format!("replicas {r} must not be negative"),
        );
    }
    if w.command.first().is_none_or(String::is_empty) {
        cx.err("spec.command", "command must name the program to run");
    }
    if let Some(sa) = w.service_account.as_deref()
        && !crate::validate::is_dns1123_subdomain(sa)
    {
        cx.err(
            "spec.serviceAccount",
            format!("invalid service account name {sa:?}"),
        );
    }
    let mut env_names = BTreeSet::new();
    for (i, e) in w.env.iter().enumerate() {
        let path = format!("spec.env[{i}].name");
        cx.check(&path, env_name(&e.name));
        if !env_names.insert(e.name.as_str()) {
            cx.err(
                &path,
                format!("duplicate environment variable {:?}", e.name),
            );
        }
    }
    let (mut names, mut numbers) = (BTreeSet::new(), BTreeSet::new());
    for (i, p) in w.ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        cx.check(
            &format!("{path}.containerPort"),
            util::port(p.container_port),
        );
        cx.check(&format!("{path}.protocol"), k8s_protocol(&p.protocol));
        let proto = p.protocol.clone().unwrap_or_else(|| "TCP".into());
        if !numbers.insert((p.container_port, proto)) {
            cx.err(
                &format!("{path}.containerPort"),
                format!("duplicate port {}", p.container_port),
            );
        }
        if let Some(n) = p.name.as_deref() {
            cx.check(&format!("{path}.name"), port_name(n));
            if !names.insert(n) {
                cx.err(
                    &format!("{path}.name"),
                    format!("duplicate port name {n:?}"),
                );
            }
        }
    }
}

pub fn check_service(cx: &mut Ctx<'_>, s: &Service) {
    let spec = &s.spec;
    util::labels(cx, "spec.selector", &spec.selector);
    let ty = spec.service_type.as_deref().unwrap_or("ClusterIP");
    if !matches!(
        ty,
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        cx.err("spec.type", format!("unsupported Service type {ty:?}"));
    }
    if ty == "ExternalName" {
        match spec.external_name.as_deref() {
            None | Some("") => cx.err(
                "spec.externalName",
                "externalName is required for type ExternalName",
            ),
            Some(n) => cx.check("spec.externalName", util::fqdn(n)),
        }
    }
    if let Some(ip) = spec.cluster_ip.as_deref()
        && !ip.is_empty()
        && ip != "None"
        && !util::is_ip(ip)
    {
        cx.err(
            "spec.clusterIP",
            format!("clusterIP {ip:?} must be an IP address, \"None\" or empty"),
        );
    }
    let mut names = BTreeSet::new();
    for (i, p) in spec.ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        cx.check(&format!("{path}.port"), util::port(p.port.into()));
        cx.check(&format!("{path}.protocol"), k8s_protocol(&p.protocol));
        // Service port names are DNS labels; container port names (targetPort) IANA names.
        if let Some(n) = p.name.as_deref() {
            if !crate::validate::is_dns1123_label(n) {
                cx.err(&format!("{path}.name"), format!("invalid port name {n:?}"));
            }
            if !names.insert(n) {
                cx.err(
                    &format!("{path}.name"),
                    format!("duplicate port name {n:?}"),
                );
            }
        }
        match &p.target_port {
            Some(IntOrString::Int(n)) => cx.check(&format!("{path}.targetPort"), util::port(*n)),
            Some(IntOrString::String(n)) => cx.check(&format!("{path}.targetPort"), port_name(n)),
            None => {}
        }
    }
}

fn check_endpoint_ports(cx: &mut Ctx<'_>, path: &str, ports: &[EndpointPort]) {
    for (i, p) in ports.iter().enumerate() {
        let pp = format!("{path}[{i}]");
        if let Some(n) = p.port {
            cx.check(&format!("{pp}.port"), util::port(n.into()));
        }
        cx.check(&format!("{pp}.protocol"), k8s_protocol(&p.protocol));
    }
}

pub fn check_endpoints(cx: &mut Ctx<'_>, e: &Endpoints) {
    for (i, s) in e.subsets.iter().enumerate() {
        let path = format!("subsets[{i}]");
        for (field, list) in [
            ("addresses", &s.addresses),
            ("notReadyAddresses", &s.not_ready_addresses),
        ] {
            for (j, a) in list.iter().enumerate() {
                if !util::is_ip(&a.ip) {
                    cx.err(
                        &format!("{path}.{field}[{j}].ip"),
                        format!("{:?} is not an IP address", a.ip),
                    );
                }
            }
        }
        check_endpoint_ports(cx, &format!("{path}.ports"), &s.ports);
    }
}

pub fn check_endpoint_slice(cx: &mut Ctx<'_>, e: &EndpointSlice) {
    let ty = e.address_type.as_str();
    if !matches!(ty, "IPv4" | "IPv6" | "FQDN") {
        cx.err(
            "addressType",
            format!("unsupported addressType {ty:?}: must be IPv4, IPv6 or FQDN"),
        );
    }
    for (i, ep) in e.endpoints.iter().enumerate() {
        for (j, a) in ep.addresses.iter().enumerate() {
            let ok = match ty {
                "IPv4" => a.parse::<std::net::Ipv4Addr>().is_ok(),
                "IPv6" => a.parse::<std::net::Ipv6Addr>().is_ok(),
                _ => util::fqdn(a).is_ok(),
            };
            if !ok {
                cx.err(
                    &format!("endpoints[{i}].addresses[{j}]"),
                    format!("{a:?} is not a valid {ty} address"),
                );
            }
        }
    }
    check_endpoint_ports(cx, "ports", &e.ports);
}
