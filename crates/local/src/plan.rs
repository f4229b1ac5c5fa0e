//! Address allocation and the environment of each replica, decided before anything starts.
//!
//! Process mode has no network namespaces, so every replica plays "one pod" with loopback
//! addresses of its own, taken from a /16 block (`127.<block>.0.0/16`, default block 1):
//!
//! | address | what listens there |
//! |---|---|
//! | `127.B.0.1` | control plane: xDS on 15010, debug API on 15014 |
//! | `127.B.0.2` | ingress gateway admin on 15000 (its listeners bind on `--gateway-address`) |
//! | `127.B.1.n` | replica n's *pod IP*: its sidecar's inbound listeners and admin (15000); the registry's endpoint address |
//! | `127.B.2.n` | replica n's application process (`PLEXUS_LISTEN_HOST`) |
//! | `127.B.3.n` | replica n's outbound side: per-service listeners and the HTTP proxy (`HTTP_PROXY`) |
//!
//! Three addresses per replica because Bookinfo-like apps use one port (9080) everywhere: the
//! inbound listener, the app and the outbound listener for another service on 9080 must not
//! collide. The app is only reachable through the inbound listener in the mesh's own config
//! (nothing registers `127.B.2.n`).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::LocalError;
use crate::spec::{MeshSpec, WorkloadSpec};

/// Port of each sidecar's HTTP forward proxy on its outbound address (what `HTTP_PROXY` names);
/// the translator's default for interception NONE, and sent as node metadata `HTTP_PROXY_PORT`.
pub const HTTP_PROXY_PORT: u16 = 15001;
/// Istio's ports.
pub const ADMIN_PORT: u16 = 15000;
pub const XDS_PORT: u16 = 15010;
pub const DEBUG_PORT: u16 = 15014;
/// Label `up` adds to every replica (proxy node labels and its WorkloadEntry), so each replica
/// is distinguishable in the registry and in `proxy-config` output.
pub const REPLICA_LABEL: &str = "plexus.dev/replica";
/// Gateway server ports below this are served at `port + LOW_PORT_SHIFT` (no root needed).
pub const LOW_PORT_LIMIT: u16 = 1024;
pub const LOW_PORT_SHIFT: u16 = 8000;
/// Most replicas a block can hold (host part 1..=254 of `127.B.{1,2,3}.n`).
pub const MAX_REPLICAS: usize = 254;

/// One replica of one Workload, with its addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub workload: WorkloadSpec,
    pub index: u32,
    /// `127.B.1.n`: sidecar inbound and admin; the endpoint address in the registry.
    pub pod_ip: Ipv4Addr,
    /// `127.B.2.n`: where the application listens.
    pub app_ip: Ipv4Addr,
    /// `127.B.3.n`: outbound listeners and the HTTP proxy.
    pub outbound_ip: Ipv4Addr,
    /// Netns mode: the replica's network namespace (addresses are then the namespace's).
    pub netns: Option<String>,
}

impl Replica {
    /// `<workload>-<index>`, the pod name the control plane sees.
    pub fn name(&self) -> String {
        format!("{}-{}", self.workload.name, self.index)
    }

