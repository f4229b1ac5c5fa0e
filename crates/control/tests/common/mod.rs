//! Shared by the control plane's end-to-end tests: a Bookinfo-shaped mesh of echo workloads
//! registered through Kubernetes Services and WorkloadEntries in a temp config directory,
//! `plexus control` in-process on port 0, and client sidecars of each kind (the Plexus proxy
//! in-process, a real Envoy child from the bootstrap `plexus envoy-bootstrap` writes), both in
//! interception mode NONE so they bind per-port outbound listeners on their own loopback IP.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use plexus_control::bootstrap::{BootstrapOptions, envoy_bootstrap};
use plexus_control::{ControlConfig, ControlHandle};
use plexus_testkit::echo::{self, EchoConfig, EchoHandle};
use plexus_testkit::eventually;
use plexus_xds::node::{InterceptionMode, NodeIdentity, ProxyType};
use tokio::process::{Child, Command};

pub const WAIT: Duration = Duration::from_secs(20);
/// The Bookinfo services' port.
pub const PORT: u16 = 9080;

/// The Istio corpus: `PLEXUS_CONFORMANCE_DIR`, else `../shared/conformance/istio` beside the
/// workspace, else `/work/shared/conformance/istio`.
pub fn corpus_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PLEXUS_CONFORMANCE_DIR") {
        return PathBuf::from(d);
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/istio");
    if beside.is_dir() {
        return beside;
    }
    PathBuf::from("/work/shared/conformance/istio")
}

/// A file of `samples/bookinfo/networking`.
pub fn bookinfo(name: &str) -> String {
    let path = corpus_dir().join("samples/bookinfo/networking").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Only the documents of `kind` from a multi-document YAML text.
pub fn only_kind(text: &str, kind: &str) -> String {
    text.split("\n---")
        .filter(|doc| doc.lines().any(|l| l.trim() == format!("kind: {kind}")))
        .collect::<Vec<_>>()
        .join("\n---\n")
}

/// Workloads: (service, version).
pub const WORKLOADS: [(&str, &str); 10] = [
    ("productpage", "v1"),
    ("reviews", "v1"),
    ("reviews", "v2"),
    ("reviews", "v3"),
    ("ratings", "v1"),
    ("ratings", "v2"),
    ("ratings", "v2-mysql"),
    ("ratings", "v2-mysql-vm"),
    ("details", "v1"),
    ("details", "v2"),
];

pub fn registry_yaml(echoes: &[(String, String, SocketAddr)]) -> String {
    let mut out = String::new();
    for svc in ["productpage", "reviews", "ratings", "details"] {
        out.push_str(&format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {svc}, namespace: default, labels: {{app: {svc}}}}}\nspec:\n  selector: {{app: {svc}}}\n  ports:\n  - {{name: http, port: {PORT}, targetPort: http}}\n---\n"
        ));
    }
    for (svc, version, addr) in echoes {
        out.push_str(&format!(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {svc}-{version}, namespace: default}}\nspec:\n  address: {}\n  labels: {{app: {svc}, version: {version}}}\n  ports: {{http: {}}}\n---\n",
            addr.ip(),
            addr.port()
        ));
    }
    out
}

static DIRS: AtomicU32 = AtomicU32::new(0);

/// A config directory, the control plane on it, and the echo workloads it registers.
pub struct Mesh {
    pub dir: PathBuf,
    pub control: ControlHandle,
    pub echoes: Vec<EchoHandle>,
    /// What `registry.yaml` registers: (service, version, address).
    pub registered: Vec<(String, String, SocketAddr)>,
    /// How many sidecars the test started (all must be connected to count as synced).
    pub proxies: AtomicUsize,
}

impl Mesh {
    /// Bookinfo's services and DestinationRules (`destination-rule-all.yaml`), no VirtualService.
    pub async fn start() -> Mesh {
        // RUST_LOG=info shows the control plane's and the Plexus proxy's logs on failures.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        let n = DIRS.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("plexus-control-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut echoes = Vec::new();
        let mut registered = Vec::new();
        for (svc, version) in WORKLOADS {
            let cfg = EchoConfig {
                workload: svc.into(),
                version: version.into(),
                ..Default::default()
            };
            let h = echo::start_http(cfg, "127.0.0.1:0".parse().expect("addr"))
                .await
                .expect("echo");
            registered.push((svc.to_string(), version.to_string(), h.addr));
            echoes.push(h);
        }
        std::fs::write(dir.join("registry.yaml"), registry_yaml(&registered)).expect("write");
        let registered_copy = registered.clone();
        std::fs::write(
            dir.join("destination-rule-all.yaml"),
            bookinfo("destination-rule-all.yaml"),
        )
        .expect("write");
        let cfg = ControlConfig {
            config_dir: dir.clone(),
            xds_address: "127.0.0.1:0".parse().expect("addr"),
            debug_address: "127.0.0.1:0".parse().expect("addr"),
            mesh: Default::default(),
            replicas: Default::default(),
        };
        let control = plexus_control::start(cfg)
            .await
            .expect("control plane starts");
        let state = control.config();
        assert!(
            state.rejected.is_empty(),
            "base config rejected: {:?}",
            state.rejected
        );
        Mesh {
            dir,
            control,
            echoes,
            registered: registered_copy,
            proxies: AtomicUsize::new(0),
        }
    }

