//! The proxy a translation is for: parsed from the xDS node id and metadata, following
//! Istio's conventions (DESIGN §4): id `sidecar~<ip>~<pod>.<namespace>~<namespace>.svc.<domain>`
//! (`router~…` for gateways) and metadata keys `NAMESPACE`, `LABELS`, `SERVICE_ACCOUNT`,
//! `INSTANCE_IPS`, `INTERCEPTION_MODE`, `WORKLOAD_NAME`, `CLUSTER_ID`.

use std::collections::BTreeMap;

use serde_json::Value;

/// Sidecar next to a workload, or a gateway (Istio's `router`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeKind {
    Sidecar,
    Router,
}

/// How traffic reaches the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interception {
    /// iptables REDIRECT to 15001/15006 (Istio's default).
    Redirect,
    /// No capture: the proxy binds real listeners (Istio `captureMode: NONE`, Plexus process mode).
    None,
}

/// A connected proxy, as translation needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyNode {
    pub id: String,
    pub kind: NodeKind,
    /// The first address: from `INSTANCE_IPS` if given, else the id's IP part.
    pub ip: String,
    /// Every address of the proxy (`INSTANCE_IPS`, else the id's IP).
    pub ips: Vec<String>,
    pub pod_name: String,
    pub namespace: String,
    /// DNS domain from the id (`<ns>.svc.cluster.local`).
    pub dns_domain: String,
    pub labels: BTreeMap<String, String>,
    /// `default` when the metadata does not say.
    pub service_account: String,
    pub interception: Interception,
    pub workload_name: Option<String>,
    pub cluster_id: Option<String>,
    /// `region/zone/subzone` (metadata `LOCALITY`; the runtime may fill it from the Envoy node's
    /// `locality`). Drives locality-aware endpoint priorities.
    pub locality: Option<String>,
    /// Plexus extension `PLEXUS_APP_ADDRESS` (default `127.0.0.1`): where the application
    /// listens; inbound clusters forward there.
    pub app_address: String,
    /// Plexus extension `PLEXUS_OUTBOUND_ADDRESS` (default: the proxy's IP): the address that
    /// bound outbound listeners use in interception mode NONE.
    pub outbound_address: String,
    /// `HTTP_PROXY_PORT` (default 15001 in mode NONE): the plain HTTP listener usable as the
    /// application's `HTTP_PROXY`, routing to every HTTP service.
    pub http_proxy_port: u16,
}

/// Default port of the HTTP_PROXY listener in interception mode NONE.
pub const DEFAULT_HTTP_PROXY_PORT: u16 = 15001;

/// Why a node could not be understood; names the part of the id or the metadata key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    #[error("node id {id:?}: expected <type>~<ip>~<pod>.<namespace>~<domain> with 4 parts")]
    Parts { id: String },
    #[error("node id {id:?}: unknown type {kind:?} (expected sidecar or router)")]
    Kind { id: String, kind: String },
    #[error("node id {id:?}: {ip:?} is not an IP address")]
    Ip { id: String, ip: String },
    #[error("node id {id:?}: pod part {part:?} is not <pod>.<namespace>")]
    Pod { id: String, part: String },
    #[error("node metadata {key}: {message}")]
    Metadata { key: &'static str, message: String },
}

impl ProxyNode {
    /// Parse an Istio-style node id and metadata.
    pub fn parse(id: &str, metadata: &BTreeMap<String, Value>) -> Result<ProxyNode, NodeError> {
        let parts: Vec<&str> = id.split('~').collect();
        let [kind, ip, pod, domain] = parts.as_slice() else {
            return Err(NodeError::Parts { id: id.into() });
        };
        let kind = match *kind {
            "sidecar" => NodeKind::Sidecar,
            "router" => NodeKind::Router,
            other => {
                return Err(NodeError::Kind {
                    id: id.into(),
                    kind: other.into(),
                });
            }
        };
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(NodeError::Ip {
                id: id.into(),
                ip: (*ip).into(),
            });
        }
        let (pod_name, pod_ns) = match pod.split_once('.') {
            Some((p, ns)) if !p.is_empty() && !ns.is_empty() => (p.to_string(), ns.to_string()),
            _ => {
                return Err(NodeError::Pod {
                    id: id.into(),
                    part: (*pod).into(),
                });
            }
        };
        let namespace = string(metadata, "NAMESPACE")?.unwrap_or(pod_ns);
        let ips = match string(metadata, "INSTANCE_IPS")? {
            Some(list) => instance_ips(&list)?,
            None => vec![(*ip).to_string()],
        };
        let interception = match string(metadata, "INTERCEPTION_MODE")?.as_deref() {
            None | Some("REDIRECT") => Interception::Redirect,
            Some("NONE") => Interception::None,
            Some(other) => {
                return Err(NodeError::Metadata {
                    key: "INTERCEPTION_MODE",
                    message: format!("{other:?} is not supported (REDIRECT or NONE)"),
                });
            }
        };
        let first_ip = ips.first().cloned().unwrap_or_else(|| (*ip).to_string());
        let http_proxy_port = match string(metadata, "HTTP_PROXY_PORT")? {
            None => DEFAULT_HTTP_PROXY_PORT,
            Some(p) => p.parse().map_err(|_| NodeError::Metadata {
                key: "HTTP_PROXY_PORT",
                message: format!("{p:?} is not a port number"),
            })?,
        };
        Ok(ProxyNode {
            id: id.into(),
            kind,
            outbound_address: string(metadata, "PLEXUS_OUTBOUND_ADDRESS")?
                .unwrap_or_else(|| first_ip.clone()),
            ip: first_ip,
            ips,
            pod_name,
            namespace,
            dns_domain: (*domain).into(),
            labels: labels(metadata)?,
            service_account: string(metadata, "SERVICE_ACCOUNT")?
                .unwrap_or_else(|| "default".into()),
            interception,
            workload_name: string(metadata, "WORKLOAD_NAME")?,
            cluster_id: string(metadata, "CLUSTER_ID")?,
            locality: string(metadata, "LOCALITY")?,
            app_address: string(metadata, "PLEXUS_APP_ADDRESS")?
                .unwrap_or_else(|| "127.0.0.1".into()),
            http_proxy_port,
        })
    }

    /// The id Istio's agent would send for these parts.
    pub fn make_id(kind: NodeKind, ip: &str, pod: &str, namespace: &str) -> String {
        let k = match kind {
            NodeKind::Sidecar => "sidecar",
            NodeKind::Router => "router",
        };
        format!("{k}~{ip}~{pod}.{namespace}~{namespace}.svc.cluster.local")
    }
}

