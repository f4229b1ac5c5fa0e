//! ServiceEntry analyzers: TCP (or protocol-less) ports need addresses, since the proxy can only
//! tell such services apart by destination IP; and two visible ServiceEntries must not give one
//! host and port different protocols.

use std::collections::BTreeMap;

use super::Analyzer;
use super::catalogue::{CONFLICTING_SERVICE_ENTRY_PROTOCOL, SERVICE_ENTRY_ADDRESSES_REQUIRED};
use super::context::{Context, Entry, group};
use super::istio::{ServiceEntry, s};
use super::message::{Arg, Message};
use super::util;

pub static ANALYZERS: &[&dyn Analyzer] = &[
    &ProtocolAddressesAnalyzer,
    &ConflictingServiceEntryProtocolAnalyzer,
];

/// Proxy metadata that turns on DNS capture and automatic VIP allocation for ServiceEntries.
const DNS_CAPTURE: &str = "ISTIO_META_DNS_CAPTURE";
const DNS_AUTO_ALLOCATE: &str = "ISTIO_META_DNS_AUTO_ALLOCATE";

fn service_entries<'c, 'a>(ctx: &'c Context<'a>) -> Vec<(&'c Entry<'a>, ServiceEntry)> {
    ctx.of(group::NETWORKING, "ServiceEntry")
        .iter()
        .filter_map(|e| e.spec::<ServiceEntry>().map(|se| (e, se)))
        .collect()
}

/// Addresses the control plane allocated (`status.addresses`).
fn allocated(entry: &Entry<'_>) -> bool {
    entry
        .obj
        .root
        .get("status")
        .and_then(|st| st.get("addresses"))
        .and_then(|a| a.as_seq())
        .is_some_and(|a| !a.is_empty())
}

/// `serviceentry.ProtocolAddressesAnalyzer`.
pub struct ProtocolAddressesAnalyzer;

impl Analyzer for ProtocolAddressesAnalyzer {
    fn name(&self) -> &'static str {
        "serviceentry.ProtocolAddressesAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let auto_allocate =
            ctx.mesh.proxy_flag(DNS_CAPTURE) && ctx.mesh.proxy_flag(DNS_AUTO_ALLOCATE);
        if auto_allocate {
            return;
        }
        for (entry, se) in service_entries(ctx) {
            if !se.addresses.is_empty() || allocated(entry) {
                continue;
            }
            let tcp_port = se.ports.iter().position(|p| {
                let proto = s(&p.protocol);
                proto.is_empty() || proto.eq_ignore_ascii_case("TCP")
            });
            if let Some(i) = tcp_port {
                out.push(Message::new(
                    &SERVICE_ENTRY_ADDRESSES_REQUIRED,
                    entry,
                    &format!("spec.ports[{i}]"),
                    &[],
                ));
            }
        }
    }
}

/// `serviceentry.ConflictingServiceEntryProtocolAnalyzer`.
pub struct ConflictingServiceEntryProtocolAnalyzer;

struct Claim<'c, 'a> {
    entry: &'c Entry<'a>,
    scopes: Vec<String>,
    protocol: String,
}

fn scopes_overlap(a: &[String], b: &[String]) -> bool {
    a.iter()
        .any(|x| util::visible_in(b, x) || x == util::EXPORT_TO_ALL)
}

impl Analyzer for ConflictingServiceEntryProtocolAnalyzer {
    fn name(&self) -> &'static str {
        "serviceentry.ConflictingServiceEntryProtocolAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let all = service_entries(ctx);
        // (fqdn, port) -> claims
        let mut claims: BTreeMap<(String, u32), Vec<Claim<'_, '_>>> = BTreeMap::new();
        for (entry, se) in &all {
            let scopes = util::export_scopes(&se.export_to, &entry.ns);
            for h in &se.hosts {
                for p in &se.ports {
                    let Some(number) = p.number else { continue };
                    claims
                        .entry((util::to_fqdn(&entry.ns, h), number))
                        .or_default()
                        .push(Claim {
                            entry,
                            scopes: scopes.clone(),
                            protocol: s(&p.protocol).to_ascii_uppercase(),
                        });
                }
            }
        }
        let mut reported = std::collections::BTreeSet::new();
        for ((host, port), list) in &claims {
            for (i, a) in list.iter().enumerate() {
                let rivals: Vec<&Claim<'_, '_>> = list
                    .iter()
                    .enumerate()
                    .filter(|(j, b)| {
                        *j != i && b.protocol != a.protocol && scopes_overlap(&a.scopes, &b.scopes)
                    })
                    .map(|(_, b)| b)
                    .collect();
                if rivals.is_empty() || !reported.insert(a.entry.full_name()) {
                    continue;
                }
                let mut names = vec![a.entry.full_name()];
                names.extend(rivals.iter().map(|b| b.entry.full_name()));
                let mut protocols = vec![a.protocol.clone()];
                protocols.extend(rivals.iter().map(|b| b.protocol.clone()));
                out.push(Message::new(
                    &CONFLICTING_SERVICE_ENTRY_PROTOCOL,
                    a.entry,
                    "spec.ports",
                    &[
                        names.join(", ").into(),
                        host.clone().into(),
                        Arg::Int(i64::from(*port)),
                        protocols.join(", ").into(),
                    ],
                ));
            }
        }
    }
}
