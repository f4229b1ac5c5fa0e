//! The ADS server's shared state: the current generator (one per config snapshot), and for
//! every connected proxy what was sent, what it ACKed or NACKed, and the resources it holds —
//! the data behind `/debug/syncz`, `/debug/config_dump` and `plexus proxy-status`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::Any;
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::Generator;

/// One response, as recorded for the debug API.
pub(crate) struct Sent<'a> {
    pub type_url: &'a str,
    pub version: &'a str,
    pub nonce: &'a str,
    /// The proxy's resources of this type after the response.
    pub resources: BTreeMap<String, Any>,
    pub snapshot: &'a str,
}

/// Per proxy and type: what the server sent and what the proxy said about it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TypeSync {
    pub sent_version: String,
    pub sent_nonce: String,
    /// Version of the last response the proxy ACKed.
    pub acked_version: String,
    pub acked_nonce: String,
    /// The error of the last NACK, while the latest response is NACKed.
    pub nack: Option<String>,
    pub nacks: u64,
    pub pushes: u64,
    /// Names and packed resources last sent (delta: the proxy's current set).
    #[serde(skip)]
    pub resources: BTreeMap<String, Any>,
}

impl TypeSync {
    /// `SYNCED` (latest response ACKed), `NACKED`, `STALE` (sent, no answer yet), or
    /// `NOT SENT`.
    pub fn state(&self) -> &'static str {
        if self.sent_nonce.is_empty() {
            "NOT SENT"
        } else if self.nack.is_some() {
            "NACKED"
        } else if self.acked_nonce == self.sent_nonce {
            "SYNCED"
        } else {
            "STALE"
        }
    }
}

/// One connected proxy.
#[derive(Clone, Debug, Serialize)]
pub struct ProxyState {
    pub id: String,
    /// `sidecar` or `router`, from the node id.
    pub proxy_type: String,
    /// `SotW` or `Delta`.
    pub protocol: &'static str,
    pub connected_at_unix: u64,
    /// The last snapshot version this proxy's stream has processed (sent or found unchanged).
    pub snapshot_version: String,
    pub types: BTreeMap<String, TypeSync>,
    #[serde(skip)]
    pub node: Node,
}

/// What the control loop learns about connections (for WorkloadGroup auto-registration).
#[derive(Clone, Debug)]
pub enum ProxyEvent {
    Connected { conn: u64, node: Node },
    Disconnected { conn: u64, node: Node },
}

/// Counters served on `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    pub pushes: Mutex<BTreeMap<String, u64>>,
    pub nacks: Mutex<BTreeMap<String, u64>>,
    pub connections: AtomicU64,
}

/// Shared by every stream task and the debug API.
pub struct Hub {
    generator: watch::Sender<Arc<dyn Generator>>,
    proxies: Mutex<BTreeMap<u64, ProxyState>>,
    next_conn: AtomicU64,
    next_nonce: AtomicU64,
    config_generation: AtomicU64,
    events: mpsc::UnboundedSender<ProxyEvent>,
    pub counters: Counters,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking stream task must not take the debug API down with it.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    /// A hub serving `initial`; connection events go to the returned receiver.
    pub fn new(initial: Arc<dyn Generator>) -> (Arc<Hub>, mpsc::UnboundedReceiver<ProxyEvent>) {
        let (events, rx) = mpsc::unbounded_channel();
        let (generator, _) = watch::channel(initial);
        let hub = Hub {
            generator,
            proxies: Mutex::new(BTreeMap::new()),
            next_conn: AtomicU64::new(1),
            next_nonce: AtomicU64::new(1),
            config_generation: AtomicU64::new(0),
            events,
            counters: Counters::default(),
        };
        (Arc::new(hub), rx)
    }

    /// Make `g` current; every stream regenerates and pushes what changed for its proxy.
    pub fn publish(&self, g: Arc<dyn Generator>) {
        self.generator.send_replace(g);
    }

