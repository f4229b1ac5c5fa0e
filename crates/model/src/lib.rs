//! `plexus-model`: the control plane's canonical model (DESIGN §6) — the service registry
//! ([`Registry`]: services, workloads, endpoints), SPIFFE [`Identity`], the proxy a translation
//! is for ([`ProxyNode`]), typed config ([`ConfigSet`]) and the immutable [`Snapshot`] of all
//! three plus [`MeshConfig`].
//!
//! Pure: no I/O except reading a mesh config file when asked, no async runtime.

pub mod duration;
pub mod host;
pub mod identity;
pub mod mesh;
pub mod node;
pub mod protocol;
pub mod registry;
pub mod service;
pub mod snapshot;

pub use identity::Identity;
pub use mesh::{MeshConfig, MeshNetworks, OutboundMode};
pub use node::{Interception, NodeError, NodeKind, ProxyNode};
pub use protocol::Protocol;
pub use registry::{Registry, ReplicaAddresses};
pub use service::{
    Endpoint, Location, Resolution, Service, ServicePort, ServiceSource, TargetPort, TlsMode,
    Workload, WorkloadKind, selects,
};
pub use snapshot::{Config, ConfigSet, Snapshot};
