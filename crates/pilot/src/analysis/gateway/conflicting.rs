//! `gateway.ConflictingGatewayAnalyzer`: two Gateways that select the same gateway workload
//! (equal selectors, or both selecting one pod) and declare the same port with overlapping
//! hosts compete for one listener; Istio keeps only one of them.

use super::super::Analyzer;
use super::super::catalogue::CONFLICTING_GATEWAYS;
use super::super::context::{Context, Entry};
use super::super::istio::{Gateway, server_port};
use super::super::message::{Arg, Message};
use super::super::{k8s, selector, util};
use super::gateways;

pub struct ConflictingGatewayAnalyzer;

fn strip_ns(host: &str) -> &str {
    host.split_once('/').map_or(host, |(_, h)| h)
}

fn same_workload(ctx: &Context<'_>, a: &Gateway, b: &Gateway) -> bool {
    a.selector == b.selector
        || k8s::pods(ctx).iter().any(|p| {
            selector::matches(&a.selector, p.labels()) && selector::matches(&b.selector, p.labels())
        })
}

/// The first (port, hosts of `b`) where `a` and `b` claim overlapping hosts on one port.
fn shared_listener(a: &Gateway, b: &Gateway) -> Option<(u32, Vec<String>)> {
    for sa in &a.servers {
        let Some(pa) = server_port(sa) else { continue };
        for sb in &b.servers {
            if server_port(sb) != Some(pa) {
                continue;
            }
            let overlap = sa.hosts.iter().any(|ha| {
                sb.hosts
                    .iter()
                    .any(|hb| util::host_matches(strip_ns(ha), strip_ns(hb)))
            });
            if overlap {
                return Some((pa, sb.hosts.clone()));
            }
        }
    }
    None
}

impl Analyzer for ConflictingGatewayAnalyzer {
    fn name(&self) -> &'static str {
        "gateway.ConflictingGatewayAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let all: Vec<(&Entry<'_>, Gateway)> = gateways(ctx).collect();
        for (i, (entry, gw)) in all.iter().enumerate() {
            let mut others = Vec::new();
            let mut first = None;
            for (j, (other, ogw)) in all.iter().enumerate() {
                if i == j || !same_workload(ctx, gw, ogw) {
                    continue;
                }
                if let Some(found) = shared_listener(gw, ogw) {
                    others.push(other.full_name());
                    first.get_or_insert(found);
                }
            }
            if let Some((port, hosts)) = first {
                out.push(Message::new(
                    &CONFLICTING_GATEWAYS,
                    entry,
                    "spec.servers",
                    &[
                        others.join(",").into(),
                        selector::to_string(&gw.selector).into(),
                        port.to_string().into(),
                        Arg::List(hosts),
                    ],
                ));
            }
        }
    }
}
