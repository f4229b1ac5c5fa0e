//! The five setups and their data paths (see `bench/README.md` for diagrams):
//! direct (no proxy), one Plexus hop, one Envoy hop, and the client-sidecar → server-sidecar
//! pair of each. A setup owns its proxy processes and their fake ADS servers.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use plexus_testkit::FakeAds;

use crate::load::{self, Proto};
use crate::procs::{self, ProxyProc};
use crate::xds::{self, Leg};

/// What every setup needs to know.
pub struct Ctx {
    pub plexus: PathBuf,
    pub envoy: PathBuf,
    pub dir: PathBuf,
    /// The upstream (HTTP/1.1 and h2c on one port).
    pub upstream: SocketAddr,
    /// CPU the proxies are pinned to.
    pub cpu: Option<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Direct,
    Plexus1,
    Envoy1,
    Plexus2,
    Envoy2,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Plexus1 => "plexus-1hop",
            Kind::Envoy1 => "envoy-1hop",
            Kind::Plexus2 => "plexus-pair",
            Kind::Envoy2 => "envoy-pair",
        }
    }

    pub fn hops(self) -> u32 {
        match self {
            Kind::Direct => 0,
            Kind::Plexus1 | Kind::Envoy1 => 1,
            Kind::Plexus2 | Kind::Envoy2 => 2,
        }
    }

    fn is_plexus(self) -> bool {
        matches!(self, Kind::Plexus1 | Kind::Plexus2)
    }
}

/// CPU time of the setup's proxies, of this process (load generator and upstream), and of
/// the whole machine, at one instant.
pub struct CpuSnapshot {
    /// The proxies' exact run time in ns, when every one of them has schedstat.
    proxy_ns: Option<u64>,
    proxy_ticks: u64,
    self_ticks: u64,
    all_ticks: u64,
    at: Instant,
}

/// What happened between two snapshots (or over several slices of a phase), in seconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuDelta {
    /// CPU seconds used by the setup's proxies (all threads).
    pub proxy_s: f64,
    /// CPU seconds used by anything else on the machine (other processes: noise).
    pub other_s: f64,
    pub wall_s: f64,
}

impl CpuDelta {
    /// The sum of two slices of one phase.
    pub fn plus(self, other: CpuDelta) -> CpuDelta {
        CpuDelta {
            proxy_s: self.proxy_s + other.proxy_s,
            other_s: self.other_s + other.other_s,
            wall_s: self.wall_s + other.wall_s,
        }
    }

    /// Share of one core used by other processes.
    pub fn noise(&self) -> f64 {
        self.other_s / self.wall_s.max(1e-9)
    }
}

impl CpuSnapshot {
    pub fn take(proxies: &[u32]) -> anyhow::Result<CpuSnapshot> {
        let mut proxy_ticks = 0;
        let mut proxy_ns = Some(0u64);
        for pid in proxies {
            let what = || format!("proxy pid {pid}");
            proxy_ticks += procs::cpu_ticks(*pid).with_context(what)?;
            let ns = procs::cpu_ns(*pid).with_context(what)?;
            proxy_ns = proxy_ns.zip(ns).map(|(a, b)| a + b);
        }
        Ok(CpuSnapshot {
            proxy_ns,
            proxy_ticks,
            self_ticks: procs::cpu_ticks(std::process::id())?,
            all_ticks: procs::all_busy_ticks()?,
            at: Instant::now(),
        })
    }

    pub fn since(&self, before: &CpuSnapshot) -> CpuDelta {
        let hz = procs::clock_ticks();
        let d = |a: u64, b: u64| a.saturating_sub(b) as f64 / hz;
        let proxy_s = match (self.proxy_ns, before.proxy_ns) {
            (Some(a), Some(b)) => a.saturating_sub(b) as f64 / 1e9,
            _ => d(self.proxy_ticks, before.proxy_ticks),
        };
        // Noise is tick-sampled on both sides of the subtraction; the proxies' share of it is
        // too, so the subtraction uses their ticks.
        let own = d(self.proxy_ticks, before.proxy_ticks) + d(self.self_ticks, before.self_ticks);
        CpuDelta {
            proxy_s,
            other_s: (d(self.all_ticks, before.all_ticks) - own).max(0.0),
            wall_s: self.at.duration_since(before.at).as_secs_f64(),
        }
    }
}

