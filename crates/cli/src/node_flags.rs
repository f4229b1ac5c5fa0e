//! The node identity flags shared by `plexus proxy` and `plexus envoy-bootstrap`: what a proxy
//! tells the control plane about itself (DESIGN §4: Istio's node id and metadata keys).

use std::collections::BTreeMap;

use clap::{Args, ValueEnum};
use plexus_xds::node::{InterceptionMode, NodeIdentity, ProxyType};

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
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
pub struct NodeFlags {
    /// Proxy type in the node id.
    #[arg(long = "type", value_enum, default_value = "sidecar")]
    kind: Kind,
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
    /// INTERCEPTION_MODE metadata: REDIRECT (iptables capture) or NONE (explicit binds).
    #[arg(long, value_enum, default_value = "NONE")]
    interception_mode: Interception,
    /// WORKLOAD_NAME metadata (defaults to the pod name).
    #[arg(long)]
    workload_name: Option<String>,
    #[arg(long, env = "CLUSTER_ID", default_value = "Kubernetes")]
    cluster_id: String,
    /// Extra node metadata `KEY=VALUE` (repeatable), e.g. the local mesh's
    /// `PLEXUS_APP_ADDRESS=127.4.2.1`. The Istio keys set by the flags above take precedence.
    #[arg(long = "metadata", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
}

impl NodeFlags {
    /// The node identity; errors name the malformed flag value.
    pub fn identity(self) -> Result<NodeIdentity, String> {
        let NodeFlags {
            kind,
            ip,
            pod_name,
            namespace,
            labels,
            service_account,
            interception_mode,
            workload_name,
            cluster_id,
            metadata,
        } = self;
        Ok(NodeIdentity {
            proxy_type: match kind {
                Kind::Sidecar => ProxyType::Sidecar,
                Kind::Router => ProxyType::Router,
            },
            ip,
            workload_name: workload_name.unwrap_or_else(|| pod_name.clone()),
            pod: pod_name,
            namespace,
            labels: pairs(&labels, "--labels")?,
            service_account,
            interception_mode: match interception_mode {
                Interception::Redirect => InterceptionMode::Redirect,
                Interception::None => InterceptionMode::None,
            },
            cluster_id,
            extra_metadata: pairs(&metadata, "--metadata")?,
        })
    }
}

/// `key=value` items into a map; the key must not be empty.
fn pairs(items: &[String], flag: &str) -> Result<BTreeMap<String, String>, String> {
    items
        .iter()
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("{flag} expects KEY=VALUE, got {item:?}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_name_the_flag_on_error() {
        let ok = pairs(&["app=x".into(), "v=".into()], "--labels").expect("pairs");
        assert_eq!(ok.get("app").map(String::as_str), Some("x"));
        assert_eq!(ok.get("v").map(String::as_str), Some(""));
        let err = pairs(&["=x".into()], "--metadata").expect_err("empty key");
        assert!(err.starts_with("--metadata expects KEY=VALUE"), "{err}");
    }
}
