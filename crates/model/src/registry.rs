//! [`Registry::from_objects`]: the service registry built from config objects — Kubernetes
//! Service + Endpoints/EndpointSlice, ServiceEntry, WorkloadEntry and `plexus.dev` Workload
//! (whose replica addresses the local runner supplies through [`ReplicaAddresses`]).
//!
//! Membership rules (Istio's): a Kubernetes Service selects workloads of its namespace by
//! `selector`, unless Endpoints/EndpointSlices name its endpoints explicitly (then those are
//! used, as kube-proxy would); a ServiceEntry has inline `endpoints` or a `workloadSelector` over
//! WorkloadEntries and workloads of its namespace. Cost: O(services × workloads) per build.

use std::collections::BTreeMap;

use plexus_api::kinds::{self, Resource, k8s};
use plexus_api::{Diagnostic, Level, Object};

use crate::service::{Endpoint, Service, TlsMode, Workload, WorkloadKind};

/// Addresses of each replica of a `plexus.dev/v1alpha1` Workload, keyed by
/// (namespace, workload name); replica `i` gets `addresses[i]`. A replica without an address is
/// registered but has no endpoints.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicaAddresses(pub BTreeMap<(String, String), Vec<String>>);

impl ReplicaAddresses {
    pub fn insert(&mut self, namespace: &str, workload: &str, addresses: Vec<String>) {
        self.0
            .insert((namespace.to_string(), workload.to_string()), addresses);
    }

    fn get(&self, namespace: &str, workload: &str, replica: usize) -> Option<&String> {
        self.0
            .get(&(namespace.to_string(), workload.to_string()))
            .and_then(|a| a.get(replica))
    }
}

/// Services, workloads and which workload ports serve which service ports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registry {
    pub services: Vec<Service>,
    pub workloads: Vec<Workload>,
    /// Parallel to `services`: service port number → endpoints.
    pub endpoints: Vec<BTreeMap<u16, Vec<Endpoint>>>,
}

/// Label a workload carries when it has an Istio sidecar (WorkloadEntry / Endpoints).
const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
/// Service annotation listing the namespaces that see it.
const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

impl Registry {
    /// Build from objects, no replica addresses.
    pub fn from_objects(objects: &[Object]) -> (Registry, Vec<Diagnostic>) {
        Registry::build(objects, &ReplicaAddresses::default())
    }

    /// Build from objects; replicas of `plexus.dev` Workloads take their addresses from
    /// `replicas`. Objects that do not decode are reported and left out.
    pub fn build(objects: &[Object], replicas: &ReplicaAddresses) -> (Registry, Vec<Diagnostic>) {
        let mut b = Builder::default();
        let mut decoded = Vec::new();
        for obj in objects {
            if !is_registry_kind(obj) {
                continue;
            }
            match kinds::decode(obj) {
                Ok(r) => decoded.push((obj, r)),
                Err(d) => b.diags.push(*d),
            }
        }
        for (obj, r) in &decoded {
            match r {
                Resource::Workload(w) => b.replicas(obj, w, replicas),
                Resource::WorkloadEntry(we) => {
                    b.workload_entry(obj, we, obj.name.clone(), WorkloadKind::WorkloadEntry);
                }
                _ => {}
            }
        }
        let explicit = explicit_endpoints(&decoded);
        for (obj, r) in &decoded {
            match r {
                Resource::Service(s) => b.kube_service(obj, s, explicit.get(&key(obj))),
                Resource::ServiceEntry(se) => b.service_entry(obj, se),
                _ => {}
            }
        }
        (b.reg, b.diags)
    }

    /// Endpoints of `service` (index) on service port `port`.
    pub fn endpoints_of(&self, service: usize, port: u16) -> &[Endpoint] {
        self.endpoints
            .get(service)
            .and_then(|m| m.get(&port))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// Services with this exact hostname (several namespaces may declare one).
    pub fn services_named<'a>(
        &'a self,
        hostname: &'a str,
    ) -> impl Iterator<Item = (usize, &'a Service)> {
        self.services
            .iter()
            .enumerate()
            .filter(move |(_, s)| s.hostname.eq_ignore_ascii_case(hostname))
    }

    /// Services whose endpoints include a workload with this address (what a proxy serves).
    pub fn services_of_address(&self, address: &str) -> Vec<usize> {
        (0..self.services.len())
            .filter(|&i| {
                self.endpoints[i]
                    .values()
                    .flatten()
                    .any(|e| e.address == address)
            })
            .collect()
    }
}

fn is_registry_kind(obj: &Object) -> bool {
    matches!(
        (obj.group.as_str(), obj.kind.as_str()),
        ("", "Service")
            | ("", "Endpoints")
            | ("discovery.k8s.io", "EndpointSlice")
            | ("networking.istio.io", "ServiceEntry")
            | ("networking.istio.io", "WorkloadEntry")
            | ("plexus.dev", "Workload")
    )
}

