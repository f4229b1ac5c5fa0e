//! Typed models of every kind in [`crate::registry::KINDS`], and [`decode`], which turns an
//! [`Object`] into a [`Resource`]. Decoding rejects unknown fields (naming the field path and
//! its line) and wrong types; rules the types cannot express live in [`crate::semantic`].
//!
//! Naming follows Istio's protos (`HttpRoute`, `TrafficPolicy`, `ServerTlsSettings`); the model
//! of a kind's `spec` carries the kind's name. Durations stay strings (parsed in validation).

use serde::{Deserialize, Deserializer};

use crate::de::{self, DeError};
use crate::object::{Diagnostic, Level, Object};
use crate::registry::{AUTHENTICATION, EXTENSIONS, NETWORKING, PLEXUS, RBAC, SECURITY, TELEMETRY};
use crate::yaml::{Node, Value};

pub mod authorization_policy;
pub mod common;
pub mod destination_rule;
pub mod envoy_filter;
pub mod extensions;
pub mod gateway;
pub mod k8s;
pub mod legacy;
pub mod peer_authentication;
pub mod proxy_config;
pub mod request_authentication;
pub mod service_entry;
pub mod sidecar;
pub mod telemetry;
pub mod virtual_service;
pub mod workload;
pub mod workload_entry;

pub use authorization_policy::*;
pub use common::*;
pub use destination_rule::*;
pub use envoy_filter::*;
pub use extensions::*;
pub use gateway::*;
pub use legacy::*;
pub use peer_authentication::*;
pub use proxy_config::*;
pub use request_authentication::*;
pub use service_entry::*;
pub use sidecar::*;
pub use telemetry::*;
pub use virtual_service::*;
pub use workload::*;
pub use workload_entry::*;

/// Kubernetes (and protobuf JSON) treat an explicit `null` list or map as absent.
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// One decoded object: the typed `spec` (or, for Kubernetes kinds, the typed top-level fields).
/// Metadata stays on the [`Object`] it was decoded from.
// One value per object, decoded once: the size spread between kinds does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Resource {
    VirtualService(VirtualService),
    DestinationRule(DestinationRule),
    Gateway(Gateway),
    ServiceEntry(ServiceEntry),
    Sidecar(Sidecar),
    WorkloadEntry(WorkloadEntry),
    WorkloadGroup(WorkloadGroup),
    EnvoyFilter(EnvoyFilter),
    ProxyConfig(ProxyConfig),
    PeerAuthentication(PeerAuthentication),
    RequestAuthentication(RequestAuthentication),
    AuthorizationPolicy(AuthorizationPolicy),
    Telemetry(Telemetry),
    WasmPlugin(WasmPlugin),
    TrafficExtension(TrafficExtension),
    ServiceRole(ServiceRole),
    ServiceRoleBinding(ServiceRoleBinding),
    RbacConfig(RbacConfig),
    ClusterRbacConfig(RbacConfig),
    Policy(AuthenticationPolicy),
    MeshPolicy(AuthenticationPolicy),
    Service(k8s::Service),
    Endpoints(k8s::Endpoints),
    Namespace(k8s::Namespace),
    ServiceAccount(k8s::ServiceAccount),
    Secret(k8s::Secret),
    EndpointSlice(k8s::EndpointSlice),
    Workload(Workload),
}

