//! End to end, process mode: `plexus up examples/bookinfo --keep`, traffic through the gateway
//! shows the whole chain, routing changes when a file changes, `plexus exec` gets the proxy
//! environment, a killed workload is restarted, `plexus down` leaves nothing running.
//!
//! Runs once with Plexus sidecars and once with Envoy sidecars (`--data-plane envoy`, Envoy from
//! the test setup's `.venv/bin/envoy`). Needs the `plexus control` subcommand (branch
//! `control`); on a build without it the test says so and returns. `PLEXUS_BINARY` names
//! another binary to run as control plane and proxies (as `plexus up` itself reads it).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use plexus_local::state::RunState;
use plexus_local::supervise::alive;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `plexus` binary of this workspace (built if needed).
fn plexus() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-q", "-p", "plexus"])
        .current_dir(workspace())
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build -p plexus failed");
    let exe = std::env::current_exe().expect("test exe");
    // target/<profile>/deps/<test> -> target/<profile>/plexus
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("plexus");
    assert!(bin.exists(), "{} missing", bin.display());
    bin
}

/// The binary `plexus up` will run as control plane and proxies.
fn mesh_binary(bin: &Path) -> PathBuf {
    std::env::var_os("PLEXUS_BINARY").map_or_else(|| bin.to_path_buf(), PathBuf::from)
}

