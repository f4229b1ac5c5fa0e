//! `plexus envoy-bootstrap`: write the bootstrap that lets a stock Envoy join the control plane
//! as a sidecar or gateway (pilot-agent's job in Istio). The node flags are `plexus proxy`'s.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use envoy_types::pb::google::protobuf::{Value, value::Kind};
use plexus_control::bootstrap::{BootstrapOptions, envoy_bootstrap};
use plexus_xds::node::{InterceptionMode, NodeIdentity, ProxyType};

#[derive(Clone, Copy, ValueEnum)]
enum Kind_ {
    Sidecar,
    Router,
}

#[derive(Clone, Copy, ValueEnum)]
enum Interception {
    #[value(name = "REDIRECT")]
    Redirect,
    #[value(name = "NONE")]
    None,
}

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
    /// Proxy type in the node id.
    #[arg(long = "type", value_enum, default_value = "sidecar")]
    kind: Kind_,
    /// Workload IP (node id and INSTANCE_IPS).
    #[arg(long, env = "INSTANCE_IP", default_value = "127.0.0.1")]
    ip: String,
    #[arg(long, env = "POD_NAME", default_value = "plexus-proxy")]
    pod_name: String,
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    namespace: String,
    /// Workload labels, `key=value` (repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    #[arg(long, env = "SERVICE_ACCOUNT", default_value = "default")]
    service_account: String,
    #[arg(long, value_enum, default_value = "NONE")]
    interception_mode: Interception,
    /// WORKLOAD_NAME metadata (defaults to the pod name).
    #[arg(long)]
    workload_name: Option<String>,
    #[arg(long, env = "CLUSTER_ID", default_value = "Kubernetes")]
    cluster_id: String,
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
        kind,
        ip,
        pod_name,
        namespace,
        labels,
        service_account,
        interception_mode,
        workload_name,
        cluster_id,
        auto_register_group,
    } = args;
    let mut label_map = BTreeMap::new();
    for l in labels {
        let (k, v) = l
            .split_once('=')
            .ok_or_else(|| format!("--labels expects key=value, got {l:?}"))?;
        label_map.insert(k.to_string(), v.to_string());
    }
    let identity = NodeIdentity {
        extra_metadata: Default::default(),
        proxy_type: match kind {
            Kind_::Sidecar => ProxyType::Sidecar,
            Kind_::Router => ProxyType::Router,
        },
        ip,
        workload_name: workload_name.unwrap_or_else(|| pod_name.clone()),
        pod: pod_name,
        namespace,
        labels: label_map,
        service_account,
        interception_mode: match interception_mode {
            Interception::Redirect => InterceptionMode::Redirect,
            Interception::None => InterceptionMode::None,
        },
        cluster_id,
    };
    let mut node = identity.to_node();
    if let (Some(group), Some(md)) = (auto_register_group, node.metadata.as_mut()) {
        md.fields.insert(
            plexus_control::push::AUTO_REGISTER_GROUP.to_string(),
            Value {
                kind: Some(Kind::StringValue(group)),
            },
        );
    }
    let (xds_host, xds_port) = split_host_port(&xds_address, "--xds-address")?;
    let (admin_host, admin_port) = split_host_port(&admin_address, "--admin-address")?;
    let opts = BootstrapOptions {
        xds_host,
        xds_port,
        admin_address: admin_host,
        admin_port,
        delta,
    };
    let text = serde_json::to_string_pretty(&envoy_bootstrap(&node, &opts))
        .map_err(|e| format!("cannot encode bootstrap: {e}"))?;
    if output.as_os_str() == "-" {
        crate::output::println(&text);
    } else {
        std::fs::write(&output, text + "\n")
            .map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    }
    Ok(())
}
