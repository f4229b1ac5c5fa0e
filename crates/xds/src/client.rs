//! State-of-the-world ADS client: one gRPC stream carrying CDS, EDS, LDS and RDS.
//!
//! Envoy's protocol, re-implemented from the xDS docs: every response is answered with a request
//! carrying its nonce; an ACK carries the response's version, a NACK the last accepted version
//! plus `error_detail`. LDS and CDS are wildcard subscriptions; RDS and EDS names come from the
//! handler (route names referenced by listeners, EDS clusters). The handler keeps its last good
//! config across NACKs and reconnects; the client only tracks versions and nonces.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status;
use rand::Rng;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::{CLUSTER_TYPE, LISTENER_TYPE, SUBSCRIBE_ORDER, short_type};

/// gRPC status code INVALID_ARGUMENT, which Envoy puts in a NACK's `error_detail`.
pub(crate) const INVALID_ARGUMENT: i32 = 3;

/// What the client drives: it applies whole SotW resource sets and names what to subscribe to.
pub trait Handler: Send + 'static {
    /// Apply the complete set of `type_url` resources. `Err(message)` NACKs the response; the
    /// handler must then keep what it had.
    fn apply(&mut self, type_url: &str, resources: &[Any]) -> Result<(), String>;
    /// Apply an incremental (delta xDS) update: `updated` resources replace or add, `removed`
    /// names go away, everything else stays. `Err(message)` NACKs.
    fn apply_delta(
        &mut self,
        type_url: &str,
        updated: &[Any],
        removed: &[String],
    ) -> Result<(), String>;
    /// Resource names wanted for a non-wildcard type (RDS, EDS), sorted.
    fn subscriptions(&self, type_url: &str) -> Vec<String>;
}

/// Reconnect backoff: exponential from `base` to `max`, full jitter (as Envoy's
/// `JitteredExponentialBackOffStrategy`).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// Delay before reconnect attempt `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        let millis = u64::try_from(ceiling.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }
}

/// Where to connect and who we are.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `http://host:port` of the ADS server.
    pub address: String,
    pub node: Node,
    pub backoff: Backoff,
    /// Use delta (incremental) xDS instead of state-of-the-world.
    pub delta: bool,
}

/// Per-type view of the stream, shown on the admin endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeStatus {
    pub accepted_version: String,
    pub last_nonce: String,
    pub acks: u64,
    pub nacks: u64,
    pub last_error: Option<String>,
}

/// Shared, lock-protected status; written only by the client task, read by admin.
#[derive(Debug, Default)]
pub struct AdsStatus {
    pub connected: bool,
    pub connects: u64,
    pub types: HashMap<String, TypeStatus>,
}

pub type StatusHandle = Arc<Mutex<AdsStatus>>;

/// Run the ADS client until `shutdown` turns true. Reconnects with backoff on any failure.
pub async fn run<H: Handler>(
    cfg: ClientConfig,
    mut handler: H,
    status: StatusHandle,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut attempt = 0u32;
    let mut delta_state = crate::delta::DeltaState::default();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let once = async {
            if cfg.delta {
                crate::delta::stream_once(&cfg, &mut handler, &status, &mut delta_state).await
            } else {
                stream_once(&cfg, &mut handler, &status).await
            }
        };
        let got_response = tokio::select! {
            r = once => r,
            _ = shutdown.changed() => return,
        };
        set_connected(&status, false);
        attempt = if got_response {
            0
        } else {
            attempt.saturating_add(1)
        };
        let delay = cfg.backoff.delay(attempt);
        tracing::info!(address = %cfg.address, ?delay, "ADS stream ended; reconnecting");
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
    }
}

pub(crate) fn set_connected(status: &StatusHandle, connected: bool) {
    if let Ok(mut s) = status.lock() {
        s.connected = connected;
        if connected {
            s.connects += 1;
        }
    }
}

/// Per-stream protocol state of one type.
#[derive(Default)]
struct TypeState {
    version: String,
    nonce: String,
    names: Option<Vec<String>>,
}

