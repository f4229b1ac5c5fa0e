//! `plexus up` in process mode: write the config dir, start the control plane, the ingress
//! gateway, and per replica a sidecar and the workload's process; wait until all are ready;
//! then keep the mesh alive (restarts, directory re-sync, status) until asked to stop.

use std::net::{Ipv4Addr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::LocalError;
use crate::generate::{self, GENERATED_FILE, USER_DIR, Vips};
use crate::plan::{self, Plan};
use crate::procs::{app_spec, control_spec, gateway_spec, sidecar_spec};
use crate::spec::{self, MeshSpec};
use crate::state::{ReplicaState, RunState};
use crate::status::{self, ReplicaRow, Status};
use crate::supervise::{Event, ProcSpec, Supervisor};

/// Which proxy runs as sidecars and gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataPlane {
    Plexus,
    Envoy,
}

/// Everything `up` needs to know.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub dir: PathBuf,
    pub run_dir: PathBuf,
    /// Second octet of the mesh's loopback block (`127.<block>.0.0/16`).
    pub block: u8,
    pub gateway_host: Ipv4Addr,
    pub data_plane: DataPlane,
    /// A network namespace per replica with iptables capture (root).
    pub netns: bool,
    /// The `plexus` binary to run for control, proxies and `plexus` commands of workloads.
    pub exe: PathBuf,
    /// The Envoy binary for `--data-plane envoy`.
    pub envoy: PathBuf,
    pub ready_timeout: Duration,
}

/// Default loopback block and readiness deadline.
pub const DEFAULT_BLOCK: u8 = 1;
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long children get to exit after SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_secs(6);

/// A running local mesh.
pub struct Mesh {
    /// Set by a signal; checked while starting too, so Ctrl-C never waits for readiness.
    stop: Arc<AtomicBool>,
    /// Service VIPs (netns mode).
    pub vips: Vips,
    pub opts: UpOptions,
    pub spec: MeshSpec,
    pub plan: Plan,
    pub sup: Supervisor,
    pub state: RunState,
    last_status: String,
}

pub(crate) fn config_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("config")
}

pub(crate) fn log(run_dir: &Path, name: &str) -> PathBuf {
    run_dir
        .join("logs")
        .join(format!("{}.log", name.replace([' ', '/'], "-")))
}

/// Check the run dir is free, read and plan the mesh, write its config dir.
fn prepare(opts: &UpOptions) -> Result<(MeshSpec, Plan, Vips), LocalError> {
    if let Some(old) = RunState::read(&opts.run_dir)?
        && old.is_live()
    {
        return Err(LocalError::Usage(format!(
            "a mesh is already running from {} (pid {}); stop it with `plexus down`",
            old.source_dir.display(),
            old.up_pid
        )));
    }
    if opts.data_plane == DataPlane::Plexus && !opts.netns && !proxy_takes_metadata(&opts.exe) {
        return Err(LocalError::Usage(format!(
            "{} proxy has no --metadata KEY=VALUE, which process mode needs to tell each sidecar \
             where its app listens (PLEXUS_APP_ADDRESS); use --data-plane envoy, or a plexus \
             whose proxy has it",
            opts.exe.display()
        )));
    }
    let spec = spec::load_dir(&opts.dir)?;
    let mut plan = plan::plan(&spec, opts.block, opts.gateway_host)?;
    let mut vips = Vips::new();
    if opts.netns {
        if !crate::netns::available() || !crate::capture::available() {
            return Err(LocalError::Usage(
                "--netns needs root, ip(8) and iptables (process mode, without --netns, needs none)"
                    .into(),
            ));
        }
        plan = plan::into_netns(plan);
        vips = crate::netmode::vips(&spec);
    }
    let cfg = config_dir(&opts.run_dir);
    generate::mirror(&opts.dir, &cfg.join(USER_DIR), &vips)?;
    generate::write_if_changed(&cfg.join(GENERATED_FILE), &generate::generated_yaml(&plan))?;
    Ok((spec, plan, vips))
}

