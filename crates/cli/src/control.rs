//! `plexus control --config DIR`: the control plane (config store, translation, ADS, debug API).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use plexus_control::ControlConfig;
use plexus_pilot::MeshConfig;

#[derive(Args)]
pub struct ControlArgs {
    /// Directory of config YAML/JSON (Istio kinds, Kubernetes Service/Endpoints/EndpointSlice,
    /// ServiceEntry, WorkloadEntry, WorkloadGroup, plexus.dev Workload); watched for changes.
    #[arg(long = "config", value_name = "DIR")]
    config_dir: PathBuf,
    /// ADS (xDS) gRPC address, plaintext: keep it on loopback.
    #[arg(long, env = "PLEXUS_XDS_LISTEN", default_value = plexus_control::DEFAULT_XDS_ADDRESS)]
    xds_address: SocketAddr,
    /// Debug API address (/debug/syncz, /debug/configz, /debug/registryz, /debug/config_dump, /metrics).
    #[arg(long, env = "PLEXUS_DEBUG_ADDRESS", default_value = plexus_control::DEFAULT_DEBUG_ADDRESS)]
    debug_address: SocketAddr,
    /// MeshConfig YAML (the `mesh` key of Istio's ConfigMap); Istio's defaults otherwise.
    #[arg(long, value_name = "FILE")]
    meshconfig: Option<PathBuf>,
}

pub fn run(args: ControlArgs) -> ExitCode {
    let ControlArgs {
        config_dir,
        xds_address,
        debug_address,
        meshconfig,
    } = args;
    crate::init_logging();
    let mesh = match &meshconfig {
        None => MeshConfig::default(),
        Some(path) => match MeshConfig::load(path) {
            Ok((mesh, unused)) => {
                if !unused.is_empty() {
                    tracing::warn!(
                        "{}: MeshConfig fields Plexus does not use: {}",
                        path.display(),
                        unused.join(", ")
                    );
                }
                mesh
            }
            Err(e) => {
                eprintln!("error: mesh config: {e}");
                return ExitCode::from(2);
            }
        },
    };
    tracing::info!(
        config_dir = %config_dir.display(),
        %xds_address,
        %debug_address,
        meshconfig = ?meshconfig,
        mesh = ?mesh,
        "effective config"
    );
    let cfg = ControlConfig {
        config_dir,
        xds_address,
        debug_address,
        mesh,
        replicas: Default::default(),
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let handle = match plexus_control::start(cfg).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!(
            "plexus control: xDS on {}, debug API on {}",
            handle.xds_address, handle.debug_address
        );
        crate::proxy::wait_for_signal().await;
        drop(handle);
        ExitCode::SUCCESS
    })
}
