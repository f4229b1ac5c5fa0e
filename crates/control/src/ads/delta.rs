//! One delta (incremental) ADS stream. Per type the server tracks what the proxy holds (name →
//! version, a hash of the resource's bytes) and sends only resources whose version differs,
//! plus the names to remove. LDS and CDS start as wildcard subscriptions when the first request
//! names nothing (or `*`); RDS and EDS follow `resource_names_subscribe`/`_unsubscribe`.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, Resource,
};
use envoy_types::pb::google::protobuf::Any;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::hub::Sent;
use plexus_xds::{CLUSTER_TYPE, ENDPOINT_TYPE};

use super::{Generator, Hub, PUSH_ORDER, Resources, is_wildcard_type, select};

type Tx = mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>;

#[derive(Default)]
struct Subscription {
    wildcard: bool,
    names: BTreeSet<String>,
    /// What the proxy holds: name → (version, resource).
    held: BTreeMap<String, (String, Any)>,
    nonce: String,
}

struct Stream {
    hub: Arc<Hub>,
    conn: u64,
    node: Node,
    generator: Arc<dyn Generator>,
    resources: Resources,
    subs: BTreeMap<String, Subscription>,
    tx: Tx,
}

/// Serve one delta stream until the proxy hangs up.
pub(crate) async fn run(hub: Arc<Hub>, mut inbound: Streaming<DeltaDiscoveryRequest>, tx: Tx) {
    let Ok(Some(first)) = inbound.message().await else {
        return;
    };
    let Some(opened) = super::open_stream(
        &hub,
        first.node.clone(),
        &tx,
        "Delta",
        "DeltaDiscoveryRequest",
    )
    .await
    else {
        return;
    };
    let super::Opened {
        node,
        mut updates,
        generator,
        resources,
        conn,
    } = opened;
    let mut s = Stream {
        hub: hub.clone(),
        conn,
        node,
        generator,
        resources,
        subs: BTreeMap::new(),
        tx,
    };
    let mut next = Some(first);
    loop {
        if let Some(req) = next.take()
            && s.on_request(req).await.is_err()
        {
            break;
        }
        tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(req)) => next = Some(req),
                _ => break,
            },
            changed = updates.changed() => {
                if changed.is_err() {
                    break;
                }
                let g = updates.borrow_and_update().clone();
                if s.regenerate(g).await.is_err() {
                    break;
                }
            }
        }
    }
    hub.disconnect(conn);
}

/// A resource's version: a hash of its encoded bytes, so equal content has equal versions.
fn version_of(any: &Any) -> String {
    let mut h = DefaultHasher::new();
    any.type_url.hash(&mut h);
    any.value.hash(&mut h);
    format!("{:016x}", h.finish())
}

impl Stream {
    async fn on_request(&mut self, req: DeltaDiscoveryRequest) -> Result<(), ()> {
        let type_url = req.type_url.clone();
        let new_type = !self.subs.contains_key(&type_url);
        if !req.response_nonce.is_empty() {
            let error = req.error_detail.as_ref().map(|e| e.message.clone());
            self.hub
                .answered(self.conn, &type_url, &req.response_nonce, error);
        }
        let sub = self.subs.entry(type_url.clone()).or_default();
        if new_type {
            sub.wildcard = is_wildcard_type(&type_url)
                && (req.resource_names_subscribe.is_empty()
                    || req.resource_names_subscribe.iter().any(|n| n == "*"));
            for (name, version) in &req.initial_resource_versions {
                sub.held
                    .insert(name.clone(), (version.clone(), Any::default()));
            }
        }
        for name in &req.resource_names_subscribe {
            if name == "*" {
                sub.wildcard = true;
            } else {
                sub.names.insert(name.clone());
            }
        }
        for name in &req.resource_names_unsubscribe {
            if name == "*" {
                sub.wildcard = false;
            } else {
                sub.names.remove(name);
                sub.held.remove(name);
            }
        }
        if new_type || !req.resource_names_subscribe.is_empty() {
            self.send(&type_url, new_type).await?;
        }
        Ok(())
    }

    async fn regenerate(&mut self, g: Arc<dyn Generator>) -> Result<(), ()> {
        match super::generate_off_runtime(&g, &self.node).await {
            Ok(r) => self.resources = r,
            Err(e) => {
                tracing::error!(proxy = %self.node.id, "cannot generate config: {e}");
                return Ok(());
            }
        }
        self.generator = g;
        let version = self.generator.version();
        for type_url in PUSH_ORDER {
            let changed = self.send(type_url, false).await?;
            // An updated cluster is re-warmed from EDS: resend its assignment even if unchanged
            // (Istio does the same), as the SotW stream resends EDS after CDS.
            if type_url == CLUSTER_TYPE
                && let Some(eds) = self.subs.get_mut(ENDPOINT_TYPE)
            {
                for name in &changed {
                    eds.held.remove(name);
                }
            }
        }
        self.hub.seen(self.conn, &version);
        Ok(())
    }

    /// Send what changed for `type_url`; with `force`, answer even when nothing did (the first
    /// request of a type always gets a response, or Envoy waits for its initial fetch).
    /// Returns the names of the resources it sent.
    async fn send(&mut self, type_url: &str, force: bool) -> Result<Vec<String>, ()> {
        let Some(sub) = self.subs.get_mut(type_url) else {
            return Ok(Vec::new());
        };
        let chosen = select(&self.resources, type_url, &sub.names, sub.wildcard);
        let mut resources = Vec::new();
        for (name, any) in &chosen {
            let version = version_of(any);
            if sub.held.get(name).map(|(v, _)| v) != Some(&version) {
                resources.push(Resource {
                    name: name.clone(),
                    version: version.clone(),
                    resource: Some((*any).clone()),
                    ..Default::default()
                });
                sub.held.insert(name.clone(), (version, (*any).clone()));
            }
        }
        let removed: Vec<String> = sub
            .held
            .keys()
            .filter(|n| !chosen.contains_key(*n))
            .cloned()
            .collect();
        for n in &removed {
            sub.held.remove(n);
        }
        if resources.is_empty() && removed.is_empty() && !force {
            return Ok(Vec::new());
        }
        let sent_names: Vec<String> = resources.iter().map(|r| r.name.clone()).collect();
        let version = self.generator.version();
        let nonce = self.hub.nonce();
        sub.nonce = nonce.clone();
        let held = sub
            .held
            .iter()
            .map(|(n, (_, a))| (n.clone(), a.clone()))
            .collect();
        self.hub.sent(
            self.conn,
            Sent {
                type_url,
                version: &version,
                nonce: &nonce,
                resources: held,
                snapshot: &version,
            },
        );
        let resp = DeltaDiscoveryResponse {
            system_version_info: version,
            resources,
            type_url: type_url.to_string(),
            removed_resources: removed,
            nonce,
            ..Default::default()
        };
        self.tx.send(Ok(resp)).await.map_err(|_| ())?;
        Ok(sent_names)
    }
}
