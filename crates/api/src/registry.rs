//! Every kind Plexus reads: group, kind, served versions, and whether Istio's CRD schema
//! (`schema/crd-all.gen.yaml`) describes it. Keyed by group + kind; any served version is
//! accepted, since all versions of a kind share one schema (Istio API conventions).

/// What Plexus knows about one kind.
#[derive(Debug, PartialEq, Eq)]
pub struct KindInfo {
    pub group: &'static str,
    pub kind: &'static str,
    /// Served versions; the first is the preferred (storage) one.
    pub versions: &'static [&'static str],
    /// Istio's CRD file carries an OpenAPI schema (and CEL rules) for this kind.
    pub crd_schema: bool,
    /// Cluster-scoped kinds (legacy `ClusterRbacConfig`, `MeshPolicy`, `Namespace`) ignore
    /// `metadata.namespace`.
    pub cluster_scoped: bool,
}

const fn kind(
    group: &'static str,
    kind: &'static str,
    versions: &'static [&'static str],
    crd_schema: bool,
) -> KindInfo {
    KindInfo {
        group,
        kind,
        versions,
        crd_schema,
        cluster_scoped: false,
    }
}

const fn cluster(
    group: &'static str,
    kind: &'static str,
    versions: &'static [&'static str],
) -> KindInfo {
    KindInfo {
        group,
        kind,
        versions,
        crd_schema: false,
        cluster_scoped: true,
    }
}

pub const NETWORKING: &str = "networking.istio.io";
pub const SECURITY: &str = "security.istio.io";
pub const TELEMETRY: &str = "telemetry.istio.io";
pub const EXTENSIONS: &str = "extensions.istio.io";
pub const RBAC: &str = "rbac.istio.io";
pub const AUTHENTICATION: &str = "authentication.istio.io";
pub const PLEXUS: &str = "plexus.dev";

const V1_BETA_ALPHA: &[&str] = &["v1", "v1beta1", "v1alpha3"];

/// The table. Order is only for listing.
pub static KINDS: &[KindInfo] = &[
    kind(NETWORKING, "VirtualService", V1_BETA_ALPHA, true),
    kind(NETWORKING, "DestinationRule", V1_BETA_ALPHA, true),
    kind(NETWORKING, "Gateway", V1_BETA_ALPHA, true),
    kind(NETWORKING, "ServiceEntry", V1_BETA_ALPHA, true),
    kind(NETWORKING, "Sidecar", V1_BETA_ALPHA, true),
    kind(NETWORKING, "WorkloadEntry", V1_BETA_ALPHA, true),
    kind(NETWORKING, "WorkloadGroup", V1_BETA_ALPHA, true),
    kind(NETWORKING, "EnvoyFilter", &["v1alpha3"], true),
    kind(NETWORKING, "ProxyConfig", &["v1beta1"], true),
    kind(SECURITY, "PeerAuthentication", &["v1", "v1beta1"], true),
    kind(SECURITY, "RequestAuthentication", &["v1", "v1beta1"], true),
    kind(SECURITY, "AuthorizationPolicy", &["v1", "v1beta1"], true),
    kind(TELEMETRY, "Telemetry", &["v1alpha1", "v1"], true),
    kind(EXTENSIONS, "WasmPlugin", &["v1alpha1"], true),
    kind(EXTENSIONS, "TrafficExtension", &["v1alpha1"], true),
    // Legacy (removed from Istio in 1.6 / deprecated in 1.5), still accepted by Plexus.
    kind(RBAC, "ServiceRole", &["v1alpha1"], false),
    kind(RBAC, "ServiceRoleBinding", &["v1alpha1"], false),
    kind(RBAC, "RbacConfig", &["v1alpha1"], false),
    cluster(RBAC, "ClusterRbacConfig", &["v1alpha1"]),
    kind(AUTHENTICATION, "Policy", &["v1alpha1"], false),
    cluster(AUTHENTICATION, "MeshPolicy", &["v1alpha1"]),
    // The Kubernetes kinds needed to describe services outside a cluster.
    kind("", "Service", &["v1"], false),
    kind("", "Endpoints", &["v1"], false),
    cluster("", "Namespace", &["v1"]),
    kind("", "ServiceAccount", &["v1"], false),
    // Gateway credentials (`credentialName`), served to gateways over SDS.
    kind("", "Secret", &["v1"], false),
    kind("discovery.k8s.io", "EndpointSlice", &["v1"], false),
    // Plexus's own: a local process, playing the part of a Deployment in `plexus up`.
    kind(PLEXUS, "Workload", &["v1alpha1"], false),
];

/// Look a kind up by group and kind name.
pub fn lookup(group: &str, kind: &str) -> Option<&'static KindInfo> {
    KINDS.iter().find(|k| k.group == group && k.kind == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_by_group_and_kind() {
        assert!(lookup(NETWORKING, "VirtualService").is_some_and(|k| k.crd_schema));
        assert!(lookup("", "Service").is_some_and(|k| !k.crd_schema));
        assert!(lookup(SECURITY, "VirtualService").is_none());
    }
}
