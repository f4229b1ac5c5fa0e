//! The command lines of a local mesh's processes: the control plane, each sidecar and the
//! ingress gateway (a `plexus proxy`, or a stock Envoy with the bootstrap `plexus
//! envoy-bootstrap` writes), and each workload.

use std::path::PathBuf;
use std::process::Command;

use crate::LocalError;
use crate::plan::{Plan, Replica};
use crate::spec::INGRESS_LABEL;
use crate::supervise::ProcSpec;
use crate::up::{DataPlane, UpOptions, config_dir, log};

/// Run `argv` inside namespace `ns`, optionally as the proxy's uid/gid (so capture skips it).
fn in_netns(ns: Option<&str>, as_proxy: bool, argv: Vec<String>) -> Vec<String> {
    let Some(ns) = ns else { return argv };
    let mut out: Vec<String> = ["ip", "netns", "exec", ns].map(String::from).to_vec();
    if as_proxy {
        let id = crate::capture::PROXY_UID.to_string();
        out.extend([
            "setpriv".into(),
            "--reuid".into(),
            id.clone(),
            "--regid".into(),
            id,
            "--clear-groups".into(),
        ]);
    }
    out.extend(argv);
    out
}

pub fn control_spec(opts: &UpOptions, plan: &Plan) -> ProcSpec {
    let argv = vec![
        opts.exe.display().to_string(),
        "control".into(),
        "--config".into(),
        config_dir(&opts.run_dir).display().to_string(),
        "--xds-address".into(),
        plan.xds_address(),
        "--debug-address".into(),
        plan.debug_address(),
    ];
    ProcSpec {
        name: "control".into(),
        argv: in_netns(plan.hub.as_deref(), false, argv),
        env: vec![],
        log: log(&opts.run_dir, "control"),
        restart: true,
    }
}

/// Who a proxy is: the node flags `plexus proxy` and `plexus envoy-bootstrap` share.
struct ProxyIdentity<'a> {
    kind: &'a str,
    ip: String,
    admin: String,
    pod: String,
    namespace: &'a str,
    labels: Vec<String>,
    service_account: &'a str,
    workload: &'a str,
    metadata: Vec<(String, String)>,
    /// Network namespace (netns mode: REDIRECT capture, run as the proxy uid).
    netns: Option<&'a str>,
}

impl ProxyIdentity<'_> {
    /// Node flags; `--metadata KEY=VALUE` for the Plexus extensions only when asked (the Envoy
    /// bootstrap gets them written into its `node.metadata` instead).
    fn args(&self, with_metadata: bool) -> Vec<String> {
        let mut a: Vec<String> = [
            "--type",
            self.kind,
            "--admin-address",
            &self.admin,
            "--ip",
            &self.ip,
            "--pod-name",
            &self.pod,
            "--namespace",
            self.namespace,
            "--service-account",
            self.service_account,
            "--interception-mode",
            if self.netns.is_some() {
                "REDIRECT"
            } else {
                "NONE"
            },
            "--workload-name",
            self.workload,
        ]
        .map(String::from)
        .to_vec();
        if !self.labels.is_empty() {
            a.push("--labels".into());
            a.push(self.labels.join(","));
        }
        for (k, v) in self.metadata.iter().filter(|_| with_metadata) {
            a.push("--metadata".into());
            a.push(format!("{k}={v}"));
        }
        a
    }
}

fn proxy_spec(
    opts: &UpOptions,
    plan: &Plan,
    name: String,
    id: ProxyIdentity<'_>,
) -> Result<ProcSpec, LocalError> {
    let exe = opts.exe.display().to_string();
    let argv = match opts.data_plane {
        DataPlane::Plexus => {
            let mut argv = vec![exe, "proxy".into()];
            argv.extend([
                "--xds-address".into(),
                format!("http://{}", plan.xds_address()),
            ]);
            argv.extend(id.args(true));
            argv
        }
        DataPlane::Envoy => {
            let file = envoy_bootstrap(opts, plan, &name, &id)?;
            vec![
                opts.envoy.display().to_string(),
                "-c".into(),
                file.display().to_string(),
                "--concurrency".into(),
                "1".into(),
                // Several Envoys on one host, some as the proxy uid: no shared-memory restart.
                "--disable-hot-restart".into(),
                "--drain-time-s".into(),
                "1".into(),
                "--log-level".into(),
                "warn".into(),
            ]
        }
    };
    Ok(ProcSpec {
        log: log(&opts.run_dir, &name),
        name,
        argv: in_netns(id.netns, true, argv),
        env: vec![],
        restart: true,
    })
}

