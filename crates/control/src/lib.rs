//! `plexus-control`: the control plane assembled — the watched config directory
//! (`plexus-sources`), snapshots translated to xDS, the ADS server (SotW and delta, ACK/NACK
//! per proxy, debounced pushes) and the debug API. [`start`] returns a handle with the
//! addresses it bound, so tests run it on port 0.

pub mod ads;
pub mod bootstrap;
pub mod debug;
pub mod push;
pub mod render;
pub mod secrets;
pub mod translate;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use plexus_model::ReplicaAddresses;
use plexus_pilot::MeshConfig;
use plexus_sources::{ConfigState, FileSource, WatchError};
use tokio::sync::watch;

pub use ads::{Generator, Hub, Resources};
pub use push::{BuildGenerator, Inputs};

/// Default ADS address (Istio's plaintext xDS port, loopback only — DESIGN §13).
pub const DEFAULT_XDS_ADDRESS: &str = "127.0.0.1:15010";
/// Default debug API address (Istio's monitoring port).
pub const DEFAULT_DEBUG_ADDRESS: &str = "127.0.0.1:15014";

/// Everything `plexus control` is configured with.
#[derive(Clone, Debug)]
pub struct ControlConfig {
    pub config_dir: PathBuf,
    pub xds_address: SocketAddr,
    pub debug_address: SocketAddr,
    pub mesh: MeshConfig,
    /// Addresses of `plexus.dev` Workload replicas (the local runner knows them; empty otherwise).
    pub replicas: ReplicaAddresses,
}

/// Why the control plane could not start.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error(transparent)]
    Watch(#[from] WatchError),
    #[error("cannot bind {what} address {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running control plane; dropping it stops every task it started.
pub struct ControlHandle {
    pub xds_address: SocketAddr,
    pub debug_address: SocketAddr,
    pub hub: Arc<Hub>,
    source: FileSource,
    stop: watch::Sender<bool>,
}

impl ControlHandle {
    /// The config store's current state (accepted and rejected objects).
    pub fn config(&self) -> Arc<ConfigState> {
        self.source.current()
    }

    /// `http://ADDR` of the ADS server, as proxies dial it.
    pub fn xds_url(&self) -> String {
        format!("http://{}", self.xds_address)
    }
}

impl Drop for ControlHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Start the control plane: snapshots are translated by `plexus_pilot::translate`.
pub async fn start(cfg: ControlConfig) -> Result<ControlHandle, ControlError> {
    let replicas = cfg.replicas.clone();
    let build: BuildGenerator =
        Arc::new(move |inputs: &Inputs| translate::build(inputs, &replicas));
    start_with(cfg, build).await
}

/// Start the control plane with `build` turning each snapshot into a generator.
pub async fn start_with(
    cfg: ControlConfig,
    build: BuildGenerator,
) -> Result<ControlHandle, ControlError> {
    let ControlConfig {
        config_dir,
        xds_address,
        debug_address,
        mesh,
        replicas: _,
    } = cfg;
    let source = FileSource::start(&config_dir, mesh.clone())?;
    let bind_err = |what, addr| move |source| ControlError::Bind { what, addr, source };
    let xds = ads::bind(xds_address)
        .await
        .map_err(bind_err("xDS", xds_address))?;
    let debug_listener = debug::bind(debug_address)
        .await
        .map_err(bind_err("debug", debug_address))?;
    let xds_bound = xds.local_addr().map_err(bind_err("xDS", xds_address))?;
    let debug_bound = debug_listener
        .local_addr()
        .map_err(bind_err("debug", debug_address))?;
    let config = source.subscribe();
    let first_config = config.borrow().clone();
    let first = push::Inputs {
        version: 1,
        objects: first_config.objects(),
        mesh: mesh.clone(),
    };
    let (hub, events) = Hub::new(build(&first));
    hub.set_config_generation(first_config.generation);
    let (stop, stopped) = watch::channel(false);
    let (generated, generated_rx) = watch::channel(Vec::new());
    let control_loop = push::Loop {
        hub: hub.clone(),
        config: config.clone(),
        events,
        build,
        mesh,
        generated,
        version: 1,
    };
    tokio::spawn(control_loop.run(stopped.clone()));
    tokio::spawn(ads::serve(xds, hub.clone(), stopped.clone()));
    let debug_state = debug::DebugState {
        hub: hub.clone(),
        config,
        generated: generated_rx,
    };
    tokio::spawn(debug::serve(debug_listener, debug_state, stopped));
    tracing::info!(
        config_dir = %config_dir.display(),
        xds = %xds_bound,
        debug = %debug_bound,
        "plexus control started"
    );
    Ok(ControlHandle {
        xds_address: xds_bound,
        debug_address: debug_bound,
        hub,
        source,
        stop,
    })
}
