//! The parts of Istio's kinds the analyzers read, decoded leniently from an object's `spec`
//! (unknown fields are ignored here: single-object validation owns rejecting them).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct VirtualService {
    pub hosts: Vec<String>,
    pub gateways: Vec<String>,
    pub export_to: Vec<String>,
    pub http: Vec<HttpRoute>,
    pub tcp: Vec<TcpRoute>,
    pub tls: Vec<TlsRoute>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct HttpRoute {
    pub name: String,
    /// Kept as JSON: analyzers compare matches structurally.
    #[serde(rename = "match")]
    pub matches: Vec<BTreeMap<String, Value>>,
    pub route: Vec<RouteDestination>,
    pub redirect: Option<Value>,
    pub direct_response: Option<Value>,
    pub delegate: Option<Value>,
    pub mirror: Option<Destination>,
    pub mirrors: Vec<MirrorPolicy>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TcpRoute {
    #[serde(rename = "match")]
    pub matches: Vec<BTreeMap<String, Value>>,
    pub route: Vec<RouteDestination>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TlsRoute {
    #[serde(rename = "match")]
    pub matches: Vec<BTreeMap<String, Value>>,
    pub route: Vec<RouteDestination>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct RouteDestination {
    pub destination: Option<Destination>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct MirrorPolicy {
    pub destination: Option<Destination>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Destination {
    pub host: String,
    pub subset: String,
    pub port: Option<PortSelector>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct PortSelector {
    pub number: u32,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Gateway {
    pub selector: BTreeMap<String, String>,
    pub servers: Vec<Server>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Server {
    pub port: Option<ServerPort>,
    pub hosts: Vec<String>,
    pub tls: Option<ServerTls>,
    pub name: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServerPort {
    pub number: u32,
    pub protocol: String,
    pub name: String,
    pub target_port: u32,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServerTls {
    pub mode: String,
    pub credential_name: String,
    pub credential_names: Vec<String>,
    pub server_certificate: String,
    pub private_key: String,
    pub ca_certificates: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DestinationRule {
    pub host: String,
    pub traffic_policy: Option<TrafficPolicy>,
    pub subsets: Vec<Subset>,
    pub export_to: Vec<String>,
    pub workload_selector: Option<WorkloadSelector>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TrafficPolicy {
    pub tls: Option<ClientTls>,
    pub port_level_settings: Vec<PortTrafficPolicy>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PortTrafficPolicy {
    pub port: Option<PortSelector>,
    pub tls: Option<ClientTls>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ClientTls {
    pub mode: String,
    pub ca_certificates: String,
    pub credential_name: String,
    pub insecure_skip_verify: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Subset {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct WorkloadSelector {
    pub labels: BTreeMap<String, String>,
}

/// `selector: {matchLabels: ...}` as used by security and telemetry kinds.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct MatchLabels {
    pub match_labels: BTreeMap<String, String>,
}

/// `targetRef` / `targetRefs` entries (policy attachment).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TargetRef {
    pub group: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

/// The selection fields shared by Sidecar-less policy kinds (AuthorizationPolicy,
/// RequestAuthentication, Telemetry, WasmPlugin, PeerAuthentication).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PolicySelection {
    pub selector: Option<MatchLabels>,
    pub target_ref: Option<TargetRef>,
    pub target_refs: Vec<TargetRef>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceEntry {
    pub hosts: Vec<String>,
    pub addresses: Vec<String>,
    pub ports: Vec<ServiceEntryPort>,
    pub export_to: Vec<String>,
    pub resolution: String,
    pub location: String,
    pub workload_selector: Option<WorkloadSelector>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ServiceEntryPort {
    pub number: u32,
    pub protocol: String,
    pub name: String,
    pub target_port: u32,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Sidecar {
    pub workload_selector: Option<WorkloadSelector>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EnvoyFilter {
    pub workload_selector: Option<WorkloadSelector>,
    pub config_patches: Vec<EnvoyConfigPatch>,
    pub priority: i32,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EnvoyConfigPatch {
    pub apply_to: String,
    #[serde(rename = "match")]
    pub match_: Option<Value>,
    pub patch: Option<EnvoyPatch>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct EnvoyPatch {
    pub operation: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AuthorizationPolicy {
    pub selector: Option<MatchLabels>,
    pub target_ref: Option<TargetRef>,
    pub target_refs: Vec<TargetRef>,
    pub rules: Vec<AuthzRule>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct AuthzRule {
    pub from: Vec<AuthzFrom>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct AuthzFrom {
    pub source: Option<AuthzSource>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct AuthzSource {
    pub namespaces: Vec<String>,
    pub not_namespaces: Vec<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Telemetry {
    pub selector: Option<MatchLabels>,
    pub tracing: Vec<TelemetryProviders>,
    pub metrics: Vec<TelemetryProviders>,
    pub access_logging: Vec<TelemetryProviders>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct TelemetryProviders {
    pub providers: Vec<ProviderRef>,
    pub disabled: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ProviderRef {
    pub name: String,
}
