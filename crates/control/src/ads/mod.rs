//! The ADS server (Envoy's `AggregatedDiscoveryService`, state-of-the-world and delta) over
//! tonic. One task per stream: it generates its proxy's resources from the current
//! [`Generator`] whenever a new one is published, and sends each type only when that type's
//! content changed for that proxy — so a change reaches only the proxies it affects, and an
//! endpoint-only change sends only EDS. Debouncing happens before publishing (see `push`).

pub mod delta;
pub mod hub;
pub mod sotw;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use plexus_xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

pub use hub::{Hub, ProxyEvent, ProxyState, TypeSync};

/// Per type URL: resource name → packed resource.
pub type Resources = BTreeMap<String, BTreeMap<String, Any>>;

/// Produces a proxy's resources from one immutable config snapshot.
pub trait Generator: Send + Sync + 'static {
    /// The snapshot's version (shown in syncz, used as the SotW `version_info`).
    fn version(&self) -> String;
    /// Everything `node` should have, per type. `Err` names why the node cannot be served
    /// (a malformed node id or metadata); the stream is then refused with that message.
    fn generate(&self, node: &Node) -> Result<Resources, String>;
    /// The service registry this generator translates from, for `/debug/registryz`.
    fn describe(&self) -> serde_json::Value;
}

/// Types in the order a push sends them: clusters before the endpoints that warm them, and
/// listeners before the routes they name (Envoy's documented ADS ordering). Secrets go before
/// listeners: a rotated certificate reaches the proxy before any listener naming it changes.
pub const PUSH_ORDER: [&str; 5] = [
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    SECRET_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
];

/// LDS and CDS are wildcard in SotW: every resource is sent whatever names are asked for.
pub fn is_wildcard_type(type_url: &str) -> bool {
    type_url == LISTENER_TYPE || type_url == CLUSTER_TYPE
}

/// The type whose resources a change of `type_url` makes the proxy re-request: after new
/// clusters Envoy re-warms them from EDS, after new listeners it resolves their RDS names.
pub fn dependent_type(type_url: &str) -> Option<&'static str> {
    match type_url {
        CLUSTER_TYPE => Some(ENDPOINT_TYPE),
        LISTENER_TYPE => Some(ROUTE_TYPE),
        _ => None,
    }
}

/// Run `g.generate(node)` on the blocking pool: translation is CPU work (O(services × routes))
/// and must not stall the stream tasks sharing the runtime.
pub(crate) async fn generate_off_runtime(
    g: &Arc<dyn Generator>,
    node: &Node,
) -> Result<Resources, String> {
    let (g, node) = (g.clone(), node.clone());
    tokio::task::spawn_blocking(move || g.generate(&node))
        .await
        .unwrap_or_else(|e| Err(format!("translation failed: {e}")))
}

/// What every ADS stream (SotW or delta) starts with: the proxy's node, its first generated
/// resources and its registration with the hub.
pub(crate) struct Opened {
    pub node: Node,
    pub updates: watch::Receiver<Arc<dyn Generator>>,
    pub generator: Arc<dyn Generator>,
    pub resources: Resources,
    pub conn: u64,
}

/// Open a stream from its first request's node. `None` when the stream is refused (no node, or
/// a node that does not translate); the reason has then been sent to the proxy.
pub(crate) async fn open_stream<T>(
    hub: &Hub,
    node: Option<Node>,
    tx: &mpsc::Sender<Result<T, Status>>,
    protocol: &'static str,
    request: &str,
) -> Option<Opened> {
    let Some(node) = node else {
        let msg = format!("the first {request} of a stream must carry the node");
        let _ = tx.send(Err(Status::invalid_argument(msg))).await;
        return None;
    };
    let mut updates = hub.subscribe();
    let generator = updates.borrow_and_update().clone();
    let resources = match generate_off_runtime(&generator, &node).await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(proxy = %node.id, "refusing {protocol} ADS stream: {e}");
            let _ = tx.send(Err(Status::invalid_argument(e))).await;
            return None;
        }
    };
    let conn = hub.connect(&node, protocol);
    hub.seen(conn, &generator.version());
    Some(Opened {
        node,
        updates,
        generator,
        resources,
        conn,
    })
}

/// Serve ADS on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, hub: Arc<Hub>, mut stop: watch::Receiver<bool>) {
    let svc = AdsService { hub };
    let result = tonic::transport::Server::builder()
        .add_service(AggregatedDiscoveryServiceServer::new(svc).max_decoding_message_size(64 << 20))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    if let Err(e) = result {
        tracing::error!("ADS server stopped: {e}");
    }
}

/// Bind the xDS address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

#[derive(Clone)]
struct AdsService {
    hub: Arc<Hub>,
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for AdsService {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(sotw::run(self.hub.clone(), request.into_inner(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(delta::run(self.hub.clone(), request.into_inner(), tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Resources of `type_url` that a proxy asked for: all of a wildcard type, else the named ones.
pub fn select<'a>(
    all: &'a Resources,
    type_url: &str,
    names: &std::collections::BTreeSet<String>,
    wildcard: bool,
) -> BTreeMap<String, &'a Any> {
    let Some(of_type) = all.get(type_url) else {
        return BTreeMap::new();
    };
    of_type
        .iter()
        .filter(|(name, _)| wildcard || names.contains(*name))
        .map(|(n, a)| (n.clone(), a))
        .collect()
}
