//! `plexus control`, `plexus envoy-bootstrap`, `plexus proxy-status` and `plexus proxy-config`
//! as a user runs them: the built binary as child processes, a stock Envoy joined through the
//! written bootstrap, an echo workload behind a Kubernetes Service + WorkloadEntry.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use plexus_testkit::echo::{self, EchoConfig};

const PLEXUS: &str = env!("CARGO_BIN_EXE_plexus");

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn plexus(args: &[&str]) -> Output {
    Command::new(PLEXUS)
        .args(args)
        .output()
        .expect("run plexus")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Poll `f` every 100 ms for up to `within`.
fn poll<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Start `plexus control` on port 0 and read back the addresses it bound.
fn start_control(dir: &Path) -> (Kill, String, String) {
    let mut child = Command::new(PLEXUS)
        .args(["control", "--config"])
        .arg(dir)
        .args([
            "--xds-address",
            "127.0.0.1:0",
            "--debug-address",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("plexus control starts");
    let out = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(out)
        .read_line(&mut line)
        .expect("first line");
    // "plexus control: xDS on A, debug API on B"
    let xds = line
        .split("xDS on ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or_default();
    let debug = line
        .split("debug API on ")
        .nth(1)
        .unwrap_or_default()
        .trim();
    assert!(
        !xds.is_empty() && !debug.is_empty(),
        "unexpected first line {line:?}"
    );
    (Kill(child), xds.to_string(), debug.to_string())
}

fn config_dir(echo: SocketAddr) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("plexus-control-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let registry = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: reviews, namespace: default}}\nspec:\n  selector: {{app: reviews}}\n  ports:\n  - {{name: http, port: 9080, targetPort: http}}\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: reviews-v1, namespace: default}}\nspec:\n  address: {}\n  labels: {{app: reviews, version: v1}}\n  ports: {{http: {}}}\n",
        echo.ip(),
        echo.port()
    );
    std::fs::write(dir.join("registry.yaml"), registry).expect("write");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_proxy_status_shows_envoy_synced_and_rejected_config() {
    let Some(envoy) = plexus_testkit::envoy::binary_for_test(
        "scenario_proxy_status_shows_envoy_synced_and_rejected_config",
    ) else {
        return;
    };
    let cfg = EchoConfig {
        workload: "reviews".into(),
        ..Default::default()
    };
    let echo = echo::start_http(cfg, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("echo");
    let dir = config_dir(echo.addr);
    let (_control, xds, debug) = start_control(&dir);

    let ip = format!(
        "127.{}.{}.9",
        100 + std::process::id() % 100,
        (std::process::id() / 100) % 250
    );
    let bootstrap = dir.join(".bootstrap.json");
    let out = plexus(&[
        "envoy-bootstrap",
        "-o",
        &bootstrap.display().to_string(),
        "--xds-address",
        &xds,
        "--admin-address",
        "127.0.0.1:0",
        "--ip",
        &ip,
        "--pod-name",
        "client-0",
        "--labels",
        "app=client",
    ]);
    assert!(out.status.success(), "{out:?}");
    let _envoy = Kill(
        Command::new(envoy)
            .arg("-c")
            .arg(&bootstrap)
            .args([
                "--concurrency",
                "1",
                "--disable-hot-restart",
                "--log-level",
                "error",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("envoy starts"),
    );

    let node = format!("sidecar~{ip}~client-0.default~default.svc.cluster.local");
    let status = poll(
        Duration::from_secs(30),
        "proxy-status to show Envoy SYNCED",
        || {
            let out = plexus(&["proxy-status", "--debug-address", &debug]);
            let text = stdout(&out);
            let line = text.lines().find(|l| l.starts_with(&node))?.to_string();
            (line.matches("SYNCED").count() == 4).then_some(text)
        },
    );
    assert!(status.starts_with("NAME"), "{status}");

    // Routed through Envoy to the echo workload.
    let got = poll(Duration::from_secs(20), "a routed request", || {
        let r = get_reviews(&format!("{ip}:9080"))?;
        r.starts_with("HTTP/1.1 200").then_some(r)
    });
    assert!(got.contains("\"workload\":\"reviews\""), "{got}");

    // proxy-config: what the control plane sends Envoy.
    let out = plexus(&[
        "proxy-config",
        "clusters",
        "client-0.default",
        "--debug-address",
        &debug,
    ]);
    assert!(
        stdout(&out).contains("outbound|9080||reviews.default.svc.cluster.local"),
        "{out:?}"
    );
    let out = plexus(&[
        "proxy-config",
        "listeners",
        "client-0",
        "--debug-address",
        &debug,
        "-o",
        "json",
    ]);
    let listeners: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        listeners
            .as_array()
            .is_some_and(|l| l.iter().any(|l| l["name"] == format!("{ip}_9080"))),
        "{listeners}"
    );
    let out = plexus(&[
        "proxy-config",
        "endpoints",
        "client-0",
        "--debug-address",
        &debug,
    ]);
    assert!(stdout(&out).contains(&echo.addr.to_string()), "{out:?}");

    // An invalid VirtualService: proxy-status names file, line and error; Envoy stays SYNCED.
    let vs = dir.join("vs.yaml");
    std::fs::write(&vs, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: default}\nspec:\n  hosts: [reviews]\n  htpp: []\n").expect("write");
    let status = poll(
        Duration::from_secs(10),
        "proxy-status to list the rejection",
        || {
            let text = stdout(&plexus(&["proxy-status", "--debug-address", &debug]));
            text.contains("Rejected config:").then_some(text)
        },
    );
    let want = format!(
        "{}:6:3: error: VirtualService default/reviews: unknown field \"spec.htpp\"",
        vs.display()
    );
    assert!(status.contains(&want), "want {want:?} in:\n{status}");
    let line = status
        .lines()
        .find(|l| l.starts_with(&node))
        .unwrap_or_default();
    assert_eq!(line.matches("SYNCED").count(), 4, "{status}");
    println!("scenario: plexus proxy-status:\n{status}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `GET /` with `Host: reviews` on a new connection; the raw response.
fn get_reviews(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

/// `plexus proxy --agent-only --envoy-bootstrap FILE` (the pilot-agent form) writes the
/// same bootstrap as `plexus envoy-bootstrap` with the same node flags, and refuses to run
/// without its file or with a TLS ADS address the bootstrap cannot express.
#[test]
fn proxy_agent_only_writes_the_envoy_bootstrap() {
    let dir = std::env::temp_dir().join(format!("plexus-agent-only-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (a, b) = (dir.join("agent.json"), dir.join("bootstrap.json"));
    let node = [
        "--type",
        "router",
        "--pod-name",
        "gw-0",
        "--namespace",
        "istio-system",
    ];
    let mut agent = vec![
        "proxy",
        "--agent-only",
        "--xds-address",
        "http://127.0.0.1:15011",
        "--admin-address",
        "127.0.0.1:15001",
    ];
    let a_path = a.display().to_string();
    agent.extend(["--envoy-bootstrap", &a_path]);
    agent.extend(node);
    let out = plexus(&agent);
    assert!(out.status.success(), "{out:?}");
    let b_path = b.display().to_string();
    let mut direct = vec![
        "envoy-bootstrap",
        "-o",
        &b_path,
        "--xds-address",
        "127.0.0.1:15011",
        "--admin-address",
        "127.0.0.1:15001",
    ];
    direct.extend(node);
    let out = plexus(&direct);
    assert!(out.status.success(), "{out:?}");
    let (a_text, b_text) = (
        std::fs::read_to_string(&a).expect("agent bootstrap"),
        std::fs::read_to_string(&b).expect("bootstrap"),
    );
    assert_eq!(a_text, b_text);
    assert!(
        a_text.contains("router~127.0.0.1~gw-0.istio-system"),
        "{a_text}"
    );

    let out = plexus(&["proxy", "--agent-only"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let out = plexus(&[
        "proxy",
        "--agent-only",
        "--envoy-bootstrap",
        &a_path,
        "--xds-address",
        "https://127.0.0.1:15012",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--xds-address"),
        "{out:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