/// Write `<run dir>/bootstrap/<name>.json` with `plexus envoy-bootstrap`.
fn envoy_bootstrap(
    opts: &UpOptions,
    plan: &Plan,
    name: &str,
    id: &ProxyIdentity<'_>,
) -> Result<PathBuf, LocalError> {
    let dir = opts.run_dir.join("bootstrap");
    std::fs::create_dir_all(&dir).map_err(|e| LocalError::Io(format!("{}: {e}", dir.display())))?;
    let file = dir.join(format!("{}.json", name.replace([' ', '/'], "-")));
    let out = Command::new(&opts.exe)
        .arg("envoy-bootstrap")
        .arg("-o")
        .arg(&file)
        .args(["--xds-address", &plan.xds_address()])
        .args(id.args(false))
        .output()
        .map_err(|e| {
            LocalError::Spawn(format!(
                "{}: cannot run envoy-bootstrap: {e}",
                opts.exe.display()
            ))
        })?;
    if !out.status.success() {
        return Err(LocalError::Spawn(format!(
            "plexus envoy-bootstrap for {name} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    add_node_metadata(&file, &id.metadata)?;
    Ok(file)
}

/// Add `metadata` to the bootstrap's `node.metadata`.
fn add_node_metadata(
    file: &std::path::Path,
    metadata: &[(String, String)],
) -> Result<(), LocalError> {
    let io = |e: String| LocalError::Io(format!("{}: {e}", file.display()));
    let text = std::fs::read_to_string(file).map_err(|e| io(e.to_string()))?;
    let mut doc: serde_json::Value = serde_json::from_str(&text).map_err(|e| io(e.to_string()))?;
    let Some(md) = doc
        .pointer_mut("/node/metadata")
        .and_then(|m| m.as_object_mut())
    else {
        return Err(io("bootstrap has no node.metadata object".into()));
    };
    for (k, v) in metadata {
        md.insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    let text = serde_json::to_string_pretty(&doc).map_err(|e| io(e.to_string()))?;
    std::fs::write(file, text).map_err(|e| io(e.to_string()))
}

pub fn sidecar_spec(opts: &UpOptions, plan: &Plan, r: &Replica) -> Result<ProcSpec, LocalError> {
    let labels = r.labels().iter().map(|(k, v)| format!("{k}={v}")).collect();
    let id = ProxyIdentity {
        kind: "sidecar",
        ip: r.pod_ip.to_string(),
        admin: r.admin_address(),
        pod: r.name(),
        namespace: &r.workload.namespace,
        labels,
        service_account: &r.workload.service_account,
        workload: &r.workload.name,
        metadata: r.node_metadata(),
        netns: r.netns.as_deref(),
    };
    proxy_spec(opts, plan, format!("sidecar {}", r.name()), id)
}

pub fn gateway_spec(opts: &UpOptions, plan: &Plan) -> Result<ProcSpec, LocalError> {
    let (k, v) = INGRESS_LABEL;
    let id = ProxyIdentity {
        kind: "router",
        ip: plan.gateway_host.to_string(),
        admin: plan.gateway_admin_address(),
        pod: "istio-ingressgateway-0".into(),
        namespace: "istio-system",
        labels: vec![format!("{k}={v}"), "app=istio-ingressgateway".into()],
        service_account: "istio-ingressgateway-service-account",
        workload: "istio-ingressgateway",
        metadata: vec![],
        netns: None,
    };
    proxy_spec(opts, plan, "gateway".into(), id)
}

pub fn app_spec(opts: &UpOptions, r: &Replica) -> ProcSpec {
    let mut argv = r.workload.command.clone();
    if argv.first().map(String::as_str) == Some("plexus") {
        argv[0] = opts.exe.display().to_string();
    }
    let name = format!("app {}", r.name());
    ProcSpec {
        log: log(&opts.run_dir, &name),
        name,
        argv: in_netns(r.netns.as_deref(), false, argv),
        env: r.env(),
        restart: true,
    }
}

/// The Envoy to run: `PLEXUS_ENVOY_BINARY`, else `envoy` on PATH, else the test setup's
/// `.venv/bin/envoy` beside the workspace the `plexus` binary was built in.
pub fn find_envoy(exe: &std::path::Path) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PLEXUS_ENVOY_BINARY") {
        return Some(PathBuf::from(p));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let c = dir.join("envoy");
            if c.is_file() {
                return Some(c);
            }
        }
    }
    // <workspace>/target/<profile>/plexus -> <workspace>/.venv/bin/envoy
    let ws = exe.parent()?.parent()?.parent()?;
    let c = ws.join(".venv/bin/envoy");
    c.is_file().then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::plan;
    use crate::spec::{MeshSpec, WorkloadPort, WorkloadSpec};
    use std::net::Ipv4Addr;
    use std::time::Duration;

    fn opts(dp: DataPlane) -> UpOptions {
        UpOptions {
            dir: "/d".into(),
            run_dir: "/r".into(),
            block: 4,
            gateway_host: Ipv4Addr::LOCALHOST,
            data_plane: dp,
            netns: false,
            exe: "/bin/plexus".into(),
            envoy: "/bin/envoy".into(),
            ready_timeout: Duration::from_secs(1),
        }
    }

    fn mesh() -> Plan {
        let w = WorkloadSpec {
            name: "ratings-v1".into(),
            namespace: "default".into(),
            labels: [("app".into(), "ratings".into())].into_iter().collect(),
            service_account: "bookinfo-ratings".into(),
            replicas: 1,
            command: vec!["plexus".into(), "echo".into()],
            env: vec![],
            ports: vec![WorkloadPort {
                name: Some("http".into()),
                port: 9080,
            }],
        };
        let spec = MeshSpec {
            workloads: vec![w],
            gateway_ports: vec![80],
            ..Default::default()
        };
        plan(&spec, 4, Ipv4Addr::LOCALHOST).expect("plan")
    }

    #[test]
    fn plexus_sidecar_command_carries_the_node_identity_and_metadata() {
        let p = mesh();
        let s = sidecar_spec(&opts(DataPlane::Plexus), &p, &p.replicas[0]).expect("spec");
        let line = s.argv.join(" ");
        assert!(
            line.starts_with(
                "/bin/plexus proxy --xds-address http://127.4.0.1:15010 --type sidecar"
            ),
            "{line}"
        );
        for part in [
            "--ip 127.4.1.1",
            "--admin-address 127.4.1.1:15000",
            "--pod-name ratings-v1-0",
            "--service-account bookinfo-ratings",
            "--interception-mode NONE",
            "--labels app=ratings,plexus.dev/replica=ratings-v1-0",
            "--metadata PLEXUS_APP_ADDRESS=127.4.2.1",
            "--metadata PLEXUS_OUTBOUND_ADDRESS=127.4.3.1",
            "--metadata HTTP_PROXY_PORT=15001",
        ] {
            assert!(line.contains(part), "{part} missing in {line}");
        }
        let app = app_spec(&opts(DataPlane::Plexus), &p.replicas[0]);
        assert_eq!(app.argv, ["/bin/plexus", "echo"]);
        let gw = gateway_spec(&opts(DataPlane::Plexus), &p)
            .expect("gw")
            .argv
            .join(" ");
        assert!(
            gw.contains("--type router")
                && gw.contains("--labels istio=ingressgateway,app=istio-ingressgateway"),
            "{gw}"
        );
    }

    #[test]
    fn netns_mode_runs_sidecars_as_the_proxy_uid_inside_the_namespace() {
        let p = crate::plan::into_netns(mesh());
        let o = opts(DataPlane::Plexus);
        let s = sidecar_spec(&o, &p, &p.replicas[0])
            .expect("spec")
            .argv
            .join(" ");
        assert!(s.starts_with("ip netns exec plx4p1 setpriv --reuid 1337 --regid 1337 --clear-groups /bin/plexus proxy"), "{s}");
        assert!(
            s.contains("--interception-mode REDIRECT") && s.contains("--ip 10.250.4.1"),
            "{s}"
        );
        assert!(!s.contains("--metadata"), "{s}");
        let a = app_spec(&o, &p.replicas[0]).argv.join(" ");
        assert_eq!(a, "ip netns exec plx4p1 /bin/plexus echo");
        let c = control_spec(&o, &p).argv.join(" ");
        assert!(
            c.starts_with("ip netns exec plx4hub /bin/plexus control"),
            "{c}"
        );
        assert!(c.contains("--xds-address 10.250.4.254:15010"), "{c}");
    }

    #[test]
    fn envoy_bootstrap_gets_the_node_metadata() {
        let f = std::env::temp_dir().join(format!("plexus-bootstrap-{}.json", std::process::id()));
        std::fs::write(
            &f,
            r#"{"node": {"id": "x", "metadata": {"NAMESPACE": "default"}}}"#,
        )
        .expect("write");
        add_node_metadata(&f, &[("PLEXUS_APP_ADDRESS".into(), "127.4.2.1".into())]).expect("add");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&f).expect("read")).expect("json");
        assert_eq!(v["node"]["metadata"]["PLEXUS_APP_ADDRESS"], "127.4.2.1");
        assert_eq!(v["node"]["metadata"]["NAMESPACE"], "default");
        std::fs::write(&f, r#"{"node": {}}"#).expect("write");
        assert!(add_node_metadata(&f, &[]).is_err());
    }

    #[test]
    fn envoy_bootstrap_failure_names_the_proxy() {
        let p = mesh();
        let mut o = opts(DataPlane::Envoy);
        o.run_dir = std::env::temp_dir().join(format!("plexus-procs-{}", std::process::id()));
        o.exe = "/bin/false".into();
        let e = sidecar_spec(&o, &p, &p.replicas[0]).expect_err("bootstrap fails");
        assert!(
            e.to_string()
                .contains("envoy-bootstrap for sidecar ratings-v1-0"),
            "{e}"
        );
    }
}
