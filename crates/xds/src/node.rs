//! The proxy's identity on the ADS stream, in Istio's shape (DESIGN §4): node id
//! `sidecar~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local` and metadata keys
//! `NAMESPACE`, `LABELS`, `SERVICE_ACCOUNT`, `INSTANCE_IPS`, `INTERCEPTION_MODE`,
//! `WORKLOAD_NAME`, `CLUSTER_ID`.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};

/// Sidecar next to a workload, or a standalone gateway (`router`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyType {
    Sidecar,
    Router,
}

impl ProxyType {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyType::Sidecar => "sidecar",
            ProxyType::Router => "router",
        }
    }
}

/// How traffic reaches the proxy: iptables REDIRECT capture, or explicit binds only (NONE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterceptionMode {
    Redirect,
    None,
}

impl InterceptionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            InterceptionMode::Redirect => "REDIRECT",
            InterceptionMode::None => "NONE",
        }
    }
}

/// Everything the control plane learns about this proxy from its node.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    pub proxy_type: ProxyType,
    pub ip: String,
    pub pod: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    pub interception_mode: InterceptionMode,
    pub cluster_id: String,
    /// Envoy's `node.cluster`: Istio sets `<workload>.<namespace>`.
    pub workload_name: String,
}

impl NodeIdentity {
    /// `sidecar~10.0.0.1~productpage-v1-abc.default~default.svc.cluster.local`
    pub fn node_id(&self) -> String {
        format!(
            "{}~{}~{}.{}~{}.svc.cluster.local",
            self.proxy_type.as_str(),
            self.ip,
            self.pod,
            self.namespace,
            self.namespace
        )
    }

    /// The protobuf node sent on the first request of every ADS stream.
    pub fn to_node(&self) -> Node {
        let labels = Struct {
            fields: self
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), string_value(v)))
                .collect(),
        };
        let mut fields = std::collections::HashMap::new();
        fields.insert("NAMESPACE".to_string(), string_value(&self.namespace));
        fields.insert(
            "LABELS".to_string(),
            Value {
                kind: Some(Kind::StructValue(labels)),
            },
        );
        fields.insert(
            "SERVICE_ACCOUNT".to_string(),
            string_value(&self.service_account),
        );
        fields.insert("INSTANCE_IPS".to_string(), string_value(&self.ip));
        fields.insert(
            "INTERCEPTION_MODE".to_string(),
            string_value(self.interception_mode.as_str()),
        );
        fields.insert(
            "WORKLOAD_NAME".to_string(),
            string_value(&self.workload_name),
        );
        fields.insert("CLUSTER_ID".to_string(), string_value(&self.cluster_id));
        Node {
            id: self.node_id(),
            cluster: format!("{}.{}", self.workload_name, self.namespace),
            metadata: Some(Struct { fields }),
            user_agent_name: "plexus".to_string(),
            ..Default::default()
        }
    }
}

fn string_value(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> NodeIdentity {
        NodeIdentity {
            proxy_type: ProxyType::Sidecar,
            ip: "10.1.2.3".into(),
            pod: "reviews-v1-x".into(),
            namespace: "bookinfo".into(),
            labels: BTreeMap::from([("app".to_string(), "reviews".to_string())]),
            service_account: "bookinfo-reviews".into(),
            interception_mode: InterceptionMode::None,
            cluster_id: "Kubernetes".into(),
            workload_name: "reviews-v1".into(),
        }
    }

    #[test]
    fn node_id_follows_istio() {
        assert_eq!(
            identity().node_id(),
            "sidecar~10.1.2.3~reviews-v1-x.bookinfo~bookinfo.svc.cluster.local"
        );
        let router = NodeIdentity {
            proxy_type: ProxyType::Router,
            ..identity()
        };
        assert!(router.node_id().starts_with("router~"));
    }

    #[test]
    fn metadata_carries_istio_keys() {
        let node = identity().to_node();
        let md = node.metadata.unwrap_or_default().fields;
        for key in [
            "NAMESPACE",
            "LABELS",
            "SERVICE_ACCOUNT",
            "INSTANCE_IPS",
            "INTERCEPTION_MODE",
            "WORKLOAD_NAME",
            "CLUSTER_ID",
        ] {
            assert!(md.contains_key(key), "missing {key}");
        }
        assert_eq!(md["INTERCEPTION_MODE"], string_value("NONE"));
        assert_eq!(node.cluster, "reviews-v1.bookinfo");
    }
}
