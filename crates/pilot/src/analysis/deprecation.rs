//! `deprecation.FieldAnalyzer`: fields Istio still accepts but deprecated or ignores.

use super::Analyzer;
use super::catalogue::DEPRECATED;
use super::context::{Context, group};
use super::istio::{Sidecar, VirtualService};
use super::message::Message;

pub static ANALYZERS: &[&dyn Analyzer] = &[&FieldAnalyzer];

pub struct FieldAnalyzer;

fn deprecated(field: &str, use_instead: &str) -> String {
    format!("{field} is deprecated; use {use_instead}")
}

impl Analyzer for FieldAnalyzer {
    fn name(&self) -> &'static str {
        "deprecation.FieldAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for entry in ctx.of(group::NETWORKING, "VirtualService") {
            let Some(vs) = entry.spec::<VirtualService>() else {
                continue;
            };
            for (i, rule) in vs.http.iter().enumerate() {
                if rule.mirror_percent.is_some() || rule.mirror_percent_snake.is_some() {
                    out.push(Message::new(
                        &DEPRECATED,
                        entry,
                        &format!("spec.http[{i}].mirrorPercent"),
                        &[deprecated("HTTPRoute.mirrorPercent", "mirrorPercentage").into()],
                    ));
                }
                let delay = rule.fault.as_ref().and_then(|f| f.delay.as_ref());
                if delay.is_some_and(|d| d.percent.is_some()) {
                    out.push(Message::new(
                        &DEPRECATED,
                        entry,
                        &format!("spec.http[{i}].fault.delay.percent"),
                        &[deprecated("HTTPFaultInjection.Delay.percent", "percentage").into()],
                    ));
                }
            }
        }
        for entry in ctx.of(group::NETWORKING, "Sidecar") {
            let Some(sc) = entry.spec::<Sidecar>() else {
                continue;
            };
            let egress_proxy = sc
                .outbound_traffic_policy
                .as_ref()
                .is_some_and(|p| p.egress_proxy.is_some());
            if egress_proxy {
                out.push(Message::new(
                    &DEPRECATED,
                    entry,
                    "spec.outboundTrafficPolicy.egressProxy",
                    &["OutboundTrafficPolicy.EgressProxy is deprecated and ignored".into()],
                ));
            }
        }
    }
}
