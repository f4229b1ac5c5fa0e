//! Proxy processes under test and what `/proc` says about them: Plexus and Envoy started as
//! children pinned with `taskset`, their CPU time (utime + stime over all threads), resident
//! memory, and the machine's busy time (to see other processes' work during a phase).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};

/// A proxy child process; killed and reaped when dropped.
pub struct ProxyProc {
    pub label: String,
    pub pid: u32,
    child: Child,
}

impl Drop for ProxyProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ProxyProc {
    /// Fail early with the log's path when the proxy exited.
    pub fn check_running(&mut self, log: &Path) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!("{} exited ({status}); log: {}", self.label, log.display());
        }
        Ok(())
    }
}

fn command(bin: &Path, cpu: Option<usize>) -> Command {
    match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(bin);
            c
        }
        None => Command::new(bin),
    }
}

fn spawn(mut cmd: Command, label: &str, log: &Path) -> anyhow::Result<ProxyProc> {
    let out = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
    let err = out.try_clone()?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("start {label}"))?;
    // `taskset` execs the proxy, so the child's pid is the proxy's pid.
    Ok(ProxyProc {
        label: label.into(),
        pid: child.id(),
        child,
    })
}

/// `plexus proxy` with one worker thread (`--concurrency 1`, as Envoy's) and warnings-only logs.
pub fn spawn_plexus(
    bin: &Path,
    label: &str,
    ads: &str,
    admin: SocketAddr,
    cpu: Option<usize>,
    log: &Path,
) -> anyhow::Result<ProxyProc> {
    let mut cmd = command(bin, cpu);
    cmd.env("RUST_LOG", "warn")
        .args([
            "proxy",
            "--concurrency",
            "1",
            "--xds-address",
            ads,
            "--admin-address",
        ])
        .arg(admin.to_string())
        .args(["--pod-name", label]);
    spawn(cmd, label, log)
}

/// Envoy with `--concurrency 1`, bootstrapped by the testkit to use ADS at `ads`.
pub fn spawn_envoy(
    bin: &Path,
    label: &str,
    ads: SocketAddr,
    cpu: Option<usize>,
    dir: &Path,
) -> anyhow::Result<ProxyProc> {
    let config = dir.join(format!("{label}.bootstrap.json"));
    let bootstrap = plexus_testkit::envoy::bootstrap(label, ads, false);
    std::fs::write(&config, bootstrap.to_string())?;
    let mut cmd = command(bin, cpu);
    cmd.arg("-c")
        .arg(&config)
        .args([
            "--concurrency",
            "1",
            "--disable-hot-restart",
            "--log-level",
            "warn",
        ])
        .arg("--admin-address-path")
        .arg(dir.join(format!("{label}.admin.txt")));
    spawn(cmd, label, &log_path(dir, label))
}

pub fn log_path(dir: &Path, label: &str) -> PathBuf {
    dir.join(format!("{label}.log"))
}

/// CPU time of the whole process (all its live threads) in nanoseconds, from the scheduler's
/// exact run time (`/proc/PID/task/*/schedstat`), or `None` where the kernel has no schedstat.
/// The `utime`/`stime` of `/proc/PID/stat` are sampled at the timer tick (250 Hz here), which
/// is too coarse for one-second slices of a process that runs a few percent of the time.
pub fn cpu_ns(pid: u32) -> anyhow::Result<Option<u64>> {
    let tasks = match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(t) => t,
        Err(e) => return Err(e).context("reading the proxy's threads"),
    };
    let mut total = 0u64;
    for task in tasks {
        let path = task?.path().join("schedstat");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            // A thread that exited meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(_) => return Ok(None),
        };
        let Some(ns) = text
            .split_whitespace()
            .next()
            .and_then(|f| f.parse::<u64>().ok())
        else {
            return Ok(None);
        };
        total += ns;
    }
    Ok(Some(total))
}

/// utime + stime of the whole process (all threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the full line, i.e. 11 and 12 after the name.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// Clock ticks per second for `/proc` CPU times (`getconf CLK_TCK`, 100 on Linux), asked once.
pub fn clock_ticks() -> f64 {
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *HZ.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// (VmRSS, RssAnon) in MiB.
pub fn rss_mib(pid: u32) -> anyhow::Result<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib = |key: &str| -> anyhow::Result<f64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(key))
            .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
        let n: f64 = line
            .split_whitespace()
            .nth(1)
            .context("empty field")?
            .parse()?;
        Ok(n / 1024.0)
    };
    Ok((kib("VmRSS:")?, kib("RssAnon:")?))
}

/// Busy clock ticks of all CPUs together since boot (every state except idle and iowait).
pub fn all_busy_ticks() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some("cpu"))
        .context("no cpu line in /proc/stat")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Ok(total.saturating_sub(idle))
}

/// Switch every thread of `pid` to SCHED_RR priority 1 (`rt`) or back to SCHED_OTHER, with
/// `chrt`. Used only around the open-loop phase, where the processes need a fraction of a core:
/// on a shared machine their wake-ups then preempt other work instead of waiting for a time
/// slice, and RT throttling (95 % by default) still bounds them.
pub fn set_realtime(pid: u32, rt: bool) -> anyhow::Result<()> {
    let mut cmd = Command::new("chrt");
    if rt {
        cmd.args(["-r", "-a", "-p", "1"]);
    } else {
        cmd.args(["-o", "-a", "-p", "0"]);
    }
    run_quiet(cmd.arg(pid.to_string()), &format!("chrt for pid {pid}"))
}

/// Pin the calling thread (not the whole process) to `cpu`, with `taskset -p` on the thread's
/// id from `/proc/thread-self`.
pub fn pin_current_thread(cpu: usize) -> anyhow::Result<()> {
    let link = std::fs::read_link("/proc/thread-self").context("read /proc/thread-self")?;
    let tid = link
        .file_name()
        .and_then(|t| t.to_str())
        .context("no thread id in /proc/thread-self")?
        .to_string();
    let mut cmd = Command::new("taskset");
    run_quiet(
        cmd.args(["-p", "-c", &cpu.to_string(), &tid]),
        &format!("taskset for thread {tid}"),
    )
}

/// Run a helper command, failing with its standard error when it fails.
fn run_quiet(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd
        .stdout(Stdio::null())
        .output()
        .with_context(|| format!("run {what}"))?;
    if !out.status.success() {
        bail!("{what}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn exact_cpu_time_counts_this_process_and_grows() {
        let pid = std::process::id();
        let Some(before) = super::cpu_ns(pid).expect("own /proc entry") else {
            return; // a kernel without schedstat: the tick-based fallback is used instead
        };
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while start.elapsed() < std::time::Duration::from_millis(30) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let after = super::cpu_ns(pid)
            .expect("own /proc entry")
            .expect("schedstat");
        assert!(after - before >= 10_000_000, "{before} -> {after}");
    }
}
