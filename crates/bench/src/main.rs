//! `plexus-bench`: runs, side by side in one invocation, no proxy, one Plexus hop, one Envoy hop
//! and the two-hop sidecar pair of each, for HTTP/1.1 and gRPC unary, all on loopback. Every
//! proxy is configured by its own instance of the testkit's fake ADS server with the same xDS.
//! Prints a table and a final `RESULT` line. `bench/run` builds and starts it; see
//! `bench/README.md` for what each number means.

mod load;
mod procs;
mod report;
mod setup;
mod upstream;
mod xds;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use crate::load::Proto;
use crate::setup::{CpuDelta, Kind, Setup};

#[derive(Parser, Clone)]
#[command(
    name = "plexus-bench",
    about = "Plexus against Envoy, side by side, on loopback"
)]
pub struct Args {
    /// The `plexus` binary (default: next to this executable).
    #[arg(long)]
    pub plexus: Option<PathBuf>,
    /// The Envoy binary (default: ENVOY_BIN or the workspace `.venv`).
    #[arg(long)]
    pub envoy: Option<PathBuf>,
    /// Seconds of closed-loop warm-up before each protocol's phases (not measured).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Seconds of the closed-loop throughput phase.
    #[arg(long, default_value_t = 3.0)]
    pub duration: f64,
    /// Seconds of the open-loop latency phase.
    #[arg(long, default_value_t = 10.0)]
    pub latency_duration: f64,
    /// Requests per second in the latency phase.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Rounds each phase is split into: in every round each setup runs its slice of the phase
    /// (duration / rounds) in turn, the order rotating by one each round, so slow drifts of the
    /// machine's speed (seen here over seconds) fall on every setup alike.
    #[arg(long, default_value_t = 10)]
    pub rounds: u32,
    /// Connections in every phase.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// CPU the proxies are pinned to (the caller pins this process elsewhere).
    #[arg(long, default_value_t = 1)]
    pub proxy_cpu: usize,
    /// CPU the upstream app's thread is pinned to (default: the proxies' CPU, as in the
    /// performance anchors, so the proxy→app hop stays on one core and only the
    /// generator→proxy hop crosses CPUs, as it does in `direct`).
    #[arg(long)]
    pub upstream_cpu: Option<usize>,
    /// Do not pin the proxies or the upstream (machines with one CPU).
    #[arg(long)]
    pub no_pin: bool,
    /// Seconds the whole run may spend waiting for other processes to go quiet before phases.
    #[arg(long, default_value_t = 20.0)]
    pub quiet_budget: f64,
    /// Phases the whole run may repeat because other processes used the CPUs meanwhile.
    #[arg(long, default_value_t = 3)]
    pub retries: u32,
    /// Run the proxies and the generator with real-time priority (SCHED_RR 1, via `chrt`)
    /// during the open-loop latency phases only (they need a fraction of a core there).
    #[arg(long)]
    pub realtime: bool,
    /// Run only these setups (comma-separated labels, e.g. `plexus-1hop`); `direct` always runs.
    /// Without the two one-hop setups there is no RESULT line.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Where logs and bootstraps go (default: a fresh directory under the temp dir).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let plexus = match &args.plexus {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("plexus"),
    };
    anyhow::ensure!(plexus.is_file(), "no plexus binary at {}", plexus.display());
    let envoy = match &args.envoy {
        Some(p) => p.clone(),
        None => plexus_testkit::envoy::find_binary().ok_or(plexus_testkit::EnvoyError::NotFound)?,
    };
    let dir = match &args.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("plexus-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir)?;
    let upstream_cpu = (!args.no_pin).then(|| args.upstream_cpu.unwrap_or(args.proxy_cpu));
    let h1 = upstream::spawn(upstream_cpu)?;
    let show = |cpu: Option<usize>| cpu.map_or_else(|| "any".to_string(), |c| c.to_string());
    println!(
        "upstream {h1} (HTTP/1.1 + h2c, 1 KiB body) on CPU {}; proxies on CPU {}; generator on \
         this process's CPUs; logs in {}",
        show(upstream_cpu),
        show((!args.no_pin).then_some(args.proxy_cpu)),
        dir.display()
    );
    let ctx = setup::Ctx {
        plexus,
        envoy,
        dir,
        upstream: h1,
        cpu: (!args.no_pin).then_some(args.proxy_cpu),
    };
    let mut rows = Vec::new();
    let mut noise = Noise {
        wait_left: secs(args.quiet_budget),
        retries_left: args.retries,
    };
    let all = [
        Kind::Direct,
        Kind::Plexus1,
        Kind::Envoy1,
        Kind::Plexus2,
        Kind::Envoy2,
    ];
    let chosen = all.into_iter().filter(|k| {
        *k == Kind::Direct || args.only.is_empty() || args.only.iter().any(|o| o == k.label())
    });
    // All setups run at once, idle but for their own slice of each phase.
    let chosen: Vec<Kind> = chosen.collect();
    let mut ports = setup::Ports::pick(setup::PORTS_PER_SETUP * chosen.len())?;
    let mut setups = Vec::new();
    for kind in chosen {
        println!("== starting {}", kind.label());
        setups.push(Setup::start(&ctx, kind, &mut ports).await?);
    }
    for proto in [Proto::H1, Proto::Grpc] {
        println!("== {}", proto.label());
        for row in measure(&args, &ctx, &mut setups, proto, &mut noise).await? {
            report::print_progress(&row);
            rows.push(row);
        }
    }
    for setup in &setups {
        let (rss, anon) = setup.rss()?;
        for row in rows.iter_mut().filter(|r| r.kind == setup.kind) {
            row.rss_mib = rss;
            row.rss_anon_mib = anon;
        }
    }
    println!();
    report::print_table(&args, &rows);
    if let Some(started) = std::env::var("BENCH_STARTED_AT")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        println!(
            "bench/run total time, build included: {} s",
            now.saturating_sub(started)
        );
    }
    match report::result_line(&rows) {
        Ok(line) => println!("{line}"),
        // Only `--only` can leave out the one-hop rows the RESULT line is made of.
        Err(e) if !args.only.is_empty() => println!("(no RESULT line: {e:#})"),
        Err(e) => return Err(e),
    }
    Ok(())
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// Shared by all phases: how long we may still wait for a quiet machine, and how many noisy
/// phases we may still repeat. Keeps the whole run bounded on a shared machine.
struct Noise {
    wait_left: Duration,
    retries_left: u32,
}

