//! `plexus up --keep`, `exec`, restart and `down` for real, with stand-ins for the control
//! plane and the proxies (`plexus echo` answering on the debug and admin addresses), so the
//! local runner is tested whatever state the control plane and proxy are in.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use plexus_local::state::RunState;
use plexus_local::supervise::alive;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn plexus() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-q", "-p", "plexus"])
        .current_dir(workspace())
        .status()
        .expect("cargo build");
    assert!(status.success());
    let exe = std::env::current_exe().expect("exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target")
        .join("plexus")
}

const WORKLOAD: &str = "apiVersion: plexus.dev/v1alpha1
kind: Workload
metadata:
  name: hello-v1
  labels: {app: hello, version: v1}
spec:
  replicas: 2
  command: [plexus, echo]
  ports:
  - name: http
    containerPort: 9080
";

/// `control` and `proxy` become `plexus echo` on their debug/admin address; anything else is
/// the real binary.
fn stand_in(dir: &Path, real: &Path) -> PathBuf {
    let script = format!(
        r#"#!/bin/sh
real='{}'
case "$1" in
  proxy) [ "$2" = --help ] && {{ echo "--metadata <KEY=VALUE>"; exit 0; }} ;;
esac
case "$1" in
  control|proxy)
    addr=""
    while [ $# -gt 0 ]; do
      case "$1" in --debug-address|--admin-address) addr="$2" ;; esac
      shift
    done
    exec "$real" echo --http-address "$addr" --workload stand-in ;;
  *) exec "$real" "$@" ;;
esac
"#,
        real.display()
    );
    let path = dir.join("plexus-stand-in");
    std::fs::write(&path, script).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

fn get(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    s.write_all(b"GET /x HTTP/1.0\r\n\r\n").ok()?;
    let mut b = String::new();
    s.read_to_string(&mut b).ok()?;
    Some(b)
}

fn eventually<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    common::eventually(what, 20, f)
}

