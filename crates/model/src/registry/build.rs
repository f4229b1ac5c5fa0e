//! Services from Kubernetes Service and ServiceEntry objects, and their endpoints.

use std::collections::BTreeMap;

use plexus_api::Object;
use plexus_api::kinds::{self, k8s};

use super::{Builder, EXPORT_TO_ANNOTATION, ExplicitAddress};
use crate::host::{DEFAULT_DOMAIN_SUFFIX, fqdn};
use crate::protocol::Protocol;
use crate::service::{
    Endpoint, Location, Resolution, Service, ServicePort, ServiceSource, TargetPort, TlsMode,
    Workload, WorkloadKind, selects,
};

impl Builder {
    pub(super) fn kube_service(
        &mut self,
        obj: &Object,
        s: &k8s::Service,
        explicit: Option<&Vec<ExplicitAddress>>,
    ) {
        let ns = obj.namespace_or_default().to_string();
        let spec = &s.spec;
        let mut ports = Vec::new();
        for (i, p) in spec.ports.iter().enumerate() {
            let Ok(number) = u16::try_from(p.port) else {
                self.warn(
                    obj,
                    &format!("spec.ports[{i}].port"),
                    "port out of range; left out",
                );
                continue;
            };
            if p.protocol.as_deref().is_some_and(|pr| pr != "TCP") {
                self.warn(
                    obj,
                    &format!("spec.ports[{i}].protocol"),
                    "only TCP service ports are served; port left out",
                );
                continue;
            }
            let target_port = match &p.target_port {
                None => None,
                Some(k8s::IntOrString::Int(n)) => u16::try_from(*n).ok().map(TargetPort::Number),
                Some(k8s::IntOrString::String(name)) => Some(TargetPort::Name(name.clone())),
            };
            ports.push(ServicePort {
                name: p.name.clone().unwrap_or_default(),
                number,
                protocol: Protocol::of_port(p.name.as_deref(), p.app_protocol.as_deref()),
                target_port,
            });
        }
        let mut vips: Vec<String> = spec.cluster_ips.clone();
        if vips.is_empty() {
            vips.extend(spec.cluster_ip.clone());
        }
        vips.retain(|v| !v.is_empty() && v != "None");
        let external = spec.service_type.as_deref() == Some("ExternalName");
        let svc = Service {
            hostname: fqdn(&obj.name, &ns, DEFAULT_DOMAIN_SUFFIX),
            namespace: ns.clone(),
            ports,
            vips,
            labels: obj.labels.clone(),
            selector: (!spec.selector.is_empty()).then(|| spec.selector.clone()),
            export_to: obj
                .annotations
                .get(EXPORT_TO_ANNOTATION)
                .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default(),
            resolution: if external {
                Resolution::Dns
            } else {
                Resolution::ClientSideLb
            },
            location: if external {
                Location::MeshExternal
            } else {
                Location::MeshInternal
            },
            subject_alt_names: Vec::new(),
            source: ServiceSource {
                kind: "Service",
                namespace: ns.clone(),
                name: obj.name.clone(),
            },
        };
        let endpoints = if external {
            self.external_name_endpoints(obj, &svc, spec.external_name.as_deref())
        } else if let Some(list) = explicit {
            self.explicit_endpoints(&svc, list)
        } else {
            self.selected_endpoints(&svc, kube_target_port)
        };
        self.push_service(svc, endpoints);
    }

