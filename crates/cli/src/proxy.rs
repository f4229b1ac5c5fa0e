//! `plexus proxy`: the data plane, configured only over xDS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use plexus_proxy::ProxyConfig;
use plexus_xds::client::Backoff;

#[derive(Args)]
pub struct ProxyArgs {
    /// ADS server (plaintext gRPC).
    #[arg(
        long,
        env = "PLEXUS_XDS_ADDRESS",
        default_value = "http://127.0.0.1:15010"
    )]
    xds_address: String,
    /// Admin endpoint address.
    #[arg(long, env = "PLEXUS_ADMIN_ADDRESS", default_value = plexus_proxy::DEFAULT_ADMIN_ADDRESS)]
    admin_address: SocketAddr,
    #[command(flatten)]
    node: crate::node_flags::NodeFlags,
    /// Seconds to let open connections finish after SIGTERM or /quitquitquit.
    #[arg(long, default_value_t = 5)]
    drain_seconds: u64,
    /// Use delta (incremental) xDS instead of state-of-the-world.
    #[arg(long, env = "PLEXUS_XDS_DELTA")]
    xds_delta: bool,
    /// Worker threads serving traffic (Envoy's `--concurrency`). 1 runs everything on one
    /// single-threaded runtime, which avoids cross-thread wake-ups; Istio's sidecar default is 2.
    #[arg(long, env = "PLEXUS_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Do not proxy: write the bootstrap that makes a stock Envoy this proxy (pilot-agent's
    /// `--agent-only` role) to the `--envoy-bootstrap` file and exit.
    #[arg(long, requires = "envoy_bootstrap")]
    agent_only: bool,
    /// With `--agent-only`: where to write the Envoy bootstrap (`-` is stdout).
    #[arg(long, requires = "agent_only", value_name = "FILE")]
    envoy_bootstrap: Option<PathBuf>,
}

pub fn run(args: ProxyArgs) -> ExitCode {
    let ProxyArgs {
        xds_address,
        admin_address,
        node,
        drain_seconds,
        xds_delta,
        concurrency,
        agent_only,
        envoy_bootstrap,
    } = args;
    let node = match node.identity() {
        Ok(node) => node,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let (true, Some(file)) = (agent_only, envoy_bootstrap) {
        return agent_only_bootstrap(&file, &node, &xds_address, admin_address, xds_delta);
    }
    let cfg = ProxyConfig {
        xds_address,
        node,
        admin_address,
        drain: Duration::from_secs(drain_seconds),
        backoff: Backoff::default(),
        delta: xds_delta,
        log_control: Some(init_logging()),
    };
    let rt = match runtime(concurrency) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        tokio::spawn(timer_anchor());
        let mut handle = match plexus_proxy::start(cfg).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: cannot start proxy (admin {admin_address}): {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("plexus proxy admin listening on {}", handle.admin);
        tokio::select! {
            _ = wait_for_signal() => {}
            _ = handle.quit_requested() => {}
        }
        let open = handle.drain().await;
        if open > 0 {
            eprintln!("drain period over with {open} connections still open");
        }
        ExitCode::SUCCESS
    })
}

/// `--agent-only --envoy-bootstrap FILE`: the same bootstrap `plexus envoy-bootstrap` writes,
/// from this command's flags (`--xds-address` as `http://host:port`).
fn agent_only_bootstrap(
    file: &Path,
    node: &plexus_xds::node::NodeIdentity,
    xds_address: &str,
    admin_address: SocketAddr,
    delta: bool,
) -> ExitCode {
    let plain = xds_address.strip_prefix("http://").unwrap_or(xds_address);
    let result = if plain.contains("://") {
        Err(format!(
            "--xds-address: the Envoy bootstrap speaks plaintext gRPC; expected http://host:port or host:port, got {xds_address:?}"
        ))
    } else {
        write_bootstrap(
            file,
            node,
            plain.trim_end_matches('/'),
            admin_address,
            delta,
        )
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(feature = "full")]
fn write_bootstrap(
    file: &Path,
    node: &plexus_xds::node::NodeIdentity,
    xds_address: &str,
    admin_address: SocketAddr,
    delta: bool,
) -> Result<(), String> {
    let at = crate::bootstrap::Endpoints {
        xds_address,
        admin_address: &admin_address.to_string(),
        delta,
    };
    crate::bootstrap::write(file, node, &at, None)
}

#[cfg(not(feature = "full"))]
fn write_bootstrap(
    _: &Path,
    _: &plexus_xds::node::NodeIdentity,
    _: &str,
    _: SocketAddr,
    _: bool,
) -> Result<(), String> {
    Err("--agent-only: this plexus is the proxy-only build (without the `full` feature)".into())
}

/// Log to stderr with a filter from `RUST_LOG` (default `info`) that `/logging` can replace.
fn init_logging() -> plexus_proxy::LogControl {
    use tracing_subscriber::{
        EnvFilter, Layer, fmt, layer::SubscriberExt, reload, util::SubscriberInitExt,
    };
    let initial = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(initial);
    let layer = fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let _ = tracing_subscriber::registry().with(layer).try_init();
    std::sync::Arc::new(move |new: Option<&str>| {
        if let Some(directive) = new {
            let parsed = EnvFilter::try_new(directive)
                .map_err(|e| format!("bad filter {directive:?}: {e}"))?;
            handle.reload(parsed).map_err(|e| e.to_string())?;
        }
        handle
            .with_current(|f| f.to_string())
            .map_err(|e| e.to_string())
    })
}

/// SIGTERM or Ctrl-C.
pub async fn wait_for_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Keeps a timer due within a second armed for the life of the proxy. Tokio's timer driver
/// wakes the thread parked in the I/O driver (an eventfd write, then an extra `epoll_wait`)
/// whenever a new timer is due before the parked thread's chosen wake-up; every request arms
/// its route timeout (15 s by default), so on a proxy with no nearer timer each request would
/// pay those two system calls before its upstream write. With this tick, timers due in more
/// than a second need no wake-up; the cost is one wake-up per second.
async fn timer_anchor() {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

/// The proxy's runtime: one thread for `--concurrency 1`, else that many workers.
fn runtime(concurrency: u16) -> std::io::Result<tokio::runtime::Runtime> {
    if concurrency == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(concurrency))
            .enable_all()
            .build()
    }
}
