//! The `plexus` binary: parses arguments and calls the library crates. Nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod analyze;
mod echo;
mod proxy;
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
    }
}
