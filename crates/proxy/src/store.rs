//! The live configuration: an immutable `Runtime` snapshot swapped atomically on every
//! accepted push. Requests load it once and finish on the tables they started with.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use arc_swap::ArcSwap;

use crate::cluster::ClusterRuntime;
use crate::config::{Listener, RouteConfig};
use crate::stats::Stats;

/// What requests read: route tables and clusters by name.
#[derive(Default)]
pub struct Runtime {
    pub routes: HashMap<String, Arc<RouteConfig>>,
    pub clusters: HashMap<String, Arc<ClusterRuntime>>,
}

/// A listener as it runs: its config and the address it actually bound.
#[derive(Clone)]
pub struct ListenerView {
    pub config: Arc<Listener>,
    pub bound: SocketAddr,
}

/// Shared by the xDS handler (writer), the data path and the admin endpoint (readers).
#[derive(Default)]
pub struct Store {
    pub runtime: ArcSwap<Runtime>,
    pub listeners: ArcSwap<BTreeMap<String, ListenerView>>,
    pub stats: Stats,
    /// Set once both CDS and LDS have been applied at least once (Envoy's LIVE).
    pub ready: AtomicBool,
    /// Open downstream connections; drain waits for this to reach zero.
    pub active_connections: AtomicUsize,
    /// SDS secrets held and what is warming for them (admin only).
    pub tls: ArcSwap<crate::tls::state::Status>,
}

impl Store {
    /// Bound address of listener `name`, if it is running.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.listeners.load().get(name).map(|l| l.bound)
    }
}
