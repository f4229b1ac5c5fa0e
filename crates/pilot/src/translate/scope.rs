//! What a proxy sees: the Sidecar resource that applies to it, the services and
//! VirtualServices visible to its namespace (`exportTo`, Sidecar `egress.hosts`), and which
//! VirtualService owns each host for sidecars (istio-api.md §2, §3.2, §7).

use std::cell::RefCell;
use std::collections::BTreeSet;

use plexus_api::kinds::{self, CaptureMode, OutboundTrafficPolicyMode};
use plexus_api::{Diagnostic, Level};
use plexus_model::host::{self, DEFAULT_DOMAIN_SUFFIX, exported_to, fqdn};
use plexus_model::{Config, NodeKind, OutboundMode, ProxyNode, Service, Snapshot, selects};

pub(crate) struct Scope<'a> {
    /// Indices of visible services, one per hostname, in registry order.
    pub services: Vec<usize>,
    pub outbound_mode: OutboundMode,
    /// Mesh-bound VirtualServices visible to the proxy, in Istio's precedence order.
    pub mesh_virtual_services: Vec<&'a Config<kinds::VirtualService>>,
    /// `(namespace part, host pattern)` of the Sidecar's egress hosts; empty: no restriction.
    egress: Vec<(String, String)>,
}

impl<'a> Scope<'a> {
    pub fn new(
        snap: &'a Snapshot,
        node: &ProxyNode,
        warnings: &RefCell<Vec<Diagnostic>>,
    ) -> Scope<'a> {
        let sidecar = match node.kind {
            NodeKind::Sidecar => pick_sidecar(snap, node),
            NodeKind::Router => None,
        };
        let mut outbound_mode = snap.mesh.outbound_traffic_policy;
        let mut egress = Vec::new();
        if let Some(sc) = sidecar {
            check_sidecar(sc, warnings);
            if let Some(p) = &sc.spec.outbound_traffic_policy {
                outbound_mode = match p.mode {
                    Some(OutboundTrafficPolicyMode::RegistryOnly) => OutboundMode::RegistryOnly,
                    Some(OutboundTrafficPolicyMode::AllowAny) => OutboundMode::AllowAny,
                    None => outbound_mode,
                };
            }
            for l in &sc.spec.egress {
                for h in &l.hosts {
                    let (ns, host) = h.split_once('/').unwrap_or(("*", h));
                    let ns = if ns == "." { sc.namespace() } else { ns };
                    egress.push((ns.to_string(), host.to_string()));
                }
            }
        }
        let mut scope = Scope {
            services: Vec::new(),
            outbound_mode,
            mesh_virtual_services: Vec::new(),
            egress,
        };
        scope.services = scope.visible_services(snap, node);
        scope.mesh_virtual_services = scope.mesh_vs(snap, node);
        scope
    }

    /// Whether the Sidecar's egress hosts import `hostname` from namespace `ns`.
    pub fn egress_allows(&self, ns: &str, hostname: &str) -> bool {
        if self.egress.is_empty() {
            return true;
        }
        self.egress.iter().any(|(ens, pattern)| {
            let ns_ok = ens == "*" || ens == ns;
            ns_ok && (pattern == "*" || host::matches(pattern, hostname))
        })
    }

    fn visible_services(&self, snap: &Snapshot, node: &ProxyNode) -> Vec<usize> {
        let default = &snap.mesh.default_service_export_to;
        let mut chosen: Vec<usize> = Vec::new();
        let mut seen = BTreeSet::new();
        let candidates = snap.registry.services.iter().enumerate().filter(|(_, s)| {
            exported_to(&s.export_to, default, &s.namespace, &node.namespace)
                && self.egress_allows(&s.namespace, &s.hostname)
        });
        // Kubernetes services first (a ServiceEntry for the same host only decorates it), then
        // the proxy's own namespace.
        let mut ranked: Vec<(usize, &Service)> = candidates.collect();
        ranked.sort_by_key(|(i, s)| {
            (
                s.source.kind != "Service",
                s.namespace != node.namespace,
                *i,
            )
        });
        for (i, s) in ranked {
            if seen.insert(s.hostname.to_ascii_lowercase()) {
                chosen.push(i);
            }
        }
        chosen.sort_unstable();
        chosen
    }

    fn mesh_vs(
        &self,
        snap: &'a Snapshot,
        node: &ProxyNode,
    ) -> Vec<&'a Config<kinds::VirtualService>> {
        let default = &snap.mesh.default_virtual_service_export_to;
        let mut own = Vec::new();
        let mut others = Vec::new();
        for vs in &snap.config.virtual_services {
            if !binds_mesh(&vs.spec) || vs.spec.hosts.is_empty() {
                continue;
            }
            if !exported_to(&vs.spec.export_to, default, vs.namespace(), &node.namespace) {
                continue;
            }
            let imported = vs.spec.hosts.iter().any(|h| {
                self.egress_allows(
                    vs.namespace(),
                    &fqdn(h, vs.namespace(), DEFAULT_DOMAIN_SUFFIX),
                )
            });
            if !imported {
                continue;
            }
            if vs.namespace() == node.namespace {
                own.push(vs);
            } else {
                others.push(vs);
            }
        }
        own.extend(others);
        own
    }

    /// The VirtualService that owns `hostname` for this sidecar: the most specific host match,
    /// earlier VirtualServices winning ties (later duplicates are dropped, as Istio does).
    pub fn virtual_service_for(&self, hostname: &str) -> Option<&'a Config<kinds::VirtualService>> {
        let mut best: Option<((bool, usize), &'a Config<kinds::VirtualService>)> = None;
        for vs in &self.mesh_virtual_services {
            for h in &vs.spec.hosts {
                let pattern = fqdn(h, vs.namespace(), DEFAULT_DOMAIN_SUFFIX);
                if !host::matches(&pattern, hostname) {
                    continue;
                }
                let rank = host::specificity(&pattern);
                if best.as_ref().is_none_or(|(r, _)| rank > *r) {
                    best = Some((rank, vs));
                }
            }
        }
        best.map(|(_, vs)| vs)
    }
}

