//! A fake SotW ADS server with a push API: tests push whole resource sets per type and read back
//! what each client ACKed or NACKed (version, nonce, error detail).
//!
//! Serves Envoy's `AggregatedDiscoveryService` from `envoy-types` over tonic on `127.0.0.1:0`.
//! Wildcard types (LDS, CDS) get every resource; RDS and EDS only the names a client asked for,
//! as a real control plane does. Delta xDS is served too (see `ads_delta`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use plexus_xds::{CLUSTER_TYPE, LISTENER_TYPE};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tonic::{Request, Response, Status, Streaming};

use crate::eventually;

/// One ACK or NACK a client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckRecord {
    pub node_id: String,
    pub type_url: String,
    /// The version the client reports as accepted (for a NACK: its previous good version).
    pub version: String,
    pub nonce: String,
    /// `Some(message)` for a NACK.
    pub error: Option<String>,
}

#[derive(Default)]
pub(crate) struct State {
    /// Per type: version counter and the current resources `(name, Any)`.
    pub(crate) resources: HashMap<String, (u64, Vec<(String, Any)>)>,
    pub(crate) acks: Vec<AckRecord>,
    /// Nonce -> version it was sent with, for ACK bookkeeping.
    pub(crate) nonces: HashMap<String, String>,
    pub(crate) next_nonce: u64,
    streams: u64,
}

/// Handle to a running fake ADS server. Dropping it stops the server.
pub struct FakeAds {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    changed: watch::Sender<u64>,
    kick: watch::Sender<u64>,
    _stop: watch::Sender<bool>,
}

impl FakeAds {
    /// Bind `127.0.0.1:0` and serve.
    pub async fn start() -> std::io::Result<FakeAds> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let (changed, _) = watch::channel(0u64);
        let (kick, _) = watch::channel(0u64);
        let (stop, mut stopped) = watch::channel(false);
        let svc = Service {
            state: state.clone(),
            changed: changed.clone(),
            kick: kick.clone(),
        };
        tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(AggregatedDiscoveryServiceServer::new(svc))
                .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
                    let _ = stopped.changed().await;
                })
                .await;
        });
        Ok(FakeAds {
            addr,
            state,
            changed,
            kick,
            _stop: stop,
        })
    }

    /// `http://127.0.0.1:PORT`, the form clients dial.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replace every resource of `type_url` with `resources` (name, packed message) and push the
    /// new set to every connected client. Returns the new version string.
    pub fn push(&self, type_url: &str, resources: Vec<(String, Any)>) -> String {
        let version = {
            let mut st = lock(&self.state);
            let entry = st
                .resources
                .entry(type_url.to_string())
                .or_insert((0, Vec::new()));
            entry.0 += 1;
            entry.1 = resources;
            entry.0
        };
        self.changed.send_modify(|g| *g += 1);
        version.to_string()
    }

    /// End every open ADS stream (clients see the server go away and must reconnect).
    pub fn disconnect_all(&self) {
        self.kick.send_modify(|g| *g += 1);
    }

    /// Every ACK and NACK received so far, in order.
    pub fn acks(&self) -> Vec<AckRecord> {
        lock(&self.state).acks.clone()
    }

    /// How many ADS streams have been opened (reconnects show up here).
    pub fn streams(&self) -> u64 {
        lock(&self.state).streams
    }

    /// Wait until some client ACKed `version` of `type_url`.
    pub async fn wait_ack(
        &self,
        type_url: &str,
        version: &str,
        within: Duration,
    ) -> Result<AckRecord, String> {
        let what = format!("ACK of {type_url} version {version}");
        eventually(within, &what, || async {
            self.acks()
                .into_iter()
                .find(|a| a.type_url == type_url && a.version == version && a.error.is_none())
        })
        .await
    }

    /// Wait until some client NACKed a response of `type_url` sent after `after` records.
    pub async fn wait_nack(
        &self,
        type_url: &str,
        after: usize,
        within: Duration,
    ) -> Result<AckRecord, String> {
        let what = format!("NACK of {type_url}");
        eventually(within, &what, || async {
            self.acks()
                .into_iter()
                .skip(after)
                .find(|a| a.type_url == type_url && a.error.is_some())
        })
        .await
    }
}

