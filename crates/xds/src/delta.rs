//! Delta (incremental) ADS client: one `DeltaAggregatedResources` stream. The server sends only
//! changed resources and names removed ones; the client tells it what it already has on
//! reconnect (`initial_resource_versions`) and changes RDS/EDS interest with
//! subscribe/unsubscribe lists. ACK and NACK semantics are those of state-of-the-world.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::{
    ClientConfig, Handler, INVALID_ARGUMENT, StatusHandle, record_outcome, set_connected, wanted,
};
use crate::{CLUSTER_TYPE, LISTENER_TYPE, SUBSCRIBE_ORDER, short_type};

/// What the client holds per type across reconnects: accepted resource versions, and the
/// names it asked for on the current stream (RDS, EDS).
#[derive(Default)]
pub(crate) struct TypeState {
    versions: BTreeMap<String, String>,
    subscribed: Option<BTreeSet<String>>,
}

/// Per-type delta state, kept by the caller across reconnects.
pub(crate) type DeltaState = HashMap<&'static str, TypeState>;

/// One delta stream from connect to end. Returns whether any response arrived.
pub(crate) async fn stream_once<H: Handler>(
    cfg: &ClientConfig,
    handler: &mut H,
    status: &StatusHandle,
    states: &mut DeltaState,
) -> bool {
    let mut client = match AggregatedDiscoveryServiceClient::connect(cfg.address.clone()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(address = %cfg.address, error = %e, "ADS connect failed");
            return false;
        }
    };
    let (tx, rx) = mpsc::channel::<DeltaDiscoveryRequest>(16);
    // A new stream starts with no subscriptions; the versions we hold let the server send only
    // what changed and tell us what was removed while we were away.
    for state in states.values_mut() {
        state.subscribed = None;
    }
    for t in [CLUSTER_TYPE, LISTENER_TYPE] {
        let state = states.entry(t).or_default();
        let req = DeltaDiscoveryRequest {
            node: Some(cfg.node.clone()),
            type_url: t.to_string(),
            initial_resource_versions: state
                .versions
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..Default::default()
        };
        let _ = tx.send(req).await;
    }
    let mut inbound = match client
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(e) => {
            tracing::warn!(error = %e, "delta ADS stream rejected");
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
                tracing::warn!(error = %e, "delta ADS stream error");
                return got_response;
            }
        };
        got_response = true;
        handle_response(cfg, handler, status, &tx, states, resp).await;
    }
}

async fn handle_response<H: Handler>(
    cfg: &ClientConfig,
    handler: &mut H,
    status: &StatusHandle,
    tx: &mpsc::Sender<DeltaDiscoveryRequest>,
    states: &mut DeltaState,
    resp: DeltaDiscoveryResponse,
) {
    let Some(type_url) = SUBSCRIBE_ORDER.into_iter().find(|t| *t == resp.type_url) else {
        tracing::warn!(type_url = %resp.type_url, "ignoring delta response of unsupported type");
        return;
    };
    let updated: Vec<Any> = resp
        .resources
        .iter()
        .filter_map(|r| r.resource.clone())
        .collect();
    let result = handler.apply_delta(type_url, &updated, &resp.removed_resources);
    let state = states.entry(type_url).or_default();
    for name in &resp.removed_resources {
        state.versions.remove(name);
    }
    let error = match result {
        Ok(()) => {
            for r in &resp.resources {
                state.versions.insert(r.name.clone(), r.version.clone());
            }
            tracing::info!(r#type = short_type(type_url), nonce = %resp.nonce, "delta ACK");
            None
        }
        Err(message) => {
            tracing::warn!(r#type = short_type(type_url), nonce = %resp.nonce, %message, "delta NACK");
            Some(Status {
                code: INVALID_ARGUMENT,
                message,
                details: Vec::new(),
            })
        }
    };
    let message = error.as_ref().map(|e| e.message.clone());
    record_outcome(
        status,
        type_url,
        &resp.nonce,
        &resp.system_version_info,
        message,
    );
    let ack = DeltaDiscoveryRequest {
        node: Some(cfg.node.clone()),
        type_url: type_url.to_string(),
        response_nonce: resp.nonce.clone(),
        error_detail: error,
        ..Default::default()
    };
    let _ = tx.send(ack).await;
    resubscribe(cfg, handler, tx, states).await;
}

/// Send subscribe/unsubscribe changes for RDS and EDS after listeners or clusters changed.
async fn resubscribe<H: Handler>(
    cfg: &ClientConfig,
    handler: &H,
    tx: &mpsc::Sender<DeltaDiscoveryRequest>,
    states: &mut DeltaState,
) {
    for t in SUBSCRIBE_ORDER {
        if t == CLUSTER_TYPE || t == LISTENER_TYPE {
            continue;
        }
        let want: BTreeSet<String> = wanted(handler, t).into_iter().collect();
        let state = states.entry(t).or_default();
        let first = state.subscribed.is_none();
        let have = state.subscribed.clone().unwrap_or_default();
        // Nothing to ask for yet, or nothing changed.
        if (first && want.is_empty()) || (!first && want == have) {
            continue;
        }
        let req = DeltaDiscoveryRequest {
            node: Some(cfg.node.clone()),
            type_url: t.to_string(),
            resource_names_subscribe: want.difference(&have).cloned().collect(),
            resource_names_unsubscribe: have.difference(&want).cloned().collect(),
            initial_resource_versions: if first {
                state
                    .versions
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            } else {
                Default::default()
            },
            ..Default::default()
        };
        state.subscribed = Some(want);
        let _ = tx.send(req).await;
    }
}
