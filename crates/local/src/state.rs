//! The run directory of a local mesh and its state file, which `plexus exec` and `plexus down`
//! read: the pid of `up`, every child's pid, each replica's environment and namespace, and
//! every namespace/veth/iptables change made, so `down` can undo it even if `up` was killed.
//!
//! Layout of the run dir (default `$XDG_RUNTIME_DIR/plexus`, else `/tmp/plexus-<uid>`):
//! `state.json`, `config/` (what the control plane watches), `logs/<process>.log`.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::LocalError;
use crate::supervise::{alive, signal_group};

pub const STATE_FILE: &str = "state.json";

/// The default run dir: `PLEXUS_RUN_DIR`, else `$XDG_RUNTIME_DIR/plexus`, else `/tmp/plexus-<uid>`.
pub fn default_run_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PLEXUS_RUN_DIR") {
        return PathBuf::from(d);
    }
    if let Some(d) = std::env::var_os("XDG_RUNTIME_DIR") {
        return PathBuf::from(d).join("plexus");
    }
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(0);
    PathBuf::from(format!("/tmp/plexus-{uid}"))
}

/// One replica as `exec` needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaState {
    pub workload: String,
    pub index: u32,
    pub env: Vec<(String, String)>,
    /// Network namespace (netns mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
}

/// What `up` started and changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    /// Pid of the `plexus up` that owns this mesh.
    pub up_pid: u32,
    pub config_dir: PathBuf,
    /// User's directory.
    pub source_dir: PathBuf,
    pub debug_address: String,
    /// Process name -> pid (process group leader).
    pub processes: BTreeMap<String, u32>,
    pub replicas: Vec<ReplicaState>,
    /// Gateway addresses served (`host:port` per Gateway port).
    pub gateways: Vec<String>,
    /// Network namespaces created (netns mode), removed by `down`.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Host-side veth names created.
    #[serde(default)]
    pub veths: Vec<String>,
    /// Whether the mesh finished starting.
    pub ready: bool,
}

impl RunState {
    pub fn path(run_dir: &Path) -> PathBuf {
        run_dir.join(STATE_FILE)
    }

    pub fn write(&self, run_dir: &Path) -> Result<(), LocalError> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| LocalError::Io(format!("encoding state: {e}")))?;
        crate::generate::write_if_changed(&Self::path(run_dir), &text).map(|_| ())
    }

    pub fn read(run_dir: &Path) -> Result<Option<RunState>, LocalError> {
        let path = Self::path(run_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(LocalError::Io(format!("{}: {e}", path.display()))),
        };
        serde_json::from_str(&text).map(Some).map_err(|e| {
            LocalError::Io(format!("{}: not a plexus state file: {e}", path.display()))
        })
    }

    /// A state whose `up` process is gone is stale (crash, kill -9).
    pub fn is_live(&self) -> bool {
        alive(self.up_pid)
    }

    pub fn replica(&self, name: &str) -> Result<&ReplicaState, LocalError> {
        let (w, idx) = match name.split_once('/') {
            Some((w, i)) => (w, i.parse::<u32>().ok()),
            None => (name, Some(0)),
        };
        self.replicas
            .iter()
            .find(|r| r.workload == w && Some(r.index) == idx)
            .ok_or_else(|| {
                let known: Vec<String> = self
                    .replicas
                    .iter()
                    .map(|r| format!("{}/{}", r.workload, r.index))
                    .collect();
                LocalError::Usage(format!(
                    "no replica {name:?} in the running mesh (replicas: {})",
                    known.join(", ")
                ))
            })
    }
}

/// What `down` did, for its output and for tests.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct DownReport {
    /// `up` was running and stopped itself (it cleans up its own children).
    pub stopped_up: bool,
    /// Children `down` had to kill itself (left over by an `up` that died).
    pub killed: Vec<String>,
    pub namespaces_removed: Vec<String>,
}

