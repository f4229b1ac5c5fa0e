//! Translation: a [`Snapshot`] plus the [`ProxyNode`] asking for config → Envoy xDS v3
//! resources (listeners, route configurations, clusters, cluster load assignments).
//!
//! Pure and deterministic: the same snapshot and node always give the same resources in the
//! same order. Names follow Istio (DESIGN §4): clusters `outbound|<port>|<subset>|<host>`,
//! `inbound|<port>||`, `BlackHoleCluster`, `PassthroughCluster`; sidecar route configs named by
//! port, gateway route configs `http.<port>`; listeners `<ip>_<port>`, `virtualOutbound`,
//! `virtualInbound`. Config that asks for something not translated yields a warning naming the
//! object and field (`Generated::warnings`), never silence. See docs/translation.md.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use plexus_api::{Diagnostic, Level, Object, Subject};
use plexus_model::{NodeKind, ProxyNode, Service, Snapshot};

mod affects;
mod cluster;
mod delegate;
mod destination_rule;
pub mod dump;
mod endpoints;
mod gateway;
mod gateway_tls;
pub use gateway_tls::{CA_SUFFIX, KUBERNETES_SECRET_PREFIX, sds_resource_name};
mod http_route;
mod inbound;
mod listener;
mod pb;
mod policy;
mod route_action;
mod route_match;
mod scope;
mod tcp;
mod virtual_host;

pub use affects::{Change, affects};
pub use http_route::grpc_code;
pub use route_action::{DEFAULT_RETRY_ATTEMPTS, DEFAULT_RETRY_ON, retry_policy};

/// Port of the capture listener for outbound traffic (REDIRECT mode).
pub const VIRTUAL_OUTBOUND_PORT: u16 = 15001;
/// Port of the capture listener for inbound traffic (REDIRECT mode).
pub const VIRTUAL_INBOUND_PORT: u16 = 15006;
pub const BLACKHOLE_CLUSTER: &str = "BlackHoleCluster";
pub const PASSTHROUGH_CLUSTER: &str = "PassthroughCluster";
pub const INBOUND_PASSTHROUGH_CLUSTER: &str = "InboundPassthroughCluster";
/// Route configuration of the HTTP_PROXY listener (interception NONE), as Istio names it.
pub const HTTP_PROXY_ROUTE: &str = "http_proxy";

/// The xDS resources for one proxy, plus warnings about config that could not be translated.
#[derive(Clone, Debug, Default)]
pub struct Generated {
    pub listeners: Vec<Listener>,
    pub routes: Vec<RouteConfiguration>,
    pub clusters: Vec<Cluster>,
    pub endpoints: Vec<ClusterLoadAssignment>,
    /// Unsupported or inapplicable config, each naming the object and field. Sorted, deduplicated.
    pub warnings: Vec<Diagnostic>,
}

/// Translate everything `node` needs from `snapshot`.
pub fn generate(snapshot: &Snapshot, node: &ProxyNode) -> Generated {
    let ctx = Ctx::new(snapshot, node);
    let mut out = Generated::default();
    let (clusters, eds) = cluster::build(&ctx);
    out.clusters = clusters;
    out.endpoints = endpoints::build(&ctx, &eds);
    match node.kind {
        NodeKind::Sidecar => {
            let (listeners, routes) = listener::sidecar(&ctx);
            out.listeners = listeners;
            out.routes = routes;
        }
        NodeKind::Router => {
            let (listeners, routes) = gateway::build(&ctx);
            out.listeners = listeners;
            out.routes = routes;
        }
    }
    untranslated_kinds(&ctx);
    if snapshot.mesh.outbound_egress_proxy && node.kind == NodeKind::Sidecar {
        ctx.warn_node("MeshConfig outboundTrafficPolicy.egressProxy is not translated yet");
    }
    out.warnings = ctx.into_warnings();
    out
}

