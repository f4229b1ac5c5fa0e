//! Delta xDS half of the fake ADS server: per stream and type it tracks the subscription
//! (wildcard for LDS/CDS, or names) and the version of every resource the client has, and sends
//! only changed resources plus the names that went away.

use std::collections::{BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};
use plexus_xds::{CLUSTER_TYPE, LISTENER_TYPE};
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use crate::ads::{AckRecord, State, Streams, lock};

type Tx = mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>;

#[derive(Default)]
struct DeltaSub {
    wildcard: bool,
    names: BTreeSet<String>,
    /// Resource name -> version the client has.
    sent: HashMap<String, String>,
    responded: bool,
}

/// A resource's version: a hash of its bytes, so unchanged resources are never resent.
fn version_of(bytes: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("{:016x}", h.finish())
}

pub(crate) async fn serve_delta(
    state: Arc<Mutex<State>>,
    Streams {
        mut changed,
        mut kick,
    }: Streams,
    mut inbound: Streaming<DeltaDiscoveryRequest>,
    tx: Tx,
) {
    let mut subs: HashMap<String, DeltaSub> = HashMap::new();
    let mut node_id = String::new();
    loop {
        tokio::select! {
            msg = inbound.message() => {
                let Ok(Some(req)) = msg else { return };
                if let Some(node) = &req.node {
                    node_id = node.id.clone();
                }
                let send = on_request(&state, &node_id, &mut subs, &req);
                if send && send_diff(&state, &mut subs, &req.type_url, &tx).await.is_err() {
                    return;
                }
            }
            _ = kick.changed() => return,
            r = changed.changed() => {
                if r.is_err() { return; }
                let types: Vec<String> = subs.keys().cloned().collect();
                for t in types {
                    if send_diff(&state, &mut subs, &t, &tx).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Record ACK/NACK, apply subscription changes. Returns whether a diff must be sent now.
fn on_request(
    state: &Mutex<State>,
    node_id: &str,
    subs: &mut HashMap<String, DeltaSub>,
    req: &DeltaDiscoveryRequest,
) -> bool {
    if !req.response_nonce.is_empty() {
        let mut st = lock(state);
        let version = st
            .nonces
            .get(&req.response_nonce)
            .cloned()
            .unwrap_or_default();
        st.acks.push(AckRecord {
            node_id: node_id.to_string(),
            type_url: req.type_url.clone(),
            version,
            nonce: req.response_nonce.clone(),
            error: req.error_detail.as_ref().map(|e| e.message.clone()),
        });
    }
    let first = !subs.contains_key(&req.type_url);
    let sub = subs.entry(req.type_url.clone()).or_default();
    if first {
        let wildcard_type = req.type_url == LISTENER_TYPE || req.type_url == CLUSTER_TYPE;
        sub.wildcard = wildcard_type
            && (req.resource_names_subscribe.is_empty()
                || req.resource_names_subscribe.iter().any(|n| n == "*"));
        sub.sent = req.initial_resource_versions.clone().into_iter().collect();
    }
    for n in &req.resource_names_subscribe {
        if n != "*" {
            sub.names.insert(n.clone());
        }
    }
    for n in &req.resource_names_unsubscribe {
        sub.names.remove(n);
        sub.sent.remove(n);
    }
    first || !req.resource_names_subscribe.is_empty() || !req.resource_names_unsubscribe.is_empty()
}

async fn send_diff(
    state: &Mutex<State>,
    subs: &mut HashMap<String, DeltaSub>,
    type_url: &str,
    tx: &Tx,
) -> Result<(), ()> {
    let Some(sub) = subs.get_mut(type_url) else {
        return Ok(());
    };
    let resp = {
        let mut st = lock(state);
        let Some((type_version, all)) = st.resources.get(type_url).cloned() else {
            return Ok(());
        };
        let wanted: Vec<_> = all
            .into_iter()
            .filter(|(name, _)| sub.wildcard || sub.names.contains(name))
            .collect();
        let mut resources = Vec::new();
        for (name, any) in &wanted {
            let version = version_of(&any.value);
            if sub.sent.get(name) != Some(&version) {
                sub.sent.insert(name.clone(), version.clone());
                resources.push(Resource {
                    name: name.clone(),
                    version,
                    resource: Some(any.clone()),
                    ..Default::default()
                });
            }
        }
        let present: BTreeSet<&String> = wanted.iter().map(|(n, _)| n).collect();
        let removed: Vec<String> = sub
            .sent
            .keys()
            .filter(|n| !present.contains(n))
            .cloned()
            .collect();
        for n in &removed {
            sub.sent.remove(n);
        }
        if resources.is_empty() && removed.is_empty() && sub.responded {
            return Ok(());
        }
        sub.responded = true;
        st.next_nonce += 1;
        let nonce = st.next_nonce.to_string();
        st.nonces.insert(nonce.clone(), type_version.to_string());
        DeltaDiscoveryResponse {
            system_version_info: type_version.to_string(),
            resources,
            type_url: type_url.to_string(),
            removed_resources: removed,
            nonce,
            ..Default::default()
        }
    };
    tx.send(Ok(resp)).await.map_err(|_| ())
}
