//! The `plexus` binary: parses arguments and calls the library crates. Nothing else lives here.
//! Without the default `full` feature only `plexus proxy` is built (see `Cargo.toml`).

#[cfg(feature = "full")]
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[cfg(feature = "full")]
mod analyze;
#[cfg(feature = "full")]
mod bootstrap;
#[cfg(feature = "full")]
mod control;
#[cfg(feature = "full")]
mod echo;
#[cfg(feature = "full")]
mod local;
mod node_flags;
#[cfg(feature = "full")]
mod output;
mod proxy;
#[cfg(feature = "full")]
mod status;
#[cfg(feature = "full")]
mod validate;

#[derive(Parser)]
#[command(name = "plexus", version, about = "Plexus service mesh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[cfg(feature = "full")]
    /// Check config files one object at a time (Istio's schema and semantic rules).
    Validate {
        /// Files or directories (recursive: *.yaml, *.yml, *.json); `-` reads stdin.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Treat kinds Plexus does not know as errors, not warnings.
        #[arg(long)]
        strict: bool,
    },
    #[cfg(feature = "full")]
    /// Analyze config across objects with Istio's analyzers (ISTxxxx message codes).
    Analyze {
        /// Files or directories (recursive: *.yaml, *.yml, *.json); `-` reads stdin.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// MeshConfig YAML (the `mesh` key of Istio's ConfigMap); Istio's defaults otherwise.
        #[arg(long, value_name = "FILE")]
        meshconfig: Option<PathBuf>,
        /// MeshNetworks YAML (the `meshNetworks` key of Istio's ConfigMap).
        #[arg(long, value_name = "FILE")]
        meshnetworks: Option<PathBuf>,
        /// Output format.
        #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    #[cfg(feature = "full")]
    /// Echo server for tests and demos (HTTP/1.1 + h2c JSON echo, TCP echo).
    Echo(echo::EchoArgs),
    /// The data plane: an xDS-configured sidecar or gateway proxy.
    Proxy(proxy::ProxyArgs),
    #[cfg(feature = "full")]
    /// The control plane: watch a config directory, serve xDS (ADS) and the debug API.
    Control(control::ControlArgs),
    #[cfg(feature = "full")]
    /// Run a whole mesh on this machine from a directory of YAML (control plane, sidecars,
    /// workloads, ingress gateway).
    Up(local::UpArgs),
    #[cfg(feature = "full")]
    /// Run a command as a workload of the running local mesh (its proxy environment).
    Exec(local::ExecArgs),
    #[cfg(feature = "full")]
    /// Stop the local mesh and undo everything `plexus up` set up.
    Down(local::DownArgs),
    #[cfg(feature = "full")]
    /// Each connected proxy's xDS sync state, and config the control plane rejected.
    ProxyStatus(status::StatusArgs),
    #[cfg(feature = "full")]
    /// What the control plane sends one proxy: listeners, routes, clusters, endpoints or secrets
    /// (certificate names, SANs, expiry and fingerprints only).
    ProxyConfig(status::ConfigArgs),
    #[cfg(feature = "full")]
    /// Write an Envoy bootstrap that joins a stock Envoy to the control plane.
    EnvoyBootstrap(bootstrap::BootstrapArgs),
}

/// How `plexus analyze` prints its messages.
#[cfg(feature = "full")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One line per message: `PATH:LINE: Level [CODE] (Kind ns/name) message`.
    Text,
    /// A JSON array of `{code, level, message, resource, path, line}`.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        #[cfg(feature = "full")]
        Command::Validate { paths, strict } => validate::run(&paths, strict),
        #[cfg(feature = "full")]
        Command::Analyze {
            paths,
            meshconfig,
            meshnetworks,
            output,
        } => analyze::run(
            &paths,
            meshconfig.as_deref(),
            meshnetworks.as_deref(),
            output,
        ),
        #[cfg(feature = "full")]
        Command::Echo(args) => echo::run(args),
        Command::Proxy(args) => proxy::run(args),
        #[cfg(feature = "full")]
        Command::Control(args) => control::run(args),
        #[cfg(feature = "full")]
        Command::Up(args) => local::up(args),
        #[cfg(feature = "full")]
        Command::Exec(args) => local::exec(args),
        #[cfg(feature = "full")]
        Command::Down(args) => local::down(args),
        #[cfg(feature = "full")]
        Command::ProxyStatus(args) => status::status(args),
        #[cfg(feature = "full")]
        Command::ProxyConfig(args) => status::config(args),
        #[cfg(feature = "full")]
        Command::EnvoyBootstrap(args) => bootstrap::run(args),
    }
}

/// Log to stderr; `RUST_LOG` overrides the `info` default.
#[cfg(feature = "full")]
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
}
