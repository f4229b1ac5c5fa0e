//! `plexus-pilot`: the control plane's pure logic: cross-object analysis of config with
//! Istio's `ISTxxxx` message codes ([`analysis`]), the mesh-wide settings it reads ([`mesh`]),
//! and translation of a snapshot into xDS for one proxy ([`translate`]).
//!
//! Pure: no I/O except reading a mesh config file when asked, no async runtime.

pub mod analysis;
pub mod mesh;
pub mod translate;

pub use analysis::{Analyzer, Level, Message, Options, analyze, run};
pub use mesh::{MeshConfig, MeshNetworks};
