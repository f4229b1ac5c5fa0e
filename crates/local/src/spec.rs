//! What `plexus up` reads from the user's directory: the `plexus.dev/v1alpha1 Workload` objects it
//! must run and the ports of the Gateways its ingress gateway must serve. Everything else in the
//! directory is the control plane's business and passes through untouched.

use std::collections::BTreeMap;
use std::path::Path;

use plexus_api::kinds::{self, Resource};
use plexus_api::load;
use plexus_api::object::{Diagnostic, Level, Object};

use crate::LocalError;

/// Label every Istio install puts on its ingress gateway pods; Bookinfo's Gateway selects it.
pub const INGRESS_LABEL: (&str, &str) = ("istio", "ingressgateway");

/// One port of a Workload's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadPort {
    /// The port name (Istio derives the protocol from a `http`/`grpc`/`tcp` prefix).
    pub name: Option<String>,
    pub port: u16,
}

/// A Workload, checked and with its defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadSpec {
    pub name: String,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    pub replicas: u32,
    /// The argv; the first element is resolved on PATH (`plexus` means this binary).
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub ports: Vec<WorkloadPort>,
}

/// A Kubernetes Service, as far as the status table needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub name: String,
    pub namespace: String,
    pub selector: BTreeMap<String, String>,
}

impl ServiceSpec {
    /// Kubernetes semantics: a non-empty selector whose every label the workload carries.
    pub fn selects(&self, w: &WorkloadSpec) -> bool {
        !self.selector.is_empty()
            && self.namespace == w.namespace
            && self
                .selector
                .iter()
                .all(|(k, v)| w.labels.get(k) == Some(v))
    }
}

/// The Workloads, Services and Gateway ports found in a directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MeshSpec {
    pub workloads: Vec<WorkloadSpec>,
    pub services: Vec<ServiceSpec>,
    /// Server ports of the Gateways that select the ingress gateway, sorted and deduplicated.
    pub gateway_ports: Vec<u16>,
}

impl MeshSpec {
    /// Find a workload by name (any namespace; the first match in file order).
    pub fn workload(&self, name: &str) -> Option<&WorkloadSpec> {
        self.workloads.iter().find(|w| w.name == name)
    }
}

/// Read every config file under `dir`. Any error in a Workload or a read error fails the whole
/// load, because `up` cannot guess what the user meant to run; other kinds are left to the
/// control plane, which reports their problems itself.
pub fn load_dir(dir: &Path) -> Result<MeshSpec, LocalError> {
    if !dir.is_dir() {
        return Err(LocalError::Config(format!(
            "{}: not a directory",
            dir.display()
        )));
    }
    let loaded = load::load_paths(&[dir.to_path_buf()]);
    let mut errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|d| d.level == Level::Error)
        .map(Diagnostic::to_string)
        .collect();
    let mut spec = MeshSpec::default();
    for obj in &loaded.objects {
        match workload_or_gateway(obj) {
            Ok(Some(Found::Workload(w))) => spec.workloads.push(w),
            Ok(Some(Found::GatewayPorts(p))) => spec.gateway_ports.extend(p),
            Ok(Some(Found::Service(svc))) => spec.services.push(svc),
            Ok(None) => {}
            Err(d) => errors.push(d.to_string()),
        }
    }
    if !errors.is_empty() {
        return Err(LocalError::Config(errors.join("\n")));
    }
    spec.gateway_ports.sort_unstable();
    spec.gateway_ports.dedup();
    check_unique(&spec)?;
    Ok(spec)
}

enum Found {
    Workload(WorkloadSpec),
    GatewayPorts(Vec<u16>),
    Service(ServiceSpec),
}

fn workload_or_gateway(obj: &Object) -> Result<Option<Found>, Box<Diagnostic>> {
    match (obj.group.as_str(), obj.kind.as_str()) {
        ("plexus.dev", "Workload") | ("networking.istio.io", "Gateway") => {}
        ("", "Service") => return Ok(Some(Found::Service(service(obj)))),
        _ => return Ok(None),
    }
    match kinds::decode(obj)? {
        Resource::Workload(w) => workload(obj, w).map(|w| Some(Found::Workload(w))),
        Resource::Gateway(g) => {
            let (k, v) = INGRESS_LABEL;
            if g.selector.get(k).map(String::as_str) != Some(v) {
                return Ok(None);
            }
            let mut ports = Vec::new();
            for (i, server) in g.servers.iter().enumerate() {
                let n = server.port.as_ref().and_then(|p| p.number);
                match n.and_then(|n| u16::try_from(n).ok()).filter(|n| *n > 0) {
                    Some(n) => ports.push(n),
                    None => {
                        let f = format!("spec.servers[{i}].port.number");
                        return Err(Box::new(
                            obj.error(&f, format!("{f}: needs a port number in 1..=65535")),
                        ));
                    }
                }
            }
            Ok(Some(Found::GatewayPorts(ports)))
        }
        _ => Ok(None),
    }
}