fn has_control(bin: &Path) -> bool {
    Command::new(mesh_binary(bin))
        .args(["control", "--help"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// One GET; `via` is an HTTP proxy (absolute-form request line).
fn get(addr: &str, url_or_path: &str, headers: &[(&str, &str)]) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let host = url_or_path
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .unwrap_or(addr);
    let mut req = format!("GET {url_or_path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or("no header end")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or("no status")?;
    Ok((code, body.to_string()))
}

fn reviews_version(gw: &str, headers: &[(&str, &str)]) -> Option<String> {
    let (code, body) = get(gw, "/productpage", headers).ok()?;
    if code != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["upstreams"]
        .as_array()?
        .iter()
        .find_map(|u| {
            u["body"]["workload"]
                .as_str()
                .filter(|w| w.starts_with("reviews"))
        })
        .map(str::to_string)
}

use common::eventually;

struct Down(PathBuf, PathBuf);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = Command::new(&self.0)
            .arg("down")
            .env("PLEXUS_RUN_DIR", &self.1)
            .output();
    }
}

#[test]
fn scenario_process_mode_bookinfo_plexus() {
    bookinfo_end_to_end("plexus", 0);
}

#[test]
fn scenario_process_mode_bookinfo_envoy() {
    let envoy = workspace().join(".venv/bin/envoy");
    if std::env::var_os("PLEXUS_ENVOY_BINARY").is_none() && !envoy.exists() {
        common::skip(&format!(
            "no Envoy ({} missing; scripts/test.sh installs it)",
            envoy.display()
        ));
        return;
    }
    bookinfo_end_to_end("envoy", 1);
}

fn bookinfo_end_to_end(data_plane: &str, offset: u32) {
    let bin = plexus();
    if !has_control(&bin) {
        common::skip("this binary has no `plexus control` (PLEXUS_BINARY points at an old build?)");
        return;
    }
    let tmp = std::env::temp_dir().join(format!("plexus-e2e-{data_plane}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let mesh = tmp.join("bookinfo");
    let run = tmp.join("run");
    std::fs::create_dir_all(&mesh).expect("mkdir");
    for e in std::fs::read_dir(workspace().join("examples/bookinfo")).expect("examples") {
        let p = e.expect("entry").path();
        std::fs::copy(&p, mesh.join(p.file_name().expect("name"))).expect("copy");
    }
    // A block of loopback addresses of our own, so parallel runs do not meet.
    // Blocks are disjoint between test files (nextest runs them in parallel) and data planes.
    let block = (100 + std::process::id() % 50 + offset * 50) as u8;
    let gw = format!("127.{block}.0.3:8080");
    let out = Command::new(&bin)
        .args([
            "up",
            mesh.to_str().expect("utf8"),
            "--keep",
            "--block",
            &block.to_string(),
        ])
        .args([
            "--gateway-address",
            &format!("127.{block}.0.3"),
            "--data-plane",
            data_plane,
        ])
        .env("PLEXUS_RUN_DIR", &run)
        .output()
        .expect("plexus up");
    let _down = Down(bin.clone(), run.clone());
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "plexus up failed:\n{log}");
    assert!(log.contains(&format!("gateway http://{gw}/")), "{log}");

    // The page shows the chain: productpage -> details, reviews (v1: no ratings call).
    let (code, body) = get(&gw, "/productpage", &[]).expect("page");
    assert_eq!(code, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(page["workload"], "productpage-v1");
    let ups: Vec<&str> = page["upstreams"]
        .as_array()
        .expect("upstreams")
        .iter()
        .filter_map(|u| u["body"]["workload"].as_str())
        .collect();
    assert_eq!(ups, ["details-v1", "reviews-v1"], "{body}");

    // exec: the workload's environment, and its HTTP proxy reaches services by name.
    let env = Command::new(&bin)
        .args(["exec", "productpage-v1", "--", "env"])
        .env("PLEXUS_RUN_DIR", &run)
        .output()
        .expect("exec");
    let env = String::from_utf8_lossy(&env.stdout).into_owned();
    let proxy = env
        .lines()
        .find_map(|l| l.strip_prefix("HTTP_PROXY=http://"))
        .expect("HTTP_PROXY")
        .to_string();
    let (code, body) = get(&proxy, "http://ratings:9080/ratings/0", &[]).expect("via proxy");
    assert!(code == 200 && body.contains("ratings-v1"), "{code} {body}");

    // Routing follows the files: 90/10 v1/v3, then jason -> v2.
    let routes = workspace().join("examples/bookinfo-routes");
    let all_v1 = std::fs::read_to_string(mesh.join("virtual-service-all-v1.yaml")).expect("read");
    let without_reviews: Vec<&str> = all_v1
        .split("---\n")
        .filter(|d| !d.contains("name: reviews\n"))
        .collect();
    std::fs::write(
        mesh.join("virtual-service-all-v1.yaml"),
        without_reviews.join("---\n"),
    )
    .expect("write");
    std::fs::copy(
        routes.join("virtual-service-reviews-90-10.yaml"),
        mesh.join("reviews.yaml"),
    )
    .expect("copy");
    eventually("a v3 answer", 20, || {
        (reviews_version(&gw, &[])? == "reviews-v3").then_some(())
    });
    std::fs::copy(
        routes.join("virtual-service-reviews-test-v2.yaml"),
        mesh.join("reviews.yaml"),
    )
    .expect("copy");
    eventually("jason on v2", 20, || {
        (reviews_version(&gw, &[("end-user", "jason")])? == "reviews-v2").then_some(())
    });
    for _ in 0..20 {
        assert_eq!(reviews_version(&gw, &[]).as_deref(), Some("reviews-v1"));
    }

    // A killed workload is restarted and serves again.
    let state = RunState::read(&run).expect("state").expect("some");
    let old = state.processes["app details-v1-0"];
    Command::new("kill")
        .args(["-KILL", &old.to_string()])
        .status()
        .expect("kill");
    eventually("details restarted", 20, || {
        let s = RunState::read(&run).ok()??;
        let new = s.processes["app details-v1-0"];
        (new != old && alive(new)).then_some(())
    });
    eventually("details answering again", 20, || {
        let (_, b) = get(&gw, "/productpage", &[]).ok()?;
        b.contains("\"details-v1\"").then_some(())
    });

    // down: nothing left.
    let pids: Vec<u32> = RunState::read(&run)
        .expect("state")
        .expect("some")
        .processes
        .values()
        .copied()
        .collect();
    let out = Command::new(&bin)
        .arg("down")
        .env("PLEXUS_RUN_DIR", &run)
        .output()
        .expect("down");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(pids.iter().all(|p| !alive(*p)), "processes left after down");
    assert!(!RunState::path(&run).exists());
    let _ = std::fs::remove_dir_all(&tmp);
}
