//! Child processes of a local mesh: start, notice exits, restart with exponential backoff, stop.
//!
//! Each child runs in its own process group (so `sh -c` wrappers and grandchildren stop with
//! it) and writes stdout and stderr to its own log file. Signals go through `kill(1)` because
//! the workspace forbids `unsafe` and std only offers SIGKILL.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::LocalError;

/// Restart delays: `BASE * 2^restarts`, capped; a child that ran for `STABLE` resets the count.
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
pub const STABLE: Duration = Duration::from_secs(10);

/// Delay before restart number `restarts + 1`.
pub fn backoff(restarts: u32) -> Duration {
    let factor = 1u32.checked_shl(restarts.min(16)).unwrap_or(u32::MAX);
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ProcSpec {
    /// Unique, human-readable (`control`, `sidecar reviews-v1-0`, `app reviews-v1-0`).
    pub name: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub log: PathBuf,
    /// Restart when it exits (workloads); infrastructure that dies is reported, then restarted too.
    pub restart: bool,
}

/// Something that happened to a child, for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Exited {
        name: String,
        status: String,
        restart_in: Option<Duration>,
    },
    Restarted {
        name: String,
        pid: u32,
        restarts: u32,
    },
    StartFailed {
        name: String,
        error: String,
    },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Exited {
                name,
                status,
                restart_in: Some(d),
            } => {
                write!(
                    f,
                    "{name} exited ({status}); restarting in {:.1}s",
                    d.as_secs_f64()
                )
            }
            Event::Exited {
                name,
                status,
                restart_in: None,
            } => write!(f, "{name} exited ({status})"),
            Event::Restarted {
                name,
                pid,
                restarts,
            } => {
                write!(f, "{name} restarted (pid {pid}, restart #{restarts})")
            }
            Event::StartFailed { name, error } => write!(f, "{name} failed to start: {error}"),
        }
    }
}

/// One supervised child.
#[derive(Debug)]
pub struct Supervised {
    pub spec: ProcSpec,
    child: Option<Child>,
    started: Instant,
    pub restarts: u32,
    next_start: Option<Instant>,
    pub last_exit: Option<String>,
}

impl Supervised {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn running(&self) -> bool {
        self.child.is_some()
    }
}

/// All children of one mesh, in start order.
#[derive(Debug, Default)]
pub struct Supervisor {
    pub procs: Vec<Supervised>,
}

fn spawn(spec: &ProcSpec) -> Result<Child, LocalError> {
    let io = |e: std::io::Error| LocalError::Io(format!("{}: {e}", spec.log.display()));
    if let Some(parent) = spec.log.parent() {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&spec.log)
        .map_err(io)?;
    let err = log.try_clone().map_err(io)?;
    let Some((prog, args)) = spec.argv.split_first() else {
        return Err(LocalError::Usage(format!("{}: empty command", spec.name)));
    };
    Command::new(prog)
        .args(args)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| LocalError::Spawn(format!("{}: cannot run {prog:?}: {e}", spec.name)))
}

impl Supervisor {
    /// Start `spec` now; fails if it cannot even be spawned (a wrong command is not retried).
    pub fn start(&mut self, spec: ProcSpec) -> Result<u32, LocalError> {
        let child = spawn(&spec)?;
        let pid = child.id();
        self.procs.push(Supervised {
            spec,
            child: Some(child),
            started: Instant::now(),
            restarts: 0,
            next_start: None,
            last_exit: None,
        });
        Ok(pid)
    }

    pub fn get(&self, name: &str) -> Option<&Supervised> {
        self.procs.iter().find(|p| p.spec.name == name)
    }

    /// Reap exits and start due restarts. Call every few hundred milliseconds.
    pub fn poll(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        for p in &mut self.procs {
            if let Some(child) = &mut p.child {
                let status = match child.try_wait() {
                    Ok(Some(s)) => s.to_string(),
                    Ok(None) => continue,
                    Err(e) => format!("wait failed: {e}"),
                };
                p.child = None;
                if now.duration_since(p.started) >= STABLE {
                    p.restarts = 0;
                }
                let restart_in = p.spec.restart.then(|| backoff(p.restarts));
                p.next_start = restart_in.map(|d| now + d);
                p.last_exit = Some(status.clone());
                events.push(Event::Exited {
                    name: p.spec.name.clone(),
                    status,
                    restart_in,
                });
            } else if p.next_start.is_some_and(|t| now >= t) {
                p.next_start = None;
                match spawn(&p.spec) {
                    Ok(child) => {
                        p.restarts += 1;
                        p.started = now;
                        events.push(Event::Restarted {
                            name: p.spec.name.clone(),
                            pid: child.id(),
                            restarts: p.restarts,
                        });
                        p.child = Some(child);
                    }
                    Err(e) => {
                        p.restarts += 1;
                        p.next_start = Some(now + backoff(p.restarts));
                        events.push(Event::StartFailed {
                            name: p.spec.name.clone(),
                            error: e.to_string(),
                        });
                    }
                }
            }
        }
        events
    }