/// Kinds Plexus does not translate yet: say so for every such object that could apply to this
/// proxy (its namespace or the root namespace), instead of ignoring it.
fn untranslated_kinds(ctx: &Ctx<'_>) {
    let c = &ctx.snap.config;
    let root = ctx.snap.mesh.root_namespace.as_str();
    let objects = c
        .peer_authentications
        .iter()
        .map(|x| &x.object)
        .chain(c.request_authentications.iter().map(|x| &x.object))
        .chain(c.authorization_policies.iter().map(|x| &x.object))
        .chain(c.envoy_filters.iter().map(|x| &x.object))
        .chain(c.telemetries.iter().map(|x| &x.object))
        .chain(c.others.iter());
    for o in objects {
        let ns = o.namespace_or_default();
        if ns == ctx.node.namespace || ns == root {
            ctx.warn(
                o,
                "spec",
                format!(
                    "{} is not translated yet: it has no effect on this proxy",
                    o.kind
                ),
            );
        }
    }
}

/// Only the cluster load assignments (for endpoint-only pushes): the same as
/// `generate(..).endpoints`, without building listeners and routes.
pub fn generate_endpoints(
    snapshot: &Snapshot,
    node: &ProxyNode,
) -> (Vec<ClusterLoadAssignment>, Vec<Diagnostic>) {
    let ctx = Ctx::new(snapshot, node);
    let (_, eds) = cluster::build(&ctx);
    let cla = endpoints::build(&ctx, &eds);
    (cla, ctx.into_warnings())
}

/// Everything one translation reads, and the warnings it collects.
pub(crate) struct Ctx<'a> {
    pub snap: &'a Snapshot,
    pub node: &'a ProxyNode,
    pub scope: scope::Scope<'a>,
    /// DestinationRule lookups by (host, service namespace).
    pub(crate) rules: RefCell<HashMap<(String, String), Option<destination_rule::Rule>>>,
    warnings: RefCell<Vec<Diagnostic>>,
}

impl<'a> Ctx<'a> {
    fn new(snap: &'a Snapshot, node: &'a ProxyNode) -> Ctx<'a> {
        let warnings = RefCell::new(Vec::new());
        let scope = scope::Scope::new(snap, node, &warnings);
        Ctx {
            snap,
            node,
            scope,
            rules: RefCell::new(HashMap::new()),
            warnings,
        }
    }

    /// A warning about a field of a config object.
    pub fn warn(&self, obj: &Object, field: &str, msg: impl Into<String>) {
        self.warnings
            .borrow_mut()
            .push(obj.diag(Level::Warning, field, msg));
    }

    /// A warning about this proxy's own setup (no config object to blame).
    pub fn warn_node(&self, msg: impl Into<String>) {
        self.warnings.borrow_mut().push(Diagnostic {
            path: Arc::from(format!("<proxy {}>", self.node.id)),
            pos: Default::default(),
            level: Level::Warning,
            subject: None,
            message: msg.into(),
        });
    }

    /// A warning about a registry service (no file position).
    pub fn warn_service(&self, svc: &Service, msg: impl Into<String>) {
        self.warnings
            .borrow_mut()
            .push(service_diag(svc, msg.into()));
    }

    fn into_warnings(self) -> Vec<Diagnostic> {
        let mut w = self.warnings.into_inner();
        w.sort();
        w.dedup();
        w
    }
}

pub(crate) fn service_diag(svc: &Service, message: String) -> Diagnostic {
    Diagnostic {
        path: Arc::from("<registry>"),
        pos: Default::default(),
        level: Level::Warning,
        subject: Some(Subject {
            kind: svc.source.kind.to_string(),
            namespace: svc.source.namespace.clone(),
            name: svc.source.name.clone(),
        }),
        message,
    }
}

/// `outbound|<port>|<subset>|<host>`.
pub fn outbound_cluster_name(port: u16, subset: &str, host: &str) -> String {
    format!("outbound|{port}|{subset}|{host}")
}

/// `inbound|<port>||`.
pub fn inbound_cluster_name(port: u16) -> String {
    format!("inbound|{port}||")
}

/// `<ip>_<port>`.
pub fn listener_name(ip: &str, port: u16) -> String {
    format!("{ip}_{port}")
}