    /// Replace `file` in the config directory (write aside, then rename, as editors do).
    pub fn write(&self, file: &str, text: &str) {
        let tmp = self.dir.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, self.dir.join(file)).expect("rename");
    }

    /// Wait until the store has read `file` as `text` (each object served as written, or
    /// rejected), every proxy has processed the snapshot built from it, and all are SYNCED.
    pub async fn settle(&self, file: &str, text: &str) -> Result<(), String> {
        self.settle_of(file, text, None).await
    }

    /// `settle`, waiting only for the sidecars in `only`.
    pub async fn settle_of(
        &self,
        file: &str,
        text: &str,
        only: Option<&[String]>,
    ) -> Result<(), String> {
        let path = self.dir.join(file).display().to_string();
        let wanted = plexus_api::load_str(text, &path);
        let generation = eventually(WAIT, &format!("config store to read {file}"), || async {
            let state = self.control.config();
            let all = wanted.objects.iter().all(|o| {
                let key = plexus_sources::ObjectKey::of(o);
                let served = state.accepted.get(&key).is_some_and(|a| {
                    *a.origin.path == *path && a.root.to_json() == o.root.to_json()
                });
                served
                    || state
                        .rejected
                        .iter()
                        .any(|r| r.path == path && r.resource == o.resource_name())
            });
            all.then_some(state.generation)
        })
        .await?;
        self.synced_of(generation, only).await
    }

    /// Wait until the snapshot of config generation `generation` (or later) reached every
    /// sidecar the test started (or only those in `only`) and each ACKed everything it was sent.
    pub async fn synced(&self, generation: u64) -> Result<(), String> {
        self.synced_of(generation, None).await
    }

    pub async fn synced_of(&self, generation: u64, only: Option<&[String]>) -> Result<(), String> {
        let hub = &self.control.hub;
        eventually(WAIT, "every proxy SYNCED on the new snapshot", || async {
            let current = hub.generator().version();
            let proxies: Vec<_> = hub
                .proxies()
                .into_iter()
                .filter(|p| only.is_none_or(|ids| ids.contains(&p.id)))
                .collect();
            let want = only.map_or(self.proxies.load(Ordering::Relaxed), <[String]>::len);
            let synced = proxies.iter().all(|p| {
                p.snapshot_version == current
                    && [plexus_xds::CLUSTER_TYPE, plexus_xds::LISTENER_TYPE]
                        .iter()
                        .all(|t| p.types.contains_key(*t))
                    && p.types.values().all(|t| t.state() == "SYNCED")
            });
            (proxies.len() >= want && hub.config_generation() >= generation && synced).then_some(())
        })
        .await
        .map_err(|e| {
            let syncz = plexus_control::debug::syncz(hub);
            format!(
                "{e}; config generation {} (want {generation}); syncz: {syncz:#}",
                hub.config_generation()
            )
        })
    }
}

impl Mesh {
    /// Every NACK the control plane has seen (counters survive disconnects), plus the last
    /// message of each connected proxy that NACKed.
    pub fn nacks(&self) -> Vec<String> {
        let hub = &self.control.hub;
        let mut out: Vec<String> = plexus_control::debug::nack_counts(hub)
            .into_iter()
            .map(|(t, n)| format!("{n} {t} NACKs"))
            .collect();
        for p in hub.proxies() {
            for (t, st) in &p.types {
                if let Some(msg) = &st.nack {
                    out.push(format!("{} {}: {msg}", p.id, plexus_xds::short_type(t)));
                }
            }
        }
        out
    }
}