    pub fn generator(&self) -> Arc<dyn Generator> {
        self.generator.borrow().clone()
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<Arc<dyn Generator>> {
        self.generator.subscribe()
    }

    pub(crate) fn nonce(&self) -> String {
        self.next_nonce.fetch_add(1, Ordering::Relaxed).to_string()
    }

    /// Register a stream once its node is known; returns the connection id.
    pub(crate) fn connect(&self, node: &Node, protocol: &'static str) -> u64 {
        let conn = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let proxy_type = node.id.split('~').next().unwrap_or_default().to_string();
        let state = ProxyState {
            id: node.id.clone(),
            proxy_type,
            protocol,
            connected_at_unix: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default(),
            snapshot_version: String::new(),
            types: BTreeMap::new(),
            node: node.clone(),
        };
        lock(&self.proxies).insert(conn, state);
        self.counters.connections.fetch_add(1, Ordering::Relaxed);
        let _ = self.events.send(ProxyEvent::Connected {
            conn,
            node: node.clone(),
        });
        tracing::info!(proxy = %node.id, protocol, "proxy connected");
        conn
    }

    pub(crate) fn disconnect(&self, conn: u64) {
        if let Some(p) = lock(&self.proxies).remove(&conn) {
            tracing::info!(proxy = %p.id, "proxy disconnected");
            let _ = self
                .events
                .send(ProxyEvent::Disconnected { conn, node: p.node });
        }
    }

    /// Record a response sent to `conn`.
    pub(crate) fn sent(&self, conn: u64, response: Sent<'_>) {
        let Sent {
            type_url,
            version,
            nonce,
            resources,
            snapshot,
        } = response;
        let mut proxies = lock(&self.proxies);
        let Some(p) = proxies.get_mut(&conn) else {
            return;
        };
        p.snapshot_version = snapshot.to_string();
        let t = p.types.entry(type_url.to_string()).or_default();
        t.sent_version = version.to_string();
        t.sent_nonce = nonce.to_string();
        t.nack = None;
        t.pushes += 1;
        t.resources = resources;
        *lock(&self.counters.pushes)
            .entry(plexus_xds::short_type(type_url).to_string())
            .or_default() += 1;
    }

    /// The stream of `conn` has processed snapshot `version` (whether or not it sent anything).
    pub(crate) fn seen(&self, conn: u64, version: &str) {
        if let Some(p) = lock(&self.proxies).get_mut(&conn) {
            p.snapshot_version = version.to_string();
        }
    }

    /// Record that the published snapshot was built from config generation `g`.
    pub fn set_config_generation(&self, g: u64) {
        self.config_generation.store(g, Ordering::Release);
    }

    /// The config generation the current snapshot was built from.
    pub fn config_generation(&self) -> u64 {
        self.config_generation.load(Ordering::Acquire)
    }

    /// Whether every connected proxy has processed the current snapshot and ACKed every type it
    /// was sent (what `plexus proxy-status` shows as all SYNCED).
    pub fn all_synced(&self) -> bool {
        let current = self.generator().version();
        // A proxy that has not been sent listeners and clusters yet is not synced, whatever the
        // (empty) rest says.
        lock(&self.proxies).values().all(|p| {
            p.snapshot_version == current
                && [plexus_xds::CLUSTER_TYPE, plexus_xds::LISTENER_TYPE]
                    .iter()
                    .all(|t| p.types.contains_key(*t))
                && p.types.values().all(|t| t.state() == "SYNCED")
        })
    }

    /// Record an ACK (error `None`) or NACK for the response with `nonce`.
    pub(crate) fn answered(&self, conn: u64, type_url: &str, nonce: &str, error: Option<String>) {
        let mut proxies = lock(&self.proxies);
        let Some(p) = proxies.get_mut(&conn) else {
            return;
        };
        let id = p.id.clone();
        let t = p.types.entry(type_url.to_string()).or_default();
        if t.sent_nonce != nonce {
            return;
        }
        match error {
            None => {
                t.acked_version = t.sent_version.clone();
                t.acked_nonce = nonce.to_string();
                t.nack = None;
            }
            Some(msg) => {
                tracing::warn!(proxy = %id, r#type = plexus_xds::short_type(type_url), "NACK: {msg}");
                t.nack = Some(msg);
                t.nacks += 1;
                *lock(&self.counters.nacks)
                    .entry(plexus_xds::short_type(type_url).to_string())
                    .or_default() += 1;
            }
        }
    }

    /// Every connected proxy, by node id.
    pub fn proxies(&self) -> Vec<ProxyState> {
        let mut out: Vec<ProxyState> = lock(&self.proxies).values().cloned().collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// The proxy with this node id (the newest connection if it reconnected).
    pub fn proxy(&self, id: &str) -> Option<ProxyState> {
        lock(&self.proxies)
            .iter()
            .rev()
            .find(|(_, p)| p.id == id)
            .map(|(_, p)| p.clone())
    }
}
