//! The hosts the mesh knows, as the analyzers see them: every Kubernetes Service
//! (`name.ns.svc.cluster.local`, visible per its `networking.istio.io/exportTo` annotation)
//! and every ServiceEntry host (visible per `exportTo`), with their ports.

use super::context::{Context, group};
use super::istio::ServiceEntry;
use super::k8s::{self, ServiceSpec};
use super::util::{self, EXPORT_TO_ALL, EXPORT_TO_LOCAL};

/// Annotation that limits a Service's visibility to some namespaces.
pub const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

/// One host visible in one scope (a namespace, or `*` for all).
#[derive(Clone, Debug)]
pub struct KnownHost {
    pub scope: String,
    pub fqdn: String,
    pub ports: Vec<u32>,
}

/// Every known host, once per scope it is visible in.
pub fn known_hosts(ctx: &Context<'_>) -> Vec<KnownHost> {
    let mut out = Vec::new();
    for e in ctx.of(group::NETWORKING, "ServiceEntry") {
        let Some(se) = e.spec::<ServiceEntry>() else {
            continue;
        };
        let ports: Vec<u32> = se.ports.iter().filter_map(|p| p.number).collect();
        let scopes = util::export_scopes(&se.export_to, &e.ns);
        for h in &se.hosts {
            for scope in &scopes {
                out.push(KnownHost {
                    scope: scope.clone(),
                    fqdn: util::to_fqdn(&e.ns, h),
                    ports: ports.clone(),
                });
            }
        }
    }
    for e in k8s::services(ctx) {
        let Some(svc) = e.spec::<ServiceSpec>() else {
            continue;
        };
        let ports: Vec<u32> = svc
            .ports
            .iter()
            .filter_map(|p| u32::try_from(p.port).ok())
            .collect();
        for scope in service_scopes(e.annotations().get(EXPORT_TO_ANNOTATION), &e.ns) {
            out.push(KnownHost {
                scope,
                fqdn: util::to_fqdn(&e.ns, e.name()),
                ports: ports.clone(),
            });
        }
    }
    out
}

fn service_scopes(annotation: Option<&String>, own_ns: &str) -> Vec<String> {
    match annotation.map(|a| a.trim()).filter(|a| !a.is_empty()) {
        None => vec![EXPORT_TO_ALL.to_string()],
        Some(a) => a
            .split(',')
            .map(str::trim)
            .map(|s| {
                if s == EXPORT_TO_LOCAL {
                    own_ns.to_string()
                } else {
                    s.to_string()
                }
            })
            .collect(),
    }
}

/// The host a destination in namespace `ns` (with the referring object's `exportTo`) resolves
/// to: exact matches visible everywhere, then in the referring scopes, then wildcard entries.
pub fn lookup_host<'h>(
    hosts: &'h [KnownHost],
    ns: &str,
    export_to: &[String],
    host: &str,
) -> Option<&'h KnownHost> {
    let fqdn = util::to_fqdn(ns, host);
    let exact = |scope: &str| hosts.iter().find(|h| h.scope == scope && h.fqdn == fqdn);
    if let Some(h) = exact(EXPORT_TO_ALL) {
        return Some(h);
    }
    let scopes: Vec<&str> = if export_to.is_empty() {
        vec![ns]
    } else {
        export_to
            .iter()
            .map(|e| if e == EXPORT_TO_LOCAL { ns } else { e.as_str() })
            .collect()
    };
    if let Some(h) = scopes.iter().find_map(|s| exact(s)) {
        return Some(h);
    }
    let bare = host.strip_prefix('*').unwrap_or(host);
    hosts.iter().find(|h| {
        (h.scope == EXPORT_TO_ALL || h.scope == ns)
            && h.fqdn
                .strip_prefix('*')
                .is_some_and(|suffix| bare.ends_with(suffix))
    })
}
