//! `gateway.IngressGatewayPortAnalyzer`: a Gateway must select some gateway pods, and each of
//! its server ports should be a port (or target port) of a Service that selects those pods;
//! otherwise the listener exists but no traffic can reach it through the Service.

use std::collections::BTreeSet;

use super::super::Analyzer;
use super::super::catalogue::{GATEWAY_PORT_NOT_DEFINED_ON_SERVICE, REFERENCED_RESOURCE_NOT_FOUND};
use super::super::context::Context;
use super::super::istio::server_port;
use super::super::k8s::{self, ServiceSpec};
use super::super::message::{Arg, Message};
use super::super::selector;
use super::{gateways, selected_pods};

pub struct IngressGatewayPortAnalyzer;

impl Analyzer for IngressGatewayPortAnalyzer {
    fn name(&self) -> &'static str {
        "gateway.IngressGatewayPortAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for (entry, gw) in gateways(ctx) {
            let sel = selector::to_string(&gw.selector);
            let field = "spec.selector";
            let pods = selected_pods(ctx, &gw.selector);
            if pods.is_empty() {
                out.push(Message::new(
                    &REFERENCED_RESOURCE_NOT_FOUND,
                    entry,
                    field,
                    &["selector".into(), sel.into()],
                ));
                continue;
            }
            let mut ports = BTreeSet::new();
            for pod in &pods {
                for svc_entry in k8s::services(ctx).iter().filter(|s| s.ns == pod.ns) {
                    let Some(svc) = svc_entry.spec::<ServiceSpec>() else {
                        continue;
                    };
                    if svc.selector.is_empty() || !selector::matches(&svc.selector, pod.labels()) {
                        continue;
                    }
                    // Kubernetes defaults a Service port's protocol to TCP.
                    for p in svc
                        .ports
                        .iter()
                        .filter(|p| p.protocol.is_empty() || p.protocol == "TCP")
                    {
                        ports.insert(p.port);
                        if let Some(t) = p.target_number() {
                            ports.insert(t);
                        }
                    }
                }
            }
            for (i, server) in gw.servers.iter().enumerate() {
                let Some(port) = server_port(server) else {
                    continue;
                };
                if !ports.contains(&i64::from(port)) {
                    out.push(Message::new(
                        &GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
                        entry,
                        &format!("spec.servers[{i}].port"),
                        &[Arg::Int(i64::from(port)), sel.clone().into()],
                    ));
                }
            }
        }
    }
}