/// Start the whole mesh and wait until it serves. On any failure everything started so far is
/// stopped again.
pub fn start(
    opts: UpOptions,
    stop: Arc<AtomicBool>,
    progress: &mut dyn FnMut(&str),
) -> Result<Mesh, LocalError> {
    let (spec, plan, vips) = prepare(&opts)?;
    progress(&format!(
        "config: {} workloads, {} replicas, {} services; control plane watches {}",
        spec.workloads.len(),
        plan.replicas.len(),
        spec.services.len(),
        config_dir(&opts.run_dir).display()
    ));
    let state = RunState {
        up_pid: std::process::id(),
        config_dir: config_dir(&opts.run_dir),
        source_dir: opts.dir.clone(),
        debug_address: plan.debug_address(),
        replicas: plan
            .replicas
            .iter()
            .map(|r| ReplicaState {
                workload: r.workload.name.clone(),
                index: r.index,
                env: r.env(),
                netns: r.netns.clone(),
            })
            .collect(),
        gateways: plan
            .gateway_ports
            .iter()
            .map(|(_, local)| format!("{}:{local}", plan.gateway_host))
            .collect(),
        ..Default::default()
    };
    let mut mesh = Mesh {
        stop,
        vips,
        opts,
        spec,
        plan,
        sup: Supervisor::default(),
        state,
        last_status: String::new(),
    };
    match mesh.launch(progress) {
        Ok(()) => Ok(mesh),
        Err(e) => {
            progress(&format!("start failed: {e}; stopping what was started"));
            mesh.stop();
            Err(e)
        }
    }
}

impl Mesh {
    fn spawn(&mut self, spec: ProcSpec) -> Result<(), LocalError> {
        let name = spec.name.clone();
        let pid = self.sup.start(spec)?;
        self.state.processes.insert(name, pid);
        self.state.write(&self.opts.run_dir)
    }

    fn launch(&mut self, progress: &mut dyn FnMut(&str)) -> Result<(), LocalError> {
        let deadline = Instant::now() + self.opts.ready_timeout;
        self.state.write(&self.opts.run_dir)?;
        if self.plan.hub.is_some() {
            progress("creating network namespaces (hub, one per replica) with iptables capture");
            crate::netmode::setup(&self.plan, &self.vips, &mut self.state, &self.opts.run_dir)?;
        }
        self.spawn(control_spec(&self.opts, &self.plan))?;
        progress(&format!(
            "starting control plane (xDS {}, debug {})",
            self.plan.xds_address(),
            self.plan.debug_address()
        ));
        self.wait_for("control plane", deadline, |m| {
            let d = m.plan.debug_address();
            let ok = tcp_open(&d);
            (
                ok,
                if ok {
                    String::new()
                } else {
                    format!("debug API {d} not answering")
                },
            )
        })?;
        if !self.plan.gateway_ports.is_empty() {
            self.spawn(gateway_spec(&self.opts, &self.plan)?)?;
        }
        let replicas = self.plan.replicas.clone();
        for r in &replicas {
            self.spawn(sidecar_spec(&self.opts, &self.plan, r)?)?;
            self.spawn(app_spec(&self.opts, r))?;
        }
        progress(&format!(
            "starting {} sidecars and workloads, ingress gateway",
            replicas.len()
        ));
        self.wait_for("mesh", deadline, Mesh::not_ready)?;
        self.state.ready = true;
        self.state.write(&self.opts.run_dir)?;
        for (port, local) in &self.plan.gateway_ports {
            let moved = if port != local {
                format!(" (Gateway port {port} moved up by 8000)")
            } else {
                String::new()
            };
            progress(&format!(
                "ready: gateway http://{}:{local}/{moved}",
                self.plan.gateway_host
            ));
        }
        Ok(())
    }

