//! The catalogue of analysis message types: Istio's `ISTxxxx` codes, their levels and message
//! templates (Go `fmt` verbs: `%s`, `%v`, `%q`, `%d`), so a Plexus message reads exactly as
//! `istioctl analyze` would print it. A test checks this table against the corpus catalogue.

use super::Level;

/// One kind of message: its name, code, level and template.
#[derive(Debug, PartialEq, Eq)]
pub struct MessageType {
    pub name: &'static str,
    pub code: &'static str,
    pub level: Level,
    pub template: &'static str,
}

pub const INTERNAL_ERROR: MessageType = MessageType {
    name: "InternalError",
    code: "IST0001",
    level: Level::Error,
    template: "Internal error: %v",
};

pub const DEPRECATED: MessageType = MessageType {
    name: "Deprecated",
    code: "IST0002",
    level: Level::Warning,
    template: "Deprecated: %s",
};

pub const REFERENCED_RESOURCE_NOT_FOUND: MessageType = MessageType {
    name: "ReferencedResourceNotFound",
    code: "IST0101",
    level: Level::Error,
    template: "Referenced %s not found: %q",
};

pub const NAMESPACE_NOT_INJECTED: MessageType = MessageType {
    name: "NamespaceNotInjected",
    code: "IST0102",
    level: Level::Info,
    template: "The namespace is not enabled for Istio injection. Run 'kubectl label namespace %s istio-injection=enabled' to enable it, or 'kubectl label namespace %s istio-injection=disabled' to explicitly mark it as not needing injection.",
};

pub const POD_MISSING_PROXY: MessageType = MessageType {
    name: "PodMissingProxy",
    code: "IST0103",
    level: Level::Warning,
    template: "The pod %s is missing the Istio proxy. This can often be resolved by restarting or redeploying the workload.",
};

pub const SCHEMA_VALIDATION_ERROR: MessageType = MessageType {
    name: "SchemaValidationError",
    code: "IST0106",
    level: Level::Error,
    template: "Schema validation error: %v",
};

pub const MISPLACED_ANNOTATION: MessageType = MessageType {
    name: "MisplacedAnnotation",
    code: "IST0107",
    level: Level::Warning,
    template: "Misplaced annotation: %s can only be applied to %s",
};

pub const UNKNOWN_ANNOTATION: MessageType = MessageType {
    name: "UnknownAnnotation",
    code: "IST0108",
    level: Level::Warning,
    template: "Unknown annotation: %s",
};

pub const CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS: MessageType = MessageType {
    name: "ConflictingMeshGatewayVirtualServiceHosts",
    code: "IST0109",
    level: Level::Error,
    template: "The VirtualServices %s associated with mesh gateway define the same host %s which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.",
};

pub const CONFLICTING_SIDECAR_WORKLOAD_SELECTORS: MessageType = MessageType {
    name: "ConflictingSidecarWorkloadSelectors",
    code: "IST0110",
    level: Level::Error,
    template: "The Sidecars %v in namespace %q select the same workload pod %q, which can lead to undefined behavior.",
};

pub const MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS: MessageType = MessageType {
    name: "MultipleSidecarsWithoutWorkloadSelectors",
    code: "IST0111",
    level: Level::Error,
    template: "The Sidecars %v in namespace %q have no workload selector, which can lead to undefined behavior.",
};

pub const VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED: MessageType = MessageType {
    name: "VirtualServiceDestinationPortSelectorRequired",
    code: "IST0112",
    level: Level::Error,
    template: "This VirtualService routes to a service %q that exposes multiple ports %v. Specifying a port in the destination is required to disambiguate.",
};

pub const DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES: MessageType = MessageType {
    name: "DeploymentAssociatedToMultipleServices",
    code: "IST0116",
    level: Level::Warning,
    template: "This deployment %s is associated with multiple services using port %d but different protocols: %v",
};

pub const PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION: MessageType = MessageType {
    name: "PortNameIsNotUnderNamingConvention",
    code: "IST0118",
    level: Level::Info,
    template: "Port name %s (port: %d, targetPort: %s) doesn't follow the naming convention of Istio port.",
};