    fn external_name_endpoints(
        &mut self,
        obj: &Object,
        svc: &Service,
        name: Option<&str>,
    ) -> BTreeMap<u16, Vec<Endpoint>> {
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            self.warn(
                obj,
                "spec.externalName",
                "ExternalName service without externalName",
            );
            return BTreeMap::new();
        };
        let idx = self.anonymous(
            &svc.namespace,
            name,
            None,
            true,
            WorkloadKind::KubernetesEndpoint,
        );
        svc.ports
            .iter()
            .map(|p| {
                let port = match &p.target_port {
                    Some(TargetPort::Number(n)) => *n,
                    _ => p.number,
                };
                (
                    p.number,
                    vec![Endpoint {
                        workload: idx,
                        address: name.into(),
                        port,
                    }],
                )
            })
            .collect()
    }

    /// Endpoints listed in Endpoints/EndpointSlices: matched to service ports by port name (or
    /// the only port), and to known workloads by address.
    fn explicit_endpoints(
        &mut self,
        svc: &Service,
        list: &[ExplicitAddress],
    ) -> BTreeMap<u16, Vec<Endpoint>> {
        let mut out: BTreeMap<u16, Vec<Endpoint>> = BTreeMap::new();
        for a in list {
            let idx = self.workload_at(&svc.namespace, &a.ip, a.locality.clone(), a.ready);
            for sp in &svc.ports {
                let port = a.ports.iter().find(|(name, _)| {
                    name.as_deref().unwrap_or("") == sp.name
                        || (a.ports.len() == 1 && svc.ports.len() == 1)
                });
                if let Some((_, port)) = port {
                    out.entry(sp.number).or_default().push(Endpoint {
                        workload: idx,
                        address: a.ip.clone(),
                        port: *port,
                    });
                }
            }
        }
        out
    }

    /// The workload of this namespace with this address, or a new anonymous one.
    fn workload_at(
        &mut self,
        ns: &str,
        ip: &str,
        locality: Option<String>,
        healthy: bool,
    ) -> usize {
        let found = self
            .reg
            .workloads
            .iter()
            .position(|w| w.namespace == ns && w.addresses.iter().any(|a| a == ip));
        match found {
            Some(i) => i,
            None => self.anonymous(ns, ip, locality, healthy, WorkloadKind::KubernetesEndpoint),
        }
    }

    fn anonymous(
        &mut self,
        ns: &str,
        address: &str,
        locality: Option<String>,
        healthy: bool,
        kind: WorkloadKind,
    ) -> usize {
        self.reg.workloads.push(Workload {
            name: address.to_string(),
            namespace: ns.to_string(),
            kind,
            addresses: vec![address.to_string()],
            labels: BTreeMap::new(),
            ports: BTreeMap::new(),
            service_account: "default".into(),
            locality,
            network: None,
            weight: 1,
            healthy,
            tls_mode: TlsMode::Disabled,
        });
        self.reg.workloads.len() - 1
    }

    /// Workloads of the service's namespace selected by its selector (replicas and
    /// WorkloadEntries), each service port mapped to a workload port by `port_of`.
    fn selected_endpoints(
        &self,
        svc: &Service,
        port_of: impl Fn(&Workload, &ServicePort) -> Option<u16>,
    ) -> BTreeMap<u16, Vec<Endpoint>> {
        let mut out: BTreeMap<u16, Vec<Endpoint>> = BTreeMap::new();
        let Some(selector) = &svc.selector else {
            return out;
        };
        for (idx, w) in self.reg.workloads.iter().enumerate() {
            let member = w.namespace == svc.namespace
                && matches!(w.kind, WorkloadKind::Replica | WorkloadKind::WorkloadEntry)
                && selects(selector, &w.labels);
            let Some(address) = w.addresses.first().filter(|_| member) else {
                continue;
            };
            for sp in &svc.ports {
                if let Some(port) = port_of(w, sp) {
                    out.entry(sp.number).or_default().push(Endpoint {
                        workload: idx,
                        address: address.clone(),
                        port,
                    });
                }
            }
        }
        out
    }

    pub(super) fn service_entry(&mut self, obj: &Object, se: &kinds::ServiceEntry) {
        let ns = obj.namespace_or_default().to_string();
        let ports = se_ports(se);
        let resolution = match se.resolution.unwrap_or_default() {
            kinds::Resolution::None => Resolution::Passthrough,
            kinds::Resolution::Static => Resolution::ClientSideLb,
            kinds::Resolution::Dns => Resolution::Dns,
            kinds::Resolution::DnsRoundRobin => Resolution::DnsRoundRobin,
            kinds::Resolution::DynamicDns => {
                self.warn(
                    obj,
                    "spec.resolution",
                    "DYNAMIC_DNS is not supported; entry left out",
                );
                return;
            }
        };
        let location = match se.location.unwrap_or_default() {
            kinds::Location::MeshExternal => Location::MeshExternal,
            kinds::Location::MeshInternal => Location::MeshInternal,
        };
        let mut inline = Vec::new();
        for (i, we) in se.endpoints.iter().enumerate() {
            if we
                .address
                .as_deref()
                .is_some_and(|a| a.starts_with("unix://"))
            {
                self.warn(
                    obj,
                    &format!("spec.endpoints[{i}].address"),
                    "unix socket endpoints are not supported; left out",
                );
                continue;
            }
            let idx = self.workload_entry(
                obj,
                we,
                format!("{}-{i}", obj.name),
                WorkloadKind::ServiceEntryEndpoint,
            );
            inline.push(idx);
        }
        for host in &se.hosts {
            let svc = Service {
                hostname: fqdn(host, &ns, DEFAULT_DOMAIN_SUFFIX),
                namespace: ns.clone(),
                ports: ports.clone(),
                vips: se.addresses.clone(),
                labels: obj.labels.clone(),
                selector: se.workload_selector.as_ref().map(|s| s.labels.clone()),
                export_to: se.export_to.clone(),
                resolution,
                location,
                subject_alt_names: se.subject_alt_names.clone(),
                source: ServiceSource {
                    kind: "ServiceEntry",
                    namespace: ns.clone(),
                    name: obj.name.clone(),
                },
            };
            let endpoints = if svc.selector.is_some() {
                self.selected_endpoints(&svc, se_target_port)
            } else if !inline.is_empty() {
                self.inline_endpoints(&svc, &inline)
            } else if resolution == Resolution::Dns || resolution == Resolution::DnsRoundRobin {
                self.host_as_endpoint(&svc)
            } else {
                BTreeMap::new()
            };
            self.push_service(svc, endpoints);
        }
    }

    fn inline_endpoints(&self, svc: &Service, inline: &[usize]) -> BTreeMap<u16, Vec<Endpoint>> {
        let mut out: BTreeMap<u16, Vec<Endpoint>> = BTreeMap::new();
        for &idx in inline {
            let w = &self.reg.workloads[idx];
            let Some(address) = w.addresses.first() else {
                continue;
            };
            for sp in &svc.ports {
                if let Some(port) = se_target_port(w, sp) {
                    out.entry(sp.number).or_default().push(Endpoint {
                        workload: idx,
                        address: address.clone(),
                        port,
                    });
                }
            }
        }
        out
    }

    /// A DNS ServiceEntry without endpoints resolves its own host (not wildcards).
    fn host_as_endpoint(&mut self, svc: &Service) -> BTreeMap<u16, Vec<Endpoint>> {
        if svc.hostname.starts_with('*') {
            return BTreeMap::new();
        }
        let idx = self.anonymous(
            &svc.namespace,
            &svc.hostname,
            None,
            true,
            WorkloadKind::ServiceEntryEndpoint,
        );
        svc.ports
            .iter()
            .map(|p| {
                let port = match &p.target_port {
                    Some(TargetPort::Number(n)) => *n,
                    _ => p.number,
                };
                (
                    p.number,
                    vec![Endpoint {
                        workload: idx,
                        address: svc.hostname.clone(),
                        port,
                    }],
                )
            })
            .collect()
    }
}

