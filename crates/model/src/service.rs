//! The registry's canonical model (DESIGN §6): [`Service`]s with typed ports, [`Workload`]s with
//! addresses and labels, and the [`Endpoint`]s that tie a service port to a workload port.

use std::collections::BTreeMap;

use crate::protocol::Protocol;

/// Where a service's hosts live relative to the mesh (ServiceEntry `location`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Location {
    MeshInternal,
    MeshExternal,
}

/// How clients find a service's endpoints (ServiceEntry `resolution`; Kubernetes services are
/// `ClientSideLb`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Resolution {
    /// Endpoints come from the registry (EDS); Istio's `STATIC` and Kubernetes services.
    ClientSideLb,
    /// Endpoints are DNS names resolved by the proxy (`DNS`: every address is used).
    Dns,
    /// `DNS_ROUND_ROBIN`: only the first address, new connections re-resolve.
    DnsRoundRobin,
    /// `NONE`: forward to the original destination address.
    Passthrough,
}

/// Which object a service came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceSource {
    /// `Service` or `ServiceEntry`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

/// A service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub name: String,
    pub number: u16,
    pub protocol: Protocol,
    /// Where endpoints found by selector receive this port's traffic.
    pub target_port: Option<TargetPort>,
}

/// A Kubernetes `targetPort`: a number, or a container port name looked up per workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}

/// A service: one hostname (a ServiceEntry with several hosts gives one per host).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// FQDN (`reviews.default.svc.cluster.local`) or the ServiceEntry host, possibly `*.x.com`.
    pub hostname: String,
    pub namespace: String,
    pub ports: Vec<ServicePort>,
    /// Cluster IPs / ServiceEntry `addresses` (IPs or CIDRs).
    pub vips: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Selector of member workloads (Kubernetes `selector`, ServiceEntry `workloadSelector`).
    pub selector: Option<BTreeMap<String, String>>,
    /// Namespaces that see the service (empty: the mesh default).
    pub export_to: Vec<String>,
    pub resolution: Resolution,
    pub location: Location,
    /// ServiceEntry `subjectAltNames`.
    pub subject_alt_names: Vec<String>,
    pub source: ServiceSource,
}

impl Service {
    pub fn port(&self, number: u16) -> Option<&ServicePort> {
        self.ports.iter().find(|p| p.number == number)
    }
}

/// Whether a workload runs a sidecar that accepts Istio mTLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsMode {
    Istio,
    Disabled,
}

/// What a workload was built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkloadKind {
    /// A replica of a `plexus.dev/v1alpha1` Workload.
    Replica,
    /// A WorkloadEntry object.
    WorkloadEntry,
    /// An inline `endpoints[]` entry of a ServiceEntry.
    ServiceEntryEndpoint,
    /// An address listed in Kubernetes Endpoints / EndpointSlice that no other workload owns.
    KubernetesEndpoint,
}

/// One instance of an application (a pod, a VM, a local process, an external endpoint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    pub name: String,
    pub namespace: String,
    pub kind: WorkloadKind,
    /// IPs or (ServiceEntry DNS endpoints) host names. Empty: not reachable yet.
    pub addresses: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Named ports (container ports / WorkloadEntry `ports`).
    pub ports: BTreeMap<String, u16>,
    pub service_account: String,
    /// `region/zone/subzone`.
    pub locality: Option<String>,
    pub network: Option<String>,
    /// Load-balancing weight (default 1).
    pub weight: u32,
    pub healthy: bool,
    pub tls_mode: TlsMode,
}

/// A service port served by a workload at `address:port`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Index into [`crate::Registry::workloads`].
    pub workload: usize,
    pub address: String,
    pub port: u16,
}

/// Selector semantics shared by every kind: every `matchLabels` pair is in `labels`.
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}