pub const NAMESPACE_MULTIPLE_INJECTION_LABELS: MessageType = MessageType {
    name: "NamespaceMultipleInjectionLabels",
    code: "IST0123",
    level: Level::Warning,
    template: "The namespace has more than one type of injection labels %v, which may lead to undefined behavior. Make sure only one injection label exists.",
};

pub const INVALID_ANNOTATION: MessageType = MessageType {
    name: "InvalidAnnotation",
    code: "IST0125",
    level: Level::Warning,
    template: "Invalid annotation %s: %s",
};

pub const UNKNOWN_MESH_NETWORKS_SERVICE_REGISTRY: MessageType = MessageType {
    name: "UnknownMeshNetworksServiceRegistry",
    code: "IST0126",
    level: Level::Error,
    template: "Unknown service registry %s in network %s",
};

pub const NO_MATCHING_WORKLOADS_FOUND: MessageType = MessageType {
    name: "NoMatchingWorkloadsFound",
    code: "IST0127",
    level: Level::Warning,
    template: "No matching workloads for this resource with the following labels: %s",
};

pub const NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL: MessageType = MessageType {
    name: "NoServerCertificateVerificationDestinationLevel",
    code: "IST0128",
    level: Level::Warning,
    template: "DestinationRule %s in namespace %s has TLS mode set to %s but no caCertificates are set to validate server identity for host: %s",
};

pub const NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL: MessageType = MessageType {
    name: "NoServerCertificateVerificationPortLevel",
    code: "IST0129",
    level: Level::Warning,
    template: "DestinationRule %s in namespace %s has TLS mode set to %s but no caCertificates are set to validate server identity for host: %s at port %s",
};

pub const VIRTUAL_SERVICE_UNREACHABLE_RULE: MessageType = MessageType {
    name: "VirtualServiceUnreachableRule",
    code: "IST0130",
    level: Level::Warning,
    template: "VirtualService rule %v not used (%s).",
};

pub const VIRTUAL_SERVICE_INEFFECTIVE_MATCH: MessageType = MessageType {
    name: "VirtualServiceIneffectiveMatch",
    code: "IST0131",
    level: Level::Info,
    template: "VirtualService rule %v match %v is not used (duplicate/overlapping match in rule %v).",
};

pub const VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY: MessageType = MessageType {
    name: "VirtualServiceHostNotFoundInGateway",
    code: "IST0132",
    level: Level::Warning,
    template: "one or more host %v defined in VirtualService %s not found in Gateway %s.",
};

pub const SCHEMA_WARNING: MessageType = MessageType {
    name: "SchemaWarning",
    code: "IST0133",
    level: Level::Warning,
    template: "Schema validation warning: %v",
};

pub const SERVICE_ENTRY_ADDRESSES_REQUIRED: MessageType = MessageType {
    name: "ServiceEntryAddressesRequired",
    code: "IST0134",
    level: Level::Warning,
    template: "ServiceEntry addresses are required for this protocol.",
};

pub const DEPRECATED_ANNOTATION: MessageType = MessageType {
    name: "DeprecatedAnnotation",
    code: "IST0135",
    level: Level::Info,
    template: "Annotation %q has been deprecated%s and may not work in future Istio versions.",
};

pub const ALPHA_ANNOTATION: MessageType = MessageType {
    name: "AlphaAnnotation",
    code: "IST0136",
    level: Level::Info,
    template: "Annotation %q is part of an alpha-phase feature and may be incompletely supported.",
};

pub const DEPLOYMENT_CONFLICTING_PORTS: MessageType = MessageType {
    name: "DeploymentConflictingPorts",
    code: "IST0137",
    level: Level::Warning,
    template: "This deployment %s is associated with multiple services %v using targetPort %q but different ports: %v.",
};

pub const GATEWAY_DUPLICATE_CERTIFICATE: MessageType = MessageType {
    name: "GatewayDuplicateCertificate",
    code: "IST0138",
    level: Level::Warning,
    template: "Duplicate certificate in multiple gateways %v may cause 404s if clients re-use HTTP2 connections.",
};

pub const INVALID_WEBHOOK: MessageType = MessageType {
    name: "InvalidWebhook",
    code: "IST0139",
    level: Level::Error,
    template: "%v",
};