fn se_ports(se: &kinds::ServiceEntry) -> Vec<ServicePort> {
    se.ports
        .iter()
        .filter_map(|p| {
            let number = u16::try_from(p.number?).ok()?;
            let protocol = p
                .protocol
                .as_deref()
                .and_then(Protocol::parse)
                .unwrap_or_else(|| Protocol::of_port(p.name.as_deref(), None));
            Some(ServicePort {
                name: p.name.clone().unwrap_or_default(),
                number,
                protocol,
                target_port: p
                    .target_port
                    .and_then(|t| u16::try_from(t).ok())
                    .map(TargetPort::Number),
            })
        })
        .collect()
}

/// Kubernetes: numeric targetPort, named targetPort looked up in the workload's ports (no match:
/// not an endpoint for that port), or the service port.
fn kube_target_port(w: &Workload, p: &ServicePort) -> Option<u16> {
    match &p.target_port {
        Some(TargetPort::Number(n)) => Some(*n),
        Some(TargetPort::Name(name)) => w.ports.get(name).copied(),
        None => Some(p.number),
    }
}

/// ServiceEntry: the workload's port of the same name, else `targetPort`, else the port itself.
fn se_target_port(w: &Workload, p: &ServicePort) -> Option<u16> {
    if let Some(n) = w.ports.get(&p.name) {
        return Some(*n);
    }
    match &p.target_port {
        Some(TargetPort::Number(n)) => Some(*n),
        _ => Some(p.number),
    }
}
