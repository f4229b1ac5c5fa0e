//! The Plexus data plane: an xDS-driven L4/L7 proxy. `start` connects to the ADS server,
//! serves admin, and runs whatever listeners the control plane pushes; it returns a handle with
//! the addresses it actually bound.

pub mod admin;
pub mod apply;
pub mod budget;
pub mod cluster;
pub mod config;
pub mod conn_life;
pub mod cors;
pub mod detect;
pub mod dns;
pub mod downstream;
pub mod envoy_headers;
pub mod flags;
pub mod grpc_timeout;
pub mod handoff;
pub mod health;
pub mod http;
pub mod idle;
pub mod lb;
pub mod listener;
pub mod mirror;
pub mod outlier;
pub mod overrides;
pub mod pool;
pub mod probe;
pub mod redirect;
pub mod request_id;
pub mod select;
pub mod stats;
pub mod store;
pub mod tcp;
pub mod tls;
pub mod tls_inspect;
pub mod tunnel;
pub mod upgrade;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use plexus_xds::client::{self, Backoff, ClientConfig, StatusHandle};
use plexus_xds::node::NodeIdentity;
use tokio::sync::watch;

pub use flags::{ERROR_HEADER, ResponseFlag};
pub use store::Store;

/// Default admin address (Istio's and Envoy's 15000, loopback only).
pub const DEFAULT_ADMIN_ADDRESS: &str = "127.0.0.1:15000";
/// How long SIGTERM/quitquitquit waits for open connections before exiting.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct ProxyConfig {
    /// `http://host:port` of the ADS server.
    pub xds_address: String,
    pub node: NodeIdentity,
    pub admin_address: SocketAddr,
    pub drain: Duration,
    pub backoff: Backoff,
    /// Delta (incremental) xDS instead of state-of-the-world.
    pub delta: bool,
    /// Reads (`None`) or replaces (`Some(filter)`) the log filter for `/logging`; the binary
    /// owns the subscriber, so it provides this.
    pub log_control: Option<LogControl>,
}

/// See `ProxyConfig::log_control`. Returns the filter in force, or why a new one was refused.
pub type LogControl = Arc<dyn Fn(Option<&str>) -> Result<String, String> + Send + Sync>;

/// A running proxy.
pub struct ProxyHandle {
    pub admin: SocketAddr,
    pub store: Arc<Store>,
    pub ads: StatusHandle,
    stop: watch::Sender<bool>,
    quit: watch::Receiver<bool>,
    drain: Duration,
}

/// Bind admin, start the ADS client. Listeners appear as LDS pushes arrive.
pub async fn start(cfg: ProxyConfig) -> std::io::Result<ProxyHandle> {
    let ProxyConfig {
        xds_address,
        node,
        admin_address,
        drain,
        backoff,
        delta,
        log_control,
    } = cfg;
    let store = Arc::new(Store::default());
    let ads: StatusHandle = StatusHandle::default();
    let (stop, stopped) = watch::channel(false);
    let (quit_tx, quit) = watch::channel(false);
    let admin_listener = admin::bind(admin_address).await?;
    let admin = admin_listener.local_addr()?;
    let state = admin::AdminState {
        store: store.clone(),
        ads: ads.clone(),
        node_id: node.node_id(),
        quit: quit_tx,
        log_control,
    };
    tokio::spawn(admin::serve(admin_listener, state, stopped.clone()));
    let client_cfg = ClientConfig {
        address: xds_address,
        node: node.to_node(),
        backoff,
        delta,
    };
    tracing::info!(node = %client_cfg.node.id, xds = %client_cfg.address, %admin, "plexus proxy starting");
    tokio::spawn(client::run(
        client_cfg,
        apply::XdsHandler::new(store.clone()),
        ads.clone(),
        stopped,
    ));
    Ok(ProxyHandle {
        admin,
        store,
        ads,
        stop,
        quit,
        drain,
    })
}

impl ProxyHandle {
    /// Bound address of listener `name`.
    pub fn listener_addr(&self, name: &str) -> Option<SocketAddr> {
        self.store.listener_addr(name)
    }

    /// Wait until `/quitquitquit` is called.
    pub async fn quit_requested(&mut self) {
        while !*self.quit.borrow() {
            if self.quit.changed().await.is_err() {
                return;
            }
        }
    }

    /// Stop the ADS client and listeners, then wait up to the drain period for open
    /// connections to finish. Returns the number still open when it gave up.
    pub async fn drain(self) -> usize {
        let _ = self.stop.send(true);
        self.store.listeners.store(Arc::default());
        // Listener sockets close when the handler (owned by the ADS task) drops them.
        let deadline = tokio::time::Instant::now() + self.drain;
        loop {
            let open = self.store.active_connections.load(Ordering::Acquire);
            if open == 0 || tokio::time::Instant::now() >= deadline {
                return open;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
