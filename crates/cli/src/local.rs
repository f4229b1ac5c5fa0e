//! `plexus up`, `plexus exec`, `plexus down`: argument parsing and output for the local mesh
//! (`plexus-local` does the work).

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use plexus_local::state::{self, RunState};
use plexus_local::supervise::alive;
use plexus_local::up::{self, DataPlane, UpOptions};

#[derive(Clone, Copy, ValueEnum)]
pub enum DataPlaneArg {
    Plexus,
    Envoy,
}

#[derive(Args)]
pub struct UpArgs {
    /// Directory of YAML: Istio config, Kubernetes Services and plexus.dev Workloads.
    dir: PathBuf,
    /// A network namespace per replica with iptables capture (root).
    #[arg(long)]
    netns: bool,
    /// Proxy used as sidecars and gateway.
    #[arg(long, value_enum, default_value = "plexus")]
    data_plane: DataPlaneArg,
    /// Host the ingress gateway serves Gateway ports on.
    #[arg(long, default_value = "127.0.0.1")]
    gateway_address: Ipv4Addr,
    /// Start in the background and return once the mesh is ready (`plexus down` stops it).
    #[arg(long, visible_alias = "detach")]
    keep: bool,
    /// Run dir holding the state file, generated config and logs.
    #[arg(long, env = "PLEXUS_RUN_DIR")]
    run_dir: Option<PathBuf>,
    /// Loopback block: replicas get 127.<BLOCK>.x.y addresses.
    #[arg(long, default_value_t = up::DEFAULT_BLOCK)]
    block: u8,
    /// The plexus binary run as control plane, proxies and for workloads whose command is
    /// `plexus ...` (default: this one).
    #[arg(long, env = "PLEXUS_BINARY")]
    plexus_binary: Option<PathBuf>,
    /// Envoy binary for `--data-plane envoy` (default: `envoy` on PATH, else the test setup's
    /// `.venv/bin/envoy` of the workspace this binary was built in).
    #[arg(long, env = "PLEXUS_ENVOY_BINARY")]
    envoy_binary: Option<PathBuf>,
    /// Seconds to wait for every part of the mesh to be ready.
    #[arg(long, default_value_t = up::DEFAULT_READY_TIMEOUT.as_secs())]
    ready_timeout: u64,
}

#[derive(Args)]
pub struct ExecArgs {
    /// WORKLOAD (replica 0) or WORKLOAD/REPLICA.
    target: String,
    /// The command and its arguments (after `--`).
    #[arg(required = true, last = true)]
    command: Vec<String>,
    #[arg(long, env = "PLEXUS_RUN_DIR")]
    run_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct DownArgs {
    #[arg(long, env = "PLEXUS_RUN_DIR")]
    run_dir: Option<PathBuf>,
}

fn run_dir(arg: Option<PathBuf>) -> PathBuf {
    arg.unwrap_or_else(state::default_run_dir)
}

fn say(line: &str) {
    println!("plexus up: {line}");
}

pub fn up(args: UpArgs) -> ExitCode {
    let exe = match args
        .plexus_binary
        .clone()
        .map(Ok)
        .unwrap_or_else(std::env::current_exe)
    {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot find the plexus binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let run_dir = run_dir(args.run_dir.clone());
    if args.keep {
        return detach(&exe, &args, run_dir);
    }
    let dir = std::fs::canonicalize(&args.dir).unwrap_or(args.dir.clone());
    let envoy = args
        .envoy_binary
        .clone()
        .or_else(|| plexus_local::procs::find_envoy(&exe))
        .or_else(|| {
            let me = std::env::current_exe().ok()?;
            plexus_local::procs::find_envoy(&me)
        });
    let envoy = match (args.data_plane, envoy) {
        (DataPlaneArg::Envoy, None) => {
            eprintln!(
                "error: --data-plane envoy: no Envoy found (set --envoy-binary or PLEXUS_ENVOY_BINARY, \
                 or put envoy on PATH)"
            );
            return ExitCode::from(2);
        }
        (_, e) => e.unwrap_or_default(),
    };
    let opts = UpOptions {
        dir,
        run_dir,
        block: args.block,
        gateway_host: args.gateway_address,
        data_plane: match args.data_plane {
            DataPlaneArg::Plexus => DataPlane::Plexus,
            DataPlaneArg::Envoy => DataPlane::Envoy,
        },
        netns: args.netns,
        exe,
        envoy,
        ready_timeout: Duration::from_secs(args.ready_timeout),
    };
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(stop.clone());
    let mesh = match up::start(opts, stop, &mut |l| say(l)) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    say("mesh ready; Ctrl-C or `plexus down` stops it");
    up::run(mesh, &mut |l| say(l));
    ExitCode::SUCCESS
}

/// Set `stop` on SIGINT or SIGTERM.
fn watch_signals(stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(crate::proxy::wait_for_signal());
        stop.store(true, Ordering::SeqCst);
    });
}

