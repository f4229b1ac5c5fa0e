//! What a proxy sees: the Sidecar resource that applies to it, the services and
//! VirtualServices visible to its namespace (`exportTo`, Sidecar `egress.hosts`), its egress
//! listeners (per-port host scoping, `bind`, `captureMode`) and which VirtualService owns each
//! host on each listener (istio-api.md §2, §3.2, §7).

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use plexus_api::kinds::{self, CaptureMode, OutboundTrafficPolicyMode};
use plexus_api::{Diagnostic, Level};
use plexus_model::host::{self, DEFAULT_DOMAIN_SUFFIX, exported_to, fqdn};
use plexus_model::{
    Config, Interception, NodeKind, OutboundMode, Protocol, ProxyNode, Service, Snapshot, selects,
};

pub(crate) struct Scope<'a> {
    /// The Sidecar resource that applies to the proxy, if any.
    pub sidecar: Option<&'a Config<kinds::Sidecar>>,
    /// Indices of visible services (imported by any egress listener), one per hostname, in
    /// registry order. Clusters are built for all of them.
    pub services: Vec<usize>,
    pub outbound_mode: OutboundMode,
    /// Mesh-bound VirtualServices visible to the proxy, in Istio's precedence order.
    pub mesh_virtual_services: Vec<&'a Config<kinds::VirtualService>>,
    /// The egress listeners that get outbound listeners, in Sidecar order; the catch-all
    /// (no port) is last. Without a Sidecar (or without `egress`): one unrestricted catch-all.
    pub listeners: Vec<Egress<'a>>,
    /// `(namespace part, host pattern)` of all the Sidecar's egress hosts; empty: no restriction.
    egress: Vec<(String, String)>,
}

/// One Sidecar egress listener: what it imports and where it listens.
pub(crate) struct Egress<'a> {
    /// `port.number`; `None`: the catch-all for every port no other listener names.
    pub port: Option<u16>,
    /// `port.protocol` when set.
    pub protocol: Option<Protocol>,
    pub bind: Option<String>,
    pub capture: Option<CaptureMode>,
    /// Indices of the visible services this listener's hosts import, in registry order.
    pub services: Vec<usize>,
    hosts: Vec<(String, String)>,
    vs: VsIndex<'a>,
}

impl<'a> Egress<'a> {
    fn allows(&self, ns: &str, hostname: &str) -> bool {
        hosts_allow(&self.hosts, ns, hostname)
    }

    /// The VirtualService that owns `hostname` on this listener: the most specific host match
    /// among the VirtualServices its hosts import, earlier ones winning ties.
    pub fn virtual_service_for(&self, hostname: &str) -> Option<&'a Config<kinds::VirtualService>> {
        self.vs.lookup(hostname)
    }
}

/// VirtualServices by host: exact (lower-cased FQDN) hosts → the first VirtualService claiming
/// them (later duplicates are dropped, as Istio does), and wildcard hosts in precedence order.
#[derive(Default)]
struct VsIndex<'a> {
    exact: HashMap<String, &'a Config<kinds::VirtualService>>,
    wildcard: Vec<(String, &'a Config<kinds::VirtualService>)>,
}