pub const INGRESS_ROUTE_RULES_NOT_AFFECTED: MessageType = MessageType {
    name: "IngressRouteRulesNotAffected",
    code: "IST0140",
    level: Level::Warning,
    template: "Subset in virtual service %s has no effect on ingress gateway %s requests",
};

pub const INSUFFICIENT_PERMISSIONS: MessageType = MessageType {
    name: "InsufficientPermissions",
    code: "IST0141",
    level: Level::Error,
    template: "Missing required permission to create resource %v (%v)",
};

pub const UNSUPPORTED_KUBERNETES_VERSION: MessageType = MessageType {
    name: "UnsupportedKubernetesVersion",
    code: "IST0142",
    level: Level::Error,
    template: "The Kubernetes Version %q is lower than the minimum version: %v",
};

pub const LOCALHOST_LISTENER: MessageType = MessageType {
    name: "LocalhostListener",
    code: "IST0143",
    level: Level::Error,
    template: "Port %v is exposed in a Service but listens on localhost. It will not be exposed to other pods.",
};

pub const INVALID_APPLICATION_UID: MessageType = MessageType {
    name: "InvalidApplicationUID",
    code: "IST0144",
    level: Level::Warning,
    template: "User ID (UID) 1337 is reserved for the sidecar proxy.",
};

pub const CONFLICTING_GATEWAYS: MessageType = MessageType {
    name: "ConflictingGateways",
    code: "IST0145",
    level: Level::Error,
    template: "Conflict with gateways %s (workload selector %s, port %s, hosts %v).",
};

pub const IMAGE_AUTO_WITHOUT_INJECTION_WARNING: MessageType = MessageType {
    name: "ImageAutoWithoutInjectionWarning",
    code: "IST0146",
    level: Level::Warning,
    template: "%s %s contains `image: auto` but does not match any Istio injection webhook selectors.",
};

pub const IMAGE_AUTO_WITHOUT_INJECTION_ERROR: MessageType = MessageType {
    name: "ImageAutoWithoutInjectionError",
    code: "IST0147",
    level: Level::Error,
    template: "%s %s contains `image: auto` but does not match any Istio injection webhook selectors.",
};

pub const NAMESPACE_INJECTION_ENABLED_BY_DEFAULT: MessageType = MessageType {
    name: "NamespaceInjectionEnabledByDefault",
    code: "IST0148",
    level: Level::Info,
    template: "is enabled for Istio injection, as Istio is installed with enableNamespacesByDefault as true.",
};

pub const JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN: MessageType = MessageType {
    name: "JwtClaimBasedRoutingWithoutRequestAuthN",
    code: "IST0149",
    level: Level::Error,
    template: "The virtual service uses the JWT claim based routing (key: %s) but found no request authentication for the gateway (%s) pod (%s). The request authentication must first be applied for the gateway pods to validate the JWT token and make the claims available for routing.",
};

pub const EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME: MessageType = MessageType {
    name: "ExternalNameServiceTypeInvalidPortName",
    code: "IST0150",
    level: Level::Warning,
    template: "Port name for ExternalName service is invalid. Proxy may prevent tcp named ports and unmatched traffic for ports serving TCP protocol from being forwarded correctly",
};

pub const ENVOY_FILTER_USES_RELATIVE_OPERATION: MessageType = MessageType {
    name: "EnvoyFilterUsesRelativeOperation",
    code: "IST0151",
    level: Level::Warning,
    template: "This EnvoyFilter does not have a priority and has a relative patch operation set which can cause the EnvoyFilter not to be applied. Using the INSERT_FIRST of ADD option or setting the priority may help in ensuring the EnvoyFilter is applied correctly.",
};

pub const ENVOY_FILTER_USES_REPLACE_OPERATION_INCORRECTLY: MessageType = MessageType {
    name: "EnvoyFilterUsesReplaceOperationIncorrectly",
    code: "IST0152",
    level: Level::Error,
    template: "The REPLACE operation is only valid for HTTP_FILTER and NETWORK_FILTER.",
};

pub const ENVOY_FILTER_USES_ADD_OPERATION_INCORRECTLY: MessageType = MessageType {
    name: "EnvoyFilterUsesAddOperationIncorrectly",
    code: "IST0153",
    level: Level::Error,
    template: "The ADD operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE.",
};

