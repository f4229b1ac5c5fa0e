//! One state-of-the-world ADS stream. Envoy's protocol, from the xDS docs: each response
//! carries a version and a fresh nonce; the proxy answers with that nonce — an ACK carries the
//! new version, a NACK the last good one plus `error_detail`. A request carrying an older nonce
//! is stale and ignored. A request with no nonce (first of a stream or of a type), or with a
//! changed name list (RDS, EDS), is answered at once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::hub::Sent;
use super::{Generator, Hub, PUSH_ORDER, Resources, dependent_type, is_wildcard_type, select};

type Tx = mpsc::Sender<Result<DiscoveryResponse, Status>>;

/// Per type on this stream.
#[derive(Default)]
struct Subscription {
    names: BTreeSet<String>,
    /// What the last response held (`None`: nothing sent yet).
    sent: Option<BTreeMap<String, Any>>,
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

/// Serve one stream until the proxy hangs up.
pub(crate) async fn run(hub: Arc<Hub>, mut inbound: Streaming<DiscoveryRequest>, tx: Tx) {
    let Ok(Some(first)) = inbound.message().await else {
        return;
    };
    let Some(opened) =
        super::open_stream(&hub, first.node.clone(), &tx, "SotW", "DiscoveryRequest").await
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

impl Stream {
    async fn on_request(&mut self, req: DiscoveryRequest) -> Result<(), ()> {
        let type_url = req.type_url.clone();
        let fresh = req.response_nonce.is_empty();
        if !fresh {
            let current = self.subs.get(&type_url).map(|s| s.nonce.as_str());
            if current != Some(req.response_nonce.as_str()) {
                return Ok(());
            }
            let error = req.error_detail.as_ref().map(|e| e.message.clone());
            self.hub
                .answered(self.conn, &type_url, &req.response_nonce, error);
        }
        let names: BTreeSet<String> = req.resource_names.into_iter().collect();
        let sub = self.subs.entry(type_url.clone()).or_default();
        let names_changed = !is_wildcard_type(&type_url) && sub.names != names;
        sub.names = names;
        if fresh || names_changed {
            self.send(&type_url, true).await?;
        }
        Ok(())
    }

    /// A new snapshot: send every subscribed type whose content changed for this proxy, and
    /// after clusters or listeners also the endpoints or routes they depend on.
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
        let mut forced: BTreeSet<&str> = BTreeSet::new();
        for type_url in PUSH_ORDER {
            if !self.subs.contains_key(type_url) {
                continue;
            }
            let sent = self.send(type_url, forced.contains(type_url)).await?;
            if sent && let Some(dep) = dependent_type(type_url) {
                forced.insert(dep);
            }
        }
        self.hub.seen(self.conn, &version);
        Ok(())
    }

    /// Send `type_url` if its content changed (or `force`). Returns whether it sent.
    async fn send(&mut self, type_url: &str, force: bool) -> Result<bool, ()> {
        let Some(sub) = self.subs.get_mut(type_url) else {
            return Ok(false);
        };
        let chosen: BTreeMap<String, Any> = select(
            &self.resources,
            type_url,
            &sub.names,
            is_wildcard_type(type_url),
        )
        .into_iter()
        .map(|(n, a)| (n, a.clone()))
        .collect();
        if !force && sub.sent.as_ref() == Some(&chosen) {
            return Ok(false);
        }
        let version = self.generator.version();
        let nonce = self.hub.nonce();
        let resp = DiscoveryResponse {
            version_info: version.clone(),
            resources: chosen.values().cloned().collect(),
            type_url: type_url.to_string(),
            nonce: nonce.clone(),
            ..Default::default()
        };
        sub.nonce = nonce.clone();
        sub.sent = Some(chosen.clone());
        self.hub.sent(
            self.conn,
            Sent {
                type_url,
                version: &version,
                nonce: &nonce,
                resources: chosen,
                snapshot: &version,
            },
        );
        self.tx.send(Ok(resp)).await.map_err(|_| ())?;
        Ok(true)
    }
}
