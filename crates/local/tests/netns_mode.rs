//! End to end, netns mode (root): `plexus up examples/bookinfo --netns` plus a raw TCP service,
//! with transparent capture. Checks HTTP by service name through the gateway and from inside a
//! namespace, raw TCP through the mesh, names resolving inside the namespaces, and traffic to
//! an address outside the mesh (a listener this test starts in a namespace of its own, plugged
//! into the mesh's bridge): passed under ALLOW_ANY, blocked after a Sidecar switches the
//! namespace to REGISTRY_ONLY. `plexus down` then leaves no namespace, link or route.
//!
//! Runs twice: with Plexus sidecars (REDIRECT-mode capture listeners) and with Envoy sidecars.
//! Skipped (with a message) without root, or without Envoy for the Envoy run.
//! `PLEXUS_BINARY` names another binary for control plane and proxies.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use plexus_local::netns;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn plexus() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let ok = Command::new(cargo)
        .args(["build", "-q", "-p", "plexus"])
        .current_dir(workspace())
        .status()
        .expect("cargo");
    assert!(ok.success());
    let exe = std::env::current_exe().expect("exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("target")
        .join("plexus")
}

const TCP_ECHO: &str = "apiVersion: v1
kind: Service
metadata: {name: tcpecho, labels: {app: tcpecho}}
spec:
  selector: {app: tcpecho}
  ports: [{name: tcp-echo, port: 9090}]
---
apiVersion: plexus.dev/v1alpha1
kind: Workload
metadata:
  name: tcpecho-v1
  labels: {app: tcpecho, version: v1}
spec:
  command: [plexus, echo]
  ports:
  - {name: http, containerPort: 9080}
  - {name: tcp-echo, containerPort: 9090}
";

const REGISTRY_ONLY: &str = "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
";

/// Run a bash script in the namespace of a replica through `plexus exec`.
fn exec(bin: &Path, run: &Path, target: &str, script: &str) -> Result<String, String> {
    let out = Command::new(bin)
        .args(["exec", target, "--", "timeout", "5", "bash", "-c", script])
        .env("PLEXUS_RUN_DIR", run)
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!(
            "{}: {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    common::eventually(what, 20, || f().then_some(()));
}

struct Guard {
    bin: PathBuf,
    run: PathBuf,
    outside_ns: String,
    listener: Option<Child>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = &mut self.listener {
            let _ = c.kill();
            let _ = c.wait();
        }
        netns::delete_namespace(&self.outside_ns);
        let _ = Command::new(&self.bin)
            .arg("down")
            .env("PLEXUS_RUN_DIR", &self.run)
            .output();
    }
}

#[test]
fn scenario_netns_mode_bookinfo_plexus() {
    netns_bookinfo("plexus", 225);
}

#[test]
fn scenario_netns_mode_bookinfo_envoy() {
    let envoy = workspace().join(".venv/bin/envoy");
    if std::env::var_os("PLEXUS_ENVOY_BINARY").is_none() && !envoy.exists() {
        common::skip(&format!("no Envoy ({} missing)", envoy.display()));
        return;
    }
    netns_bookinfo("envoy", 237);
}

