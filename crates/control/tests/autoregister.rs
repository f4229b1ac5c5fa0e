//! WorkloadGroup auto-registration, as Istio does for VMs: a proxy whose node metadata names
//! `AUTO_REGISTER_GROUP` becomes a WorkloadEntry (group template + the proxy's address) while
//! it is connected, so services selecting the group's labels gain it as an endpoint; it goes
//! away when the proxy disconnects.

use std::collections::HashMap;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::google::protobuf::{Struct, Value, value::Kind};
use plexus_control::ControlConfig;
use plexus_testkit::eventually;
use plexus_xds::CLUSTER_TYPE;
use tokio::sync::mpsc;

const CONFIG: &str = "apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: ratings-vm, namespace: vms}
spec:
  metadata:
    labels: {app: ratings-vm}
  template:
    serviceAccount: ratings
    ports: {http: 9080}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings-vm, namespace: vms}
spec:
  hosts: [ratings.vms.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports:
  - {number: 9080, name: http, protocol: HTTP, targetPort: 9080}
  workloadSelector:
    labels: {app: ratings-vm}
";

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.into())),
    }
}

fn vm_node(ip: &str) -> Node {
    let fields = HashMap::from([
        ("NAMESPACE".to_string(), string("vms")),
        ("AUTO_REGISTER_GROUP".to_string(), string("ratings-vm")),
        ("INTERCEPTION_MODE".to_string(), string("NONE")),
    ]);
    Node {
        id: format!("sidecar~{ip}~vm-1.vms~vms.svc.cluster.local"),
        metadata: Some(Struct { fields }),
        ..Default::default()
    }
}

fn endpoints_of(registry: &serde_json::Value) -> Vec<String> {
    registry["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["hostname"] == "ratings.vms.svc.cluster.local")
        .flat_map(|s| {
            s["endpoints"]["9080"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn proxy_with_auto_register_group_becomes_an_endpoint_while_connected() {
    let dir = std::env::temp_dir().join(format!("plexus-autoreg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("vm.yaml"), CONFIG).expect("write");
    let control = plexus_control::start(ControlConfig {
        config_dir: dir.clone(),
        xds_address: "127.0.0.1:0".parse().expect("addr"),
        debug_address: "127.0.0.1:0".parse().expect("addr"),
        mesh: Default::default(),
        replicas: Default::default(),
    })
    .await
    .expect("control");
    assert!(
        control.config().rejected.is_empty(),
        "{:?}",
        control.config().rejected
    );
    assert!(endpoints_of(&control.hub.generator().describe()).is_empty());

    let mut client = AggregatedDiscoveryServiceClient::connect(control.xds_url())
        .await
        .expect("connect");
    let (tx, rx) = mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: Some(vm_node("127.0.0.42")),
        type_url: CLUSTER_TYPE.into(),
        ..Default::default()
    })
    .await
    .expect("send");
    let mut stream = client
        .stream_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("in time")
        .expect("ok")
        .expect("response");
    assert_eq!(first.type_url, CLUSTER_TYPE);

    let wait = Duration::from_secs(10);
    let eps = eventually(wait, "the VM registered as an endpoint", || async {
        let eps = endpoints_of(&control.hub.generator().describe());
        (!eps.is_empty()).then_some(eps)
    })
    .await
    .expect("registered");
    assert_eq!(eps.len(), 1, "{eps:?}");
    assert!(eps[0].starts_with("127.0.0.42:9080"), "{eps:?}");
    let registryz = control.hub.generator().describe();
    let entry = registryz["workloads"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|w| w["name"] == "ratings-vm-127-0-0-42")
        .cloned()
        .expect("WorkloadEntry ratings-vm-127-0-0-42");
    assert_eq!(entry["service_account"], "ratings");

    drop(tx);
    drop(stream);
    eventually(
        wait,
        "the VM's entry removed after it disconnects",
        || async {
            endpoints_of(&control.hub.generator().describe())
                .is_empty()
                .then_some(())
        },
    )
    .await
    .expect("unregistered");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_node_that_does_not_parse_is_refused_with_the_reason() {
    let dir = std::env::temp_dir().join(format!("plexus-badnode-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let control = plexus_control::start(ControlConfig {
        config_dir: dir.clone(),
        xds_address: "127.0.0.1:0".parse().expect("addr"),
        debug_address: "127.0.0.1:0".parse().expect("addr"),
        mesh: Default::default(),
        replicas: Default::default(),
    })
    .await
    .expect("control");
    let mut client = AggregatedDiscoveryServiceClient::connect(control.xds_url())
        .await
        .expect("connect");
    let (tx, rx) = mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: Some(Node {
            id: "sidecar~not-an-ip~p.ns~ns.svc.cluster.local".into(),
            ..Default::default()
        }),
        type_url: CLUSTER_TYPE.into(),
        ..Default::default()
    })
    .await
    .expect("send");
    let result = client
        .stream_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await;
    let status = match result {
        Err(status) => status,
        Ok(resp) => {
            let mut stream = resp.into_inner();
            tokio::time::timeout(Duration::from_secs(10), stream.message())
                .await
                .expect("in time")
                .expect_err("the stream is refused")
        }
    };
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().contains("not-an-ip"), "{status:?}");
    assert!(control.hub.proxies().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