    /// Poll `check` until it passes or `deadline`; an exited child fails early with its log.
    fn wait_for(
        &mut self,
        what: &str,
        deadline: Instant,
        check: fn(&Mesh) -> (bool, String),
    ) -> Result<(), LocalError> {
        loop {
            for ev in self.sup.poll(Instant::now()) {
                if let Event::Exited { name, status, .. } = &ev {
                    let log = self
                        .sup
                        .get(name)
                        .map(|p| p.spec.log.clone())
                        .unwrap_or_default();
                    return Err(LocalError::Spawn(format!(
                        "{name} exited while starting ({status}); its log: {}\n{}",
                        log.display(),
                        tail(&log, 8)
                    )));
                }
            }
            let (ok, why) = check(self);
            if ok {
                return Ok(());
            }
            if self.stop.load(Ordering::SeqCst) {
                return Err(LocalError::Usage(format!(
                    "stopped while waiting for the {what}"
                )));
            }
            if Instant::now() >= deadline {
                return Err(LocalError::Timeout(format!(
                    "{what} not ready after {}s: {why} (logs in {})",
                    self.opts.ready_timeout.as_secs(),
                    self.opts.run_dir.join("logs").display()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What is not ready yet (empty when everything is): proxies' admin `/ready`, app ports,
    /// gateway ports.
    fn not_ready(&self) -> (bool, String) {
        let mut waiting = Vec::new();
        if !self.plan.gateway_ports.is_empty() && !proxy_ready(&self.plan.gateway_admin_address()) {
            waiting.push("gateway proxy".to_string());
        }
        for r in &self.plan.replicas {
            if !proxy_ready(&r.admin_address()) {
                waiting.push(format!("sidecar {}", r.name()));
            }
            // In a namespace the app is only reachable through capture, i.e. the sidecar.
            if let Some(p) = r.workload.ports.first()
                && r.netns.is_none()
                && !tcp_open(&r.app_address(p.port))
            {
                waiting.push(format!("app {} on {}", r.name(), r.app_address(p.port)));
            }
        }
        for (_, local) in &self.plan.gateway_ports {
            let a = format!("{}:{local}", self.plan.gateway_host);
            if !tcp_open(&a) {
                waiting.push(format!("gateway listener {a}"));
            }
        }
        (
            waiting.is_empty(),
            format!("waiting for {}", waiting.join(", ")),
        )
    }

    /// One round of supervision: restarts, directory re-sync. Returns lines for the user.
    pub fn tick(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        for ev in self.sup.poll(Instant::now()) {
            if let Event::Restarted { name, pid, .. } = &ev {
                self.state.processes.insert(name.clone(), *pid);
                let _ = self.state.write(&self.opts.run_dir);
            }
            lines.push(ev.to_string());
        }
        let cfg = config_dir(&self.opts.run_dir).join(USER_DIR);
        match generate::mirror(&self.opts.dir, &cfg, &self.vips) {
            Ok(true) => {
                lines.push(format!(
                    "{} changed; the control plane reloads it",
                    self.opts.dir.display()
                ));
                match spec::load_dir(&self.opts.dir) {
                    Ok(s) if s.workloads != self.spec.workloads => lines.push(
                        "Workload objects changed: restart `plexus up` to run the new processes"
                            .into(),
                    ),
                    Ok(s) => self.spec.services = s.services,
                    Err(e) => lines.push(format!("config error: {e}")),
                }
            }
            Ok(false) => {}
            Err(e) => lines.push(format!("cannot mirror {}: {e}", self.opts.dir.display())),
        }
        lines
    }

    /// The current status (asks the control plane's debug API).
    pub fn status(&self) -> Status {
        let sync = match status::http_get(&self.plan.debug_address(), "/debug/syncz") {
            Ok((200, body)) => status::parse_syncz(&body),
            _ => Default::default(),
        };
        let state_of = |pod: &str| sync.get(pod).cloned().unwrap_or_else(|| "-".into());
        let rows = self
            .plan
            .replicas
            .iter()
            .map(|r| {
                let app = self.sup.get(&format!("app {}", r.name()));
                let process = match app {
                    Some(p) if p.running() => "running".to_string(),
                    Some(p) => format!("restarting ({})", p.last_exit.clone().unwrap_or_default()),
                    None => "-".into(),
                };
                ReplicaRow {
                    services: self
                        .spec
                        .services
                        .iter()
                        .filter(|s| s.selects(&r.workload))
                        .map(|s| s.name.clone())
                        .collect(),
                    workload: r.workload.name.clone(),
                    replica: r.name(),
                    address: r.pod_ip.to_string(),
                    process,
                    sidecar: state_of(&r.name()),
                }
            })
            .collect();
        let gateways = self
            .plan
            .gateway_ports
            .iter()
            .map(|(port, local)| {
                (
                    format!("{}:{local}", self.plan.gateway_host),
                    *port,
                    state_of("istio-ingressgateway-0"),
                )
            })
            .collect();
        Status { rows, gateways }
    }

    /// The status table if it changed since the last call.
    pub fn status_if_changed(&mut self) -> Option<String> {
        let t = status::render(&self.status());
        (t != self.last_status).then(|| {
            self.last_status = t.clone();
            t
        })
    }

    /// Stop every child and remove the state file.
    pub fn stop(&mut self) {
        self.sup.stop_all(STOP_GRACE);
        crate::netmode::teardown(&mut self.state);
        let _ = std::fs::remove_file(RunState::path(&self.opts.run_dir));
    }
}

/// Run until the stop flag is set: supervise, re-sync, print status changes.
pub fn run(mut mesh: Mesh, out: &mut dyn FnMut(&str)) {
    let stop = mesh.stop.clone();
    let mut next_status = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        for l in mesh.tick() {
            out(&l);
        }
        if Instant::now() >= next_status {
            if let Some(t) = mesh.status_if_changed() {
                out(&t);
            }
            next_status = Instant::now() + Duration::from_secs(2);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    out("stopping the mesh");
    mesh.stop();
    out("stopped");
}

/// Whether `exe proxy` accepts `--metadata` (checked once, before anything starts).
fn proxy_takes_metadata(exe: &Path) -> bool {
    std::process::Command::new(exe)
        .args(["proxy", "--help"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("--metadata"))
}

fn tcp_open(addr: &str) -> bool {
    addr.to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(300)).is_ok())
}

fn proxy_ready(admin: &str) -> bool {
    matches!(status::http_get(admin, "/ready"), Ok((200, _)))
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