    /// Stop everything in reverse start order: SIGTERM to each process group, then SIGKILL to
    /// whatever is left after `grace`.
    pub fn stop_all(&mut self, grace: Duration) {
        for p in self.procs.iter_mut().rev() {
            p.next_start = None;
            if let Some(c) = &p.child {
                signal_group(c.id(), "TERM");
            }
        }
        let deadline = Instant::now() + grace;
        loop {
            let mut alive = false;
            for p in &mut self.procs {
                if let Some(c) = &mut p.child {
                    match c.try_wait() {
                        Ok(None) => alive = true,
                        _ => p.child = None,
                    }
                }
            }
            if !alive || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for p in &mut self.procs {
            if let Some(mut c) = p.child.take() {
                signal_group(c.id(), "KILL");
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// Send `SIG<sig>` to the process group led by `pid` (and to `pid` itself, in case it left the
/// group). Errors mean the process is already gone.
pub fn signal_group(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([
            format!("-{sig}"),
            "--".into(),
            format!("-{pid}"),
            pid.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the field after the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let ms: Vec<u128> = (0..8).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    fn spec(name: &str, script: &str, restart: bool) -> ProcSpec {
        let log =
            std::env::temp_dir().join(format!("plexus-sup-{}-{name}.log", std::process::id()));
        let _ = std::fs::remove_file(&log);
        ProcSpec {
            name: name.into(),
            argv: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![("GREETING".into(), "hello".into())],
            log,
            restart,
        }
    }

    fn poll_until(s: &mut Supervisor, mut done: impl FnMut(&[Event]) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut all = Vec::new();
        while Instant::now() < deadline {
            all.extend(s.poll(Instant::now()));
            if done(&all) {
                return all;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("condition not reached; events: {all:?}");
    }

    #[test]
    fn a_dying_workload_is_reported_and_restarted_with_backoff() {
        let mut s = Supervisor::default();
        let sp = spec("crashy", "echo $GREETING; exit 3", true);
        let log = sp.log.clone();
        s.start(sp).expect("start");
        let events = poll_until(&mut s, |ev| {
            ev.iter()
                .filter(|e| matches!(e, Event::Restarted { .. }))
                .count()
                >= 2
        });
        let exits: Vec<&Event> = events
            .iter()
            .filter(|e| matches!(e, Event::Exited { .. }))
            .collect();
        assert!(
            matches!(exits[0], Event::Exited { status, restart_in: Some(d), .. }
            if status.contains('3') && *d == BACKOFF_BASE)
        );
        assert!(
            matches!(exits[1], Event::Exited { restart_in: Some(d), .. } if *d == 2 * BACKOFF_BASE)
        );
        assert!(exits[0].to_string().contains("restarting in 0.5s"));
        let text = std::fs::read_to_string(log).expect("log");
        assert!(
            text.lines().filter(|l| *l == "hello").count() >= 2,
            "{text}"
        );
        s.stop_all(Duration::from_secs(2));
    }

    #[test]
    fn no_restart_when_not_asked_and_stop_kills_the_group() {
        let mut s = Supervisor::default();
        s.start(spec("once", "exit 0", false)).expect("start");
        // A child that ignores SIGTERM, with a grandchild in its group.
        let pid = s
            .start(spec("stubborn", "trap '' TERM; sleep 30 & wait", true))
            .expect("start");
        let events = poll_until(&mut s, |ev| !ev.is_empty());
        assert!(
            matches!(&events[0], Event::Exited { name, restart_in: None, .. } if name == "once")
        );
        assert!(alive(pid));
        s.stop_all(Duration::from_millis(300));
        assert!(!alive(pid));
        assert!(s.procs.iter().all(|p| !p.running()));
        assert!(
            s.poll(Instant::now() + BACKOFF_MAX).is_empty(),
            "stopped children stay stopped"
        );
    }

    #[test]
    fn a_missing_program_fails_to_start() {
        let mut s = Supervisor::default();
        let mut sp = spec("missing", "", true);
        sp.argv = vec!["/nonexistent/plexus-app".into()];
        let e = s.start(sp).expect_err("spawn");
        assert!(e.to_string().contains("/nonexistent/plexus-app"), "{e}");
    }
}