#[test]
fn up_keep_exec_restart_and_down_with_stand_ins() {
    let bin = plexus();
    let tmp = std::env::temp_dir().join(format!("plexus-sup-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let (mesh, run) = (tmp.join("mesh"), tmp.join("run"));
    std::fs::create_dir_all(&mesh).expect("mkdir");
    std::fs::write(mesh.join("w.yaml"), WORKLOAD).expect("write");
    let fake = stand_in(&tmp, &bin);
    // Blocks are disjoint between test files, which nextest runs in parallel.
    let block = 10 + (std::process::id() % 40) as u8;
    let up = |extra: &[&str]| {
        Command::new(&bin)
            .args([
                "up",
                mesh.to_str().expect("utf8"),
                "--keep",
                "--block",
                &block.to_string(),
            ])
            .args(extra)
            .env("PLEXUS_RUN_DIR", &run)
            .env("PLEXUS_BINARY", &fake)
            .output()
            .expect("up")
    };
    let out = up(&[]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 workloads, 2 replicas"), "{text}");

    // Replica 1's app answers on its own address with the identity up gave it.
    let body = get(&format!("127.{block}.2.2:9080")).expect("app answers");
    assert!(
        body.contains("\"workload\":\"hello-v1\"") && body.contains("\"replica\":\"hello-v1-1\""),
        "{body}"
    );
    // The generated registry objects are where the control plane reads them.
    let generated =
        std::fs::read_to_string(run.join("config/plexus-local.yaml")).expect("generated");
    assert!(
        generated.contains(&format!("\"address\": \"127.{block}.1.2\"")),
        "{generated}"
    );
    assert!(run.join("config/user/w.yaml").exists());

    // A second up on the same run dir is refused.
    let again = up(&[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already running"));

    // exec runs with the replica's environment.
    let env = Command::new(&bin)
        .args([
            "exec",
            "hello-v1/1",
            "--",
            "sh",
            "-c",
            "echo $PLEXUS_REPLICA $HTTP_PROXY",
        ])
        .env("PLEXUS_RUN_DIR", &run)
        .output()
        .expect("exec");
    assert_eq!(
        String::from_utf8_lossy(&env.stdout).trim(),
        format!("1 http://127.{block}.3.2:15001")
    );
    let bad = Command::new(&bin)
        .args(["exec", "nope", "--", "true"])
        .env("PLEXUS_RUN_DIR", &run)
        .output()
        .expect("exec");
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("hello-v1/0"));

    // A killed workload is reported and restarted.
    let state = RunState::read(&run).expect("read").expect("state");
    let old = state.processes["app hello-v1-0"];
    Command::new("kill")
        .args(["-KILL", &old.to_string()])
        .status()
        .expect("kill");
    eventually("restart", || {
        let s = RunState::read(&run).ok()??;
        let new = *s.processes.get("app hello-v1-0")?;
        (new != old && alive(new)).then_some(())
    });
    eventually("app back", || get(&format!("127.{block}.2.1:9080")));
    let log = std::fs::read_to_string(run.join("logs/up.log")).expect("up log");
    assert!(
        log.contains("app hello-v1-0 exited") && log.contains("restarting in"),
        "{log}"
    );

    // down stops everything.
    let pids: Vec<u32> = RunState::read(&run)
        .expect("read")
        .expect("state")
        .processes
        .values()
        .copied()
        .collect();
    assert_eq!(pids.len(), 5, "control + 2 sidecars + 2 apps");
    let down = Command::new(&bin)
        .arg("down")
        .env("PLEXUS_RUN_DIR", &run)
        .output()
        .expect("down");
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(String::from_utf8_lossy(&down.stdout).contains("mesh stopped"));
    assert!(pids.iter().all(|p| !alive(*p)), "left running after down");
    assert!(!RunState::path(&run).exists());
    assert!(get(&format!("127.{block}.2.1:9080")).is_none());
    let _ = std::fs::remove_dir_all(&tmp);
}

/// The same with `--netns` (root only): namespaces, capture and hosts files are set up, the
/// processes run inside them, `exec` enters the namespace, and `down` removes every namespace,
/// link and route, leaving the host's iptables as they were.
#[test]
fn netns_up_exec_and_down_with_stand_ins() {
    if !plexus_local::netns::available() || !plexus_local::capture::available() {
        common::skip("needs root, ip(8) and iptables");
        return;
    }
    let bin = plexus();
    let host_rules = plexus_local::capture::host_nat_rules().expect("rules");
    let tmp = std::env::temp_dir().join(format!("plexus-netns-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let (mesh, run) = (tmp.join("mesh"), tmp.join("run"));
    std::fs::create_dir_all(&mesh).expect("mkdir");
    std::fs::write(mesh.join("w.yaml"), WORKLOAD).expect("write");
    std::fs::write(
        mesh.join("s.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: hello}\nspec:\n  selector: {app: hello}\n  ports: [{name: http, port: 9080}]\n",
    )
    .expect("write");
    let fake = stand_in(&tmp, &bin);
    // Make the stand-in usable by the proxy uid.
    for d in [&tmp, &tmp.join("plexus-stand-in")] {
        let _ = std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755));
    }
    let block = 200 + (std::process::id() % 25) as u8;
    let prefix = format!("plx{block}");
    let out = Command::new(&bin)
        .args([
            "up",
            mesh.to_str().expect("utf8"),
            "--keep",
            "--netns",
            "--block",
            &block.to_string(),
        ])
        .env("PLEXUS_RUN_DIR", &run)
        .env("PLEXUS_BINARY", &fake)
        .output()
        .expect("up");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let down = || {
        Command::new(&bin)
            .arg("down")
            .env("PLEXUS_RUN_DIR", &run)
            .output()
            .expect("down")
    };
    if !out.status.success() {
        down();
        panic!("up --netns failed:\n{text}");
    }
    let namespaces = plexus_local::netns::namespaces_with_prefix(&prefix);
    assert_eq!(namespaces.len(), 3, "hub + 2 pods: {namespaces:?}");
    // exec enters the replica's namespace: its address and its names.
    let ex = Command::new(&bin)
        .args([
            "exec",
            "hello-v1/1",
            "--",
            "sh",
            "-c",
            "ip -o -4 addr show; getent hosts hello",
        ])
        .env("PLEXUS_RUN_DIR", &run)
        .output()
        .expect("exec");
    let ex = String::from_utf8_lossy(&ex.stdout).into_owned();
    assert!(ex.contains(&format!("10.250.{block}.2/24")), "{ex}");
    assert!(
        ex.contains("127.255.0.1") && ex.contains("hello.default.svc.cluster.local"),
        "{ex}"
    );
    // The Service got its VIP in the control plane's copy.
    let svc = std::fs::read_to_string(run.join("config/user/s.yaml")).expect("mirror");
    assert!(svc.contains("\"clusterIP\": \"127.255.0.1\""), "{svc}");

    let pids: Vec<u32> = RunState::read(&run)
        .expect("read")
        .expect("state")
        .processes
        .values()
        .copied()
        .collect();
    let d = down();
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    assert!(pids.iter().all(|p| !alive(*p)), "left running after down");
    assert!(
        plexus_local::netns::namespaces_with_prefix(&prefix).is_empty(),
        "namespaces left"
    );
    assert!(
        plexus_local::netns::links_with_prefix(&prefix).is_empty(),
        "links left"
    );
    let routes = plexus_local::netns::run(&["ip", "route"]).expect("routes");
    assert!(
        !routes.contains(&format!("10.250.{block}.0/24")),
        "{routes}"
    );
    assert_eq!(
        plexus_local::capture::host_nat_rules().expect("rules"),
        host_rules
    );
    let _ = std::fs::remove_dir_all(&tmp);
}