/// One ADS stream from connect to end. Returns whether any response arrived (resets backoff).
async fn stream_once<H: Handler>(
    cfg: &ClientConfig,
    handler: &mut H,
    status: &StatusHandle,
) -> bool {
    let mut client = match AggregatedDiscoveryServiceClient::connect(cfg.address.clone()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(address = %cfg.address, error = %e, "ADS connect failed");
            return false;
        }
    };
    let (tx, rx) = mpsc::channel::<DiscoveryRequest>(16);
    let mut states: HashMap<&'static str, TypeState> = HashMap::new();
    // Versions survive reconnects so the server can skip re-sending what we already have.
    if let Ok(s) = status.lock() {
        for t in SUBSCRIBE_ORDER {
            let version = s
                .types
                .get(t)
                .map(|ts| ts.accepted_version.clone())
                .unwrap_or_default();
            states.insert(
                t,
                TypeState {
                    version,
                    ..Default::default()
                },
            );
        }
    }
    for t in [CLUSTER_TYPE, LISTENER_TYPE] {
        send_request(cfg, &tx, &mut states, t, Vec::new(), None).await;
    }
    let mut inbound = match client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(e) => {
            tracing::warn!(error = %e, "ADS stream rejected");
            return false;
        }
    };
    set_connected(status, true);
    let mut got_response = false;
    loop {
        let resp = match inbound.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return got_response,
            Err(e) => {
                tracing::warn!(error = %e, "ADS stream error");
                return got_response;
            }
        };
        got_response = true;
        handle_response(cfg, handler, status, &tx, &mut states, resp).await;
    }
}

async fn handle_response<H: Handler>(
    cfg: &ClientConfig,
    handler: &mut H,
    status: &StatusHandle,
    tx: &mpsc::Sender<DiscoveryRequest>,
    states: &mut HashMap<&'static str, TypeState>,
    resp: DiscoveryResponse,
) {
    let Some(type_url) = SUBSCRIBE_ORDER.into_iter().find(|t| *t == resp.type_url) else {
        tracing::warn!(type_url = %resp.type_url, "ignoring response of unsupported type");
        return;
    };
    let result = handler.apply(type_url, &resp.resources);
    let entry = states.entry(type_url).or_default();
    entry.nonce = resp.nonce.clone();
    let error = match result {
        Ok(()) => {
            entry.version = resp.version_info.clone();
            tracing::info!(r#type = short_type(type_url), version = %resp.version_info, "ACK");
            None
        }
        Err(message) => {
            tracing::warn!(r#type = short_type(type_url), version = %resp.version_info, %message, "NACK");
            Some(Status {
                code: INVALID_ARGUMENT,
                message,
                details: Vec::new(),
            })
        }
    };
    record(
        status,
        type_url,
        entry,
        error.as_ref().map(|e| e.message.clone()),
    );
    let names = wanted(handler, type_url);
    send_request(cfg, tx, states, type_url, names, error).await;
    // A new listener or cluster set may change which routes and endpoints we need.
    for t in SUBSCRIBE_ORDER {
        if t == CLUSTER_TYPE || t == LISTENER_TYPE || t == type_url {
            continue;
        }
        let names = wanted(handler, t);
        let current = states.get(t).and_then(|s| s.names.clone());
        let changed = match &current {
            Some(old) => *old != names,
            None => !names.is_empty(),
        };
        if changed {
            send_request(cfg, tx, states, t, names, None).await;
        }
    }
}

pub(crate) fn wanted<H: Handler>(handler: &H, type_url: &str) -> Vec<String> {
    if type_url == CLUSTER_TYPE || type_url == LISTENER_TYPE {
        Vec::new()
    } else {
        handler.subscriptions(type_url)
    }
}

fn record(status: &StatusHandle, type_url: &str, state: &TypeState, error: Option<String>) {
    record_outcome(status, type_url, &state.nonce, &state.version, error);
}

/// Note an ACK (`error` = None, `version` accepted) or NACK for the admin view.
pub(crate) fn record_outcome(
    status: &StatusHandle,
    type_url: &str,
    nonce: &str,
    version: &str,
    error: Option<String>,
) {
    if let Ok(mut s) = status.lock() {
        let ts = s.types.entry(type_url.to_string()).or_default();
        ts.last_nonce = nonce.to_string();
        match error {
            None => {
                ts.accepted_version = version.to_string();
                ts.acks += 1;
                ts.last_error = None;
            }
            Some(e) => {
                ts.nacks += 1;
                ts.last_error = Some(e);
            }
        }
    }
}

async fn send_request(
    cfg: &ClientConfig,
    tx: &mpsc::Sender<DiscoveryRequest>,
    states: &mut HashMap<&'static str, TypeState>,
    type_url: &'static str,
    names: Vec<String>,
    error_detail: Option<Status>,
) {
    let state = states.entry(type_url).or_default();
    state.names = Some(names.clone());
    let req = DiscoveryRequest {
        version_info: state.version.clone(),
        node: Some(cfg.node.clone()),
        resource_names: names,
        type_url: type_url.to_string(),
        response_nonce: state.nonce.clone(),
        error_detail,
        ..Default::default()
    };
    // A closed channel means the stream is gone; the read loop notices and reconnects.
    let _ = tx.send(req).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(1),
        };
        for attempt in 0..40 {
            let d = b.delay(attempt);
            let ceiling = Duration::from_millis(100 * (1u64 << attempt.min(16))).min(b.max);
            assert!(d <= ceiling && d >= ceiling / 2, "attempt {attempt}: {d:?}");
        }
    }
}