/// Wait (at most `max`) until other processes use less than `cores` of a core over a 300 ms
/// window; our own processes are idle between phases. Returns the seconds waited.
pub async fn wait_quiet(cores: f64, max: Duration) -> anyhow::Result<f64> {
    let start = Instant::now();
    loop {
        let before = CpuSnapshot::take(&[])?;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let d = CpuSnapshot::take(&[])?.since(&before);
        if d.other_s / d.wall_s.max(1e-9) < cores || start.elapsed() >= max {
            return Ok(start.elapsed().as_secs_f64());
        }
    }
}

pub struct Setup {
    pub kind: Kind,
    entry_h1: SocketAddr,
    entry_grpc: SocketAddr,
    procs: Vec<ProxyProc>,
    _ads: Vec<FakeAds>,
}

/// Loopback ports for every setup of the run, picked together before any proxy starts, all
/// distinct and all below the kernel's ephemeral port range. Ports picked by binding port 0
/// would come from that range, where they can be taken before a proxy binds them: as the source
/// port of an outgoing connection (a listener cannot bind a port a connected socket holds) or
/// by another setup's pick (the proxies bind only once their listeners arrive over xDS).
pub struct Ports(Vec<u16>);

/// Ports per proxied setup: two listeners and an admin port for each of its two proxies.
pub const PORTS_PER_SETUP: usize = 6;

impl Ports {
    pub fn pick(n: usize) -> anyhow::Result<Ports> {
        const FLOOR: u32 = 10_000;
        let top = ephemeral_low().unwrap_or(32_768).max(FLOOR + 1);
        let span = top - FLOOR;
        // Different runs start at different ports, so two runs at once rarely race for one.
        let start = std::process::id() % span;
        let mut held = Vec::with_capacity(n);
        for k in 0..span {
            if held.len() == n {
                break;
            }
            let Ok(port) = u16::try_from(FLOOR + (start + k) % span) else {
                continue;
            };
            if let Ok(l) = TcpListener::bind(loopback(port)) {
                held.push(l);
            }
        }
        anyhow::ensure!(
            held.len() == n,
            "only {} of {n} free loopback ports in {FLOOR}..{top}",
            held.len()
        );
        let ports = held
            .iter()
            .map(|l| Ok(l.local_addr()?.port()))
            .collect::<std::io::Result<_>>()?;
        Ok(Ports(ports))
    }

    fn take(&mut self, n: usize) -> anyhow::Result<Vec<u16>> {
        anyhow::ensure!(self.0.len() >= n, "not enough ports picked for the setups");
        Ok(self.0.drain(..n).collect())
    }
}

/// The lowest port of `/proc/sys/net/ipv4/ip_local_port_range`.
fn ephemeral_low() -> Option<u32> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The two legs of one proxy: HTTP/1.1 all the way, and gRPC with HTTP/2 upstream.
fn legs(ports: (u16, u16), to_h1: SocketAddr, to_grpc: SocketAddr) -> [Leg; 2] {
    [
        Leg {
            name: "http1",
            listen_port: ports.0,
            endpoint: to_h1,
            upstream_h2: false,
        },
        Leg {
            name: "grpc",
            listen_port: ports.1,
            endpoint: to_grpc,
            upstream_h2: true,
        },
    ]
}

