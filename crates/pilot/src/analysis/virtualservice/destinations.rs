//! `virtualservice.DestinationHostAnalyzer` and `virtualservice.DestinationRuleAnalyzer`:
//! every destination must name a known host (a Service or ServiceEntry visible from the
//! VirtualService's namespace), a port that host exposes (required when it exposes several),
//! and a subset some DestinationRule defines.

use std::collections::BTreeSet;

use super::super::Analyzer;
use super::super::catalogue::{
    INGRESS_ROUTE_RULES_NOT_AFFECTED, REFERENCED_RESOURCE_NOT_FOUND,
    VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
};
use super::super::context::{Context, Entry, group};
use super::super::istio::{DestinationRule, VirtualService, s};
use super::super::message::{Arg, Message};
use super::super::registry::{self, KnownHost};
use super::super::util;
use super::{
    AnnotatedDestination, host, mirror_destinations, port, route_destinations, subset,
    virtual_services,
};

pub struct DestinationHostAnalyzer;

impl Analyzer for DestinationHostAnalyzer {
    fn name(&self) -> &'static str {
        "virtualservice.DestinationHostAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let hosts = registry::known_hosts(ctx);
        let all: Vec<_> = virtual_services(ctx).collect();
        for (entry, vs) in &all {
            check_hosts(entry, vs, &hosts, out);
            check_ingress_subsets(entry, vs, &all, out);
        }
    }
}

fn check_hosts(
    entry: &Entry<'_>,
    vs: &VirtualService,
    hosts: &[KnownHost],
    out: &mut Vec<Message>,
) {
    for d in route_destinations(vs)
        .into_iter()
        .chain(mirror_destinations(vs))
    {
        let found = registry::lookup_host(hosts, &entry.ns, &vs.export_to, host(&d.dest));
        let Some(found) = found else {
            let reftype = if d.mirror { "mirror host" } else { "host" };
            out.push(Message::new(
                &REFERENCED_RESOURCE_NOT_FOUND,
                entry,
                &d.field,
                &[reftype.into(), host(&d.dest).into()],
            ));
            continue;
        };
        check_port(entry, &d, found, out);
    }
}

fn check_port(
    entry: &Entry<'_>,
    d: &AnnotatedDestination,
    known: &KnownHost,
    out: &mut Vec<Message>,
) {
    match port(&d.dest) {
        None if known.ports.len() > 1 => {
            let ports: Vec<String> = known.ports.iter().map(u32::to_string).collect();
            out.push(Message::new(
                &VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
                entry,
                &d.field,
                &[host(&d.dest).into(), Arg::List(ports)],
            ));
        }
        None => {}
        Some(p) if !known.ports.contains(&p) => out.push(Message::new(
            &REFERENCED_RESOURCE_NOT_FOUND,
            entry,
            &d.field,
            &["host:port".into(), format!("{}:{p}", host(&d.dest)).into()],
        )),
        Some(_) => {}
    }
}

/// A gateway-bound route without a subset, to a host another VirtualService splits by subset:
/// the subsets only apply to sidecar traffic, not to requests arriving at the gateway.
fn check_ingress_subsets(
    entry: &Entry<'_>,
    vs: &VirtualService,
    all: &[(&Entry<'_>, VirtualService)],
    out: &mut Vec<Message>,
) {
    if vs.gateways.is_empty() {
        return;
    }
    for (i, rule) in vs.http.iter().enumerate() {
        for (j, rd) in rule.route.iter().enumerate() {
            let dest = rd.destination.clone().unwrap_or_default();
            if !subset(&dest).is_empty() {
                continue;
            }
            for (other, other_vs) in all {
                for sub in subset_destinations(other_vs) {
                    if sub == host(&dest) {
                        out.push(Message::new(
                            &INGRESS_ROUTE_RULES_NOT_AFFECTED,
                            entry,
                            &format!("spec.http[{i}].route[{j}].destination.host"),
                            &[other.full_name().into(), entry.full_name().into()],
                        ));
                    }
                }
            }
        }
    }
}

/// Hosts of destinations with a subset whose host is also one of the VirtualService's hosts.
fn subset_destinations(vs: &VirtualService) -> Vec<&str> {
    let mut out = Vec::new();
    for rule in &vs.http {
        for rd in &rule.route {
            if let Some(d) = &rd.destination
                && !subset(d).is_empty()
                && vs.hosts.iter().any(|h| h == host(d))
            {
                out.push(host(d));
            }
        }
    }
    out
}

pub struct DestinationRuleAnalyzer;

impl Analyzer for DestinationRuleAnalyzer {
    fn name(&self) -> &'static str {
        "virtualservice.DestinationRuleAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let subsets = defined_subsets(ctx);
        for (entry, vs) in virtual_services(ctx) {
            for d in route_destinations(&vs)
                .into_iter()
                .chain(mirror_destinations(&vs))
            {
                if subset(&d.dest).is_empty() {
                    continue;
                }
                let (ns, name) = util::service_of_host(&entry.ns, host(&d.dest));
                let key = (
                    ns.to_string(),
                    name.to_string(),
                    subset(&d.dest).to_string(),
                );
                if !subsets.contains(&key) {
                    let what = if d.mirror {
                        "mirror+subset in destinationrule"
                    } else {
                        "host+subset in destinationrule"
                    };
                    out.push(Message::new(
                        &REFERENCED_RESOURCE_NOT_FOUND,
                        entry,
                        &d.field,
                        &[
                            what.into(),
                            format!("{}+{}", host(&d.dest), subset(&d.dest)).into(),
                        ],
                    ));
                }
            }
        }
    }
}

/// (namespace, service name, subset) for every subset of every DestinationRule.
fn defined_subsets(ctx: &Context<'_>) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for e in ctx.of(group::NETWORKING, "DestinationRule") {
        let Some(dr) = e.spec::<DestinationRule>() else {
            continue;
        };
        let fqdn = util::to_fqdn(&e.ns, s(&dr.host));
        let (ns, name) = util::service_of_host(&e.ns, &fqdn);
        for sub in &dr.subsets {
            out.insert((ns.to_string(), name.to_string(), s(&sub.name).to_string()));
        }
    }
    out
}
