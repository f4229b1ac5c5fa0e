//! ServiceEntry, WorkloadEntry and WorkloadGroup rules: hosts, addresses, ports, resolution vs
//! endpoints, endpoint addresses and port names, probes.

use std::collections::BTreeSet;

use super::Ctx;
use super::util;
use crate::kinds::{Resolution, ServiceEntry, WorkloadEntry, WorkloadGroup};

pub fn check(cx: &mut Ctx<'_>, se: &ServiceEntry) {
    let resolution = se.resolution.unwrap_or_default();
    check_hosts(cx, se, resolution);
    for (i, a) in se.addresses.iter().enumerate() {
        let path = format!("spec.addresses[{i}]");
        if let Err(e) = util::ip_or_cidr(a) {
            cx.err(&path, e);
        } else if !util::is_ip(a) && !matches!(resolution, Resolution::None | Resolution::Static) {
            cx.err(
                &path,
                format!("CIDR address {a:?} is only allowed with NONE or STATIC resolution"),
            );
        }
    }
    util::export_to(cx, "spec.exportTo", &se.export_to, true);
    let port_names = check_ports(cx, se);
    check_resolution(cx, se, resolution);
    for (i, ep) in se.endpoints.iter().enumerate() {
        check_endpoint(
            cx,
            &format!("spec.endpoints[{i}]"),
            se,
            ep,
            &port_names,
            resolution,
        );
    }
    if let Some(sel) = &se.workload_selector {
        util::selector(cx, "spec.workloadSelector.labels", &sel.labels);
    }
}

fn check_hosts(cx: &mut Ctx<'_>, se: &ServiceEntry, resolution: Resolution) {
    if se.hosts.is_empty() {
        cx.err("spec.hosts", "at least one host is required");
    }
    let mut seen = BTreeSet::new();
    for (i, h) in se.hosts.iter().enumerate() {
        let path = format!("spec.hosts[{i}]");
        if h == "*" {
            cx.err(&path, "host \"*\" is not allowed in a ServiceEntry");
        } else {
            cx.check(&path, util::wildcard_domain(h));
        }
        // With DNS resolution and no endpoints the hosts themselves are resolved.
        if h.starts_with('*') && resolution == Resolution::Dns && se.endpoints.is_empty() {
            cx.err(
                &path,
                format!(
                    "wildcard host {h:?} cannot be resolved with DNS resolution and no endpoints"
                ),
            );
        }
        if !seen.insert(h.to_ascii_lowercase()) {
            cx.err(&path, format!("duplicate host {h:?}"));
        }
    }
}

fn check_endpoint(
    cx: &mut Ctx<'_>,
    path: &str,
    se: &ServiceEntry,
    ep: &WorkloadEntry,
    port_names: &BTreeSet<&str>,
    resolution: Resolution,
) {
    check_workload_entry(cx, path, ep);
    for name in ep.ports.keys() {
        if !port_names.contains(name.as_str()) {
            cx.err(
                &format!("{path}.ports.{name}"),
                format!("endpoint port {name:?} is not a port name of the ServiceEntry"),
            );
        }
    }
    let Some(addr) = ep.address.as_deref() else {
        return;
    };
    let unix = addr.starts_with("unix://");
    let dns = matches!(resolution, Resolution::Dns | Resolution::DnsRoundRobin);
    if !unix && !dns && !util::is_ip(addr) {
        cx.err(
            &format!("{path}.address"),
            format!("endpoint address {addr:?} must be an IP address unless resolution is DNS"),
        );
    }
    if unix && se.ports.len() != 1 {
        cx.err(
            &format!("{path}.address"),
            "a unix:// endpoint requires exactly one ServiceEntry port",
        );
    }
}

fn check_ports<'a>(cx: &mut Ctx<'_>, se: &'a ServiceEntry) -> BTreeSet<&'a str> {
    let (mut names, mut numbers) = (BTreeSet::new(), BTreeSet::new());
    for (i, p) in se.ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        let n = p.number.unwrap_or(0);
        cx.check(&format!("{path}.number"), util::port(n.into()));
        if !numbers.insert(n) {
            cx.err(
                &format!("{path}.number"),
                format!("duplicate port number {n}"),
            );
        }
        match p.name.as_deref() {
            None | Some("") => cx.err(&format!("{path}.name"), "port name is required"),
            Some(name) if !crate::validate::is_dns1123_label(name) => cx.err(
                &format!("{path}.name"),
                format!("port name {name:?} must be a DNS label"),
            ),
            Some(name) if !names.insert(name) => cx.err(
                &format!("{path}.name"),
                format!("duplicate port name {name:?}"),
            ),
            Some(_) => {}
        }
        if let Some(proto) = &p.protocol {
            cx.check(&format!("{path}.protocol"), util::protocol(proto));
        }
        if let Some(t) = p.target_port {
            cx.check(&format!("{path}.targetPort"), util::port(t.into()));
        }
    }
    names
}