impl<'a> VsIndex<'a> {
    fn build(vss: impl IntoIterator<Item = &'a Config<kinds::VirtualService>>) -> VsIndex<'a> {
        let mut idx = VsIndex::default();
        for vs in vss {
            for h in &vs.spec.hosts {
                let pattern = fqdn(h, vs.namespace(), DEFAULT_DOMAIN_SUFFIX);
                if pattern.starts_with('*') {
                    idx.wildcard.push((pattern, vs));
                } else {
                    idx.exact.entry(pattern.to_ascii_lowercase()).or_insert(vs);
                }
            }
        }
        idx
    }

    fn lookup(&self, hostname: &str) -> Option<&'a Config<kinds::VirtualService>> {
        // An exact host beats every wildcard (O(1)); otherwise the longest matching wildcard.
        if !hostname.starts_with('*')
            && let Some(vs) = self.exact.get(&hostname.to_ascii_lowercase())
        {
            return Some(vs);
        }
        let mut best: Option<(usize, &'a Config<kinds::VirtualService>)> = None;
        for (pattern, vs) in &self.wildcard {
            if host::matches(pattern, hostname) && best.is_none_or(|(len, _)| pattern.len() > len) {
                best = Some((pattern.len(), *vs));
            }
        }
        best.map(|(_, vs)| vs)
    }
}

fn hosts_allow(hosts: &[(String, String)], ns: &str, hostname: &str) -> bool {
    if hosts.is_empty() {
        return true;
    }
    hosts.iter().any(|(ens, pattern)| {
        let ns_ok = ens == "*" || ens == ns;
        ns_ok && (pattern == "*" || host::matches(pattern, hostname))
    })
}

fn parse_hosts(sc: &Config<kinds::Sidecar>, hosts: &[String]) -> Vec<(String, String)> {
    hosts
        .iter()
        .map(|h| {
            let (ns, host) = h.split_once('/').unwrap_or(("*", h));
            let ns = if ns == "." { sc.namespace() } else { ns };
            (ns.to_string(), host.to_string())
        })
        .collect()
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
        let mut listeners = Vec::new();
        if let Some(sc) = sidecar {
            check_sidecar(sc, node, warnings);
            if let Some(p) = &sc.spec.outbound_traffic_policy {
                outbound_mode = match p.mode {
                    Some(OutboundTrafficPolicyMode::RegistryOnly) => OutboundMode::RegistryOnly,
                    Some(OutboundTrafficPolicyMode::AllowAny) => OutboundMode::AllowAny,
                    None => outbound_mode,
                };
            }
            for (i, l) in sc.spec.egress.iter().enumerate() {
                let hosts = parse_hosts(sc, &l.hosts);
                egress.extend(hosts.iter().cloned());
                if let Some(e) = egress_listener(sc, i, l, hosts, warnings) {
                    listeners.push(e);
                }
            }
        }
        if sidecar.is_none_or(|sc| sc.spec.egress.is_empty()) {
            listeners.push(Egress {
                port: None,
                protocol: None,
                bind: None,
                capture: None,
                services: Vec::new(),
                hosts: Vec::new(),
                vs: VsIndex::default(),
            });
        }
        let mut scope = Scope {
            sidecar,
            services: Vec::new(),
            outbound_mode,
            mesh_virtual_services: Vec::new(),
            listeners: Vec::new(),
            egress,
        };
        scope.services = scope.visible_services(snap, node);
        scope.mesh_virtual_services = scope.mesh_vs(snap, node);
        for e in &mut listeners {
            e.services = scope
                .services
                .iter()
                .copied()
                .filter(|&i| {
                    let s = &snap.registry.services[i];
                    e.allows(&s.namespace, &s.hostname)
                })
                .collect();
            let imported = scope.mesh_virtual_services.iter().copied().filter(|vs| {
                vs.spec.hosts.iter().any(|h| {
                    e.allows(
                        vs.namespace(),
                        &fqdn(h, vs.namespace(), DEFAULT_DOMAIN_SUFFIX),
                    )
                })
            });
            e.vs = VsIndex::build(imported);
        }
        scope.listeners = listeners;
        scope
    }

    /// Whether the Sidecar's egress hosts (any listener) import `hostname` from namespace `ns`.
    pub fn egress_allows(&self, ns: &str, hostname: &str) -> bool {
        hosts_allow(&self.egress, ns, hostname)
    }

    /// The listener whose hosts make up route configuration `<port>` (Istio names sidecar route
    /// configurations by port only): the first listener naming `port`, else the catch-all.
    pub fn listener_for_port(&self, port: u16) -> Option<&Egress<'a>> {
        self.listeners
            .iter()
            .find(|e| e.port == Some(port))
            .or_else(|| self.catch_all())
    }

    /// The egress listener without a port, if any.
    pub fn catch_all(&self) -> Option<&Egress<'a>> {
        self.listeners.iter().find(|e| e.port.is_none())
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