    /// Workload labels plus [`REPLICA_LABEL`].
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut l = self.workload.labels.clone();
        l.insert(REPLICA_LABEL.into(), self.name());
        l
    }

    /// Where the app listens for workload port `port`.
    pub fn app_address(&self, port: u16) -> String {
        format!("{}:{port}", self.app_ip)
    }

    pub fn http_proxy(&self) -> String {
        format!("http://{}:{HTTP_PROXY_PORT}", self.outbound_ip)
    }

    /// Node metadata telling the translator where this replica's app listens, where its
    /// outbound listeners bind and the HTTP proxy port (Plexus extensions of Istio's metadata).
    pub fn node_metadata(&self) -> Vec<(String, String)> {
        if self.netns.is_some() {
            // Captured traffic: the translator's REDIRECT defaults apply.
            return vec![];
        }
        vec![
            ("PLEXUS_APP_ADDRESS".into(), self.app_ip.to_string()),
            (
                "PLEXUS_OUTBOUND_ADDRESS".into(),
                self.outbound_ip.to_string(),
            ),
            ("HTTP_PROXY_PORT".into(), HTTP_PROXY_PORT.to_string()),
        ]
    }

    pub fn admin_address(&self) -> String {
        format!("{}:{ADMIN_PORT}", self.pod_ip)
    }

    /// The environment the application process gets (documented in docs/local.md). The
    /// Workload's own `spec.env` comes last and wins.
    pub fn env(&self) -> Vec<(String, String)> {
        let w = &self.workload;
        let version = w.labels.get("version").cloned().unwrap_or_default();
        let first_port = w.ports.first().map(|p| p.port);
        let proxy = self.http_proxy();
        let mut env: Vec<(String, String)> = vec![
            ("PLEXUS_WORKLOAD".into(), w.name.clone()),
            ("PLEXUS_NAMESPACE".into(), w.namespace.clone()),
            ("PLEXUS_VERSION".into(), version.clone()),
            ("PLEXUS_REPLICA".into(), self.index.to_string()),
            ("PLEXUS_POD_NAME".into(), self.name()),
            ("PLEXUS_SERVICE_ACCOUNT".into(), w.service_account.clone()),
            ("PLEXUS_POD_IP".into(), self.pod_ip.to_string()),
            ("PLEXUS_LISTEN_HOST".into(), self.app_ip.to_string()),
            ("PLEXUS_PORTS".into(), ports_list(w)),
            // `plexus echo` reads these, so `command: [plexus, echo]` needs no flags.
            ("PLEXUS_ECHO_WORKLOAD".into(), w.name.clone()),
            ("PLEXUS_ECHO_VERSION".into(), version),
            ("PLEXUS_ECHO_REPLICA".into(), self.name()),
        ];
        if self.netns.is_none() {
            env.push(("HTTP_PROXY".into(), proxy.clone()));
            env.push(("http_proxy".into(), proxy));
            // Loopback names stay direct; everything else goes through the sidecar.
            env.push(("NO_PROXY".into(), "localhost".into()));
            env.push(("no_proxy".into(), "localhost".into()));
        }
        if let Some(p) = first_port {
            env.push(("PORT".into(), p.to_string()));
            env.push(("PLEXUS_LISTEN".into(), self.app_address(p)));
            env.push(("PLEXUS_ECHO_HTTP_ADDRESS".into(), self.app_address(p)));
        }
        let tcp = w.ports.iter().skip(1).find(|p| {
            p.name
                .as_deref()
                .is_some_and(|n| n == "tcp" || n.starts_with("tcp-"))
        });
        if let Some(p) = tcp {
            env.push(("PLEXUS_ECHO_TCP_ADDRESS".into(), self.app_address(p.port)));
        }
        env.extend(w.env.iter().cloned());
        env
    }
}

fn ports_list(w: &WorkloadSpec) -> String {
    let items: Vec<String> = w
        .ports
        .iter()
        .map(|p| match &p.name {
            Some(n) => format!("{n}={}", p.port),
            None => p.port.to_string(),
        })
        .collect();
    items.join(",")
}

/// Every address the local mesh uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub block: u8,
    /// Netns mode: the hub namespace holding the bridge and the control plane.
    pub hub: Option<String>,
    pub control_ip: Ipv4Addr,
    pub gateway_admin_ip: Ipv4Addr,
    /// Host the gateway's listeners bind on.
    pub gateway_host: Ipv4Addr,
    /// `(gateway server port, port served on gateway_host)`.
    pub gateway_ports: Vec<(u16, u16)>,
    pub replicas: Vec<Replica>,
}

impl Plan {
    pub fn xds_address(&self) -> String {
        format!("{}:{XDS_PORT}", self.control_ip)
    }

    pub fn debug_address(&self) -> String {
        format!("{}:{DEBUG_PORT}", self.control_ip)
    }

    pub fn gateway_admin_address(&self) -> String {
        format!("{}:{ADMIN_PORT}", self.gateway_admin_ip)
    }

    /// `name` is `WORKLOAD` (replica 0) or `WORKLOAD/INDEX`.
    pub fn replica(&self, name: &str) -> Result<&Replica, LocalError> {
        let (w, idx) = match name.split_once('/') {
            Some((w, i)) => (w, i.parse::<u32>().ok()),
            None => (name, Some(0)),
        };
        let Some(idx) = idx else {
            return Err(LocalError::Usage(format!(
                "{name:?}: expected WORKLOAD or WORKLOAD/REPLICA with a numeric replica"
            )));
        };
        self.replicas
            .iter()
            .find(|r| r.workload.name == w && r.index == idx)
            .ok_or_else(|| {
                let known: Vec<String> = self.replicas.iter().map(Replica::name).collect();
                LocalError::Usage(format!(
                    "no replica {w}/{idx} in this mesh (replicas: {})",
                    known.join(", ")
                ))
            })
    }
}

