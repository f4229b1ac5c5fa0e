//! The xDS handler: converts each pushed resource, keeps the last good version of any resource
//! that fails (and NACKs naming it), reconciles bound listeners, and publishes a new `Runtime`.
//! Its state sits behind a mutex so that a timer can start listeners and clusters whose SDS
//! `initial_fetch_timeout` ran out between two pushes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use envoy_types::pb::envoy::config::cluster::v3 as pb_cluster;
use envoy_types::pb::envoy::config::endpoint::v3 as pb_endpoint;
use envoy_types::pb::envoy::config::listener::v3 as pb_listener;
use envoy_types::pb::envoy::config::route::v3 as pb_route;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as pb_tls;
use envoy_types::pb::google::protobuf::Any;
use plexus_xds::client::Handler;
use plexus_xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE};

use crate::cluster::ClusterRuntime;
use crate::config::{
    Cluster, ConfigError, Discovery, Endpoint, FieldError, Listener, ListenerKind, LoadAssignment,
    RouteConfig, RouteSource,
};
use crate::listener::{self, ActiveListener};
use crate::store::{ListenerView, Runtime, Store};
use crate::tls::Secret;

/// The ADS client's handler; the state is shared with the warming timer.
pub struct XdsHandler {
    state: Arc<Mutex<Xds>>,
}

struct Xds {
    store: Arc<Store>,
    listeners: BTreeMap<String, ActiveListener>,
    routes: BTreeMap<String, Arc<RouteConfig>>,
    clusters: BTreeMap<String, Arc<ClusterRuntime>>,
    assignments: HashMap<String, Vec<Endpoint>>,
    seen_cds: bool,
    seen_lds: bool,
    /// SDS secrets and the listeners and clusters warming for them.
    tls: crate::tls::state::TlsState,
    /// This state, for the warming timer (which must not keep it alive).
    me: Weak<Mutex<Xds>>,
    /// The deadline the warming timer is set for, if one is.
    timer: Option<tokio::time::Instant>,
}

impl XdsHandler {
    pub fn new(store: Arc<Store>) -> Self {
        let state = Arc::new_cyclic(|me| {
            Mutex::new(Xds {
                store,
                listeners: BTreeMap::new(),
                routes: BTreeMap::new(),
                clusters: BTreeMap::new(),
                assignments: HashMap::new(),
                seen_cds: false,
                seen_lds: false,
                tls: Default::default(),
                me: me.clone(),
                timer: None,
            })
        });
        XdsHandler { state }
    }