/// The listener for `spec.egress[i]`, or `None` (with a warning) when it cannot be translated.
fn egress_listener<'a>(
    sc: &Config<kinds::Sidecar>,
    i: usize,
    l: &kinds::IstioEgressListener,
    hosts: Vec<(String, String)>,
    warnings: &RefCell<Vec<Diagnostic>>,
) -> Option<Egress<'a>> {
    let warn = |field: &str, msg: &str| {
        let path = format!("spec.egress[{i}].{field}");
        warnings.borrow_mut().push(
            sc.object
                .diag(Level::Warning, &path, format!("{path}: {msg}")),
        );
    };
    if l.bind.as_deref().is_some_and(|b| b.starts_with("unix://")) {
        warn(
            "bind",
            "unix domain socket listeners are not translated yet: this egress listener gets no listener (its hosts still get clusters)",
        );
        return None;
    }
    let port = match &l.port {
        None => None,
        Some(p) => match p.number.and_then(|n| u16::try_from(n).ok()) {
            Some(n) if n != 0 => Some(n),
            _ => {
                warn(
                    "port.number",
                    "port 0 (unix domain sockets) is not translated yet: this egress listener gets no listener",
                );
                return None;
            }
        },
    };
    Some(Egress {
        port,
        protocol: l
            .port
            .as_ref()
            .and_then(|p| p.protocol.as_deref())
            .and_then(Protocol::parse),
        bind: l.bind.clone().filter(|b| !b.is_empty()),
        capture: l.capture_mode,
        services: Vec::new(),
        hosts,
        vs: VsIndex::default(),
    })
}

fn check_sidecar(
    sc: &Config<kinds::Sidecar>,
    node: &ProxyNode,
    warnings: &RefCell<Vec<Diagnostic>>,
) {
    let warn = |field: String, msg: String| {
        warnings
            .borrow_mut()
            .push(sc.object.diag(Level::Warning, &field, msg));
    };
    if sc.spec.inbound_connection_pool.is_some() {
        warn(
            "spec.inboundConnectionPool".into(),
            "not translated yet".into(),
        );
    }
    if sc
        .spec
        .outbound_traffic_policy
        .as_ref()
        .is_some_and(|p| p.egress_proxy.is_some())
    {
        warn(
            "spec.outboundTrafficPolicy.egressProxy".into(),
            "not translated yet".into(),
        );
    }
    let mut first_with_port: HashMap<u32, usize> = HashMap::new();
    for (i, l) in sc.spec.egress.iter().enumerate() {
        if node.interception == Interception::None && l.capture_mode == Some(CaptureMode::Iptables)
        {
            warn(
                format!("spec.egress[{i}].captureMode"),
                format!(
                    "spec.egress[{i}].captureMode: IPTABLES has no effect: this proxy's INTERCEPTION_MODE is NONE, so its outbound listeners are bound (as in Istio)"
                ),
            );
        }
        let Some(n) = l.port.as_ref().and_then(|p| p.number) else {
            continue;
        };
        // Only HTTP listeners read a route configuration.
        let declared = l.port.as_ref().and_then(|p| p.protocol.as_deref());
        if declared
            .and_then(Protocol::parse)
            .is_some_and(|p| !p.is_http())
        {
            continue;
        }
        match first_with_port.get(&n) {
            Some(first) => warn(
                format!("spec.egress[{i}].port"),
                format!(
                    "spec.egress[{i}].port: route configuration \"{n}\" is built from the hosts of spec.egress[{first}] (Istio names sidecar route configurations by port): HTTP requests on this listener are routed with that listener's hosts"
                ),
            ),
            None => {
                first_with_port.insert(n, i);
            }
        }
    }
}