/// Netns mode: pod `n` is `10.250.B.n/24` on a bridge in the hub namespace, whose own address
/// `10.250.B.254` serves the control plane; the host reaches the pods through a veth
/// `10.251.B.1/30` (host) – `10.251.B.2/30` (hub).
pub fn pod_subnet_ip(block: u8, host: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 250, block, host)
}

pub const HUB_HOST: u8 = 254;

/// Namespace names (short: veth names derive from them and Linux allows 15 bytes).
pub fn hub_name(block: u8) -> String {
    format!("plx{block}hub")
}

pub fn pod_ns_name(block: u8, n: u8) -> String {
    format!("plx{block}p{n}")
}

/// Turn a process-mode plan into a netns-mode one: each replica in its own namespace, the app
/// listening on all of the namespace's addresses, the control plane in the hub.
pub fn into_netns(mut plan: Plan) -> Plan {
    let b = plan.block;
    for (i, r) in plan.replicas.iter_mut().enumerate() {
        let n = (i + 1) as u8;
        r.pod_ip = pod_subnet_ip(b, n);
        r.app_ip = Ipv4Addr::UNSPECIFIED;
        r.outbound_ip = r.pod_ip;
        r.netns = Some(pod_ns_name(b, n));
    }
    plan.control_ip = pod_subnet_ip(b, HUB_HOST);
    plan.hub = Some(hub_name(b));
    plan
}

/// Map a Gateway server port to the port served locally.
pub fn local_gateway_port(port: u16) -> u16 {
    if port < LOW_PORT_LIMIT {
        port + LOW_PORT_SHIFT
    } else {
        port
    }
}

