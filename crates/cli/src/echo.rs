//! `plexus echo`: the test workload (HTTP/1.1 + h2c echo with JSON replies, optional TCP echo).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use plexus_testkit::echo::{self, EchoConfig};

#[derive(Args)]
pub struct EchoArgs {
    /// HTTP/1.1 and h2c listen address.
    #[arg(
        long,
        env = "PLEXUS_ECHO_HTTP_ADDRESS",
        default_value = "127.0.0.1:8080"
    )]
    http_address: SocketAddr,
    /// TCP echo listen address (off unless set).
    #[arg(long, env = "PLEXUS_ECHO_TCP_ADDRESS")]
    tcp_address: Option<SocketAddr>,
    /// Reported as `workload` in every reply.
    #[arg(long, env = "PLEXUS_ECHO_WORKLOAD", default_value = "echo")]
    workload: String,
    /// Reported as `version`.
    #[arg(
        long = "workload-version",
        env = "PLEXUS_ECHO_VERSION",
        default_value = "v1"
    )]
    workload_version: String,
    /// Reported as `replica`.
    #[arg(long, env = "PLEXUS_ECHO_REPLICA", default_value = "0")]
    replica: String,
    /// Delay before every HTTP response, in milliseconds.
    #[arg(long, env = "PLEXUS_ECHO_DELAY_MS", default_value_t = 0)]
    delay_ms: u64,
    /// Fraction of HTTP requests (0.0 to 1.0) answered with --fail-status.
    #[arg(long, env = "PLEXUS_ECHO_FAIL_FRACTION", default_value_t = 0.0)]
    fail_fraction: f64,
    /// Status code for failed requests.
    #[arg(long, env = "PLEXUS_ECHO_FAIL_STATUS", default_value_t = 503)]
    fail_status: u16,
    /// Call these URLs on every request (through HTTP_PROXY when set) and include their
    /// answers as `upstreams` in the reply (repeat or comma-separate).
    #[arg(
        long = "upstream",
        env = "PLEXUS_ECHO_UPSTREAMS",
        value_delimiter = ','
    )]
    upstreams: Vec<String>,
}

pub fn run(args: EchoArgs) -> ExitCode {
    let EchoArgs {
        http_address,
        tcp_address,
        workload,
        workload_version,
        replica,
        delay_ms,
        fail_fraction,
        fail_status,
        upstreams,
    } = args;
    if !(0.0..=1.0).contains(&fail_fraction) {
        eprintln!("error: --fail-fraction must be between 0.0 and 1.0, got {fail_fraction}");
        return ExitCode::from(2);
    }
    let cfg = EchoConfig {
        workload,
        version: workload_version,
        replica,
        delay: Duration::from_millis(delay_ms),
        fail_fraction,
        fail_status,
        tls: None,
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !upstreams.is_empty() {
        return run_chain(&rt, cfg, &upstreams, http_address);
    }
    rt.block_on(async move {
        let http = match echo::start_http(cfg, http_address).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: cannot bind HTTP echo on {http_address}: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("echo http listening on {}", http.addr);
        let _tcp = match tcp_address {
            Some(addr) => match echo::start_tcp(addr).await {
                Ok(t) => {
                    println!("echo tcp listening on {}", t.addr);
                    Some(t)
                }
                Err(e) => {
                    eprintln!("error: cannot bind TCP echo on {addr}: {e}");
                    return ExitCode::FAILURE;
                }
            },
            None => None,
        };
        crate::proxy::wait_for_signal().await;
        ExitCode::SUCCESS
    })
}

/// The upstream-calling mode (plexus-local's chain server): HTTP only.
fn run_chain(
    rt: &tokio::runtime::Runtime,
    cfg: EchoConfig,
    urls: &[String],
    addr: SocketAddr,
) -> ExitCode {
    let proxy = std::env::var("HTTP_PROXY")
        .or_else(|_| std::env::var("http_proxy"))
        .ok();
    let ups = match plexus_local::chain::Upstreams::parse(urls, proxy.as_deref()) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(async move {
        let h = match plexus_local::chain::start(cfg, ups, addr).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: cannot bind HTTP echo on {addr}: {e}");
                return ExitCode::FAILURE;
            }
        };
        println!("echo http listening on {} (calling upstreams)", h.addr);
        crate::proxy::wait_for_signal().await;
        ExitCode::SUCCESS
    })
}