fn string(md: &BTreeMap<String, Value>, key: &'static str) -> Result<Option<String>, NodeError> {
    match md.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(NodeError::Metadata {
            key,
            message: format!("expected a string, got {other}"),
        }),
    }
}

fn instance_ips(list: &str) -> Result<Vec<String>, NodeError> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<std::net::IpAddr>()
                .map(|_| s.to_string())
                .map_err(|_| NodeError::Metadata {
                    key: "INSTANCE_IPS",
                    message: format!("{s:?} is not an IP address"),
                })
        })
        .collect()
}

fn labels(md: &BTreeMap<String, Value>) -> Result<BTreeMap<String, String>, NodeError> {
    let Some(v) = md.get("LABELS") else {
        return Ok(BTreeMap::new());
    };
    let Value::Object(map) = v else {
        return Err(NodeError::Metadata {
            key: "LABELS",
            message: "expected a map of strings".into(),
        });
    };
    map.iter()
        .map(|(k, v)| match v {
            Value::String(s) => Ok((k.clone(), s.clone())),
            _ => Err(NodeError::Metadata {
                key: "LABELS",
                message: format!("label {k:?}: expected a string value"),
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn md(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).expect("map")
    }

    #[test]
    fn parses_istio_ids_and_metadata() {
        let m = md(json!({
            "LABELS": {"app": "reviews", "version": "v1"},
            "SERVICE_ACCOUNT": "bookinfo-reviews",
            "INTERCEPTION_MODE": "NONE",
            "INSTANCE_IPS": "127.0.0.5,::1",
            "WORKLOAD_NAME": "reviews-v1",
        }));
        let n = ProxyNode::parse(
            "sidecar~10.0.0.1~reviews-v1-0.default~default.svc.cluster.local",
            &m,
        )
        .expect("parse");
        assert_eq!(n.kind, NodeKind::Sidecar);
        assert_eq!(n.ip, "127.0.0.5");
        assert_eq!(n.ips.len(), 2);
        assert_eq!(n.pod_name, "reviews-v1-0");
        assert_eq!(n.namespace, "default");
        assert_eq!(n.interception, Interception::None);
        assert_eq!(n.labels["version"], "v1");
        assert_eq!(n.workload_name.as_deref(), Some("reviews-v1"));
        assert_eq!(n.outbound_address, "127.0.0.5");
        assert_eq!(n.app_address, "127.0.0.1");
        assert_eq!(n.http_proxy_port, 15001);
        let gw = ProxyNode::parse(
            "router~10.0.0.2~gw-1.istio-system~istio-system.svc.cluster.local",
            &BTreeMap::new(),
        )
        .expect("router");
        assert_eq!(gw.kind, NodeKind::Router);
        assert_eq!(gw.service_account, "default");
        assert_eq!(gw.interception, Interception::Redirect);
    }

    #[test]
    fn errors_name_the_bad_part() {
        let none = BTreeMap::new();
        let cases = [
            ("sidecar~1.2.3.4~p.ns", "4 parts"),
            ("waypoint~1.2.3.4~p.ns~d", "unknown type"),
            ("sidecar~nope~p.ns~d", "\"nope\" is not an IP"),
            ("sidecar~1.2.3.4~pod~d", "pod part"),
        ];
        for (id, want) in cases {
            let e = ProxyNode::parse(id, &none).expect_err(id).to_string();
            assert!(e.contains(want), "{id}: {e}");
        }
        let bad = [
            (json!({"LABELS": "x"}), "LABELS"),
            (json!({"INTERCEPTION_MODE": "TPROXY"}), "INTERCEPTION_MODE"),
            (json!({"INSTANCE_IPS": "1.2.3.4,x"}), "INSTANCE_IPS"),
            (json!({"NAMESPACE": 3}), "NAMESPACE"),
            (json!({"HTTP_PROXY_PORT": "x"}), "HTTP_PROXY_PORT"),
        ];
        for (m, key) in bad {
            let e = ProxyNode::parse("sidecar~1.2.3.4~p.ns~d", &md(m))
                .expect_err(key)
                .to_string();
            assert!(e.contains(key), "{e}");
        }
    }
}