fn workload(obj: &Object, w: kinds::Workload) -> Result<WorkloadSpec, Box<Diagnostic>> {
    let err = |field: &str, msg: &str| Box::new(obj.error(field, format!("{field}: {msg}")));
    if w.command.is_empty() {
        return Err(err("spec.command", "is required (the argv of the process)"));
    }
    let replicas = match w.replicas {
        None => 1,
        Some(n) if (0..=200).contains(&n) => n as u32,
        Some(_) => return Err(err("spec.replicas", "must be between 0 and 200")),
    };
    let mut ports = Vec::new();
    for (i, p) in w.ports.iter().enumerate() {
        let port = u16::try_from(p.container_port).ok().filter(|p| *p > 0);
        let Some(port) = port else {
            let f = format!("spec.ports[{i}].containerPort");
            return Err(err(&f, "must be between 1 and 65535"));
        };
        match p.protocol.as_deref() {
            None | Some("TCP") => {}
            Some(other) => {
                let f = format!("spec.ports[{i}].protocol");
                let msg = format!("{other} is not supported by plexus up (only TCP)");
                return Err(err(&f, &msg));
            }
        }
        ports.push(WorkloadPort {
            name: p.name.clone(),
            port,
        });
    }
    let mut env = Vec::new();
    for e in &w.env {
        env.push((e.name.clone(), e.value.clone().unwrap_or_default()));
    }
    Ok(WorkloadSpec {
        name: obj.name.clone(),
        namespace: obj.namespace_or_default().to_string(),
        labels: obj.labels.clone(),
        service_account: w.service_account.unwrap_or_else(|| "default".into()),
        replicas,
        command: w.command,
        env,
        ports,
    })
}

fn service(obj: &Object) -> ServiceSpec {
    let json = obj.root.to_json();
    let selector = json
        .pointer("/spec/selector")
        .and_then(|s| s.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    ServiceSpec {
        name: obj.name.clone(),
        namespace: obj.namespace_or_default().to_string(),
        selector,
    }
}

fn check_unique(spec: &MeshSpec) -> Result<(), LocalError> {
    let mut seen = std::collections::BTreeSet::new();
    for w in &spec.workloads {
        if !seen.insert(&w.name) {
            return Err(LocalError::Config(format!(
                "two Workloads are named {:?}; plexus up names replicas by workload name, so \
                 names must be unique across namespaces",
                w.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        std::fs::write(dir.join(name), text).expect("write");
    }

    fn tmp(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("plexus-spec-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }

    const WL: &str = "apiVersion: plexus.dev/v1alpha1\nkind: Workload\nmetadata:\n  name: reviews-v2\n  labels: {app: reviews, version: v2}\nspec:\n  replicas: 2\n  serviceAccount: bookinfo-reviews\n  command: [plexus, echo]\n  env: [{name: A, value: b}]\n  ports: [{name: http, containerPort: 9080}]\n";

    #[test]
    fn reads_workloads_and_ingress_gateway_ports() {
        let d = tmp("ok");
        write(&d, "w.yaml", WL);
        write(
            &d,
            "g.yaml",
            "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: ['*']\n  - port: {number: 8443, name: h2, protocol: HTTP}\n    hosts: ['*']\n---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: other}\nspec:\n  selector: {istio: egressgateway}\n  servers:\n  - port: {number: 9999, name: http, protocol: HTTP}\n    hosts: ['*']\n",
        );
        let spec = load_dir(&d).expect("load");
        assert_eq!(spec.gateway_ports, vec![80, 8443]);
        let w = spec.workload("reviews-v2").expect("workload");
        assert_eq!(
            (w.replicas, w.service_account.as_str(), w.namespace.as_str()),
            (2, "bookinfo-reviews", "default")
        );
        assert_eq!(w.env, vec![("A".to_string(), "b".to_string())]);
        assert_eq!(w.ports[0].port, 9080);
        assert_eq!(w.labels.get("version").map(String::as_str), Some("v2"));
    }

    #[test]
    fn errors_name_the_file_object_and_field() {
        let d = tmp("bad");
        write(&d, "w.yaml", &WL.replace("9080", "70000"));
        let e = load_dir(&d).expect_err("bad port").to_string();
        assert!(e.contains("w.yaml:11:"), "{e}");
        assert!(
            e.contains("reviews-v2") && e.contains("containerPort"),
            "{e}"
        );
        write(
            &d,
            "w.yaml",
            &WL.replace("command: [plexus, echo]", "command: []"),
        );
        let e = load_dir(&d).expect_err("no command").to_string();
        assert!(e.contains("spec.command"), "{e}");
        write(
            &d,
            "w.yaml",
            &WL.replace("replicas: 2", "replicas: 2\n  bogus: 1"),
        );
        let e = load_dir(&d).expect_err("unknown field").to_string();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn duplicate_names_are_rejected() {
        let d = tmp("dup");
        write(&d, "a.yaml", WL);
        write(
            &d,
            "b.yaml",
            &WL.replace("name: reviews-v2", "name: reviews-v2\n  namespace: x"),
        );
        let e = load_dir(&d).expect_err("dup").to_string();
        assert!(e.contains("two Workloads"), "{e}");
    }
}