/// Other processes using more than this share of one core during a phase make it noisy.
const NOISY: f64 = 0.25;

impl Noise {
    async fn settle(&mut self) -> anyhow::Result<()> {
        if !self.wait_left.is_zero() {
            let max = self.wait_left.min(Duration::from_secs(5));
            let waited = setup::wait_quiet(0.15, max).await?;
            self.wait_left = self.wait_left.saturating_sub(secs(waited));
        }
        Ok(())
    }

    /// Whether to repeat a phase (at most once: `attempt` 0) with this much outside CPU use.
    fn repeat(&mut self, d: &CpuDelta, attempt: u32) -> bool {
        let share = d.noise();
        if share <= NOISY || self.retries_left == 0 || attempt > 0 {
            return false;
        }
        self.retries_left -= 1;
        println!(
            "   (repeating a phase: other processes used {:.0}% of a core)",
            share * 100.0
        );
        true
    }
}

fn quieter<T>(best: Option<(T, CpuDelta)>, new: (T, CpuDelta)) -> (T, CpuDelta) {
    match best {
        Some(b) if b.1.noise() <= new.1.noise() => b,
        _ => new,
    }
}

/// Setups in the order they run in round `round`: rotated by one each round.
fn order(n: usize, round: u32) -> impl Iterator<Item = usize> {
    let r = round as usize;
    (0..n).map(move |j| (r + j) % n)
}

