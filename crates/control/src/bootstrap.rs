//! The Envoy bootstrap that lets a stock Envoy join this control plane as a sidecar or gateway
//! — the part Istio's pilot-agent plays: the node id and metadata of DESIGN §4, an admin
//! address, and ADS (SotW or delta) for LDS and CDS through a static `xds-grpc` cluster (Istio's
//! name for it) that speaks HTTP/2 to the control plane.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{Struct, Value as PbValue, value::Kind};
use serde_json::{Value, json};

/// Name of the static cluster that reaches the control plane (Istio's).
pub const XDS_CLUSTER: &str = "xds-grpc";

/// Where Envoy finds the control plane and serves its admin endpoint.
#[derive(Clone, Debug)]
pub struct BootstrapOptions {
    /// `host:port` of the ADS server (an IP or a DNS name).
    pub xds_host: String,
    pub xds_port: u16,
    pub admin_address: String,
    pub admin_port: u16,
    /// Use delta (incremental) xDS instead of state-of-the-world.
    pub delta: bool,
}

/// The bootstrap as JSON (which is also YAML), ready for `envoy -c`.
pub fn envoy_bootstrap(node: &Node, opts: &BootstrapOptions) -> Value {
    let BootstrapOptions {
        xds_host,
        xds_port,
        admin_address,
        admin_port,
        delta,
    } = opts;
    let ads_source = json!({"ads": {}, "resource_api_version": "V3"});
    let resolve = if xds_host.parse::<std::net::IpAddr>().is_ok() {
        "STATIC"
    } else {
        "STRICT_DNS"
    };
    json!({
        "node": {
            "id": node.id,
            "cluster": node.cluster,
            "metadata": node.metadata.as_ref().map(struct_json).unwrap_or_else(|| json!({})),
        },
        "admin": {"address": {"socket_address": {"address": admin_address, "port_value": admin_port}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": if *delta { "DELTA_GRPC" } else { "GRPC" },
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
                "set_node_on_first_message_only": true
            },
            "cds_config": ads_source,
            "lds_config": ads_source
        },
        "static_resources": {"clusters": [{
            "name": XDS_CLUSTER,
            "type": resolve,
            "connect_timeout": "1s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}}
                }
            },
            "load_assignment": {"cluster_name": XDS_CLUSTER, "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": xds_host, "port_value": xds_port}}
            }}]}]}
        }]}
    })
}

/// A protobuf `Struct` as JSON.
pub fn struct_json(s: &Struct) -> Value {
    Value::Object(
        s.fields
            .iter()
            .map(|(k, v)| (k.clone(), value_json(v)))
            .collect(),
    )
}

fn value_json(v: &PbValue) -> Value {
    match &v.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::NumberValue(n)) => json!(n),
        Some(Kind::StringValue(s)) => json!(s),
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::StructValue(s)) => struct_json(s),
        Some(Kind::ListValue(l)) => Value::Array(l.values.iter().map(value_json).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    use plexus_xds::node::{InterceptionMode, NodeIdentity, ProxyType};

    #[test]
    fn bootstrap_carries_istio_node_and_ads() {
        let node = NodeIdentity {
            proxy_type: ProxyType::Router,
            ip: "127.0.0.9".into(),
            pod: "gw-0".into(),
            namespace: "istio-system".into(),
            labels: BTreeMap::from([("istio".to_string(), "ingressgateway".to_string())]),
            service_account: "gw".into(),
            interception_mode: InterceptionMode::None,
            cluster_id: "Kubernetes".into(),
            workload_name: "gw".into(),
        }
        .to_node();
        let opts = BootstrapOptions {
            xds_host: "127.0.0.1".into(),
            xds_port: 15010,
            admin_address: "127.0.0.1".into(),
            admin_port: 0,
            delta: true,
        };
        let b = envoy_bootstrap(&node, &opts);
        assert_eq!(
            b["node"]["id"],
            "router~127.0.0.9~gw-0.istio-system~istio-system.svc.cluster.local"
        );
        assert_eq!(b["node"]["metadata"]["LABELS"]["istio"], "ingressgateway");
        assert_eq!(b["node"]["metadata"]["INTERCEPTION_MODE"], "NONE");
        assert_eq!(
            b["dynamic_resources"]["ads_config"]["api_type"],
            "DELTA_GRPC"
        );
        let cluster = &b["static_resources"]["clusters"][0];
        assert_eq!(cluster["type"], "STATIC");
        let host = BootstrapOptions {
            xds_host: "istiod.local".into(),
            ..opts
        };
        assert_eq!(
            envoy_bootstrap(&node, &host)["static_resources"]["clusters"][0]["type"],
            "STRICT_DNS"
        );
    }
}