/// Re-run `up` without `--keep` in its own process group, logging to `<run>/logs/up.log`, and
/// follow that log until the state file says ready (or the child fails).
fn detach(exe: &std::path::Path, args: &UpArgs, run_dir: PathBuf) -> ExitCode {
    if let Ok(Some(old)) = RunState::read(&run_dir)
        && old.is_live()
    {
        eprintln!(
            "error: a mesh is already running from {} (pid {}); stop it with `plexus down`",
            old.source_dir.display(),
            old.up_pid
        );
        return ExitCode::FAILURE;
    }
    let argv: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--keep" && a != "--detach")
        .collect();
    let log_path = run_dir.join("logs").join("up.log");
    let open = std::fs::create_dir_all(run_dir.join("logs"))
        .and_then(|_| std::fs::File::create(&log_path))
        .and_then(|f| Ok((f.try_clone()?, f)));
    let (out, err) = match open {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {}: {e}", log_path.display());
            return ExitCode::FAILURE;
        }
    };
    let child = Command::new(exe)
        .args(&argv)
        .env("PLEXUS_RUN_DIR", &run_dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot start plexus up in the background: {e}");
            return ExitCode::FAILURE;
        }
    };
    let pid = child.id();
    let mut reader = std::fs::File::open(&log_path).ok().map(BufReader::new);
    let deadline = Instant::now() + Duration::from_secs(args.ready_timeout + 15);
    loop {
        follow(&mut reader);
        if let Ok(Some(s)) = RunState::read(&run_dir)
            && s.up_pid == pid
            && s.ready
        {
            follow(&mut reader);
            println!("plexus up: running in the background (pid {pid}); `plexus down` stops it");
            return ExitCode::SUCCESS;
        }
        if let Ok(Some(status)) = child.try_wait() {
            follow(&mut reader);
            eprintln!(
                "error: plexus up exited ({status}); log: {}",
                log_path.display()
            );
            return ExitCode::FAILURE;
        }
        if Instant::now() >= deadline || !alive(pid) {
            eprintln!(
                "error: the mesh did not become ready; log: {}",
                log_path.display()
            );
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn follow(reader: &mut Option<BufReader<std::fs::File>>) {
    let Some(r) = reader else { return };
    let mut line = String::new();
    while let Ok(n) = r.read_line(&mut line) {
        if n == 0 || !line.ends_with('\n') {
            // Partial line: re-read it next time.
            let back = i64::try_from(line.len()).unwrap_or(0);
            let _ = r.seek(SeekFrom::Current(-back));
            return;
        }
        print!("{line}");
        line.clear();
    }
}

pub fn exec(args: ExecArgs) -> ExitCode {
    let dir = run_dir(args.run_dir);
    let st = match RunState::read(&dir) {
        Ok(Some(s)) if s.is_live() => s,
        Ok(_) => {
            eprintln!("error: no mesh is running (start one with `plexus up DIR`)");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let replica = match st.replica(&args.target) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let Some((prog, rest)) = args.command.split_first() else {
        return ExitCode::from(2);
    };
    let mut cmd = match &replica.netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, prog]).args(rest);
            c
        }
        None => {
            let mut c = Command::new(prog);
            c.args(rest);
            c
        }
    };
    cmd.envs(replica.env.iter().map(|(k, v)| (k, v)));
    match cmd.status() {
        Ok(s) => ExitCode::from(s.code().and_then(|c| u8::try_from(c).ok()).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: cannot run {prog:?}: {e}");
            ExitCode::FAILURE
        }
    }
}

pub fn down(args: DownArgs) -> ExitCode {
    let dir = run_dir(args.run_dir);
    match state::down(&dir, Duration::from_secs(15)) {
        Ok(r) => {
            if r.stopped_up {
                println!("plexus down: mesh stopped");
            }
            for k in &r.killed {
                println!("plexus down: killed leftover {k}");
            }
            for ns in &r.namespaces_removed {
                println!("plexus down: removed network namespace {ns}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
