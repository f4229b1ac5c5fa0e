//! `service.PortNameAnalyzer`: Istio picks a Service port's protocol from `appProtocol` or from
//! the port name (`<protocol>[-<suffix>]`); a port that names neither is treated as opaque TCP.
//! For `ExternalName` Services a TCP or unknown protocol is worse: the proxy cannot forward such
//! traffic correctly.

use super::Analyzer;
use super::catalogue::{
    EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME, PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION,
};
use super::context::{Context, Entry};
use super::k8s::{self, ServiceSpec};
use super::message::{Arg, Message};

pub static ANALYZERS: &[&dyn Analyzer] = &[&PortNameAnalyzer];

/// Protocols Istio recognises in port names and `appProtocol` (case-insensitive).
const PROTOCOLS: &[&str] = &[
    "grpc",
    "grpc-web",
    "http",
    "http_proxy",
    "http2",
    "https",
    "tcp",
    "tls",
    "udp",
    "mongo",
    "redis",
    "mysql",
];

/// Namespaces that belong to Kubernetes itself; their Services are not the mesh's.
const SYSTEM_NAMESPACES: &[&str] = &[
    "kube-system",
    "kube-public",
    "kube-node-lease",
    "local-path-storage",
];

/// The protocol a port name declares, if it follows the convention.
pub fn protocol_of_port_name(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    PROTOCOLS.iter().copied().find(|p| {
        lower == *p || (lower.starts_with(p) && lower.as_bytes().get(p.len()) == Some(&b'-'))
    })
}

fn protocol_of_app_protocol(app: &str) -> Option<&'static str> {
    let lower = app.to_ascii_lowercase();
    PROTOCOLS.iter().copied().find(|p| lower == *p)
}

pub struct PortNameAnalyzer;

/// Istio's own Services (label `istio`, or `release: istio`) follow their own conventions.
fn skipped(e: &Entry<'_>) -> bool {
    SYSTEM_NAMESPACES.contains(&e.ns.as_str())
        || e.labels().contains_key("istio")
        || e.labels().get("release").map(String::as_str) == Some("istio")
}

impl Analyzer for PortNameAnalyzer {
    fn name(&self) -> &'static str {
        "service.PortNameAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for entry in k8s::services(ctx) {
            if skipped(entry) {
                continue;
            }
            let Some(svc) = entry.spec::<ServiceSpec>() else {
                continue;
            };
            let external = svc.type_ == "ExternalName";
            for (i, port) in svc.ports.iter().enumerate() {
                let field = format!("spec.ports[{i}]");
                let protocol = if port.app_protocol.is_empty() {
                    protocol_of_port_name(&port.name)
                } else {
                    protocol_of_app_protocol(&port.app_protocol).or(Some("other"))
                };
                if external {
                    if matches!(protocol, None | Some("tcp")) {
                        out.push(Message::new(
                            &EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME,
                            entry,
                            &field,
                            &[],
                        ));
                    }
                } else if protocol.is_none() {
                    out.push(Message::new(
                        &PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION,
                        entry,
                        &field,
                        &[
                            port.name.clone().into(),
                            Arg::Int(port.port),
                            port.target_display().into(),
                        ],
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_name_convention() {
        assert_eq!(protocol_of_port_name("http"), Some("http"));
        assert_eq!(protocol_of_port_name("HTTP2-api"), Some("http2"));
        assert_eq!(protocol_of_port_name("grpc-web"), Some("grpc"));
        assert_eq!(protocol_of_port_name("tcp-foo"), Some("tcp"));
        assert_eq!(protocol_of_port_name("httpx"), None);
        assert_eq!(protocol_of_port_name("foo"), None);
        assert_eq!(protocol_of_port_name(""), None);
    }
}