/// One phase in `rounds` rounds: each round runs `slice` against every setup in turn and
/// `merge`s the result into that setup's tally. A slice during which other processes were busy
/// is repeated once (when `may_repeat` and the run's retries allow), keeping the quieter one.
async fn in_rounds<T, F, Fut>(
    setups: &[Setup],
    proto: Proto,
    noise: &mut Noise,
    rounds: u32,
    may_repeat: bool,
    mut slice: F,
    mut merge: impl FnMut(&mut T, T) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<(T, CpuDelta)>>
where
    F: FnMut(std::net::SocketAddr) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let n = setups.len();
    let mut tally: Vec<Option<(T, CpuDelta)>> = Vec::new();
    tally.resize_with(n, || None);
    for round in 0..rounds.max(1) {
        noise.settle().await?;
        for i in order(n, round) {
            let setup = &setups[i];
            let mut best = None;
            let mut attempt = 0;
            let (t, d) = loop {
                let before = setup.cpu_snapshot()?;
                let t = slice(setup.entry(proto)).await?;
                let d = setup.cpu_snapshot()?.since(&before);
                let again = may_repeat && noise.repeat(&d, attempt);
                attempt += 1;
                best = Some(quieter(best, (t, d)));
                if !again {
                    break best.context("a slice ran")?;
                }
            };
            match &mut tally[i] {
                None => tally[i] = Some((t, d)),
                Some((acc, acc_d)) => {
                    merge(acc, t)?;
                    *acc_d = acc_d.plus(d);
                }
            }
        }
    }
    tally
        .into_iter()
        .map(|t| t.context("every setup ran a slice"))
        .collect()
}

/// Both phases of one protocol for every setup: warm-up, then the closed-loop throughput
/// phase and the open-loop latency phase, each in `--rounds` rounds of one slice per setup.
async fn measure(
    args: &Args,
    ctx: &setup::Ctx,
    setups: &mut [Setup],
    proto: Proto,
    noise: &mut Noise,
) -> anyhow::Result<Vec<report::Row>> {
    let conns = args.connections;
    for setup in setups.iter_mut() {
        setup.wait_serving(ctx, proto).await?;
        load::closed_loop(setup.entry(proto), proto, conns, secs(args.warmup)).await?;
    }
    let rounds = args.rounds.max(1);

    let slice = secs(args.duration / f64::from(rounds));
    let closed = |addr| load::closed_loop(addr, proto, conns, slice);
    let merge = |a: &mut load::Throughput, b| {
        a.merge(b);
        Ok(())
    };
    let tput = in_rounds(setups, proto, noise, rounds, true, closed, merge).await?;

    let slice = secs(args.latency_duration / f64::from(rounds));
    let rt = args.realtime && set_realtime(setups, true).is_ok();
    let open = |addr| load::open_loop(addr, proto, conns, args.rate, slice);
    // Under real-time priority other processes no longer delay the proxies' wake-ups.
    let lat = in_rounds(
        setups,
        proto,
        noise,
        rounds,
        !rt,
        open,
        load::Latency::merge,
    )
    .await;
    if rt {
        set_realtime(setups, false)?;
    }
    let lat = lat?;

    let mut rows = Vec::with_capacity(setups.len());
    for ((setup, (t, td)), (l, ld)) in setups.iter_mut().zip(tput).zip(lat) {
        setup.check_running(ctx)?;
        rows.push(report::Row::new(setup.kind, proto, &t, td, &l, ld));
    }
    Ok(rows)
}

fn set_realtime(setups: &[Setup], rt: bool) -> anyhow::Result<()> {
    for setup in setups {
        setup.set_realtime(rt)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::order;

    #[test]
    fn rounds_rotate_the_order_and_run_every_setup_once() {
        assert_eq!(order(3, 0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(order(3, 1).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(order(3, 5).collect::<Vec<_>>(), [2, 0, 1]);
        for round in 0..7 {
            let mut seen: Vec<usize> = order(5, round).collect();
            seen.sort_unstable();
            assert_eq!(seen, [0, 1, 2, 3, 4]);
        }
    }
}
