//! MeshConfig and MeshNetworks: the mesh-wide settings (Istio's `mesh` and `meshNetworks`
//! ConfigMap keys), typed, with Istio's defaults for what is not written.
//!
//! Only the fields Plexus reads are typed; other MeshConfig fields are accepted (a real
//! mesh config has dozens) and listed by [`MeshConfig::parse`] as not used, so the caller can
//! say so instead of ignoring them silently.

use std::collections::BTreeMap;
use std::time::Duration;

use plexus_api::de::{DeError, from_node};
use plexus_api::yaml::{self, Node};
use serde::Deserialize;

/// Istio's default root namespace, where mesh-wide policies live.
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";
/// Istio's default trust domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// The MeshConfig fields Plexus uses.
#[derive(Clone, Debug, PartialEq)]
pub struct MeshConfig {
    /// `rootNamespace` (default `istio-system`).
    pub root_namespace: String,
    /// `trustDomain` (default `cluster.local`).
    pub trust_domain: String,
    /// `enableAutoMtls` (default true).
    pub enable_auto_mtls: bool,
    /// `ingressService` (default `istio-ingressgateway`).
    pub ingress_service: String,
    /// `ingressSelector` (default `ingressgateway`).
    pub ingress_selector: String,
    /// `ingressControllerMode` (`OFF`, `DEFAULT` or `STRICT`; default `STRICT`).
    pub ingress_controller_mode: String,
    /// `defaultConfig.proxyMetadata`: environment given to every proxy.
    pub proxy_metadata: BTreeMap<String, String>,
    /// `extensionProviders`: name and provider type (`lightstep`, `zipkin`, `envoyFileAccessLog`...).
    pub extension_providers: Vec<ExtensionProvider>,
    /// `defaultProviders`: providers used when a Telemetry names none (default: metrics
    /// through `prometheus`).
    pub default_providers: DefaultProviders,
    /// `outboundTrafficPolicy.mode` (default `ALLOW_ANY`; `ALLOW_ANY_DYNAMIC_DNS` reads as
    /// `ALLOW_ANY`).
    pub outbound_traffic_policy: OutboundMode,
    /// `outboundTrafficPolicy.egressProxy` is set (translation does not support it and says so).
    pub outbound_egress_proxy: bool,
    /// `connectTimeout` (default 10s): upstream connect timeout of every cluster.
    pub connect_timeout: Duration,
    /// `h2UpgradePolicy: UPGRADE` (default `DO_NOT_UPGRADE`): HTTP/1.1 service ports use HTTP/2
    /// to their endpoints unless a DestinationRule says otherwise.
    pub h2_upgrade: bool,
    /// `defaultVirtualServiceExportTo` (default `["*"]`).
    pub default_virtual_service_export_to: Vec<String>,
    /// `defaultDestinationRuleExportTo` (default `["*"]`).
    pub default_destination_rule_export_to: Vec<String>,
    /// `defaultServiceExportTo` (default `["*"]`).
    pub default_service_export_to: Vec<String>,
}

/// `outboundTrafficPolicy.mode`: what a sidecar does with traffic to unknown destinations.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutboundMode {
    /// Forward to the original destination (`PassthroughCluster`).
    #[default]
    AllowAny,
    /// Drop (`BlackHoleCluster`).
    RegistryOnly,
}

#[derive(Deserialize, Default)]
struct RawOutboundPolicy {
    mode: Option<String>,
    #[serde(rename = "egressProxy")]
    egress_proxy: Option<serde_json::Value>,
}

/// `defaultProviders` of MeshConfig.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DefaultProviders {
    pub tracing: Vec<String>,
    pub metrics: Vec<String>,
    pub access_logging: Vec<String>,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            root_namespace: DEFAULT_ROOT_NAMESPACE.into(),
            trust_domain: DEFAULT_TRUST_DOMAIN.into(),
            enable_auto_mtls: true,
            ingress_service: "istio-ingressgateway".into(),
            ingress_selector: "ingressgateway".into(),
            ingress_controller_mode: "STRICT".into(),
            proxy_metadata: BTreeMap::new(),
            extension_providers: Vec::new(),
            default_providers: DefaultProviders {
                metrics: vec!["prometheus".into()],
                ..DefaultProviders::default()
            },
            outbound_traffic_policy: OutboundMode::AllowAny,
            outbound_egress_proxy: false,
            connect_timeout: Duration::from_secs(10),
            h2_upgrade: false,
            default_virtual_service_export_to: vec!["*".into()],
            default_destination_rule_export_to: vec!["*".into()],
            default_service_export_to: vec!["*".into()],
        }
    }
}

