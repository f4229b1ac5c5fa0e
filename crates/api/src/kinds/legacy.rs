//! Legacy kinds still found in old user YAML: `rbac.istio.io/v1alpha1` (ServiceRole,
//! ServiceRoleBinding, RbacConfig, ClusterRbacConfig; removed in Istio 1.6) and
//! `authentication.istio.io/v1alpha1` (Policy, MeshPolicy; deprecated in 1.5).
//!
//! These were served by Istio's gogo-jsonpb decoder, which accepted both the camelCase and the
//! original snake_case spelling of every field, so both are accepted here (`alias`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::nullable;

/// The `spec` of a ServiceRole: a set of permissions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceRole {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub rules: Vec<AccessRule>,
}

/// One permission: services (required) and, for HTTP, paths/methods/hosts, plus constraints.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessRule {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub services: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub hosts: Vec<String>,
    #[serde(
        default,
        alias = "not_hosts",
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub not_hosts: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub paths: Vec<String>,
    #[serde(
        default,
        alias = "not_paths",
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub not_paths: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub methods: Vec<String>,
    #[serde(
        default,
        alias = "not_methods",
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub not_methods: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ports: Vec<i32>,
    #[serde(
        default,
        alias = "not_ports",
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub not_ports: Vec<i32>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub constraints: Vec<RbacConstraint>,
}

/// A `key: values` constraint of an AccessRule (e.g. `destination.labels[version]`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RbacConstraint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub values: Vec<String>,
}

/// The `spec` of a ServiceRoleBinding: grants a role to subjects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceRoleBinding {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub subjects: Vec<RbacSubject>,
    #[serde(default, alias = "role_ref", skip_serializing_if = "Option::is_none")]
    pub role_ref: Option<RoleRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<EnforcementMode>,
    /// Inline permissions instead of a `roleRef`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub actions: Vec<AccessRule>,
    /// A role name (`/name` means the root namespace) instead of a `roleRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// Who a binding applies to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RbacSubject {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Deprecated in Istio 1.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Attribute conditions keyed by attribute name (`source.namespace`, `request.auth.claims[x]`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub properties: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub names: Vec<String>,
    #[serde(
        default,
        alias = "not_names",
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub not_names: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub groups: Vec<String>,
    #[serde(
        default,
        alias = "not_groups",
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub not_groups: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub namespaces: Vec<String>,
    #[serde(
        default,
        alias = "not_namespaces",
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub not_namespaces: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ips: Vec<String>,
    #[serde(
        default,
        alias = "not_ips",
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub not_ips: Vec<String>,
}

/// Reference to the ServiceRole a binding grants.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EnforcementMode {
    #[default]
    #[serde(rename = "ENFORCED")]
    Enforced,
    #[serde(rename = "PERMISSIVE")]
    Permissive,
}

/// The `spec` of an RbacConfig or ClusterRbacConfig: where RBAC is enforced.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RbacConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RbacMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inclusion: Option<RbacTarget>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusion: Option<RbacTarget>,
    #[serde(
        default,
        alias = "enforcement_mode",
        skip_serializing_if = "Option::is_none"
    )]
    pub enforcement_mode: Option<EnforcementMode>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RbacMode {
    #[default]
    #[serde(rename = "OFF")]
    Off,
    #[serde(rename = "ON")]
    On,
    #[serde(rename = "ON_WITH_INCLUSION")]
    OnWithInclusion,
    #[serde(rename = "ON_WITH_EXCLUSION")]
    OnWithExclusion,
}

/// Services and namespaces included in or excluded from RBAC.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RbacTarget {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub services: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub namespaces: Vec<String>,
}

/// The `spec` of an authentication Policy or MeshPolicy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthenticationPolicy {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub targets: Vec<TargetSelector>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub peers: Vec<PeerAuthenticationMethod>,
    #[serde(
        default,
        alias = "peer_is_optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub peer_is_optional: Option<bool>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub origins: Vec<OriginAuthenticationMethod>,
    #[serde(
        default,
        alias = "origin_is_optional",
        skip_serializing_if = "Option::is_none"
    )]
    pub origin_is_optional: Option<bool>,
    #[serde(
        default,
        alias = "principal_binding",
        skip_serializing_if = "Option::is_none"
    )]
    pub principal_binding: Option<PrincipalBinding>,
}

/// A service (short name, no dots) and optionally some of its ports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ports: Vec<TargetPort>,
}

/// A port by number or by name (a proto `oneof`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetPort {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Peer (transport) authentication: `mtls` (or the long-deprecated peer `jwt`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerAuthenticationMethod {
    /// `mtls: {}` (or `mtls: null`) means STRICT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtls: Option<LegacyMutualTls>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<LegacyJwt>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LegacyMutualTls {
    /// Deprecated.
    #[serde(default, alias = "allow_tls", skip_serializing_if = "Option::is_none")]
    pub allow_tls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<LegacyMtlsMode>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LegacyMtlsMode {
    #[default]
    #[serde(rename = "STRICT")]
    Strict,
    #[serde(rename = "PERMISSIVE")]
    Permissive,
}

/// Origin (end-user) authentication.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OriginAuthenticationMethod {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<LegacyJwt>,
}

/// A JWT issuer and where to find its keys and the token.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LegacyJwt {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub audiences: Vec<String>,
    #[serde(default, alias = "jwks_uri", skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<String>,
    #[serde(
        default,
        alias = "jwt_headers",
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub jwt_headers: Vec<String>,
    #[serde(
        default,
        alias = "jwt_params",
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub jwt_params: Vec<String>,
    #[serde(
        default,
        alias = "trigger_rules",
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub trigger_rules: Vec<TriggerRule>,
}

/// Paths for which a JWT is (not) required.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerRule {
    #[serde(
        default,
        alias = "excluded_paths",
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub excluded_paths: Vec<LegacyStringMatch>,
    #[serde(
        default,
        alias = "included_paths",
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub included_paths: Vec<LegacyStringMatch>,
}

/// `oneof {exact, prefix, suffix, regex}` (the v1alpha1 StringMatch also had `suffix`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LegacyStringMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PrincipalBinding {
    #[default]
    #[serde(rename = "USE_PEER")]
    UsePeer,
    #[serde(rename = "USE_ORIGIN")]
    UseOrigin,
}