impl Setup {
    pub async fn start(ctx: &Ctx, kind: Kind, ports: &mut Ports) -> anyhow::Result<Setup> {
        let mut setup = Setup {
            kind,
            entry_h1: ctx.upstream,
            entry_grpc: ctx.upstream,
            procs: Vec::new(),
            _ads: Vec::new(),
        };
        if kind == Kind::Direct {
            return Ok(setup);
        }
        let p = ports.take(PORTS_PER_SETUP)?;
        let (server, client) = ((p[0], p[1]), (p[2], p[3]));
        // The server sidecar (or the only proxy) forwards to the upstream.
        setup
            .add_proxy(
                ctx,
                "server",
                &legs(server, ctx.upstream, ctx.upstream),
                p[4],
            )
            .await?;
        (setup.entry_h1, setup.entry_grpc) = (loopback(server.0), loopback(server.1));
        if kind.hops() == 2 {
            let to = legs(client, loopback(server.0), loopback(server.1));
            setup.add_proxy(ctx, "client", &to, p[5]).await?;
            (setup.entry_h1, setup.entry_grpc) = (loopback(client.0), loopback(client.1));
        }
        Ok(setup)
    }

    async fn add_proxy(
        &mut self,
        ctx: &Ctx,
        role: &str,
        legs: &[Leg],
        admin_port: u16,
    ) -> anyhow::Result<()> {
        let ads = xds::serve(legs).await?;
        let label = format!("{}-{role}", self.kind.label());
        let proc = if self.kind.is_plexus() {
            let log = procs::log_path(&ctx.dir, &label);
            procs::spawn_plexus(
                &ctx.plexus,
                &label,
                &ads.url(),
                loopback(admin_port),
                ctx.cpu,
                &log,
            )?
        } else {
            procs::spawn_envoy(&ctx.envoy, &label, ads.addr, ctx.cpu, &ctx.dir)?
        };
        self.procs.push(proc);
        self._ads.push(ads);
        Ok(())
    }

    pub fn entry(&self, proto: Proto) -> SocketAddr {
        match proto {
            Proto::H1 => self.entry_h1,
            Proto::Grpc => self.entry_grpc,
        }
    }

    /// Poll until one request of `proto` succeeds end to end (config arrives asynchronously).
    pub async fn wait_serving(&mut self, ctx: &Ctx, proto: Proto) -> anyhow::Result<()> {
        let addr = self.entry(proto);
        let what = format!("{} serving {} on {addr}", self.kind.label(), proto.label());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            self.check_running(ctx)?;
            let Err(e) = load::probe(addr, proto).await else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                anyhow::bail!("timed out waiting for {what}: {e:#}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn check_running(&mut self, ctx: &Ctx) -> anyhow::Result<()> {
        for p in &mut self.procs {
            let log = procs::log_path(&ctx.dir, &p.label);
            p.check_running(&log)?;
        }
        Ok(())
    }

    pub fn cpu_snapshot(&self) -> anyhow::Result<CpuSnapshot> {
        let pids: Vec<u32> = self.procs.iter().map(|p| p.pid).collect();
        CpuSnapshot::take(&pids)
    }

    /// Real-time scheduling on or off for the proxies and this process (see
    /// `procs::set_realtime`).
    pub fn set_realtime(&self, rt: bool) -> anyhow::Result<()> {
        for pid in self.procs.iter().map(|p| p.pid).chain([std::process::id()]) {
            procs::set_realtime(pid, rt)?;
        }
        Ok(())
    }

    /// Summed (VmRSS, RssAnon) of the setup's proxies, in MiB.
    pub fn rss(&self) -> anyhow::Result<(f64, f64)> {
        let mut out = (0.0, 0.0);
        for p in &self.procs {
            let (rss, anon) = procs::rss_mib(p.pid).with_context(|| p.label.clone())?;
            out.0 += rss;
            out.1 += anon;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_below_the_ephemeral_range() {
        let mut ports = Ports::pick(3 * PORTS_PER_SETUP).expect("free ports");
        let mut all = Vec::new();
        for _ in 0..3 {
            all.extend(ports.take(PORTS_PER_SETUP).expect("picked enough"));
        }
        assert!(ports.take(1).is_err());
        let low = ephemeral_low().unwrap_or(32_768);
        assert!(all.iter().all(|p| u32::from(*p) < low), "{all:?}");
        let mut sorted = all.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len());
        // Released again: each can be bound now.
        for p in all {
            TcpListener::bind(loopback(p)).expect("picked port is free");
        }
    }
}
