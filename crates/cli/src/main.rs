//! The `plexus` binary: parses arguments and calls the library crates. Nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Echo server for tests and demos (HTTP/1.1 + h2c JSON echo, TCP echo).
    Echo(echo::EchoArgs),
    /// The data plane: an xDS-configured sidecar or gateway proxy.
    Proxy(proxy::ProxyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { paths, strict } => validate::run(&paths, strict),
        Command::Echo(args) => echo::run(args),
        Command::Proxy(args) => proxy::run(args),
    }
}