impl Drop for Mesh {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static IPS: AtomicU32 = AtomicU32::new(1);

/// A loopback address of its own for a sidecar's bound listeners (127.0.0.0/8 is all local on
/// Linux), so sidecars in one test, and tests in parallel, never share an address:port.
pub fn unique_ip() -> String {
    let n = IPS.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    format!(
        "127.{}.{}.{}",
        100 + pid % 100,
        (pid / 100) % 250,
        n % 250 + 1
    )
}

pub fn identity(name: &str, ip: &str) -> NodeIdentity {
    NodeIdentity {
        extra_metadata: Default::default(),
        proxy_type: ProxyType::Sidecar,
        ip: ip.into(),
        pod: format!("{name}-0"),
        namespace: "default".into(),
        // `version: v1` lets `sourceLabels: {version: v1}` rules (pilot/config) apply.
        labels: BTreeMap::from([
            ("app".to_string(), name.to_string()),
            ("version".to_string(), "v1".to_string()),
        ]),
        service_account: "default".into(),
        interception_mode: InterceptionMode::None,
        cluster_id: "Kubernetes".into(),
        workload_name: name.into(),
    }
}

enum Runner {
    Plexus(plexus_proxy::ProxyHandle),
    Envoy(Box<(Child, PathBuf)>),
}

/// A client sidecar: requests to `addr` with `Host: <service>` go through the mesh.
pub struct Sidecar {
    pub plane: &'static str,
    pub node_id: String,
    /// The bound outbound listener for port 9080.
    pub addr: SocketAddr,
    runner: Runner,
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

impl Sidecar {
    pub async fn plexus(mesh: &Mesh, delta: bool) -> Sidecar {
        let ip = unique_ip();
        Sidecar::plexus_node(mesh, delta, identity("client-plexus", &ip)).await
    }

    /// A Plexus proxy with this node identity.
    pub async fn plexus_node(mesh: &Mesh, delta: bool, node: NodeIdentity) -> Sidecar {
        mesh.proxies.fetch_add(1, Ordering::Relaxed);
        let control = &mesh.control;
        let ip = node.ip.clone();
        let node_id = node.node_id();
        let cfg = plexus_proxy::ProxyConfig {
            xds_address: control.xds_url(),
            node,
            admin_address: "127.0.0.1:0".parse().expect("addr"),
            drain: Duration::from_secs(1),
            backoff: plexus_xds::client::Backoff::default(),
            delta,
            log_control: None,
        };
        let handle = plexus_proxy::start(cfg).await.expect("plexus proxy starts");
        Sidecar {
            plane: "plexus",
            node_id,
            addr: format!("{ip}:{PORT}").parse().expect("addr"),
            runner: Runner::Plexus(handle),
        }
    }

    /// A stock Envoy started from the bootstrap the control plane's CLI writes. `None` (after
    /// printing why) when Envoy is not installed and `CI` is not `true`.
    pub async fn envoy(mesh: &Mesh, test: &str, delta: bool) -> Option<Sidecar> {
        let ip = unique_ip();
        Sidecar::envoy_node(mesh, test, delta, identity("client-envoy", &ip)).await
    }

