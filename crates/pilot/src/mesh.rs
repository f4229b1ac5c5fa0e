//! MeshConfig and MeshNetworks: re-exported from [`plexus_model::mesh`], where the snapshot
//! that carries them lives (the model crate is below pilot, so the types moved there).

pub use plexus_model::mesh::*;
