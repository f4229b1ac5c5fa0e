//! `plexus proxy`: the data plane, configured only over xDS.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use plexus_proxy::ProxyConfig;
use plexus_xds::client::Backoff;
use plexus_xds::node::{InterceptionMode, NodeIdentity, ProxyType};

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Sidecar,
    Router,
}

#[derive(Clone, Copy, ValueEnum)]
enum Interception {
    #[value(name = "REDIRECT")]
    Redirect,
    #[value(name = "NONE")]
    None,
}

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
    /// Proxy type in the node id.
    #[arg(long = "type", value_enum, default_value = "sidecar")]
    kind: Kind,
    /// Workload IP (node id and INSTANCE_IPS).
    #[arg(long, env = "INSTANCE_IP", default_value = "127.0.0.1")]
    ip: String,
    #[arg(long, env = "POD_NAME", default_value = "plexus-proxy")]
    pod_name: String,
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    namespace: String,
    /// Workload labels, `key=value` (repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    #[arg(long, env = "SERVICE_ACCOUNT", default_value = "default")]
    service_account: String,
    /// Reported to the control plane; Plexus does not capture traffic itself yet.
    #[arg(long, value_enum, default_value = "NONE")]
    interception_mode: Interception,
    /// WORKLOAD_NAME metadata (defaults to the pod name).
    #[arg(long)]
    workload_name: Option<String>,
    #[arg(long, env = "CLUSTER_ID", default_value = "Kubernetes")]
    cluster_id: String,
    /// Seconds to let open connections finish after SIGTERM or /quitquitquit.
    #[arg(long, default_value_t = 5)]
    drain_seconds: u64,
    /// Use delta (incremental) xDS instead of state-of-the-world.
    #[arg(long, env = "PLEXUS_XDS_DELTA")]
    xds_delta: bool,
    /// Extra node metadata `KEY=VALUE` (repeatable), e.g. the local mesh's
    /// `PLEXUS_APP_ADDRESS=127.4.2.1`. The Istio keys set by the flags above take precedence.
    #[arg(long = "metadata", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
    /// Worker threads serving traffic (Envoy's `--concurrency`). 1 runs everything on one
    /// single-threaded runtime, which avoids cross-thread wake-ups; Istio's sidecar default is 2.
    #[arg(long, env = "PLEXUS_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
}

pub fn run(args: ProxyArgs) -> ExitCode {
    let ProxyArgs {
        xds_address,
        admin_address,
        kind,
        ip,
        pod_name,
        namespace,
        labels,
        service_account,
        interception_mode,
        workload_name,
        cluster_id,
        drain_seconds,
        xds_delta,
        metadata,
        concurrency,
    } = args;
    let mut label_map = BTreeMap::new();
    for l in labels {
        let Some((k, v)) = l.split_once('=') else {
            eprintln!("error: --labels expects key=value, got {l:?}");
            return ExitCode::from(2);
        };
        label_map.insert(k.to_string(), v.to_string());
    }
    let mut extra_metadata = BTreeMap::new();
    for m in metadata {
        let Some((k, v)) = m.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            eprintln!("error: --metadata expects KEY=VALUE, got {m:?}");
            return ExitCode::from(2);
        };
        extra_metadata.insert(k.to_string(), v.to_string());
    }
    let node = NodeIdentity {
        extra_metadata,
        proxy_type: match kind {
            Kind::Sidecar => ProxyType::Sidecar,
            Kind::Router => ProxyType::Router,
        },
        ip,
        workload_name: workload_name.unwrap_or_else(|| pod_name.clone()),
        pod: pod_name,
        namespace,
        labels: label_map,
        service_account,
        interception_mode: match interception_mode {
            Interception::Redirect => InterceptionMode::Redirect,
            Interception::None => InterceptionMode::None,
        },
        cluster_id,
    };
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