/// One `extensionProviders` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionProvider {
    pub name: String,
    /// The provider's type key, e.g. `lightstep`, `opentelemetry`, `envoyExtAuthzHttp`.
    pub kind: String,
}

/// A mesh config file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}:{col}: {message}")]
pub struct MeshError {
    pub path: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl MeshError {
    fn from_de(path: &str, e: DeError) -> MeshError {
        MeshError {
            path: path.into(),
            line: e.pos.line,
            col: e.pos.col,
            message: e.to_string(),
        }
    }

    fn at(path: &str, node: Option<&Node>, message: String) -> MeshError {
        let pos = node.map(|n| n.pos).unwrap_or_default();
        MeshError {
            path: path.into(),
            line: pos.line.max(1),
            col: pos.col.max(1),
            message,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawMesh {
    root_namespace: Option<String>,
    trust_domain: Option<String>,
    enable_auto_mtls: Option<bool>,
    ingress_service: Option<String>,
    ingress_selector: Option<String>,
    ingress_controller_mode: Option<String>,
    default_config: Option<RawProxyConfig>,
    #[serde(default)]
    extension_providers: Vec<BTreeMap<String, serde_json::Value>>,
    default_providers: Option<DefaultProviders>,
    outbound_traffic_policy: Option<RawOutboundPolicy>,
    connect_timeout: Option<String>,
    h2_upgrade_policy: Option<String>,
    default_virtual_service_export_to: Option<Vec<String>>,
    default_destination_rule_export_to: Option<Vec<String>>,
    default_service_export_to: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RawProxyConfig {
    #[serde(default)]
    proxy_metadata: BTreeMap<String, String>,
}

/// MeshConfig keys this module reads; any other key is reported as unused by `parse`.
const KNOWN_KEYS: &[&str] = &[
    "rootNamespace",
    "trustDomain",
    "enableAutoMtls",
    "ingressService",
    "ingressSelector",
    "ingressControllerMode",
    "defaultConfig",
    "extensionProviders",
    "defaultProviders",
    "outboundTrafficPolicy",
    "connectTimeout",
    "h2UpgradePolicy",
    "defaultVirtualServiceExportTo",
    "defaultDestinationRuleExportTo",
    "defaultServiceExportTo",
];

impl MeshConfig {
    /// Parse a MeshConfig YAML document (the `mesh` key of Istio's ConfigMap). Returns the
    /// config and the top-level keys Plexus does not use.
    pub fn parse(text: &str, path: &str) -> Result<(MeshConfig, Vec<String>), MeshError> {
        let root = single_document(text, path)?;
        let Some(root) = root else {
            return Ok((MeshConfig::default(), Vec::new()));
        };
        if root.as_map().is_none() {
            return Err(MeshError::at(
                path,
                Some(&root),
                "a mesh config must be a mapping".into(),
            ));
        }
        let raw: RawMesh = from_node(&root, "").map_err(|e| MeshError::from_de(path, e))?;
        let unused = root
            .as_map()
            .unwrap_or_default()
            .iter()
            .filter(|(k, _)| !KNOWN_KEYS.contains(&k.name.as_str()))
            .map(|(k, _)| k.name.clone())
            .collect();
        let mut providers = Vec::new();
        for (i, p) in raw.extension_providers.iter().enumerate() {
            let name = p.get("name").and_then(|v| v.as_str()).unwrap_or_default();
            let kind = p.keys().find(|k| k.as_str() != "name").cloned();
            match kind {
                Some(kind) if !name.is_empty() => providers.push(ExtensionProvider {
                    name: name.to_string(),
                    kind,
                }),
                _ => {
                    let node = root.get("extensionProviders");
                    return Err(MeshError::at(
                        path,
                        node,
                        format!("extensionProviders[{i}]: needs a name and one provider type"),
                    ));
                }
            }
        }
        let d = MeshConfig::default();
        let outbound = raw.outbound_traffic_policy.unwrap_or_default();
        let outbound_mode = match outbound.mode.as_deref() {
            None | Some("ALLOW_ANY") | Some("ALLOW_ANY_DYNAMIC_DNS") => OutboundMode::AllowAny,
            Some("REGISTRY_ONLY") => OutboundMode::RegistryOnly,
            Some(other) => {
                return Err(MeshError::at(
                    path,
                    root.get("outboundTrafficPolicy"),
                    format!("outboundTrafficPolicy.mode: unknown mode {other:?}"),
                ));
            }
        };
        let connect_timeout = match raw.connect_timeout {
            None => d.connect_timeout,
            Some(text) => crate::duration::parse(&text).ok_or_else(|| {
                MeshError::at(
                    path,
                    root.get("connectTimeout"),
                    format!("connectTimeout: invalid duration {text:?}"),
                )
            })?,
        };
        let h2_upgrade = match raw.h2_upgrade_policy.as_deref() {
            None | Some("DO_NOT_UPGRADE") => false,
            Some("UPGRADE") => true,
            Some(other) => {
                return Err(MeshError::at(
                    path,
                    root.get("h2UpgradePolicy"),
                    format!(
                        "h2UpgradePolicy: unknown policy {other:?} (UPGRADE or DO_NOT_UPGRADE)"
                    ),
                ));
            }
        };
        let config = MeshConfig {
            h2_upgrade,
            root_namespace: raw.root_namespace.unwrap_or(d.root_namespace),
            trust_domain: raw.trust_domain.unwrap_or(d.trust_domain),
            enable_auto_mtls: raw.enable_auto_mtls.unwrap_or(d.enable_auto_mtls),
            ingress_service: raw.ingress_service.unwrap_or(d.ingress_service),
            ingress_selector: raw.ingress_selector.unwrap_or(d.ingress_selector),
            ingress_controller_mode: raw
                .ingress_controller_mode
                .unwrap_or(d.ingress_controller_mode),
            proxy_metadata: raw.default_config.unwrap_or_default().proxy_metadata,
            extension_providers: providers,
            default_providers: raw.default_providers.unwrap_or(d.default_providers),
            outbound_traffic_policy: outbound_mode,
            outbound_egress_proxy: outbound.egress_proxy.is_some(),
            connect_timeout,
            default_virtual_service_export_to: raw
                .default_virtual_service_export_to
                .unwrap_or(d.default_virtual_service_export_to),
            default_destination_rule_export_to: raw
                .default_destination_rule_export_to
                .unwrap_or(d.default_destination_rule_export_to),
            default_service_export_to: raw
                .default_service_export_to
                .unwrap_or(d.default_service_export_to),
        };
        Ok((config, unused))
    }

    /// Read and parse a mesh config file.
    pub fn load(path: &std::path::Path) -> Result<(MeshConfig, Vec<String>), MeshError> {
        let name = path.display().to_string();
        let text = read(path, &name)?;
        MeshConfig::parse(&text, &name)
    }

    /// Whether a proxy metadata flag (`ISTIO_META_DNS_CAPTURE`...) is set to `true`.
    pub fn proxy_flag(&self, key: &str) -> bool {
        self.proxy_metadata
            .get(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

fn read(path: &std::path::Path, name: &str) -> Result<String, MeshError> {
    std::fs::read_to_string(path).map_err(|e| MeshError {
        path: name.into(),
        line: 1,
        col: 1,
        message: format!("cannot read: {e}"),
    })
}

fn single_document(text: &str, path: &str) -> Result<Option<Node>, MeshError> {
    let (docs, err) = yaml::parse_stream(text);
    if let Some(e) = err {
        return Err(MeshError {
            path: path.into(),
            line: e.pos.line,
            col: e.pos.col,
            message: format!("invalid YAML: {}", e.message),
        });
    }
    let mut roots = docs.into_iter().filter_map(|d| d.root);
    let first = roots.next();
    if let Some(extra) = roots.next() {
        return Err(MeshError::at(
            path,
            Some(&extra),
            "expected one YAML document".into(),
        ));
    }
    Ok(first)
}

/// MeshNetworks: which registries and CIDRs make up each network, and its gateways.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshNetworks {
    #[serde(default)]
    pub networks: BTreeMap<String, Network>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    #[serde(default)]
    pub endpoints: Vec<NetworkEndpoints>,
    #[serde(default)]
    pub gateways: Vec<NetworkGateway>,
}

/// One `endpoints` entry: exactly one of `fromRegistry` or `fromCidr`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkEndpoints {
    #[serde(alias = "from_registry")]
    pub from_registry: Option<String>,
    #[serde(alias = "from_cidr")]
    pub from_cidr: Option<String>,
}

/// One `gateways` entry (the proto's snake_case spellings are accepted too).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NetworkGateway {
    #[serde(alias = "registry_service_name")]
    pub registry_service_name: Option<String>,
    pub address: Option<String>,
    pub port: u32,
    pub locality: Option<String>,
}

impl MeshNetworks {
    pub fn parse(text: &str, path: &str) -> Result<MeshNetworks, MeshError> {
        match single_document(text, path)? {
            None => Ok(MeshNetworks::default()),
            Some(root) => from_node(&root, "").map_err(|e| MeshError::from_de(path, e)),
        }
    }

    pub fn load(path: &std::path::Path) -> Result<MeshNetworks, MeshError> {
        let name = path.display().to_string();
        let text = read(path, &name)?;
        MeshNetworks::parse(&text, &name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let (m, unused) = MeshConfig::parse("", "m.yaml").expect("empty");
        assert_eq!(m, MeshConfig::default());
        assert!(unused.is_empty());
        let text = "rootNamespace: mesh-root\naccessLogFile: /dev/stdout\ndefaultConfig:\n  proxyMetadata:\n    ISTIO_META_DNS_CAPTURE: \"true\"\nextensionProviders:\n- name: ls\n  lightstep: {service: x, port: 443}\n";
        let (m, unused) = MeshConfig::parse(text, "m.yaml").expect("parse");
        assert_eq!(m.root_namespace, "mesh-root");
        assert!(m.proxy_flag("ISTIO_META_DNS_CAPTURE"));
        assert!(!m.proxy_flag("ISTIO_META_DNS_AUTO_ALLOCATE"));
        assert_eq!(m.extension_providers[0].kind, "lightstep");
        assert_eq!(unused, vec!["accessLogFile".to_string()]);
    }

    #[test]
    fn traffic_settings() {
        let text = "outboundTrafficPolicy:\n  mode: REGISTRY_ONLY\nconnectTimeout: 1.5s\ndefaultServiceExportTo: [\".\"]\n";
        let (m, unused) = MeshConfig::parse(text, "m.yaml").expect("parse");
        assert!(unused.is_empty());
        assert_eq!(m.outbound_traffic_policy, OutboundMode::RegistryOnly);
        assert_eq!(m.connect_timeout, Duration::from_millis(1500));
        assert_eq!(m.default_service_export_to, vec![".".to_string()]);
        let err = MeshConfig::parse("connectTimeout: soon\n", "m.yaml").expect_err("bad");
        assert!(err.to_string().contains("connectTimeout"), "{err}");
        let err = MeshConfig::parse("outboundTrafficPolicy: {mode: SOMETIMES}\n", "m.yaml")
            .expect_err("bad mode");
        assert!(
            err.to_string().contains("outboundTrafficPolicy.mode"),
            "{err}"
        );
        let (m, _) = MeshConfig::parse(
            "outboundTrafficPolicy: {egressProxy: {host: x}}\n",
            "m.yaml",
        )
        .expect("egressProxy is accepted and flagged");
        assert!(m.outbound_egress_proxy);
        let (m, unused) = MeshConfig::parse("h2UpgradePolicy: UPGRADE\n", "m.yaml").expect("parse");
        assert!(m.h2_upgrade && unused.is_empty());
        let err = MeshConfig::parse("h2UpgradePolicy: SOMETIMES\n", "m.yaml").expect_err("bad");
        assert!(err.to_string().contains("h2UpgradePolicy"), "{err}");
    }

    #[test]
    fn errors_name_the_field() {
        let err = MeshConfig::parse("rootNamespace: [a]\n", "m.yaml").expect_err("bad type");
        assert!(
            err.to_string().starts_with("m.yaml:1:16: rootNamespace"),
            "{err}"
        );
        let err = MeshNetworks::parse("networks:\n  n1:\n    endpointz: []\n", "n.yaml")
            .expect_err("unknown field");
        assert!(err.to_string().contains("networks.n1.endpointz"), "{err}");
    }

    #[test]
    fn mesh_networks_accepts_snake_case_gateway_fields() {
        let text = "networks:\n  n1:\n    endpoints:\n    - fromRegistry: kubernetes\n    gateways:\n    - port: 443\n      registry_service_name: gw.istio-system.svc.cluster.local\n";
        let n = MeshNetworks::parse(text, "n.yaml").expect("parse");
        let gw = &n.networks["n1"].gateways[0];
        assert_eq!(gw.port, 443);
        assert_eq!(
            gw.registry_service_name.as_deref(),
            Some("gw.istio-system.svc.cluster.local")
        );
    }
}