/// Allocate addresses for every replica of `spec`, in file order.
pub fn plan(spec: &MeshSpec, block: u8, gateway_host: Ipv4Addr) -> Result<Plan, LocalError> {
    if block == 0 || block == 255 {
        return Err(LocalError::Usage(format!(
            "address block {block} is reserved (127.0/16 is the host's, 127.255/16 the mesh VIPs')"
        )));
    }
    let mut replicas = Vec::new();
    for w in &spec.workloads {
        for index in 0..w.replicas {
            let n = replicas.len() + 1;
            if n > MAX_REPLICAS {
                return Err(LocalError::Config(format!(
                    "more than {MAX_REPLICAS} replicas in total; plexus up gives each one \
                     127.{block}.1.n, so that is the limit per mesh"
                )));
            }
            let n = n as u8;
            replicas.push(Replica {
                workload: w.clone(),
                index,
                pod_ip: Ipv4Addr::new(127, block, 1, n),
                app_ip: Ipv4Addr::new(127, block, 2, n),
                outbound_ip: Ipv4Addr::new(127, block, 3, n),
                netns: None,
            });
        }
    }
    let gateway_ports = spec
        .gateway_ports
        .iter()
        .map(|p| (*p, local_gateway_port(*p)))
        .collect();
    Ok(Plan {
        block,
        hub: None,
        control_ip: Ipv4Addr::new(127, block, 0, 1),
        gateway_admin_ip: Ipv4Addr::new(127, block, 0, 2),
        gateway_host,
        gateway_ports,
        replicas,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::WorkloadPort;

    fn wl(name: &str, version: &str, replicas: u32) -> WorkloadSpec {
        WorkloadSpec {
            name: name.into(),
            namespace: "default".into(),
            labels: [
                ("app".into(), "reviews".into()),
                ("version".into(), version.into()),
            ]
            .into_iter()
            .collect(),
            service_account: "sa".into(),
            replicas,
            command: vec!["plexus".into(), "echo".into()],
            env: vec![("PLEXUS_ECHO_VERSION".into(), "custom".into())],
            ports: vec![
                WorkloadPort {
                    name: Some("http".into()),
                    port: 9080,
                },
                WorkloadPort {
                    name: Some("tcp-echo".into()),
                    port: 9090,
                },
            ],
        }
    }

    fn spec() -> MeshSpec {
        MeshSpec {
            workloads: vec![wl("reviews-v1", "v1", 2), wl("reviews-v2", "v2", 1)],
            gateway_ports: vec![80, 8080],
            services: vec![],
        }
    }

    #[test]
    fn replicas_get_distinct_addresses_in_order() {
        let p = plan(&spec(), 7, Ipv4Addr::LOCALHOST).expect("plan");
        let names: Vec<String> = p.replicas.iter().map(Replica::name).collect();
        assert_eq!(names, ["reviews-v1-0", "reviews-v1-1", "reviews-v2-0"]);
        let r = &p.replicas[2];
        assert_eq!(
            (r.pod_ip, r.app_ip, r.outbound_ip),
            (
                Ipv4Addr::new(127, 7, 1, 3),
                Ipv4Addr::new(127, 7, 2, 3),
                Ipv4Addr::new(127, 7, 3, 3)
            )
        );
        assert_eq!(p.xds_address(), "127.7.0.1:15010");
        assert_eq!(p.gateway_ports, vec![(80, 8080), (8080, 8080)]);
        assert_eq!(p.replica("reviews-v1/1").expect("r").name(), "reviews-v1-1");
        assert_eq!(p.replica("reviews-v2").expect("r").index, 0);
        assert!(p.replica("reviews-v2/3").is_err());
        assert!(p.replica("reviews-v2/x").is_err());
    }

    #[test]
    fn block_limits_are_enforced() {
        assert!(plan(&spec(), 0, Ipv4Addr::LOCALHOST).is_err());
        assert!(plan(&spec(), 255, Ipv4Addr::LOCALHOST).is_err());
        let big = MeshSpec {
            workloads: vec![wl("a", "v1", 200), wl("b", "v1", 55)],
            gateway_ports: vec![],
            services: vec![],
        };
        let e = plan(&big, 1, Ipv4Addr::LOCALHOST).expect_err("too many");
        assert!(e.to_string().contains("254"), "{e}");
    }

    #[test]
    fn env_tells_the_app_where_to_listen_and_how_to_reach_the_mesh() {
        let p = plan(&spec(), 1, Ipv4Addr::LOCALHOST).expect("plan");
        let env: BTreeMap<String, String> = p.replicas[1].env().into_iter().collect();
        let get = |k: &str| env.get(k).map(String::as_str);
        assert_eq!(get("PLEXUS_WORKLOAD"), Some("reviews-v1"));
        assert_eq!(get("PLEXUS_REPLICA"), Some("1"));
        assert_eq!(get("PLEXUS_VERSION"), Some("v1"));
        assert_eq!(get("PLEXUS_LISTEN"), Some("127.1.2.2:9080"));
        assert_eq!(get("PLEXUS_ECHO_HTTP_ADDRESS"), Some("127.1.2.2:9080"));
        assert_eq!(get("PLEXUS_ECHO_TCP_ADDRESS"), Some("127.1.2.2:9090"));
        assert_eq!(get("PORT"), Some("9080"));
        assert_eq!(get("PLEXUS_PORTS"), Some("http=9080,tcp-echo=9090"));
        assert_eq!(get("HTTP_PROXY"), Some("http://127.1.3.2:15001"));
        assert_eq!(get("http_proxy"), get("HTTP_PROXY"));
        // spec.env wins over what up computes.
        assert_eq!(get("PLEXUS_ECHO_VERSION"), Some("custom"));
        let labels = p.replicas[1].labels();
        assert_eq!(
            labels.get(REPLICA_LABEL).map(String::as_str),
            Some("reviews-v1-1")
        );
    }

    #[test]
    fn netns_plan_moves_replicas_into_namespaces_without_http_proxy() {
        let p = into_netns(plan(&spec(), 9, Ipv4Addr::LOCALHOST).expect("plan"));
        let r = &p.replicas[2];
        assert_eq!(r.netns.as_deref(), Some("plx9p3"));
        assert_eq!(r.pod_ip, Ipv4Addr::new(10, 250, 9, 3));
        assert_eq!(p.xds_address(), "10.250.9.254:15010");
        assert_eq!(p.hub.as_deref(), Some("plx9hub"));
        let env: BTreeMap<String, String> = r.env().into_iter().collect();
        assert!(!env.contains_key("HTTP_PROXY"));
        assert_eq!(
            env.get("PLEXUS_ECHO_HTTP_ADDRESS").map(String::as_str),
            Some("0.0.0.0:9080")
        );
        assert!(r.node_metadata().is_empty());
        assert!("plx254p254".len() <= 15);
    }

    #[test]
    fn low_gateway_ports_move_up() {
        assert_eq!(local_gateway_port(80), 8080);
        assert_eq!(local_gateway_port(443), 8443);
        assert_eq!(local_gateway_port(1023), 9023);
        assert_eq!(local_gateway_port(1024), 1024);
    }
}