pub const ENVOY_FILTER_USES_REMOVE_OPERATION_INCORRECTLY: MessageType = MessageType {
    name: "EnvoyFilterUsesRemoveOperationIncorrectly",
    code: "IST0154",
    level: Level::Error,
    template: "The REMOVE operation will be ignored when applyTo is set to ROUTE_CONFIGURATION, or HTTP_ROUTE.",
};

pub const ENVOY_FILTER_USES_RELATIVE_OPERATION_WITH_PROXY_VERSION: MessageType = MessageType {
    name: "EnvoyFilterUsesRelativeOperationWithProxyVersion",
    code: "IST0155",
    level: Level::Warning,
    template: "This EnvoyFilter does not have a priority and has a relative patch operation (NSTERT_BEFORE/AFTER, REPLACE, MERGE, DELETE) and proxyVersion set which can cause the EnvoyFilter not to be applied during an upgrade. Using the INSERT_FIRST or ADD option or setting the priority may help in ensuring the EnvoyFilter is applied correctly.",
};

pub const UNSUPPORTED_GATEWAY_API_VERSION: MessageType = MessageType {
    name: "UnsupportedGatewayAPIVersion",
    code: "IST0156",
    level: Level::Error,
    template: "The Gateway API CRD version %v is lower than the minimum version: %v",
};

pub const FUTURE_UNSUPPORTED_GATEWAY_API_VERSION: MessageType = MessageType {
    name: "FutureUnsupportedGatewayAPIVersion",
    code: "IST0172",
    level: Level::Warning,
    template: "The Gateway API CRD version %v is lower than the minimum version: %v",
};

pub const INVALID_TELEMETRY_PROVIDER: MessageType = MessageType {
    name: "InvalidTelemetryProvider",
    code: "IST0157",
    level: Level::Warning,
    template: "The Telemetry %v in namespace %q with empty providers will be ignored.",
};

pub const PODS_ISTIO_PROXY_IMAGE_MISMATCH_IN_NAMESPACE: MessageType = MessageType {
    name: "PodsIstioProxyImageMismatchInNamespace",
    code: "IST0158",
    level: Level::Warning,
    template: "The Istio proxy images of the pods running in the namespace do not match the image defined in the injection configuration (pod names: %v). This often happens after upgrading the Istio control-plane and can be fixed by redeploying the pods.",
};

pub const CONFLICTING_TELEMETRY_WORKLOAD_SELECTORS: MessageType = MessageType {
    name: "ConflictingTelemetryWorkloadSelectors",
    code: "IST0159",
    level: Level::Error,
    template: "The Telemetries %v in namespace %q select the same workload pod %q, which can lead to undefined behavior.",
};

pub const MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS: MessageType = MessageType {
    name: "MultipleTelemetriesWithoutWorkloadSelectors",
    code: "IST0160",
    level: Level::Error,
    template: "The Telemetries %v in namespace %q have no workload selector, which can lead to undefined behavior.",
};

pub const INVALID_GATEWAY_CREDENTIAL: MessageType = MessageType {
    name: "InvalidGatewayCredential",
    code: "IST0161",
    level: Level::Error,
    template: "The credential referenced by the Gateway %s in namespace %s is invalid, which can cause the traffic not to work as expected.",
};

pub const GATEWAY_PORT_NOT_DEFINED_ON_SERVICE: MessageType = MessageType {
    name: "GatewayPortNotDefinedOnService",
    code: "IST0162",
    level: Level::Warning,
    template: "The gateway is listening on a target port (port %d) that is not defined in the Service associated with its workload instances (Pod selector %s). If you need to access the gateway port through the gateway Service, it will not be available.",
};

pub const INVALID_EXTERNAL_CONTROL_PLANE_CONFIG: MessageType = MessageType {
    name: "InvalidExternalControlPlaneConfig",
    code: "IST0163",
    level: Level::Warning,
    template: "The hostname (%s) that was provided for the webhook (%s) to reach the ingress gateway on the external control plane cluster %s. Traffic may not flow properly.",
};

