//! `virtualservice.JWTClaimRouteAnalyzer`: routing on `@request.auth.claims.*` only works
//! where a RequestAuthentication validates the token first, i.e. on the gateway workloads the
//! VirtualService is bound to.

use std::collections::BTreeMap;

use super::super::Analyzer;
use super::super::catalogue::JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN;
use super::super::context::{Context, group};
use super::super::istio::{Gateway, RequestAuthentication, VirtualService};
use super::super::k8s;
use super::super::message::Message;
use super::super::selector;
use super::super::util::{self, MESH_GATEWAY};
use super::virtual_services;

/// Header-match prefix that routes on a validated JWT claim.
const JWT_CLAIM_PREFIX: &str = "@request.auth.claims";

pub struct JwtClaimRouteAnalyzer;

impl Analyzer for JwtClaimRouteAnalyzer {
    fn name(&self) -> &'static str {
        "virtualservice.JWTClaimRouteAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        // (namespace, selector labels) of every RequestAuthentication.
        let authns: Vec<(String, BTreeMap<String, String>)> = ctx
            .of(group::SECURITY, "RequestAuthentication")
            .iter()
            .map(|e| {
                let sel = e.spec::<RequestAuthentication>().unwrap_or_default();
                (
                    e.ns.clone(),
                    sel.selector.map(|s| s.match_labels).unwrap_or_default(),
                )
            })
            .collect();
        let root = ctx.root_namespace();
        let covered = |ns: &str, labels: &BTreeMap<String, String>| {
            authns
                .iter()
                .any(|(rns, sel)| (rns == root || rns == ns) && selector::matches(sel, labels))
        };
        for (entry, vs) in virtual_services(ctx) {
            let Some(key) = claim_key(&vs) else { continue };
            for gw_ref in vs.gateways.iter().filter(|g| *g != MESH_GATEWAY) {
                let (ns, name) = util::split_ref(&entry.ns, gw_ref);
                let Some(gw_entry) = ctx.find(group::NETWORKING, "Gateway", ns, name) else {
                    continue; // a missing gateway is virtualservice.GatewayAnalyzer's finding
                };
                let gw = gw_entry.spec::<Gateway>().unwrap_or_default();
                let gw_name = if ns.is_empty() {
                    name.to_string()
                } else {
                    format!("{ns}/{name}")
                };
                let pods = k8s::pods(ctx)
                    .iter()
                    .filter(|p| selector::matches(&gw.selector, p.labels()));
                for p in pods {
                    if !covered(&p.ns, p.labels()) {
                        out.push(Message::new(
                            &JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN,
                            entry,
                            "spec.http",
                            &[key.clone().into(), gw_name.clone().into(), p.name().into()],
                        ));
                    }
                }
            }
        }
    }
}

/// The first header (or withoutHeaders) key that routes on a JWT claim.
fn claim_key(vs: &VirtualService) -> Option<String> {
    for rule in &vs.http {
        for m in &rule.r#match {
            let keys = m.headers.keys().chain(m.without_headers.keys());
            if let Some(k) = keys.into_iter().find(|k| k.starts_with(JWT_CLAIM_PREFIX)) {
                return Some(k.clone());
            }
        }
    }
    None
}