    fn state(&self) -> MutexGuard<'_, Xds> {
        // A panic elsewhere must not stop configuration: the state is consistent between calls.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Xds {
    /// Set the timer for the next `initial_fetch_timeout` unless one fires sooner.
    fn arm_warming_timer(&mut self) {
        let Some(due) = self.tls.next_deadline() else {
            return;
        };
        if self.timer.is_some_and(|t| t <= due) {
            return;
        }
        self.timer = Some(due);
        let me = self.me.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            let Some(state) = me.upgrade() else { return };
            let mut xds = state.lock().unwrap_or_else(|p| p.into_inner());
            if xds.timer == Some(due) {
                xds.timer = None;
            }
            xds.expire_warming();
        });
    }

    /// Start what has waited out its secrets' `initial_fetch_timeout`.
    fn expire_warming(&mut self) {
        let (listeners, clusters) = self.tls.expire(tokio::time::Instant::now());
        for (name, l) in listeners {
            if let Some(e) = self.install_listener(name, l) {
                tracing::warn!(error = %e, "listener could not start");
            }
        }
        for c in clusters {
            self.install_cluster(c.name.clone(), c);
        }
        self.publish();
        self.arm_warming_timer();
    }

    fn publish(&self) {
        let runtime = Runtime {
            routes: self
                .routes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            clusters: self
                .clusters
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        self.store.runtime.store(Arc::new(runtime));
        let views = self
            .listeners
            .iter()
            .map(|(k, l)| {
                (
                    k.clone(),
                    ListenerView {
                        config: l.config.load_full(),
                        bound: l.bound,
                    },
                )
            })
            .collect();
        self.store.listeners.store(Arc::new(views));
        let running: Vec<Arc<Listener>> = self
            .listeners
            .values()
            .map(|l| l.config.load_full())
            .collect();
        let status = self.tls.status(
            running.into_iter(),
            self.clusters.values().map(|c| &c.config),
        );
        self.store.tls.store(Arc::new(status));
        if self.seen_cds && self.seen_lds {
            self.store.ready.store(true, Ordering::Release);
        }
    }

    fn apply_listeners(&mut self, resources: &[Any], removal: Removal<'_>) -> Vec<String> {
        let (converted, mut errors) =
            convert_all::<pb_listener::Listener, Listener>(resources, "Listener", |l| {
                l.name.clone()
            });
        let gone = removal.names(self.listeners.keys(), &converted);
        for name in &gone {
            self.listeners.remove(name);
        }
        for name in removal.names(self.tls.warming_listeners.keys(), &converted) {
            self.tls.warming_listeners.remove(&name);
        }
        // A failed resource keeps its last good version: only successes are merged.
        for (name, cfg) in converted.into_iter().filter_map(|(n, c)| Some((n, c?))) {
            // One waiting for secrets stays out until they arrive; its old version serves.
            if self
                .tls
                .admit_listener(&name, &cfg, tokio::time::Instant::now())
            {
                errors.extend(self.install_listener(name, cfg));
            }
        }
        errors
    }

    fn install_listener(&mut self, name: String, cfg: Listener) -> Option<String> {
        match self.listeners.remove(&name) {
            Some(old) if old.config.load().address == cfg.address => {
                old.config.store(Arc::new(cfg));
                self.listeners.insert(name, old);
                None
            }
            old => {
                // A new address needs a new socket; drop the old one first so the port is free.
                drop(old);
                match listener::start(cfg, self.store.clone()) {
                    Ok(active) => {
                        self.listeners.insert(name, active);
                        None
                    }
                    Err(e) => Some(format!("Listener {name:?}: address: cannot bind: {e}")),
                }
            }
        }
    }

    fn apply_routes(&mut self, resources: &[Any], removal: Removal<'_>) -> Vec<String> {
        let (converted, errors) = convert_all::<pb_route::RouteConfiguration, RouteConfig>(
            resources,
            "RouteConfiguration",
            |r| r.name.clone(),
        );
        for name in removal.names(self.routes.keys(), &converted) {
            self.routes.remove(&name);
        }
        for (name, rc) in converted.into_iter().filter_map(|(n, c)| Some((n, c?))) {
            self.routes.insert(name, Arc::new(rc));
        }
        errors
    }

    fn apply_clusters(&mut self, resources: &[Any], removal: Removal<'_>) -> Vec<String> {
        let (converted, errors) =
            convert_all::<pb_cluster::Cluster, Cluster>(resources, "Cluster", |c| c.name.clone());
        for name in removal.names(self.clusters.keys(), &converted) {
            self.clusters.remove(&name);
        }
        for name in removal.names(self.tls.warming_clusters.keys(), &converted) {
            self.tls.warming_clusters.remove(&name);
        }
        for (name, cfg) in converted.into_iter().filter_map(|(n, c)| Some((n, c?))) {
            // An unchanged cluster keeps its runtime: pools, LB and outlier state survive.
            if self
                .clusters
                .get(&name)
                .is_some_and(|old| old.config == cfg)
            {
                self.tls.warming_clusters.remove(&name);
                continue;
            }
            if self.tls.admit_cluster(&cfg, tokio::time::Instant::now()) {
                self.install_cluster(name, cfg);
            }
        }
        errors
    }

    fn install_cluster(&mut self, name: String, cfg: Cluster) {
        {
            let endpoints = match &cfg.discovery {
                Discovery::Static(eps) => eps.clone(),
                Discovery::Eds(service) => {
                    self.assignments.get(service).cloned().unwrap_or_default()
                }
                Discovery::OriginalDst(_) | Discovery::Dns(_) => Vec::new(),
            };
            let stats = self.store.stats.cluster(&name);
            let runtime = Arc::new(ClusterRuntime::new(cfg, endpoints, stats));
            crate::dns::spawn(&runtime);
            crate::health::spawn(&runtime);
            self.clusters.insert(name, runtime);
        }
    }

    fn apply_secrets(&mut self, resources: &[Any], removal: Removal<'_>) -> Vec<String> {
        let (converted, errors) =
            convert_all::<pb_tls::Secret, Secret>(resources, "Secret", |s| s.name.clone());
        let mut changed = BTreeSet::new();
        for name in removal.names(self.tls.secrets.keys(), &converted) {
            if self.tls.secrets.remove(&name).is_some() {
                changed.insert(name);
            }
        }
        for (name, secret) in converted.into_iter().filter_map(|(n, s)| Some((n, s?))) {
            if self
                .tls
                .secrets
                .get(&name)
                .is_none_or(|old| **old != secret)
            {
                self.tls.secrets.insert(name.clone(), Arc::new(secret));
                changed.insert(name);
            }
        }
        let listeners: Vec<Arc<Listener>> = self
            .listeners
            .values()
            .map(|l| l.config.load_full())
            .collect();
        let (ready_listeners, ready_clusters) = self.tls.rebind(
            &changed,
            listeners.into_iter(),
            self.clusters.values().map(|c| &c.config),
        );
        let mut errors = errors;
        for (name, l) in ready_listeners {
            errors.extend(self.install_listener(name, l));
        }
        for c in ready_clusters {
            self.install_cluster(c.name.clone(), c);
        }
        errors
    }

    fn apply_endpoints(&mut self, resources: &[Any], removal: Removal<'_>) -> Vec<String> {
        let (converted, errors) = convert_all::<pb_endpoint::ClusterLoadAssignment, LoadAssignment>(
            resources,
            "ClusterLoadAssignment",
            |c| c.cluster_name.clone(),
        );
        for name in removal.names(self.assignments.keys(), &converted) {
            self.assignments.remove(&name);
        }
        for (name, la) in converted.into_iter().filter_map(|(n, c)| Some((n, c?))) {
            self.assignments.insert(name, la.endpoints);
        }
        for c in self.clusters.values() {
            if let Discovery::Eds(service) = &c.config.discovery {
                c.set_endpoints(self.assignments.get(service).cloned().unwrap_or_default());
            }
        }
        errors
    }

    fn apply_any(
        &mut self,
        type_url: &str,
        resources: &[Any],
        removal: Removal<'_>,
    ) -> Result<(), String> {
        let errors = match type_url {
            LISTENER_TYPE => {
                self.seen_lds = true;
                self.apply_listeners(resources, removal)
            }
            ROUTE_TYPE => self.apply_routes(resources, removal),
            CLUSTER_TYPE => {
                self.seen_cds = true;
                self.apply_clusters(resources, removal)
            }
            ENDPOINT_TYPE => self.apply_endpoints(resources, removal),
            SECRET_TYPE => self.apply_secrets(resources, removal),
            other => vec![format!("unsupported type {other}")],
        };
        let wanted = self.wanted_secrets();
        self.tls.forget_unwanted(&wanted);
        self.publish();
        self.arm_warming_timer();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// Which resources an update removes: state-of-the-world removes every name it does not
/// carry; delta names them.
#[derive(Clone, Copy)]
enum Removal<'a> {
    Absent,
    Named(&'a [String]),
}

impl Removal<'_> {
    fn names<'k, D>(
        self,
        current: impl Iterator<Item = &'k String>,
        converted: &[(String, Option<D>)],
    ) -> Vec<String> {
        match self {
            Removal::Absent => current
                .filter(|name| !converted.iter().any(|(n, _)| n == *name))
                .cloned()
                .collect(),
            Removal::Named(names) => names.to_vec(),
        }
    }
}