/// Stop the mesh recorded in `run_dir`: SIGTERM to `up` (which stops its children and undoes its
/// network changes), then kill whatever is still alive and undo what is still recorded.
pub fn down(run_dir: &Path, grace: Duration) -> Result<DownReport, LocalError> {
    let Some(state) = RunState::read(run_dir)? else {
        return Err(LocalError::Usage(format!(
            "no mesh is running ({} does not exist)",
            RunState::path(run_dir).display()
        )));
    };
    let mut report = DownReport::default();
    if state.is_live() {
        signal_group(state.up_pid, "TERM");
        report.stopped_up = wait_gone(&[state.up_pid], grace);
    }
    // Whatever `up` left (it was killed, or did not finish in time).
    let leftover: Vec<(&String, &u32)> =
        state.processes.iter().filter(|(_, p)| alive(**p)).collect();
    for (name, pid) in &leftover {
        signal_group(**pid, "TERM");
        report.killed.push((*name).clone());
    }
    let pids: Vec<u32> = leftover.iter().map(|(_, p)| **p).collect();
    if !wait_gone(&pids, Duration::from_secs(3)) {
        for p in &pids {
            signal_group(*p, "KILL");
        }
        wait_gone(&pids, Duration::from_secs(2));
    }
    // Read again: `up` removes namespaces as it exits and rewrites the state.
    let remaining = RunState::read(run_dir)?.unwrap_or_default();
    for ns in &remaining.namespaces {
        crate::netns::delete_namespace(ns);
        report.namespaces_removed.push(ns.clone());
    }
    for veth in &remaining.veths {
        crate::netns::delete_link(veth);
    }
    let _ = std::fs::remove_file(RunState::path(run_dir));
    Ok(report)
}

fn wait_gone(pids: &[u32], grace: Duration) -> bool {
    let deadline = Instant::now() + grace;
    loop {
        if pids.iter().all(|p| !alive(*p)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("plexus-state-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    #[test]
    fn state_round_trips_and_finds_replicas() {
        let d = tmp("rt");
        assert_eq!(RunState::read(&d).expect("read"), None);
        let s = RunState {
            up_pid: std::process::id(),
            replicas: vec![ReplicaState {
                workload: "reviews-v2".into(),
                index: 1,
                env: vec![("A".into(), "b".into())],
                netns: None,
            }],
            ..Default::default()
        };
        s.write(&d).expect("write");
        let back = RunState::read(&d).expect("read").expect("some");
        assert_eq!(back, s);
        assert!(back.is_live());
        assert_eq!(back.replica("reviews-v2/1").expect("replica").env[0].1, "b");
        assert!(back.replica("reviews-v2").is_err());
    }

    #[test]
    fn down_kills_leftovers_of_a_dead_up_and_removes_the_state() {
        let d = tmp("down");
        // A group leader, as up's children are; `sleep &` is a grandchild that must die too.
        let child = Command::new("sh")
            .args(["-c", "sleep 30 & wait"])
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        let pid = child.id();
        // An `up` pid that no longer exists: a finished process.
        let gone = Command::new("true").spawn().expect("spawn");
        let mut gone = gone;
        let gone_pid = gone.id();
        let _ = gone.wait();
        let s = RunState {
            up_pid: gone_pid,
            processes: [("app x-0".to_string(), pid)].into_iter().collect(),
            ..Default::default()
        };
        s.write(&d).expect("write");
        // Reap the child in the background so `alive` sees it disappear.
        let waiter = std::thread::spawn(move || {
            let mut c = child;
            let _ = c.wait();
        });
        let report = down(&d, Duration::from_secs(1)).expect("down");
        let _ = waiter.join();
        assert!(!report.stopped_up);
        assert_eq!(report.killed, vec!["app x-0".to_string()]);
        assert!(!alive(pid));
        assert!(!RunState::path(&d).exists());
        assert!(
            down(&d, Duration::from_secs(1)).is_err(),
            "nothing left to stop"
        );
    }
}