/// Decode an object of a known kind into its typed model.
///
/// Errors (unknown field, wrong type, missing required field, unknown kind) name the field path
/// and point at its line. A missing or `null` `spec` decodes as the empty spec.
pub fn decode(obj: &Object) -> Result<Resource, Box<Diagnostic>> {
    use Resource as R;
    let r = match (obj.group.as_str(), obj.kind.as_str()) {
        (NETWORKING, "VirtualService") => R::VirtualService(spec(obj)?),
        (NETWORKING, "DestinationRule") => R::DestinationRule(spec(obj)?),
        (NETWORKING, "Gateway") => R::Gateway(spec(obj)?),
        (NETWORKING, "ServiceEntry") => R::ServiceEntry(spec(obj)?),
        (NETWORKING, "Sidecar") => R::Sidecar(spec(obj)?),
        (NETWORKING, "WorkloadEntry") => R::WorkloadEntry(spec(obj)?),
        (NETWORKING, "WorkloadGroup") => R::WorkloadGroup(spec(obj)?),
        (NETWORKING, "EnvoyFilter") => R::EnvoyFilter(spec(obj)?),
        (NETWORKING, "ProxyConfig") => R::ProxyConfig(spec(obj)?),
        (SECURITY, "PeerAuthentication") => R::PeerAuthentication(spec(obj)?),
        (SECURITY, "RequestAuthentication") => R::RequestAuthentication(spec(obj)?),
        (SECURITY, "AuthorizationPolicy") => R::AuthorizationPolicy(spec(obj)?),
        (TELEMETRY, "Telemetry") => R::Telemetry(spec(obj)?),
        (EXTENSIONS, "WasmPlugin") => R::WasmPlugin(spec(obj)?),
        (EXTENSIONS, "TrafficExtension") => R::TrafficExtension(spec(obj)?),
        (PLEXUS, "Workload") => R::Workload(strict_spec(obj)?),
        (RBAC, "ServiceRole") => R::ServiceRole(strict_spec(obj)?),
        (RBAC, "ServiceRoleBinding") => R::ServiceRoleBinding(strict_spec(obj)?),
        (RBAC, "RbacConfig") => R::RbacConfig(strict_spec(obj)?),
        (RBAC, "ClusterRbacConfig") => R::ClusterRbacConfig(strict_spec(obj)?),
        (AUTHENTICATION, "Policy") => R::Policy(strict_spec(obj)?),
        (AUTHENTICATION, "MeshPolicy") => R::MeshPolicy(strict_spec(obj)?),
        ("", "Service") => {
            top_level(obj, &["spec", "status"])?;
            R::Service(k8s::Service {
                spec: field(obj, "spec")?.unwrap_or_default(),
                status: field(obj, "status")?,
            })
        }
        ("", "Endpoints") => {
            top_level(obj, &["subsets"])?;
            R::Endpoints(k8s::Endpoints {
                subsets: field(obj, "subsets")?.unwrap_or_default(),
            })
        }
        ("discovery.k8s.io", "EndpointSlice") => {
            top_level(obj, &["addressType", "endpoints", "ports"])?;
            let address_type: Option<String> = field(obj, "addressType")?;
            R::EndpointSlice(k8s::EndpointSlice {
                address_type: address_type
                    .ok_or_else(|| Box::new(obj.error("", "addressType: Required value")))?,
                endpoints: field(obj, "endpoints")?.unwrap_or_default(),
                ports: field(obj, "ports")?.unwrap_or_default(),
            })
        }
        ("", "Namespace") => {
            top_level(obj, &["spec", "status"])?;
            R::Namespace(k8s::Namespace {
                spec: field(obj, "spec")?,
                status: field(obj, "status")?,
            })
        }
        ("", "ServiceAccount") => {
            top_level(
                obj,
                &[
                    "secrets",
                    "imagePullSecrets",
                    "automountServiceAccountToken",
                ],
            )?;
            R::ServiceAccount(k8s::ServiceAccount {
                secrets: field(obj, "secrets")?.unwrap_or_default(),
                image_pull_secrets: field(obj, "imagePullSecrets")?.unwrap_or_default(),
                automount_service_account_token: field(obj, "automountServiceAccountToken")?,
            })
        }
        ("", "Secret") => {
            top_level(obj, &["type", "data", "stringData", "immutable"])?;
            R::Secret(k8s::Secret {
                type_: field(obj, "type")?,
                data: field(obj, "data")?.unwrap_or_default(),
                string_data: field(obj, "stringData")?.unwrap_or_default(),
                immutable: field(obj, "immutable")?,
            })
        }
        _ => {
            return Err(Box::new(obj.error(
                "kind",
                format!("no typed model for {}/{}", obj.api_version, obj.kind),
            )));
        }
    };
    Ok(r)
}

/// Decode `spec` (absent or `null` means empty). Top-level keys of CRD kinds are the CRD
/// schema's business.
fn spec<T: serde::de::DeserializeOwned + Default>(obj: &Object) -> Result<T, Box<Diagnostic>> {
    Ok(field(obj, "spec")?.unwrap_or_default())
}

/// Decode `spec` of a kind without a CRD schema: the typed decode is the only structural check,
/// so unknown top-level keys are rejected too (`status` is accepted and ignored).
fn strict_spec<T: serde::de::DeserializeOwned + Default>(
    obj: &Object,
) -> Result<T, Box<Diagnostic>> {
    top_level(obj, &["spec", "status"])?;
    spec(obj)
}

/// Decode one top-level field, `None` when absent or `null`.
fn field<T: serde::de::DeserializeOwned>(
    obj: &Object,
    key: &str,
) -> Result<Option<T>, Box<Diagnostic>> {
    match obj.root.get(key) {
        None
        | Some(Node {
            value: Value::Null, ..
        }) => Ok(None),
        Some(node) => de::from_node(node, key)
            .map(Some)
            .map_err(|e| de_diagnostic(obj, e)),
    }
}

/// Reject top-level keys other than the envelope's and `allowed`.
fn top_level(obj: &Object, allowed: &[&str]) -> Result<(), Box<Diagnostic>> {
    const ENVELOPE: [&str; 3] = ["apiVersion", "kind", "metadata"];
    for (key, _) in obj.root.as_map().unwrap_or_default() {
        let name = key.name.as_str();
        if !ENVELOPE.contains(&name) && !allowed.contains(&name) {
            return Err(Box::new(Diagnostic {
                path: obj.origin.path.clone(),
                pos: key.pos,
                level: Level::Error,
                subject: Some(obj.subject()),
                message: format!("unknown field \"{name}\""),
            }));
        }
    }
    Ok(())
}

/// A decoding error as a diagnostic about `obj`, at the position the decoder found.
pub fn de_diagnostic(obj: &Object, e: DeError) -> Box<Diagnostic> {
    Box::new(Diagnostic {
        path: obj.origin.path.clone(),
        pos: e.pos,
        level: Level::Error,
        subject: Some(obj.subject()),
        message: e.to_string(),
    })
}
