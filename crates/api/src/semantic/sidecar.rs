//! Sidecar rules: egress `ns/host` entries, at most one port-less egress listener and it must be
//! last, unique listener ports, ingress `defaultEndpoint` forms and TLS, outbound policy.

use std::collections::BTreeSet;

use super::Ctx;
use super::destination_rule::check_connection_pool;
use super::gateway::check_server_tls;
use super::util;
use super::virtual_service::check_destination;
use crate::kinds::{OutboundTrafficPolicyMode, Sidecar, SidecarPort};

pub fn check(cx: &mut Ctx<'_>, sc: &Sidecar) {
    if sc.egress.is_empty()
        && sc.ingress.is_empty()
        && sc.outbound_traffic_policy.is_none()
        && sc.inbound_connection_pool.is_none()
    {
        cx.err("spec", "empty Sidecar configuration: set egress, ingress, outboundTrafficPolicy or inboundConnectionPool");
    }
    if let Some(sel) = &sc.workload_selector {
        util::selector(cx, "spec.workloadSelector.labels", &sel.labels);
    }
    check_egress(cx, sc);
    let mut ingress_ports = BTreeSet::new();
    for (i, l) in sc.ingress.iter().enumerate() {
        let path = format!("spec.ingress[{i}]");
        match &l.port {
            None => cx.err(&format!("{path}.port"), "port is required"),
            Some(p) => {
                check_port(cx, &format!("{path}.port"), p, false);
                let key = (p.number.unwrap_or(0), l.bind.clone().unwrap_or_default());
                if !ingress_ports.insert(key) {
                    cx.err(
                        &format!("{path}.port"),
                        format!("duplicate ingress port {}", p.number.unwrap_or(0)),
                    );
                }
            }
        }
        if let Some(ep) = l.default_endpoint.as_deref()
            && !ep.is_empty()
        {
            cx.check(&format!("{path}.defaultEndpoint"), default_endpoint(ep));
        }
        check_bind(cx, &path, l.bind.as_deref());
        if let Some(tls) = &l.tls {
            check_server_tls(cx, &format!("{path}.tls"), tls, true);
        }
        if let Some(cp) = &l.connection_pool {
            check_connection_pool(cx, &format!("{path}.connectionPool"), cp);
        }
    }
    if let Some(cp) = &sc.inbound_connection_pool {
        check_connection_pool(cx, "spec.inboundConnectionPool", cp);
    }
    if let Some(otp) = &sc.outbound_traffic_policy
        && let Some(proxy) = &otp.egress_proxy
    {
        if otp.mode != Some(OutboundTrafficPolicyMode::AllowAny) {
            cx.err(
                "spec.outboundTrafficPolicy.egressProxy",
                "egressProxy requires mode ALLOW_ANY",
            );
        }
        check_destination(cx, "spec.outboundTrafficPolicy.egressProxy", proxy);
    }
}

fn check_egress(cx: &mut Ctx<'_>, sc: &Sidecar) {
    let mut portless = 0;
    let mut seen = BTreeSet::new();
    for (i, l) in sc.egress.iter().enumerate() {
        let path = format!("spec.egress[{i}]");
        if l.hosts.is_empty() {
            cx.err(
                &format!("{path}.hosts"),
                "an egress listener must have at least one host",
            );
        }
        for (j, h) in l.hosts.iter().enumerate() {
            cx.check(
                &format!("{path}.hosts[{j}]"),
                util::namespaced_host(h, true),
            );
        }
        check_bind(cx, &path, l.bind.as_deref());
        let unix = l.bind.as_deref().is_some_and(|b| b.starts_with("unix://"));
        match &l.port {
            None => {
                portless += 1;
                if portless > 1 {
                    cx.err(&path, "only one egress listener may omit the port");
                }
                if i + 1 != sc.egress.len() {
                    cx.err(
                        &path,
                        "the egress listener without a port must be the last one",
                    );
                }
            }
            Some(p) => {
                check_port(cx, &format!("{path}.port"), p, unix);
                let key = (p.number.unwrap_or(0), l.bind.clone().unwrap_or_default());
                if !seen.insert(key) {
                    cx.err(
                        &format!("{path}.port"),
                        format!(
                            "duplicate egress listener port {} with the same bind",
                            p.number.unwrap_or(0)
                        ),
                    );
                }
            }
        }
    }
}

fn check_port(cx: &mut Ctx<'_>, path: &str, p: &SidecarPort, unix: bool) {
    let n = i64::from(p.number.unwrap_or(0));
    if !(unix && n == 0) {
        cx.check(&format!("{path}.number"), util::port(n));
    }
    if let Some(proto) = &p.protocol {
        cx.check(&format!("{path}.protocol"), util::protocol(proto));
    }
    if let Some(t) = p.target_port {
        cx.check(&format!("{path}.targetPort"), util::port(t.into()));
    }
}

fn check_bind(cx: &mut Ctx<'_>, path: &str, bind: Option<&str>) {
    if let Some(b) = bind
        && !b.starts_with("unix://")
        && !util::is_ip(b)
    {
        cx.err(
            &format!("{path}.bind"),
            format!("bind {b:?} must be an IP address or unix:// path"),
        );
    }
}

/// `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT`, `[::]:PORT` or `unix://path`.
fn default_endpoint(ep: &str) -> Result<(), String> {
    if let Some(path) = ep.strip_prefix("unix://") {
        return if path.is_empty() {
            Err("unix:// defaultEndpoint needs a path".into())
        } else {
            Ok(())
        };
    }
    let bad = || {
        format!(
            "defaultEndpoint {ep:?} must be 127.0.0.1:PORT, 0.0.0.0:PORT, [::1]:PORT, [::]:PORT or unix://path"
        )
    };
    let (host, port) = ep.rsplit_once(':').ok_or_else(bad)?;
    if !matches!(host, "127.0.0.1" | "0.0.0.0" | "[::1]" | "[::]") {
        return Err(bad());
    }
    let n: i64 = port.parse().map_err(|_| bad())?;
    util::port(n)
}