fn key(obj: &Object) -> (String, String) {
    (obj.namespace_or_default().to_string(), obj.name.clone())
}

/// One explicit endpoint address with its named ports.
struct ExplicitAddress {
    ip: String,
    ready: bool,
    locality: Option<String>,
    ports: Vec<(Option<String>, u16)>,
}

/// Endpoints and EndpointSlices by (namespace, service name).
fn explicit_endpoints(
    decoded: &[(&Object, Resource)],
) -> BTreeMap<(String, String), Vec<ExplicitAddress>> {
    let mut out: BTreeMap<_, Vec<ExplicitAddress>> = BTreeMap::new();
    for (obj, r) in decoded {
        match r {
            Resource::Endpoints(e) => {
                let list = out.entry(key(obj)).or_default();
                for subset in &e.subsets {
                    let ports = endpoint_ports(&subset.ports);
                    let ready = subset.addresses.iter().map(|a| (a, true));
                    let not_ready = subset.not_ready_addresses.iter().map(|a| (a, false));
                    for (a, ready) in ready.chain(not_ready) {
                        list.push(ExplicitAddress {
                            ip: a.ip.clone(),
                            ready,
                            locality: None,
                            ports: ports.clone(),
                        });
                    }
                }
            }
            Resource::EndpointSlice(s) => {
                let Some(svc) = obj.labels.get("kubernetes.io/service-name") else {
                    continue;
                };
                let list = out
                    .entry((obj.namespace_or_default().to_string(), svc.clone()))
                    .or_default();
                let ports = endpoint_ports(&s.ports);
                for ep in &s.endpoints {
                    let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                    for ip in &ep.addresses {
                        list.push(ExplicitAddress {
                            ip: ip.clone(),
                            ready,
                            locality: ep.zone.clone(),
                            ports: ports.clone(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn endpoint_ports(ports: &[k8s::EndpointPort]) -> Vec<(Option<String>, u16)> {
    ports
        .iter()
        .filter_map(|p| Some((p.name.clone(), u16::try_from(p.port?).ok()?)))
        .collect()
}

#[derive(Default)]
struct Builder {
    reg: Registry,
    diags: Vec<Diagnostic>,
}

impl Builder {
    fn warn(&mut self, obj: &Object, field: &str, msg: impl Into<String>) {
        self.diags.push(obj.diag(Level::Warning, field, msg));
    }

    fn replicas(&mut self, obj: &Object, w: &kinds::Workload, addrs: &ReplicaAddresses) {
        let ns = obj.namespace_or_default();
        let count = w.replicas.unwrap_or(1).max(0) as usize;
        let mut ports = BTreeMap::new();
        for p in &w.ports {
            if let (Some(name), Ok(n)) = (&p.name, u16::try_from(p.container_port)) {
                ports.insert(name.clone(), n);
            }
        }
        for i in 0..count {
            self.reg.workloads.push(Workload {
                name: format!("{}-{i}", obj.name),
                namespace: ns.to_string(),
                kind: WorkloadKind::Replica,
                addresses: addrs.get(ns, &obj.name, i).cloned().into_iter().collect(),
                labels: obj.labels.clone(),
                ports: ports.clone(),
                service_account: w
                    .service_account
                    .clone()
                    .unwrap_or_else(|| "default".into()),
                locality: None,
                network: None,
                weight: 1,
                healthy: true,
                tls_mode: TlsMode::Istio,
            });
        }
    }

    /// A WorkloadEntry (object or inline ServiceEntry endpoint); returns its index.
    fn workload_entry(
        &mut self,
        obj: &Object,
        we: &kinds::WorkloadEntry,
        name: String,
        kind: WorkloadKind,
    ) -> usize {
        let mut labels = we.labels.clone();
        if kind == WorkloadKind::WorkloadEntry {
            for (k, v) in &obj.labels {
                labels.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        let tls_mode = match labels.get(TLS_MODE_LABEL).map(String::as_str) {
            Some("istio") => TlsMode::Istio,
            _ => TlsMode::Disabled,
        };
        let ports = we
            .ports
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), u16::try_from(*v).ok()?)))
            .collect();
        self.reg.workloads.push(Workload {
            name,
            namespace: obj.namespace_or_default().to_string(),
            kind,
            addresses: we
                .address
                .clone()
                .into_iter()
                .filter(|a| !a.is_empty())
                .collect(),
            labels,
            ports,
            service_account: we
                .service_account
                .clone()
                .unwrap_or_else(|| "default".into()),
            locality: we.locality.clone(),
            network: we.network.clone(),
            weight: we.weight.filter(|w| *w > 0).unwrap_or(1),
            healthy: true,
            tls_mode,
        });
        self.reg.workloads.len() - 1
    }

    fn push_service(&mut self, svc: Service, endpoints: BTreeMap<u16, Vec<Endpoint>>) {
        self.reg.services.push(svc);
        self.reg.endpoints.push(endpoints);
    }
}

mod build;
