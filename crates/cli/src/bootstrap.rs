//! `plexus envoy-bootstrap`: write the bootstrap that lets a stock Envoy join the control plane
//! as a sidecar or gateway (pilot-agent's job in Istio). The node flags are `plexus proxy`'s.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use envoy_types::pb::google::protobuf::{Value, value::Kind};
use plexus_control::bootstrap::{BootstrapOptions, envoy_bootstrap};
use plexus_xds::node::NodeIdentity;

#[derive(Args)]
pub struct BootstrapArgs {
    /// Where to write the bootstrap (JSON, which Envoy also reads as YAML); `-` is stdout.
    #[arg(long, short = 'o', default_value = "-")]
    output: PathBuf,
    /// The control plane's ADS address, `host:port`.
    #[arg(long, env = "PLEXUS_XDS_ADDRESS", default_value = plexus_control::DEFAULT_XDS_ADDRESS)]
    xds_address: String,
    /// Envoy's admin address, `ip:port` (port 0: Envoy picks one).
    #[arg(long, default_value = "127.0.0.1:15000")]
    admin_address: String,
    /// Use delta xDS (`DELTA_GRPC`) instead of state-of-the-world.
    #[arg(long)]
    delta: bool,
    #[command(flatten)]
    node: crate::node_flags::NodeFlags,
    /// Register this proxy as a WorkloadEntry of this WorkloadGroup (node metadata
    /// AUTO_REGISTER_GROUP, as Istio's VM auto-registration).
    #[arg(long)]
    auto_register_group: Option<String>,
}

fn split_host_port(s: &str, flag: &str) -> Result<(String, u16), String> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("{flag}: expected host:port, got {s:?}"))?;
    let port = port
        .parse()
        .map_err(|_| format!("{flag}: {port:?} is not a port"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

pub fn run(args: BootstrapArgs) -> ExitCode {
    match build(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn build(args: BootstrapArgs) -> Result<(), String> {
    let BootstrapArgs {
        output,
        xds_address,
        admin_address,
        delta,
        node,
        auto_register_group,
    } = args;
    let identity = node.identity()?;
    write(
        &output,
        &identity,
        &Endpoints {
            xds_address: &xds_address,
            admin_address: &admin_address,
            delta,
        },
        auto_register_group,
    )
}

/// Where the Envoy being bootstrapped finds its control plane and serves its admin API.
pub struct Endpoints<'a> {
    /// `host:port` of the ADS server.
    pub xds_address: &'a str,
    /// `ip:port` of Envoy's admin listener.
    pub admin_address: &'a str,
    pub delta: bool,
}

/// Writes the bootstrap for `identity` to `output` (`-` is stdout). Shared by
/// `plexus envoy-bootstrap` and `plexus proxy --agent-only --envoy-bootstrap FILE`.
pub fn write(
    output: &Path,
    identity: &NodeIdentity,
    at: &Endpoints<'_>,
    auto_register_group: Option<String>,
) -> Result<(), String> {
    let mut node = identity.to_node();
    if let (Some(group), Some(md)) = (auto_register_group, node.metadata.as_mut()) {
        md.fields.insert(
            plexus_control::push::AUTO_REGISTER_GROUP.to_string(),
            Value {
                kind: Some(Kind::StringValue(group)),
            },
        );
    }
    let (xds_host, xds_port) = split_host_port(at.xds_address, "--xds-address")?;
    let (admin_host, admin_port) = split_host_port(at.admin_address, "--admin-address")?;
    let opts = BootstrapOptions {
        xds_host,
        xds_port,
        admin_address: admin_host,
        admin_port,
        delta: at.delta,
    };
    let text = serde_json::to_string_pretty(&envoy_bootstrap(&node, &opts))
        .map_err(|e| format!("cannot encode bootstrap: {e}"))?;
    if output.as_os_str() == "-" {
        crate::output::println(&text);
    } else {
        std::fs::write(output, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    }
    Ok(())
}