fn check_resolution(cx: &mut Ctx<'_>, se: &ServiceEntry, resolution: Resolution) {
    if !se.endpoints.is_empty() && se.workload_selector.is_some() {
        cx.err(
            "spec.workloadSelector",
            "only one of endpoints or workloadSelector may be set",
        );
    }
    match resolution {
        Resolution::None if !se.endpoints.is_empty() => {
            cx.err(
                "spec.endpoints",
                "endpoints must not be set with resolution NONE",
            );
        }
        Resolution::DnsRoundRobin if se.endpoints.len() > 1 => {
            cx.err(
                "spec.endpoints",
                "resolution DNS_ROUND_ROBIN allows at most one endpoint",
            );
        }
        _ => {}
    }
}

/// A WorkloadEntry (the kind's spec, or a ServiceEntry endpoint).
pub fn check_workload_entry(cx: &mut Ctx<'_>, path: &str, we: &WorkloadEntry) {
    match we.address.as_deref() {
        None | Some("") if we.network.is_none() && path == "spec" => {
            cx.err(
                &format!("{path}.address"),
                "address is required unless network is set",
            );
        }
        None | Some("") => {}
        Some(a) if a.starts_with("unix://") => {
            if !we.ports.is_empty() {
                cx.err(
                    &format!("{path}.ports"),
                    "a unix:// address cannot have ports",
                );
            }
            if a.len() == "unix://".len() {
                cx.err(&format!("{path}.address"), "unix:// address needs a path");
            }
        }
        Some(a) if util::is_ip(a) => {}
        Some(a) => cx.check(&format!("{path}.address"), util::fqdn(a)),
    }
    for (name, port) in &we.ports {
        cx.check(&format!("{path}.ports.{name}"), util::port((*port).into()));
    }
    util::labels(cx, &format!("{path}.labels"), &we.labels);
    if let Some(sa) = we.service_account.as_deref()
        && !crate::validate::is_dns1123_subdomain(sa)
    {
        cx.err(
            &format!("{path}.serviceAccount"),
            format!("invalid service account name {sa:?}"),
        );
    }
}

pub fn check_workload_group(cx: &mut Ctx<'_>, wg: &WorkloadGroup) {
    if let Some(meta) = &wg.metadata {
        util::labels(cx, "spec.metadata.labels", &meta.labels);
    }
    match &wg.template {
        None => cx.err("spec.template", "template is required"),
        Some(t) => check_workload_entry(cx, "spec.template", t),
    }
    let Some(p) = &wg.probe else { return };
    let kinds = [
        p.http_get.is_some(),
        p.tcp_socket.is_some(),
        p.exec.is_some(),
        p.grpc.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        cx.err(
            "spec.probe",
            "exactly one of httpGet, tcpSocket, exec or grpc must be set",
        );
    }
    if let Some(h) = &p.http_get {
        cx.check(
            "spec.probe.httpGet.port",
            util::port(h.port.unwrap_or(0).into()),
        );
    }
    if let Some(t) = &p.tcp_socket {
        cx.check(
            "spec.probe.tcpSocket.port",
            util::port(t.port.unwrap_or(0).into()),
        );
    }
    if let Some(g) = &p.grpc {
        cx.check(
            "spec.probe.grpc.port",
            util::port(g.port.unwrap_or(0).into()),
        );
    }
    if let Some(e) = &p.exec
        && e.command.is_empty()
    {
        cx.err("spec.probe.exec.command", "command must not be empty");
    }
    for (field, v) in [
        ("initialDelaySeconds", p.initial_delay_seconds),
        ("timeoutSeconds", p.timeout_seconds),
        ("periodSeconds", p.period_seconds),
        ("successThreshold", p.success_threshold),
        ("failureThreshold", p.failure_threshold),
    ] {
        if let Some(v) = v
            && v < 0
        {
            cx.err(
                &format!("spec.probe.{field}"),
                format!("{v} must not be negative"),
            );
        }
    }
}