pub const EXTERNAL_CONTROL_PLANE_ADDRESS_IS_NOT_A_HOSTNAME: MessageType = MessageType {
    name: "ExternalControlPlaneAddressIsNotAHostname",
    code: "IST0164",
    level: Level::Info,
    template: "The address (%s) that was provided for the webhook (%s) to reach the ingress gateway on the external control plane cluster is an IP address. This is not recommended for a production environment.",
};

pub const REFERENCED_INTERNAL_GATEWAY: MessageType = MessageType {
    name: "ReferencedInternalGateway",
    code: "IST0165",
    level: Level::Warning,
    template: "Gateway reference in VirtualService %s is to an implementation-generated internal Gateway: %s.",
};

pub const INEFFECTIVE_SELECTOR: MessageType = MessageType {
    name: "IneffectiveSelector",
    code: "IST0166",
    level: Level::Warning,
    template: "Ineffective selector on Kubernetes Gateway %s. Use the TargetRef field instead.",
};

pub const INEFFECTIVE_POLICY: MessageType = MessageType {
    name: "IneffectivePolicy",
    code: "IST0167",
    level: Level::Warning,
    template: "The policy has no impact: %s.",
};

pub const UNKNOWN_UPGRADE_COMPATIBILITY: MessageType = MessageType {
    name: "UnknownUpgradeCompatibility",
    code: "IST0168",
    level: Level::Warning,
    template: "The configuration %q changed in release %s, but compatibility cannot be automatically detected: %s. Or, install with `--set compatibilityVersion=%s` to retain the old default.",
};

pub const UPDATE_INCOMPATIBILITY: MessageType = MessageType {
    name: "UpdateIncompatibility",
    code: "IST0169",
    level: Level::Warning,
    template: "The configuration %q changed in release %s: %s. Or, install with `--set compatibilityVersion=%s` to retain the old default.",
};

pub const MULTI_CLUSTER_INCONSISTENT_SERVICE: MessageType = MessageType {
    name: "MultiClusterInconsistentService",
    code: "IST0170",
    level: Level::Warning,
    template: "The service %v in namespace %q is inconsistent across clusters %q, which can lead to undefined behaviors. The inconsistent behaviors are: %v.",
};

pub const NEGATIVE_CONDITION_STATUS: MessageType = MessageType {
    name: "NegativeConditionStatus",
    code: "IST0171",
    level: Level::Warning,
    template: "A condition with a negative status is present: type=%s, reason=%s, message=%s.",
};

pub const DESTINATION_RULE_SUBSET_NOT_SELECT_PODS: MessageType = MessageType {
    name: "DestinationRuleSubsetNotSelectPods",
    code: "IST0173",
    level: Level::Error,
    template: "The Subset %s defined in the DestinationRule does not select any pods. Which may lead to 503 UH (NoHealthyUpstream).",
};

pub const UNKNOWN_DESTINATION_RULE_HOST: MessageType = MessageType {
    name: "UnknownDestinationRuleHost",
    code: "IST0174",
    level: Level::Warning,
    template: "The host %s defined in the DestinationRule does not match any services in the mesh.",
};

pub const JWKS_URI_FETCH_UNRESTRICTED: MessageType = MessageType {
    name: "JwksUriFetchUnrestricted",
    code: "IST0175",
    level: Level::Warning,
    template: "BLOCKED_CIDRS_IN_JWKS_URIS is not configured but %d RequestAuthentication resource(s) exist (%s). Consider configuring it to restrict JWKS URI fetches to trusted networks.",
};

pub const GATEWAY_API_CRD_VERSION_BELOW_MINIMUM: MessageType = MessageType {
    name: "GatewayAPICRDVersionBelowMinimum",
    code: "IST0176",
    level: Level::Warning,
    template: "Gateway API CRD %q is at version %q but Istio requires at least %q; resources of this kind will not be processed. Upgrade the Gateway API CRDs to satisfy the minimum version.",
};

pub const CONFLICTING_SERVICE_ENTRY_PROTOCOL: MessageType = MessageType {
    name: "ConflictingServiceEntryProtocol",
    code: "IST0177",
    level: Level::Warning,
    template: "Multiple ServiceEntries (%s) define the same host %q and port %d with conflicting protocols (%s).",
};