    /// A stock Envoy with this node identity.
    pub async fn envoy_node(
        mesh: &Mesh,
        test: &str,
        delta: bool,
        node: NodeIdentity,
    ) -> Option<Sidecar> {
        let binary = plexus_testkit::envoy::binary_for_test(test)?;
        mesh.proxies.fetch_add(1, Ordering::Relaxed);
        let control = &mesh.control;
        let ip = node.ip.clone();
        let opts = BootstrapOptions {
            xds_host: control.xds_address.ip().to_string(),
            xds_port: control.xds_address.port(),
            admin_address: "127.0.0.1".into(),
            admin_port: 0,
            delta,
        };
        let bootstrap = envoy_bootstrap(&node.to_node(), &opts);
        let dir = std::env::temp_dir().join(format!("plexus-envoy-{ip}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("envoy dir");
        let config = dir.join("bootstrap.json");
        std::fs::write(&config, bootstrap.to_string()).expect("bootstrap");
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
            .arg(dir.join("admin.txt"))
            .arg("--log-path")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("envoy starts");
        Some(Sidecar {
            plane: "envoy",
            node_id: node.node_id(),
            addr: format!("{ip}:{PORT}").parse().expect("addr"),
            runner: Runner::Envoy(Box::new((child, log))),
        })
    }

    /// Envoy's log, for failure messages.
    pub fn log(&self) -> String {
        match &self.runner {
            Runner::Envoy(e) => std::fs::read_to_string(&e.1).unwrap_or_default(),
            Runner::Plexus(_) => String::new(),
        }
    }

    pub fn is_running(&mut self) -> bool {
        match &mut self.runner {
            Runner::Envoy(e) => matches!(e.0.try_wait(), Ok(None)),
            Runner::Plexus(_) => true,
        }
    }

    /// One request through the sidecar to `host` (a service name), on a new connection: a
    /// connection opened before a listener update stays on the old filter chain while Envoy
    /// drains it, as any client would see.
    pub async fn get(
        &self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        self.get_with(&client(), host, path, headers).await
    }

    async fn get_with(
        &self,
        client: &Client<HttpConnector, Full<Bytes>>,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let mut req = http::Request::builder()
            .uri(format!("http://{}{path}", self.addr))
            .header("host", format!("{host}:{PORT}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::default()).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let resp = tokio::time::timeout(WAIT, client.request(req))
            .await
            .map_err(|_| format!("{}: no response within {WAIT:?}", self.plane))?
            .map_err(|e| format!("{}: {e}", self.plane))?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        Ok(Reply {
            status,
            workload: json["workload"].as_str().unwrap_or_default().to_string(),
            version: json["version"].as_str().unwrap_or_default().to_string(),
            elapsed: started.elapsed(),
        })
    }

    /// Poll until `host` answers 200 through this sidecar.
    pub async fn wait_ready(&self, host: &str) -> Result<(), String> {
        let last = std::sync::Mutex::new(String::new());
        eventually(WAIT, &format!("{} to route {host}", self.plane), || async {
            let r = self.get(host, "/", &[]).await;
            if let Ok(mut l) = last.lock() {
                *l = format!("{r:?}");
            }
            r.ok().filter(|r| r.status == 200).map(|_| ())
        })
        .await
        .map_err(|e| {
            format!(
                "{e}; last: {}",
                last.lock().map(|l| l.clone()).unwrap_or_default()
            )
        })
    }

    /// `n` requests; counts per answering version (`status:NNN` for non-200 answers).
    pub async fn tally(
        &self,
        host: &str,
        n: usize,
        headers: &[(&str, &str)],
    ) -> Result<BTreeMap<String, usize>, String> {
        let mut out = BTreeMap::new();
        let client = client();
        for _ in 0..n {
            let r = self.get_with(&client, host, "/", headers).await?;
            let key = if r.status == 200 {
                format!("{}-{}", r.workload, r.version)
            } else {
                format!("status:{}", r.status)
            };
            *out.entry(key).or_insert(0) += 1;
        }
        Ok(out)
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Runner::Envoy(e) = &mut self.runner {
            let _ = e.0.start_kill();
            if let Some(dir) = e.1.parent() {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

/// A full response: status, headers, body as JSON (echo replies).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub json: serde_json::Value,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How long an Envoy sidecar may take, after ACKing a push, to route with it.
pub const ENVOY_PROPAGATION: Duration = Duration::from_millis(500);

impl Sidecar {
    /// Runs a scenario's `check` once every sidecar has ACKed the scenario's config. Envoy
    /// ACKs a push on its main thread and hands the new routes to its worker thread afterwards,
    /// so a request sent the moment Envoy ACKed may still take the old route; on Envoy a
    /// failed check therefore runs once more after `ENVOY_PROPAGATION`, and both errors are
    /// reported if it fails again. Plexus applies a push before it ACKs it: one attempt.
    pub async fn check_after_ack<'a, F, Fut>(&'a self, check: F) -> Result<(), String>
    where
        F: Fn(&'a Sidecar) -> Fut,
        Fut: std::future::Future<Output = Result<(), String>>,
    {
        match check(self).await {
            Err(first) if self.plane == "envoy" => {
                tokio::time::sleep(ENVOY_PROPAGATION).await;
                check(self)
                    .await
                    .map_err(|e| format!("{e} (also right after the ACK: {first})"))
            }
            result => result,
        }
    }

    /// One request on a new connection to this sidecar's listener for `port`, with
    /// `Host: <host>:<port>`.
    pub async fn request(
        &self,
        method: &str,
        host: &str,
        port: u16,
        headers: &[(&str, &str)],
    ) -> Result<Response, String> {
        self.request_path(method, host, port, "/", headers).await
    }

    /// `request` for a given path.
    pub async fn request_path(
        &self,
        method: &str,
        host: &str,
        port: u16,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Response, String> {
        let mut req = http::Request::builder()
            .method(method)
            .uri(format!("http://{}:{port}{path}", self.addr.ip()))
            .header("host", format!("{host}:{port}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::default()).map_err(|e| e.to_string())?;
        let resp = tokio::time::timeout(WAIT, client().request(req))
            .await
            .map_err(|_| format!("{}: no response within {WAIT:?}", self.plane))?
            .map_err(|e| format!("{}: {e}", self.plane))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Response {
            status,
            headers,
            json: serde_json::from_slice(&body).unwrap_or_default(),
        })
    }
}

/// What a user sees of one response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub workload: String,
    pub version: String,
    pub elapsed: Duration,
}
