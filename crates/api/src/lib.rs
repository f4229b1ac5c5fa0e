//! `plexus-api`: the configuration kinds Plexus reads (Istio's API unchanged, the Kubernetes
//! subset needed outside a cluster, and `plexus.dev/v1alpha1 Workload`), parsed from YAML or JSON
//! with file:line:col kept for every field, and validated one object at a time.
//!
//! Pure: no I/O beyond reading the files it is asked to read.

pub mod credential;
pub mod de;
pub mod kinds;
pub mod load;
pub mod object;
pub mod registry;
pub mod schema;
pub mod semantic;
pub mod validate;
pub mod yaml;

pub use load::{Loaded, load_file, load_paths, load_str};
pub use object::{Diagnostic, Level, Object, Origin, Subject};
pub use validate::{Options, validate_all, validate_object};