/// Every message type, ordered by code as in Istio's catalogue.
pub static ALL: &[&MessageType] = &[
    &INTERNAL_ERROR,
    &DEPRECATED,
    &REFERENCED_RESOURCE_NOT_FOUND,
    &NAMESPACE_NOT_INJECTED,
    &POD_MISSING_PROXY,
    &SCHEMA_VALIDATION_ERROR,
    &MISPLACED_ANNOTATION,
    &UNKNOWN_ANNOTATION,
    &CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
    &CONFLICTING_SIDECAR_WORKLOAD_SELECTORS,
    &MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS,
    &VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED,
    &DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES,
    &PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION,
    &NAMESPACE_MULTIPLE_INJECTION_LABELS,
    &INVALID_ANNOTATION,
    &UNKNOWN_MESH_NETWORKS_SERVICE_REGISTRY,
    &NO_MATCHING_WORKLOADS_FOUND,
    &NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
    &NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
    &VIRTUAL_SERVICE_UNREACHABLE_RULE,
    &VIRTUAL_SERVICE_INEFFECTIVE_MATCH,
    &VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY,
    &SCHEMA_WARNING,
    &SERVICE_ENTRY_ADDRESSES_REQUIRED,
    &DEPRECATED_ANNOTATION,
    &ALPHA_ANNOTATION,
    &DEPLOYMENT_CONFLICTING_PORTS,
    &GATEWAY_DUPLICATE_CERTIFICATE,
    &INVALID_WEBHOOK,
    &INGRESS_ROUTE_RULES_NOT_AFFECTED,
    &INSUFFICIENT_PERMISSIONS,
    &UNSUPPORTED_KUBERNETES_VERSION,
    &LOCALHOST_LISTENER,
    &INVALID_APPLICATION_UID,
    &CONFLICTING_GATEWAYS,
    &IMAGE_AUTO_WITHOUT_INJECTION_WARNING,
    &IMAGE_AUTO_WITHOUT_INJECTION_ERROR,
    &NAMESPACE_INJECTION_ENABLED_BY_DEFAULT,
    &JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN,
    &EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME,
    &ENVOY_FILTER_USES_RELATIVE_OPERATION,
    &ENVOY_FILTER_USES_REPLACE_OPERATION_INCORRECTLY,
    &ENVOY_FILTER_USES_ADD_OPERATION_INCORRECTLY,
    &ENVOY_FILTER_USES_REMOVE_OPERATION_INCORRECTLY,
    &ENVOY_FILTER_USES_RELATIVE_OPERATION_WITH_PROXY_VERSION,
    &UNSUPPORTED_GATEWAY_API_VERSION,
    &FUTURE_UNSUPPORTED_GATEWAY_API_VERSION,
    &INVALID_TELEMETRY_PROVIDER,
    &PODS_ISTIO_PROXY_IMAGE_MISMATCH_IN_NAMESPACE,
    &CONFLICTING_TELEMETRY_WORKLOAD_SELECTORS,
    &MULTIPLE_TELEMETRIES_WITHOUT_WORKLOAD_SELECTORS,
    &INVALID_GATEWAY_CREDENTIAL,
    &GATEWAY_PORT_NOT_DEFINED_ON_SERVICE,
    &INVALID_EXTERNAL_CONTROL_PLANE_CONFIG,
    &EXTERNAL_CONTROL_PLANE_ADDRESS_IS_NOT_A_HOSTNAME,
    &REFERENCED_INTERNAL_GATEWAY,
    &INEFFECTIVE_SELECTOR,
    &INEFFECTIVE_POLICY,
    &UNKNOWN_UPGRADE_COMPATIBILITY,
    &UPDATE_INCOMPATIBILITY,
    &MULTI_CLUSTER_INCONSISTENT_SERVICE,
    &NEGATIVE_CONDITION_STATUS,
    &DESTINATION_RULE_SUBSET_NOT_SELECT_PODS,
    &UNKNOWN_DESTINATION_RULE_HOST,
    &JWKS_URI_FETCH_UNRESTRICTED,
    &GATEWAY_API_CRD_VERSION_BELOW_MINIMUM,
    &CONFLICTING_SERVICE_ENTRY_PROTOCOL,
];
