//! The ADS server with a fixed generator per snapshot: the Plexus proxy connects (SotW), ACKs,
//! gets only what changed (an endpoint-only change sends EDS only), and a NACK shows up per
//! proxy with its message; a raw delta client gets only changed resources and removals.

#[path = "../../proxy/tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::*;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use plexus_control::ads::{self, TypeSync};
use plexus_control::{Generator, Hub, Resources};
use plexus_testkit::echo::{self, EchoConfig, EchoHandle};
use plexus_testkit::eventually;
use plexus_xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};
use tokio::sync::{mpsc, watch};

struct Fixed {
    version: String,
    resources: Resources,
}

impl Generator for Fixed {
    fn version(&self) -> String {
        self.version.clone()
    }
    fn generate(&self, _node: &Node) -> Result<Resources, String> {
        Ok(self.resources.clone())
    }
    fn describe(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

fn fixed(version: &str, cfg: &Config) -> Arc<dyn Generator> {
    let mut r = Resources::new();
    let mut put = |t: &str, name: &str, any: Any| {
        r.entry(t.to_string())
            .or_default()
            .insert(name.to_string(), any);
    };
    for (n, a) in &cfg.listeners {
        put(LISTENER_TYPE, n, a.clone());
    }
    for rc in &cfg.routes {
        put(ROUTE_TYPE, &rc.name, pack_any(rc.clone()));
    }
    for c in &cfg.clusters {
        put(CLUSTER_TYPE, &c.name, pack_any(c.clone()));
    }
    for (n, a) in &cfg.endpoints {
        put(ENDPOINT_TYPE, n, a.clone());
    }
    Arc::new(Fixed {
        version: version.into(),
        resources: r,
    })
}

fn config(backend: SocketAddr) -> Config {
    Config {
        listeners: vec![("main".into(), http_listener_rds("main", "r1"))],
        routes: vec![route_config(
            "r1",
            vec![vhost(
                "all",
                &["*"],
                vec![route(prefix("/"), to_cluster("a"))],
            )],
        )],
        clusters: vec![eds_cluster("a")],
        endpoints: vec![("a".into(), assignment("a", &[backend]))],
    }
}

async fn echo_named(name: &str) -> EchoHandle {
    let cfg = EchoConfig {
        workload: name.into(),
        ..Default::default()
    };
    echo::start_http(cfg, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("echo")
}

struct Server {
    hub: Arc<Hub>,
    addr: SocketAddr,
    _events: mpsc::UnboundedReceiver<ads::ProxyEvent>,
    _stop: watch::Sender<bool>,
}

async fn server(g: Arc<dyn Generator>) -> Server {
    let (hub, events) = Hub::new(g);
    let listener = ads::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(ads::serve(listener, hub.clone(), stopped));
    Server {
        hub,
        addr,
        _events: events,
        _stop: stop,
    }
}

fn sync_of(hub: &Hub, type_url: &str) -> Option<TypeSync> {
    hub.proxies().first()?.types.get(type_url).cloned()
}

async fn wait_synced(hub: &Hub, type_url: &str, version: &str) -> TypeSync {
    eventually(
        WAIT,
        &format!("{type_url} version {version} ACKed"),
        || async {
            sync_of(hub, type_url).filter(|t| t.state() == "SYNCED" && t.acked_version == version)
        },
    )
    .await
    .expect("ACK")
}

async fn proxy_for(addr: SocketAddr) -> plexus_proxy::ProxyHandle {
    let cfg = plexus_proxy::ProxyConfig {
        xds_address: format!("http://{addr}"),
        node: identity(),
        admin_address: "127.0.0.1:0".parse().expect("addr"),
        drain: std::time::Duration::from_secs(1),
        backoff: plexus_xds::client::Backoff::default(),
        delta: false,
        log_control: None,
    };
    plexus_proxy::start(cfg).await.expect("proxy")
}

#[tokio::test]
async fn config_change_reaches_connected_proxy_and_endpoint_change_pushes_eds_only() {
    let (a, b) = (echo_named("a").await, echo_named("b").await);
    let srv = server(fixed("1", &config(a.addr))).await;
    let proxy = proxy_for(srv.addr).await;
    for t in [CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE] {
        wait_synced(&srv.hub, t, "1").await;
    }
    let addr = wait_listener(&proxy, "main").await;
    let got = get_until(addr, "h", "/", |g| g.status == 200).await;
    assert_eq!(got.json()["workload"], "a");
    let cds_pushes = sync_of(&srv.hub, CLUSTER_TYPE).map(|t| t.pushes);
    let lds_pushes = sync_of(&srv.hub, LISTENER_TYPE).map(|t| t.pushes);

    srv.hub.publish(fixed("2", &config(b.addr)));
    wait_synced(&srv.hub, ENDPOINT_TYPE, "2").await;
    get_until(addr, "h", "/", |g| g.json()["workload"] == "b").await;
    assert_eq!(
        sync_of(&srv.hub, CLUSTER_TYPE).map(|t| t.pushes),
        cds_pushes
    );
    assert_eq!(
        sync_of(&srv.hub, LISTENER_TYPE).map(|t| t.pushes),
        lds_pushes
    );
    assert_eq!(
        sync_of(&srv.hub, CLUSTER_TYPE)
            .map(|t| t.acked_version)
            .as_deref(),
        Some("1")
    );

    // A snapshot that changes nothing for this proxy sends nothing; the route change after it
    // shows the stream has processed both.
    let eds_pushes = sync_of(&srv.hub, ENDPOINT_TYPE).map(|t| t.pushes);
    srv.hub.publish(fixed("3", &config(b.addr)));
    let mut routes_changed = config(b.addr);
    routes_changed.routes[0].virtual_hosts[0].name = "renamed".into();
    srv.hub.publish(fixed("4", &routes_changed));
    wait_synced(&srv.hub, ROUTE_TYPE, "4").await;
    assert_eq!(
        sync_of(&srv.hub, ENDPOINT_TYPE).map(|t| t.pushes),
        eds_pushes
    );
    assert_eq!(
        sync_of(&srv.hub, CLUSTER_TYPE).map(|t| t.pushes),
        cds_pushes
    );
}

#[tokio::test]
async fn nack_is_tracked_per_proxy_with_its_message() {
    let a = echo_named("a").await;
    let srv = server(fixed("1", &config(a.addr))).await;
    let _proxy = proxy_for(srv.addr).await;
    wait_synced(&srv.hub, LISTENER_TYPE, "1").await;
    let mut bad_cfg = config(a.addr);
    let bad = envoy_types::pb::envoy::config::listener::v3::Listener {
        name: "bad".into(),
        address: Some(socket("127.0.0.1:0".parse().expect("addr"))),
        ..Default::default()
    };
    bad_cfg.listeners.push(("bad".into(), pack_any(bad)));
    srv.hub.publish(fixed("2", &bad_cfg));
    let t = eventually(WAIT, "LDS NACKED", || async {
        sync_of(&srv.hub, LISTENER_TYPE).filter(|t| t.state() == "NACKED")
    })
    .await
    .expect("NACK");
    assert!(
        t.nack
            .as_deref()
            .is_some_and(|m| m.contains("Listener \"bad\": filter_chains")),
        "{t:?}"
    );
    assert_eq!(t.acked_version, "1");
    let syncz = plexus_control::debug::syncz(&srv.hub);
    let lds = &syncz["proxies"][0]["types"]["LDS"];
    assert_eq!(lds["state"], "NACKED", "{syncz}");
}

fn delta_req(type_url: &str, subscribe: &[&str], nonce: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        node: Some(Node {
            id: "sidecar~127.0.0.1~d-0.default~default.svc.cluster.local".into(),
            ..Default::default()
        }),
        type_url: type_url.into(),
        resource_names_subscribe: subscribe.iter().map(|s| s.to_string()).collect(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

async fn next(stream: &mut tonic::Streaming<DeltaDiscoveryResponse>) -> DeltaDiscoveryResponse {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("response in time")
        .expect("stream ok")
        .expect("a response")
}

#[tokio::test]
async fn delta_sends_changed_resources_and_removals_only() {
    let a: SocketAddr = "127.0.0.1:1".parse().expect("addr");
    let mut two = config(a);
    two.clusters.push(eds_cluster("b"));
    let srv = server(fixed("1", &two)).await;
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{}", srv.addr))
        .await
        .expect("connect");
    let (tx, rx) = mpsc::channel(8);
    tx.send(delta_req(CLUSTER_TYPE, &[], ""))
        .await
        .expect("send");
    let mut stream = client
        .delta_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("stream")
        .into_inner();
    let first = next(&mut stream).await;
    let names: Vec<&str> = first.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    tx.send(delta_req(CLUSTER_TYPE, &[], &first.nonce))
        .await
        .expect("ack");
    wait_synced(&srv.hub, CLUSTER_TYPE, "1").await;
    tx.send(delta_req(ENDPOINT_TYPE, &["a"], ""))
        .await
        .expect("eds");
    let eds = next(&mut stream).await;
    assert_eq!(eds.type_url, ENDPOINT_TYPE);
    assert_eq!(eds.resources.len(), 1);
    tx.send(delta_req(ENDPOINT_TYPE, &[], &eds.nonce))
        .await
        .expect("ack");
    wait_synced(&srv.hub, ENDPOINT_TYPE, "1").await;

    // Cluster a changes, b goes away.
    let mut changed = config(a);
    changed.clusters[0].connect_timeout = Some(envoy_types::pb::google::protobuf::Duration {
        seconds: 7,
        nanos: 0,
    });
    srv.hub.publish(fixed("2", &changed));
    let second = next(&mut stream).await;
    let names: Vec<&str> = second.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a"]);
    assert_eq!(second.removed_resources, ["b"]);
    assert_eq!(second.system_version_info, "2");
    // The changed cluster re-warms: its (unchanged) assignment is sent again.
    let third = next(&mut stream).await;
    assert_eq!(third.type_url, ENDPOINT_TYPE);
    let names: Vec<&str> = third.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a"]);
}
