//! [`ConfigSet`]: the Istio config objects translation reads, typed, each with its [`Object`]
//! (origin for errors), ordered oldest first as Istio orders them; and [`Snapshot`]: config +
//! registry + mesh settings, immutable and shared by `Arc`.

use std::sync::Arc;

use plexus_api::kinds::{self, Resource};
use plexus_api::{Diagnostic, Object};

use crate::mesh::MeshConfig;
use crate::registry::{Registry, ReplicaAddresses};

/// One typed config object.
#[derive(Clone, Debug)]
pub struct Config<T> {
    pub object: Arc<Object>,
    pub spec: T,
}

impl<T> Config<T> {
    pub fn name(&self) -> &str {
        &self.object.name
    }

    pub fn namespace(&self) -> &str {
        self.object.namespace_or_default()
    }
}

/// Every decoded Istio networking/security/telemetry object, per kind, oldest first (creation
/// timestamp, then namespace/name).
#[derive(Clone, Debug, Default)]
pub struct ConfigSet {
    pub virtual_services: Vec<Config<kinds::VirtualService>>,
    pub destination_rules: Vec<Config<kinds::DestinationRule>>,
    pub gateways: Vec<Config<kinds::Gateway>>,
    pub service_entries: Vec<Config<kinds::ServiceEntry>>,
    pub sidecars: Vec<Config<kinds::Sidecar>>,
    pub workload_entries: Vec<Config<kinds::WorkloadEntry>>,
    pub workload_groups: Vec<Config<kinds::WorkloadGroup>>,
    pub envoy_filters: Vec<Config<kinds::EnvoyFilter>>,
    pub peer_authentications: Vec<Config<kinds::PeerAuthentication>>,
    pub request_authentications: Vec<Config<kinds::RequestAuthentication>>,
    pub authorization_policies: Vec<Config<kinds::AuthorizationPolicy>>,
    pub telemetries: Vec<Config<kinds::Telemetry>>,
    /// Decoded Istio objects of the other kinds (ProxyConfig, WasmPlugin, legacy RBAC and
    /// authentication policies...), kept so consumers can report them as not used.
    pub others: Vec<Arc<Object>>,
}

impl ConfigSet {
    /// Decode the Istio objects among `objects` (other kinds are skipped). Objects that do not
    /// decode are reported and left out; validation is the caller's job before this.
    pub fn from_objects(objects: &[Object]) -> (ConfigSet, Vec<Diagnostic>) {
        let mut set = ConfigSet::default();
        let mut diags = Vec::new();
        let mut sorted: Vec<&Object> = objects
            .iter()
            .filter(|o| o.group.ends_with("istio.io"))
            .collect();
        sorted.sort_by_key(|o| order_key(o));
        for obj in sorted {
            let r = match kinds::decode(obj) {
                Ok(r) => r,
                Err(d) => {
                    diags.push(*d);
                    continue;
                }
            };
            let o = Arc::new(obj.clone());
            match r {
                Resource::VirtualService(s) => set.virtual_services.push(cfg(o, s)),
                Resource::DestinationRule(s) => set.destination_rules.push(cfg(o, s)),
                Resource::Gateway(s) => set.gateways.push(cfg(o, s)),
                Resource::ServiceEntry(s) => set.service_entries.push(cfg(o, s)),
                Resource::Sidecar(s) => set.sidecars.push(cfg(o, s)),
                Resource::WorkloadEntry(s) => set.workload_entries.push(cfg(o, s)),
                Resource::WorkloadGroup(s) => set.workload_groups.push(cfg(o, s)),
                Resource::EnvoyFilter(s) => set.envoy_filters.push(cfg(o, s)),
                Resource::PeerAuthentication(s) => set.peer_authentications.push(cfg(o, s)),
                Resource::RequestAuthentication(s) => set.request_authentications.push(cfg(o, s)),
                Resource::AuthorizationPolicy(s) => set.authorization_policies.push(cfg(o, s)),
                Resource::Telemetry(s) => set.telemetries.push(cfg(o, s)),
                _ => set.others.push(o),
            }
        }
        (set, diags)
    }
}

fn cfg<T>(object: Arc<Object>, spec: T) -> Config<T> {
    Config { object, spec }
}

/// Istio's `sortConfigByCreationTime`: oldest first, ties by namespace then name. Objects from
/// files usually have no timestamp, so namespace/name decides.
fn order_key(o: &Object) -> (String, String, String) {
    (
        o.creation_timestamp.clone().unwrap_or_default(),
        o.namespace_or_default().to_string(),
        o.name.clone(),
    )
}

/// Everything translation reads, at one version. Immutable; share it with `Arc`.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub version: String,
    pub config: ConfigSet,
    pub registry: Registry,
    pub mesh: MeshConfig,
}

impl Snapshot {
    /// Build a snapshot from (already validated) objects. Decoding problems and registry
    /// warnings are returned, never fatal.
    pub fn build(
        version: impl Into<String>,
        objects: &[Object],
        mesh: MeshConfig,
        replicas: &ReplicaAddresses,
    ) -> (Arc<Snapshot>, Vec<Diagnostic>) {
        let (config, mut diags) = ConfigSet::from_objects(objects);
        let (registry, more) = Registry::build(objects, replicas);
        // ServiceEntry/WorkloadEntry decode errors would be reported twice.
        for d in more {
            if !diags.contains(&d) {
                diags.push(d);
            }
        }
        let snap = Snapshot {
            version: version.into(),
            config,
            registry,
            mesh,
        };
        (Arc::new(snap), diags)
    }
}