/// The whole netns scenario with one data plane. `first_block` picks a range of 12 address
/// blocks disjoint from the other data plane's (nextest runs tests in parallel).
fn netns_bookinfo(data_plane: &str, first_block: u32) {
    if !netns::available() || !plexus_local::capture::available() {
        common::skip("needs root, ip(8) and iptables");
        return;
    }
    let bin = plexus();
    let mesh_bin = std::env::var_os("PLEXUS_BINARY").map_or_else(|| bin.clone(), PathBuf::from);
    let has_control = Command::new(&mesh_bin)
        .args(["control", "--help"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_control {
        common::skip("this binary has no `plexus control` (PLEXUS_BINARY points at an old build?)");
        return;
    }
    let tmp = std::env::temp_dir().join(format!("plexus-netns-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let (mesh, run) = (tmp.join("bookinfo"), tmp.join("run"));
    std::fs::create_dir_all(&mesh).expect("mkdir");
    for e in std::fs::read_dir(workspace().join("examples/bookinfo")).expect("examples") {
        let p = e.expect("entry").path();
        std::fs::copy(&p, mesh.join(p.file_name().expect("name"))).expect("copy");
    }
    std::fs::write(mesh.join("tcpecho.yaml"), TCP_ECHO).expect("write");
    // Blocks are disjoint between tests and test files, which nextest runs in parallel.
    let block = u8::try_from(first_block + std::process::id() % 12).expect("block fits u8");
    let gw_host = format!("127.{block}.0.3");
    let out = Command::new(&bin)
        .args([
            "up",
            mesh.to_str().expect("utf8"),
            "--keep",
            "--netns",
            "--data-plane",
            data_plane,
        ])
        .args(["--block", &block.to_string(), "--gateway-address", &gw_host])
        .env("PLEXUS_RUN_DIR", &run)
        .output()
        .expect("up");
    let mut guard = Guard {
        bin: bin.clone(),
        run: run.clone(),
        outside_ns: format!("plx{block}x"),
        listener: None,
    };
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "plexus up --netns failed:\n{log}");

    // HTTP through the gateway: the whole chain, each hop captured transparently.
    let page = Command::new("curl")
        .args([
            "-s",
            "-m",
            "5",
            &format!("http://{gw_host}:8080/productpage"),
        ])
        .output()
        .expect("curl");
    let page = String::from_utf8_lossy(&page.stdout).into_owned();
    assert!(
        page.contains("\"workload\":\"productpage-v1\"")
            && page.contains("\"workload\":\"details-v1\""),
        "{page}"
    );

    // Names resolve inside a namespace, to mesh VIPs.
    let names = exec(
        &bin,
        &run,
        "productpage-v1",
        "getent hosts reviews ratings.default.svc.cluster.local",
    )
    .expect("getent");
    assert!(
        names.lines().count() >= 1 && names.starts_with("127.255."),
        "{names}"
    );
    // HTTP by name from inside a namespace (no proxy settings: captured).
    let r = exec(
        &bin,
        &run,
        "reviews-v2",
        "env | grep -i http_proxy; curl -s -m 4 http://ratings:9080/r",
    )
    .expect("curl in ns");
    assert!(
        r.contains("\"workload\":\"ratings-v1\"") && !r.to_lowercase().contains("http_proxy="),
        "{r}"
    );
    // Raw TCP by name through the mesh.
    let tcp = exec(
        &bin,
        &run,
        "productpage-v1",
        "exec 3<>/dev/tcp/tcpecho/9090 && printf ping >&3 && head -c4 <&3",
    )
    .expect("tcp");
    assert_eq!(tcp, "ping");

    // A listener outside the mesh, in the test's own namespace on the mesh's bridge.
    let outside = format!("10.250.{block}.200");
    netns::create_namespace(&guard.outside_ns).expect("outside ns");
    netns::create_veth(&netns::Veth {
        host: &format!("plx{block}xh"),
        host_ns: Some(&format!("plx{block}hub")),
        host_cidr: None,
        peer: &format!("plx{block}xe"),
        ns: &guard.outside_ns,
        peer_cidr: &format!("{outside}/24"),
        gateway: &format!("10.250.{block}.254"),
    })
    .expect("veth");
    netns::run(&[
        "ip",
        "-n",
        &format!("plx{block}hub"),
        "link",
        "set",
        &format!("plx{block}xh"),
        "master",
        &format!("plx{block}br"),
    ])
    .expect("bridge");
    guard.listener = Some(
        Command::new("ip")
            .args(["netns", "exec", &guard.outside_ns])
            .arg(&bin)
            .args([
                "echo",
                "--http-address",
                &format!("{outside}:8000"),
                "--workload",
                "outside",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("listener"),
    );
    // curl prints 000 and fails when the connection is refused or reset: keep the code.
    let call_outside =
        format!("curl -s -m 3 -o /dev/null -w '%{{http_code}}' http://{outside}:8000/ || true");
    // ALLOW_ANY (Istio's default): passed through to the original destination.
    eventually("ALLOW_ANY passes", || {
        exec(&bin, &run, "productpage-v1", &call_outside).is_ok_and(|c| c == "200")
    });
    // REGISTRY_ONLY: blocked (BlackHoleCluster: the connection is closed, or a 502).
    std::fs::write(mesh.join("registry-only.yaml"), REGISTRY_ONLY).expect("write");
    eventually("REGISTRY_ONLY blocks", || {
        exec(&bin, &run, "productpage-v1", &call_outside).is_ok_and(|c| c != "200")
    });
    // ... while mesh services still answer.
    let r = exec(
        &bin,
        &run,
        "productpage-v1",
        "curl -s -m 4 http://details:9080/d",
    )
    .expect("in-mesh");
    assert!(r.contains("details-v1"), "{r}");

    // down: nothing of the mesh left.
    if let Some(c) = &mut guard.listener {
        let _ = c.kill();
        let _ = c.wait();
    }
    netns::delete_namespace(&guard.outside_ns);
    let d = Command::new(&bin)
        .arg("down")
        .env("PLEXUS_RUN_DIR", &run)
        .output()
        .expect("down");
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    let prefix = format!("plx{block}");
    assert!(
        netns::namespaces_with_prefix(&prefix).is_empty(),
        "namespaces left"
    );
    assert!(netns::links_with_prefix(&prefix).is_empty(), "links left");
    let _ = std::fs::remove_dir_all(&tmp);
    println!(
        "scenario: netns bookinfo on {data_plane}: capture, names, TCP, ALLOW_ANY/REGISTRY_ONLY, down"
    );
}
