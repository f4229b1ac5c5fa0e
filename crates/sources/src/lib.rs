//! `plexus-sources`: where the control plane's config and registry come from. Today one source:
//! a directory of YAML/JSON files (Istio kinds, Kubernetes Service / Endpoints / EndpointSlice /
//! Namespace / ServiceAccount, WorkloadEntry, ServiceEntry, `plexus.dev` Workload), watched,
//! validated and analysed with the code `plexus validate` and `plexus analyze` run.

pub mod store;
pub mod watch;

pub use store::{ConfigState, ObjectKey, Rejection, reconcile};
pub use watch::{FileSource, WatchError};
