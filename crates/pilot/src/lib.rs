//! `plexus-pilot`: the control plane's pure logic. Today: cross-object analysis of config with
//! Istio's `ISTxxxx` message codes ([`analysis`]) and the mesh-wide settings it reads ([`mesh`]).
//!
//! Pure: no I/O except reading a mesh config file when asked, no async runtime.

pub mod analysis;
pub mod mesh;

pub use analysis::{Analyzer, Level, Message, Options, analyze, run};
pub use mesh::{MeshConfig, MeshNetworks};