/// `gateways` empty, or listing `mesh` (top level or in any match block).
pub(crate) fn binds_mesh(vs: &kinds::VirtualService) -> bool {
    if vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh") {
        return true;
    }
    vs.http
        .iter()
        .flat_map(|r| &r.r#match)
        .any(|m| m.gateways.iter().any(|g| g == "mesh"))
}

/// Selecting Sidecar in the proxy's namespace, else its namespace default, else the root
/// namespace default (oldest first at each step).
fn pick_sidecar<'a>(snap: &'a Snapshot, node: &ProxyNode) -> Option<&'a Config<kinds::Sidecar>> {
    let sidecars = &snap.config.sidecars;
    let selecting = sidecars.iter().find(|s| {
        s.namespace() == node.namespace
            && s.spec
                .workload_selector
                .as_ref()
                .is_some_and(|sel| selects(&sel.labels, &node.labels))
    });
    let default_in = |ns: &str| {
        sidecars
            .iter()
            .find(|s| s.namespace() == ns && s.spec.workload_selector.is_none())
    };
    selecting
        .or_else(|| default_in(&node.namespace))
        .or_else(|| default_in(&snap.mesh.root_namespace))
}

fn check_sidecar(sc: &Config<kinds::Sidecar>, warnings: &RefCell<Vec<Diagnostic>>) {
    let warn = |field: String, msg: &str| {
        warnings
            .borrow_mut()
            .push(sc.object.diag(Level::Warning, &field, msg));
    };
    if !sc.spec.ingress.is_empty() {
        warn(
            "spec.ingress".into(),
            "Sidecar ingress listeners are not translated yet; inbound ports come from the registry",
        );
    }
    if sc.spec.inbound_connection_pool.is_some() {
        warn("spec.inboundConnectionPool".into(), "not translated yet");
    }
    if sc
        .spec
        .outbound_traffic_policy
        .as_ref()
        .is_some_and(|p| p.egress_proxy.is_some())
    {
        warn(
            "spec.outboundTrafficPolicy.egressProxy".into(),
            "not translated yet",
        );
    }
    for (i, l) in sc.spec.egress.iter().enumerate() {
        if l.port.is_some() {
            warn(
                format!("spec.egress[{i}].port"),
                "per-port egress listeners are not translated yet; hosts apply to every port",
            );
        }
        if l.bind.is_some() {
            warn(
                format!("spec.egress[{i}].bind"),
                "not translated yet; bound listeners use the proxy's outbound address",
            );
        }
        if matches!(
            l.capture_mode,
            Some(CaptureMode::None | CaptureMode::Iptables)
        ) {
            warn(
                format!("spec.egress[{i}].captureMode"),
                "capture mode comes from the proxy's INTERCEPTION_MODE, not the Sidecar",
            );
        }
    }
}
