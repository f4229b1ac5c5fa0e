//! `authn.BlockedCIDRsAnalyzer`: RequestAuthentications with `jwksUri` make the control plane
//! fetch URLs chosen by whoever may write those objects; without `BLOCKED_CIDRS_IN_JWKS_URIS`
//! on istiod nothing keeps those fetches off internal networks.

use super::Analyzer;
use super::catalogue::JWKS_URI_FETCH_UNRESTRICTED;
use super::context::{Context, group};
use super::istio::{RequestAuthentication, s};
use super::k8s::DeploymentSpec;
use super::message::{Arg, Message};

pub static ANALYZERS: &[&dyn Analyzer] = &[&BlockedCidrsAnalyzer];

/// istiod's environment variable listing CIDRs JWKS fetches must not reach.
const BLOCKED_CIDRS_ENV: &str = "BLOCKED_CIDRS_IN_JWKS_URIS";

pub struct BlockedCidrsAnalyzer;

impl Analyzer for BlockedCidrsAnalyzer {
    fn name(&self) -> &'static str {
        "authn.BlockedCIDRsAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let fetching: Vec<String> = ctx
            .of(group::SECURITY, "RequestAuthentication")
            .iter()
            .filter(|e| {
                e.spec::<RequestAuthentication>().is_some_and(|ra| {
                    ra.jwt_rules
                        .iter()
                        .any(|r| !s(&r.jwks_uri).is_empty() || !s(&r.jwks_uri_snake).is_empty())
                })
            })
            .map(|e| e.full_name())
            .collect();
        if fetching.is_empty() {
            return;
        }
        let root = ctx.root_namespace();
        for d in ctx.of(group::APPS, "Deployment") {
            let is_istiod = d.ns == root
                && (d.name() == "istiod"
                    || d.labels().get("app").map(String::as_str) == Some("istiod"));
            if !is_istiod {
                continue;
            }
            let Some(spec) = d.spec::<DeploymentSpec>() else {
                continue;
            };
            let configured = spec.template.spec.containers.iter().any(|c| {
                c.env.iter().any(|e| {
                    e.name == BLOCKED_CIDRS_ENV
                        && e.value.as_deref().is_some_and(|v| !v.trim().is_empty())
                })
            });
            if !configured {
                out.push(Message::new(
                    &JWKS_URI_FETCH_UNRESTRICTED,
                    d,
                    "spec.template.spec.containers",
                    &[Arg::Int(fetching.len() as i64), fetching.join(", ").into()],
                ));
            }
        }
    }
}