/// Decode and convert every resource. Returns `(name, Some(config) | None on failure)` in
/// order, plus one error line per failed resource.
fn convert_all<P, D>(
    resources: &[Any],
    kind: &'static str,
    name_of: impl Fn(&P) -> String,
) -> (Vec<(String, Option<D>)>, Vec<String>)
where
    P: prost::Message + prost::Name + Default,
    D: for<'a> TryFrom<&'a P, Error = FieldError>,
{
    let mut out = Vec::with_capacity(resources.len());
    let mut errors = Vec::new();
    for (i, any) in resources.iter().enumerate() {
        let msg = match plexus_xds::unpack::<P>(any) {
            Ok(m) => m,
            Err(e) => {
                errors.push(format!("{kind} resources[{i}]: {e}"));
                continue;
            }
        };
        let name = name_of(&msg);
        match D::try_from(&msg) {
            Ok(d) => out.push((name, Some(d))),
            Err(e) => {
                errors.push(ConfigError::to_string(&e.into_config(kind, &name)));
                out.push((name, None));
            }
        }
    }
    (out, errors)
}

impl Handler for XdsHandler {
    fn apply(&mut self, type_url: &str, resources: &[Any]) -> Result<(), String> {
        self.state().apply_any(type_url, resources, Removal::Absent)
    }

    fn apply_delta(
        &mut self,
        type_url: &str,
        updated: &[Any],
        removed: &[String],
    ) -> Result<(), String> {
        self.state()
            .apply_any(type_url, updated, Removal::Named(removed))
    }

    fn subscriptions(&self, type_url: &str) -> Vec<String> {
        self.state().subscriptions(type_url)
    }
}

impl Xds {
    /// Secret names referenced by running and warming listeners and clusters, sorted.
    fn wanted_secrets(&self) -> Vec<String> {
        self.tls.wanted(
            self.listeners.values().map(|l| l.config.load_full()),
            self.clusters.values().map(|c| &c.config),
        )
    }

    fn subscriptions(&self, type_url: &str) -> Vec<String> {
        let mut names: Vec<String> = match type_url {
            ROUTE_TYPE => self
                .listeners
                .values()
                .flat_map(|l| {
                    let cfg = l.config.load();
                    cfg.chains()
                        .filter_map(|k| match k {
                            ListenerKind::Http(m) => match &m.routes {
                                RouteSource::Rds(name) => Some(name.clone()),
                                RouteSource::Inline(_) => None,
                            },
                            ListenerKind::Tcp(_) => None,
                        })
                        .collect::<Vec<_>>()
                })
                .collect(),
            ENDPOINT_TYPE => self
                .clusters
                .values()
                .filter_map(|c| match &c.config.discovery {
                    Discovery::Eds(service) => Some(service.clone()),
                    Discovery::Static(_) | Discovery::OriginalDst(_) | Discovery::Dns(_) => None,
                })
                .collect(),
            SECRET_TYPE => self.wanted_secrets(),
            _ => Vec::new(),
        };
        names.sort();
        names.dedup();
        names
    }
}