pub(crate) fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    // A panicked test thread poisons the lock; the data is still consistent for reading.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Clone)]
struct Service {
    state: Arc<Mutex<State>>,
    changed: watch::Sender<u64>,
    kick: watch::Sender<u64>,
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Service {
    type StreamAggregatedResourcesStream = ResponseStream<DiscoveryResponse>;
    type DeltaAggregatedResourcesStream = ResponseStream<DeltaDiscoveryResponse>;

    async fn stream_aggregated_resources(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamAggregatedResourcesStream>, Status> {
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        lock(&self.state).streams += 1;
        let streams = Streams {
            changed: self.changed.subscribe(),
            kick: self.kick.subscribe(),
        };
        tokio::spawn(serve_stream(self.state.clone(), streams, inbound, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaAggregatedResourcesStream>, Status> {
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        lock(&self.state).streams += 1;
        let streams = Streams {
            changed: self.changed.subscribe(),
            kick: self.kick.subscribe(),
        };
        tokio::spawn(crate::ads_delta::serve_delta(
            self.state.clone(),
            streams,
            inbound,
            tx,
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Per-stream state: what the client subscribed to and which version of each type it has.
#[derive(Default)]
struct Subscription {
    names: Vec<String>,
    sent_version: Option<u64>,
}

/// What a stream task watches besides its client: pushes, and requests to hang up.
pub(crate) struct Streams {
    pub(crate) changed: watch::Receiver<u64>,
    pub(crate) kick: watch::Receiver<u64>,
}

async fn serve_stream(
    state: Arc<Mutex<State>>,
    Streams {
        mut changed,
        mut kick,
    }: Streams,
    mut inbound: Streaming<DiscoveryRequest>,
    tx: mpsc::Sender<Result<DiscoveryResponse, Status>>,
) {
    let mut subs: HashMap<String, Subscription> = HashMap::new();
    let mut node_id = String::new();
    loop {
        tokio::select! {
            msg = inbound.message() => {
                let Ok(Some(req)) = msg else { return };
                if let Some(node) = &req.node {
                    node_id = node.id.clone();
                }
                let resend = on_request(&state, &node_id, &mut subs, &req);
                if resend && send_type(&state, &mut subs, &req.type_url, &tx).await.is_err() {
                    return;
                }
            }
            _ = kick.changed() => return,
            r = changed.changed() => {
                if r.is_err() { return; }
                let types: Vec<String> = subs.keys().cloned().collect();
                for t in types {
                    if send_type(&state, &mut subs, &t, &tx).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Record ACK/NACK and update the subscription. Returns whether the type must be (re)sent.
fn on_request(
    state: &Mutex<State>,
    node_id: &str,
    subs: &mut HashMap<String, Subscription>,
    req: &DiscoveryRequest,
) -> bool {
    let mut names = req.resource_names.clone();
    names.sort();
    if !req.response_nonce.is_empty() {
        let mut st = lock(state);
        let sent = st
            .nonces
            .get(&req.response_nonce)
            .cloned()
            .unwrap_or_default();
        let error = req.error_detail.as_ref().map(|e| e.message.clone());
        // A NACK reports the last good version; keep what the client said.
        let version = if error.is_some() {
            req.version_info.clone()
        } else {
            sent
        };
        st.acks.push(AckRecord {
            node_id: node_id.to_string(),
            type_url: req.type_url.clone(),
            version,
            nonce: req.response_nonce.clone(),
            error,
        });
    }
    let sub = subs.entry(req.type_url.clone()).or_default();
    let fresh = req.response_nonce.is_empty();
    let names_changed = sub.names != names;
    sub.names = names;
    if fresh || names_changed {
        sub.sent_version = None;
    }
    fresh || names_changed
}

async fn send_type(
    state: &Mutex<State>,
    subs: &mut HashMap<String, Subscription>,
    type_url: &str,
    tx: &mpsc::Sender<Result<DiscoveryResponse, Status>>,
) -> Result<(), ()> {
    let Some(sub) = subs.get_mut(type_url) else {
        return Ok(());
    };
    let resp = {
        let mut st = lock(state);
        let Some((version, all)) = st.resources.get(type_url).cloned() else {
            return Ok(());
        };
        if sub.sent_version == Some(version) {
            return Ok(());
        }
        let wildcard = type_url == LISTENER_TYPE || type_url == CLUSTER_TYPE;
        let resources: Vec<Any> = all
            .into_iter()
            .filter(|(name, _)| wildcard || sub.names.binary_search(name).is_ok())
            .map(|(_, any)| any)
            .collect();
        st.next_nonce += 1;
        let nonce = st.next_nonce.to_string();
        st.nonces.insert(nonce.clone(), version.to_string());
        sub.sent_version = Some(version);
        DiscoveryResponse {
            version_info: version.to_string(),
            resources,
            type_url: type_url.to_string(),
            nonce,
            ..Default::default()
        }
    };
    tx.send(Ok(resp)).await.map_err(|_| ())
}
