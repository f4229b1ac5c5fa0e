//! Turning phase results into rows, the table, and the final `RESULT` line.

use anyhow::Context;

use crate::Args;
use crate::load::{Latency, Proto, Throughput};
use crate::setup::{CpuDelta, Kind};

/// One setup × protocol.
pub struct Row {
    pub kind: Kind,
    pub proto: Proto,
    /// Closed loop: requests per second at the fixed connection count.
    pub rps: f64,
    /// Requests per CPU-second of the setup's proxies in the closed loop (req/s per core).
    pub req_per_cpu_s: f64,
    /// Share of one core the setup's proxies used in the closed loop.
    pub proxy_util: f64,
    /// Share of one core used by other processes in the closed / open loop (noise).
    pub noise: (f64, f64),
    /// Open loop: latency percentiles in µs (p50, p90, p99, p99.9).
    pub pct_us: [f64; 4],
    pub achieved_rate: f64,
    /// Proxies' CPU seconds per 1000 requests in the open loop.
    pub cpu_per_1k: f64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub rss_mib: f64,
    pub rss_anon_mib: f64,
}

impl Row {
    pub fn new(
        kind: Kind,
        proto: Proto,
        tput: &Throughput,
        tput_cpu: CpuDelta,
        lat: &Latency,
        lat_cpu: CpuDelta,
    ) -> Row {
        let wall = tput_cpu.wall_s.max(1e-9);
        let q = |p: f64| lat.hist.value_at_quantile(p) as f64 / 1000.0;
        let has_proxy = kind.hops() > 0;
        let per = |x: f64| if has_proxy { x } else { f64::NAN };
        Row {
            kind,
            proto,
            rps: tput.requests as f64 / tput.elapsed.as_secs_f64().max(1e-9),
            req_per_cpu_s: per(tput.requests as f64 / tput_cpu.proxy_s.max(1e-9)),
            proxy_util: per(tput_cpu.proxy_s / wall),
            noise: (
                tput_cpu.other_s / wall,
                lat_cpu.other_s / lat_cpu.wall_s.max(1e-9),
            ),
            pct_us: [q(0.50), q(0.90), q(0.99), q(0.999)],
            achieved_rate: lat.requests as f64 / lat_cpu.wall_s.max(1e-9),
            cpu_per_1k: per(lat_cpu.proxy_s / (lat.requests as f64 / 1000.0).max(1e-9)),
            errors: tput.errors + lat.errors,
            first_error: tput.first_error.clone().or(lat.first_error.clone()),
            rss_mib: f64::NAN,
            rss_anon_mib: f64::NAN,
        }
    }
}

pub fn print_progress(r: &Row) {
    println!(
        "   {:<5} {:>8.0} req/s  p50 {:>6.0} µs  p99 {:>6.0} µs  errors {}{}",
        r.proto.label(),
        r.rps,
        r.pct_us[0],
        r.pct_us[2],
        r.errors,
        r.first_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
}

fn direct(rows: &[Row], proto: Proto) -> Option<&Row> {
    rows.iter()
        .find(|r| r.kind == Kind::Direct && r.proto == proto)
}

/// Added latency per hop at percentile index `i`, in µs.
fn added(rows: &[Row], r: &Row, i: usize) -> f64 {
    match (r.kind.hops(), direct(rows, r.proto)) {
        (0, _) | (_, None) => f64::NAN,
        (h, Some(d)) => (r.pct_us[i] - d.pct_us[i]) / f64::from(h),
    }
}

fn num(x: f64, decimals: usize) -> String {
    if x.is_nan() {
        "-".into()
    } else {
        format!("{x:.decimals$}")
    }
}

pub fn print_table(args: &Args, rows: &[Row]) {
    println!(
        "Closed loop: {} connections, {} s after {} s warm-up. Open loop: {} req/s over {} connections, {} s.",
        args.connections,
        args.duration,
        args.warmup,
        args.rate,
        args.connections,
        args.latency_duration
    );
    println!(
        "Latency in µs, coordinated-omission corrected; +p50/+p99 = added per hop vs direct. CPU and RSS are summed over the setup's proxies."
    );
    println!();
    println!(
        "| setup | proto | hops | req/s | proxy core % | req per proxy CPU-s | p50 | p90 | p99 | p99.9 | +p50/hop | +p99/hop | rate req/s | proxy CPU-s per 1k req | VmRSS MiB | RssAnon MiB | noise % tput/lat | errors |"
    );
    println!(
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0}/{:.0} | {} |",
            r.kind.label(),
            r.proto.label(),
            r.kind.hops(),
            num(r.rps, 0),
            num(r.proxy_util * 100.0, 0),
            num(r.req_per_cpu_s, 0),
            num(r.pct_us[0], 0),
            num(r.pct_us[1], 0),
            num(r.pct_us[2], 0),
            num(r.pct_us[3], 0),
            num(added(rows, r, 0), 0),
            num(added(rows, r, 2), 0),
            num(r.achieved_rate, 0),
            num(r.cpu_per_1k, 4),
            num(r.rss_mib, 1),
            num(r.rss_anon_mib, 1),
            r.noise.0 * 100.0,
            r.noise.1 * 100.0,
            r.errors
        );
    }
    println!();
    if let (Some(p), Some(e)) = (find(rows, Kind::Plexus1), find(rows, Kind::Envoy1)) {
        println!(
            "One hop, HTTP/1.1: raw req/s ratio plexus/envoy {:.2} (raw req/s depends on where the generator and the upstream run, see the pinning line above; RESULT uses req per proxy CPU-second).",
            p.rps / e.rps
        );
    }
}

fn find(rows: &[Row], kind: Kind) -> Option<&Row> {
    rows.iter().find(|r| r.kind == kind && r.proto == Proto::H1)
}

/// `RESULT ...` from the one-hop HTTP/1.1 rows.
pub fn result_line(rows: &[Row]) -> anyhow::Result<String> {
    let p = find(rows, Kind::Plexus1).context("no plexus one-hop HTTP/1.1 row")?;
    let e = find(rows, Kind::Envoy1).context("no envoy one-hop HTTP/1.1 row")?;
    Ok(format!(
        "RESULT rps_ratio={:.2} p50_ratio={:.2} p99_ratio={:.2} cpu_ratio={:.2} rss_ratio={:.2}",
        p.req_per_cpu_s / e.req_per_cpu_s,
        added(rows, p, 0) / added(rows, e, 0),
        added(rows, p, 2) / added(rows, e, 2),
        p.cpu_per_1k / e.cpu_per_1k,
        p.rss_mib / e.rss_mib,
    ))
}
