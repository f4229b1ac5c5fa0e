//! The `plexus` binary: parses arguments and calls the library crates. Nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod analyze;
mod bootstrap;
mod control;
mod echo;
mod local;
mod node_flags;
mod output;
mod proxy;
mod status;
mod validate;

#[derive(Parser)]
#[command(name = "plexus", version, about = "Plexus service mesh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check config files one object at a time (Istio's schema and semantic rules).
    Validate {
        /// Files or directories (recursive: *.yaml, *.yml, *.json); `-` reads stdin.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Treat kinds Plexus does not know as errors, not warnings.
        #[arg(long)]
        strict: bool,
    },
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
    /// Echo server for tests and demos (HTTP/1.1 + h2c JSON echo, TCP echo).
    Echo(echo::EchoArgs),
    /// The data plane: an xDS-configured sidecar or gateway proxy.
    Proxy(proxy::ProxyArgs),
    /// The control plane: watch a config directory, serve xDS (ADS) and the debug API.
    Control(control::ControlArgs),
    /// Run a whole mesh on this machine from a directory of YAML (control plane, sidecars,
    /// workloads, ingress gateway).
    Up(local::UpArgs),
    /// Run a command as a workload of the running local mesh (its proxy environment).
    Exec(local::ExecArgs),
    /// Stop the local mesh and undo everything `plexus up` set up.
    Down(local::DownArgs),
    /// Each connected proxy's xDS sync state, and config the control plane rejected.
    ProxyStatus(status::StatusArgs),
    /// What the control plane sends one proxy: listeners, routes, clusters, endpoints or secrets
    /// (certificate names, SANs, expiry and fingerprints only).
    ProxyConfig(status::ConfigArgs),
    /// Write an Envoy bootstrap that joins a stock Envoy to the control plane.
    EnvoyBootstrap(bootstrap::BootstrapArgs),
}

/// How `plexus analyze` prints its messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// One line per message: `PATH:LINE: Level [CODE] (Kind ns/name) message`.
    Text,
    /// A JSON array of `{code, level, message, resource, path, line}`.
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { paths, strict } => validate::run(&paths, strict),
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
        Command::Echo(args) => echo::run(args),
        Command::Proxy(args) => proxy::run(args),
        Command::Control(args) => control::run(args),
        Command::Up(args) => local::up(args),
        Command::Exec(args) => local::exec(args),
        Command::Down(args) => local::down(args),
        Command::ProxyStatus(args) => status::status(args),
        Command::ProxyConfig(args) => status::config(args),
        Command::EnvoyBootstrap(args) => bootstrap::run(args),
    }
}

/// Log to stderr; `RUST_LOG` overrides the `info` default.
fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
}
