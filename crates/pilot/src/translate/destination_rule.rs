//! Which DestinationRule applies to a host for a client proxy, and the effective traffic
//! policy of one cluster (istio-api.md §4.2 lookup and merge, §4.3 port-level and subset rules).

use std::collections::BTreeMap;
use std::sync::Arc;

use plexus_api::Object;
use plexus_api::kinds::{
    self, ClientTlsSettings, ConnectionPoolSettings, LoadBalancerSettings, OutlierDetection,
};
use plexus_model::host::{self, DEFAULT_DOMAIN_SUFFIX, exported_to, fqdn};
use plexus_model::{Config, selects};

use super::Ctx;

/// The merged DestinationRule for one host.
#[derive(Clone, Debug)]
pub(crate) struct Rule {
    /// The oldest DR of the merge: its top-level policy is the one used.
    pub object: Arc<Object>,
    pub policy: Option<kinds::TrafficPolicy>,
    pub subsets: Vec<Subset>,
}

#[derive(Clone, Debug)]
pub(crate) struct Subset {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub policy: Option<kinds::TrafficPolicy>,
}

/// The settings one cluster uses after port-level and subset overrides.
#[derive(Clone, Debug, Default)]
pub(crate) struct Policy {
    pub load_balancer: Option<LoadBalancerSettings>,
    pub connection_pool: Option<ConnectionPoolSettings>,
    pub outlier_detection: Option<OutlierDetection>,
    pub tls: Option<ClientTlsSettings>,
    /// The rest of the top-level policy (checked for unsupported fields).
    pub proxy_protocol: bool,
    pub tunnel: bool,
    pub retry_budget: bool,
}

impl Rule {
    pub fn subset(&self, name: &str) -> Option<&Subset> {
        self.subsets.iter().find(|s| s.name == name)
    }

    /// The policy of cluster (port, subset).
    pub fn policy(&self, port: u16, subset: Option<&Subset>) -> Policy {
        let mut p = apply(Policy::default(), self.policy.as_ref(), port);
        if let Some(s) = subset {
            p = apply(p, s.policy.as_ref(), port);
        }
        p
    }
}

/// Field-by-field override of whole blocks, then the port-level entry for `port` replaces the
/// four port-level blocks (omitted ones fall back to defaults, not to the top level).
fn apply(mut base: Policy, tp: Option<&kinds::TrafficPolicy>, port: u16) -> Policy {
    let Some(tp) = tp else {
        return base;
    };
    if tp.load_balancer.is_some() {
        base.load_balancer = tp.load_balancer.clone();
    }
    if tp.connection_pool.is_some() {
        base.connection_pool = tp.connection_pool.clone();
    }
    if tp.outlier_detection.is_some() {
        base.outlier_detection = tp.outlier_detection.clone();
    }
    if tp.tls.is_some() {
        base.tls = tp.tls.clone();
    }
    base.proxy_protocol |= tp.proxy_protocol.is_some();
    base.tunnel |= tp.tunnel.is_some();
    base.retry_budget |= tp.retry_budget.is_some();
    let level = tp
        .port_level_settings
        .iter()
        .find(|p| p.port.as_ref().and_then(|s| s.number) == Some(u32::from(port)));
    if let Some(pl) = level {
        base.load_balancer = pl.load_balancer.clone();
        base.connection_pool = pl.connection_pool.clone();
        base.outlier_detection = pl.outlier_detection.clone();
        base.tls = pl.tls.clone();
    }
    base
}

/// The DestinationRule for `hostname` (a service of namespace `service_ns`) as seen by the
/// proxy: its own namespace, then the service's, then the root namespace.
pub(crate) fn lookup(ctx: &Ctx<'_>, hostname: &str, service_ns: &str) -> Option<Rule> {
    let node_ns = ctx.node.namespace.as_str();
    let root = ctx.snap.mesh.root_namespace.as_str();
    let mut steps = vec![node_ns];
    for ns in [service_ns, root] {
        if !steps.contains(&ns) {
            steps.push(ns);
        }
    }
    steps
        .into_iter()
        .find_map(|ns| lookup_in(ctx, ns, hostname))
}

fn lookup_in(ctx: &Ctx<'_>, ns: &str, hostname: &str) -> Option<Rule> {
    let default = &ctx.snap.mesh.default_destination_rule_export_to;
    let node = ctx.node;
    let candidates: Vec<(String, &Config<kinds::DestinationRule>)> = ctx
        .snap
        .config
        .destination_rules
        .iter()
        .filter(|dr| dr.namespace() == ns)
        .filter(|dr| {
            dr.namespace() == node.namespace
                || exported_to(&dr.spec.export_to, default, dr.namespace(), &node.namespace)
        })
        .filter(|dr| match &dr.spec.workload_selector {
            None => true,
            Some(sel) => {
                dr.namespace() == node.namespace && selects(&sel.match_labels, &node.labels)
            }
        })
        .filter_map(|dr| {
            let h = fqdn(
                dr.spec.host.as_deref()?,
                dr.namespace(),
                DEFAULT_DOMAIN_SUFFIX,
            );
            host::matches(&h, hostname).then_some((h, dr))
        })
        .collect();
    let best = candidates.iter().map(|(h, _)| host::specificity(h)).max()?;
    let mut chosen = candidates
        .into_iter()
        .filter(|(h, _)| host::specificity(h) == best)
        .map(|(_, dr)| dr);
    let first = chosen.next()?;
    let mut rule = Rule {
        object: first.object.clone(),
        policy: first.spec.traffic_policy.clone(),
        subsets: Vec::new(),
    };
    for dr in std::iter::once(first).chain(chosen) {
        for (i, s) in dr.spec.subsets.iter().enumerate() {
            let Some(name) = &s.name else { continue };
            if rule.subset(name).is_some() {
                ctx.warn(&dr.object, &format!("spec.subsets[{i}].name"), format!("subset {name:?} is already defined by an older DestinationRule for this host; ignored"));
                continue;
            }
            rule.subsets.push(Subset {
                name: name.clone(),
                labels: s.labels.clone(),
                policy: s.traffic_policy.clone(),
            });
        }
    }
    Some(rule)
}
