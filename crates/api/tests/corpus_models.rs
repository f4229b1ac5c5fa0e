//! Every plain-YAML object of a known kind in the Istio corpus that is meant to be valid decodes
//! into its typed model; the few intentionally broken ones are listed with the reason, and must
//! still fail (so the list stays true).

mod common;

use plexus_api::load_file;
use plexus_api::{kinds, semantic};

/// Objects of the corpus's "valid" files that are not valid config, with the reason: analyzer
/// inputs (Istio's analyzer tests load files without validating them), objects istiod generates
/// internally (never validated), unrendered templates, and fields removed from the API. Each
/// must still be rejected, by decoding or by the semantic checks, so the list stays true.
const INVALID_IN_CORPUS: &[(&str, &str, &str)] = &[
    (
        "analyzers/testdata/gateway-duplicate-certificate.yaml",
        "Secret/test-01-wildcard-cert",
        "analyzer input: Secret `cert` is placeholder text, not a PEM certificate",
    ),
    (
        "analyzers/testdata/gateway-duplicate-certificate.yaml",
        "Secret/test-02-wildcard-cert",
        "analyzer input: Secret `cert` is placeholder text, not a PEM certificate",
    ),
    (
        "analyzers/testdata/gateway-duplicate-certificate.yaml",
        "Secret/test-03-wildcard-cert",
        "analyzer input: Secret `cert` is placeholder text, not a PEM certificate",
    ),
    (
        "analyzers/testdata/gateway-duplicate-certificate.yaml",
        "Secret/01-test-04-wildcard-cert",
        "analyzer input: Secret `cert` is placeholder text, not a PEM certificate",
    ),
    (
        "analyzers/testdata/gateway-duplicate-certificate.yaml",
        "Secret/02-test-04-wildcard-cert",
        "analyzer input: Secret `cert` is placeholder text, not a PEM certificate",
    ),
    (
        "analyzers/testdata/gateway-duplicate-certificate.yaml",
        "Secret/01-test-05-wildcard-cert",
        "analyzer input: Secret `cert` is placeholder text, not a PEM certificate",
    ),
    (
        "analyzers/testdata/gateway-duplicate-certificate.yaml",
        "Secret/02-test-05-wildcard-cert",
        "analyzer input: Secret `cert` is placeholder text, not a PEM certificate",
    ),
    (
        "analyzers/testdata/gateway-duplicate-certificate.yaml",
        "Secret/01-test-06-wildcard-cert",
        "analyzer input: Secret `cert` is placeholder text, not a PEM certificate",
    ),
    (
        "analyzers/testdata/gateway-duplicate-certificate.yaml",
        "Secret/02-test-06-wildcard-cert",
        "analyzer input: Secret `cert` is placeholder text, not a PEM certificate",
    ),
    (
        "analyzers/testdata/gateway-secrets-validation.yaml",
        "Secret/invalid-key",
        "analyzer input: Secret `cert` is not a PEM certificate",
    ),
    (
        "analyzers/testdata/gateway-secrets-validation.yaml",
        "Secret/missing-key",
        "analyzer input: kubernetes.io/tls Secret without `tls.crt`",
    ),
    (
        "analyzers/testdata/gateway-secrets-validation.yaml",
        "Secret/invalid-cert",
        "analyzer input: kubernetes.io/tls Secret without `tls.crt`",
    ),
    (
        "analyzers/testdata/gateway-secrets-validation.yaml",
        "Secret/expired-secret",
        "analyzer input: `tls.key` does not match `tls.crt`",
    ),
    (
        "analyzers/testdata/gateway-secrets.yaml",
        "Secret/httpbin-credential",
        "analyzer input: `tls.key` does not match `tls.crt`",
    ),
    (
        "analyzers/testdata/authorizationpolicies.yaml",
        "istio",
        "ServiceEntry with DNS resolution, no endpoints and a wildcard host",
    ),
    (
        "analyzers/testdata/conflicting-gateways-invalid-port.yaml",
        "alpha",
        "Gateway server without a port",
    ),
    (
        "analyzers/testdata/conflicting-gateways-invalid-port.yaml",
        "beta",
        "Gateway server without a port",
    ),
    (
        "analyzers/testdata/condition-analyzer.yaml",
        "negative-condition-svcEntry",
        "ServiceEntry without hosts",
    ),
    (
        "analyzers/testdata/conflicting-gateways-multiple-ports.yaml",
        "alpha",
        "Gateway servers with duplicate port names",
    ),
    (
        "analyzers/testdata/conflicting-gateways-multiple-ports.yaml",
        "beta",
        "Gateway servers with duplicate port names",
    ),
    (
        "analyzers/testdata/deprecation.yaml",
        "istio-multicluster-egressgateway",
        "EnvoyFilter `workloadLabels`/`filters`, removed from the API",
    ),
    (
        "analyzers/testdata/deprecation.yaml",
        "productpage",
        "HTTP route with only a fault delay using the deprecated `percent`, no fixedDelay and no route",
    ),
    (
        "analyzers/testdata/envoy-filter-add-operation.yaml",
        "test-auth-4",
        "EnvoyFilter match with an unknown `app` field",
    ),
    (
        "analyzers/testdata/envoy-filter-add-operation.yaml",
        "test-auth-5",
        "EnvoyFilter match with an unknown `app` field",
    ),
    (
        "analyzers/testdata/envoy-filter-remove-operation.yaml",
        "test-remove-2",
        "EnvoyFilter listener match on a ROUTE_CONFIGURATION patch",
    ),
    (
        "analyzers/testdata/envoy-filter-remove-operation.yaml",
        "test-remove-3",
        "EnvoyFilter listener match on an HTTP_ROUTE patch",
    ),
    (
        "analyzers/testdata/envoy-filter-remove-operation.yaml",
        "test-remove-4",
        "EnvoyFilter config patch without `patch`",
    ),
    (
        "analyzers/testdata/relative-envoy-filter-operation.yaml",
        "test-relative-3",
        "EnvoyFilter non-cluster match on a CLUSTER patch",
    ),
    (
        "analyzers/testdata/gateway-no-workload.yaml",
        "httpbin-gateway",
        "Gateway without servers",
    ),
    (
        "analyzers/testdata/gateway-secrets.yaml",
        "defaultgateway-nocredential",
        "SIMPLE TLS server without any certificate source",
    ),
    (
        "analyzers/testdata/serviceentry-missing-addresses-protocol.yaml",
        "service-entry-test-04",
        "ServiceEntry port with `protocol: \"\"`",
    ),
    (
        "analyzers/testdata/sidecar-default-selector.yaml",
        "namespace-scoped",
        "Sidecar with nothing but a selector",
    ),
    (
        "analyzers/testdata/sidecar-default-selector.yaml",
        "pod-scoped",
        "Sidecar with nothing but a selector",
    ),
    (
        "analyzers/testdata/sidecar-default-selector.yaml",
        "namespace-not-ambient",
        "Sidecar with an empty spec",
    ),
    (
        "analyzers/testdata/virtualservice_destinationhosts.yaml",
        "reviews-2port",
        "Kubernetes Service ports with protocol HTTP/HTTPS",
    ),
    (
        "analyzers/testdata/virtualservice_destinationhosts.yaml",
        "service-entry-ignore",
        "ServiceEntry host \"*\"",
    ),
    (
        "analyzers/testdata/virtualservice_destinationhosts.yaml",
        "reviews-bogushost",
        "route destination `{}` (tests a null destination)",
    ),
    (
        "analyzers/testdata/virtualservice_gateways.yaml",
        "httpbin-gateway",
        "Gateway without servers",
    ),
    (
        "analyzers/testdata/virtualservice_gateways.yaml",
        "crossnamespace-gw",
        "Gateway without servers",
    ),
    (
        "analyzers/testdata/virtualservice_gateways.yaml",
        "httpbin",
        "VirtualService without http, tcp or tls",
    ),
    (
        "analyzers/testdata/virtualservice_gateways.yaml",
        "httpbin-bogus",
        "VirtualService without http, tcp or tls",
    ),
    (
        "analyzers/testdata/virtualservice_gateways.yaml",
        "httpbin-mesh",
        "host \"*\" bound to mesh, no routes",
    ),
    (
        "analyzers/testdata/virtualservice_gateways.yaml",
        "cross-test",
        "VirtualService without http, tcp or tls",
    ),
    (
        "analyzers/testdata/virtualservice_host_not_found_gateway.yaml",
        "testing-gateway-01-test-04",
        "Gateway servers with duplicate port names",
    ),
    (
        "analyzers/testdata/virtualservice_host_not_found_gateway_beta.yaml",
        "testing-gateway-01-test-04",
        "Gateway servers with duplicate port names",
    ),
    (
        "analyzers/testdata/virtualservice_route_rule_no_effects_ingress.yaml",
        "Service/ratings",
        "Kubernetes Service port with protocol HTTP",
    ),
    (
        "docs-tasks/security/authz-ingress.yaml",
        "ingress-policy@76",
        "`$CLIENT_IP` shell placeholder the task substitutes before applying",
    ),
    (
        "docs-tasks/security/authz-ingress.yaml",
        "ingress-policy@92",
        "`$CLIENT_IP` shell placeholder the task substitutes before applying",
    ),
    (
        "docs-tasks/security/authz-ingress.yaml",
        "ingress-policy@108",
        "`$CLIENT_IP` shell placeholder the task substitutes before applying",
    ),
    (
        "docs-tasks/security/authz-ingress.yaml",
        "ingress-policy@124",
        "`$CLIENT_IP` shell placeholder the task substitutes before applying",
    ),
    (
        "docs-tasks/security/authz-ingress.yaml",
        "ingress-policy@140",
        "`$CLIENT_IP` shell placeholder the task substitutes before applying",
    ),
    (
        "docs-tasks/security/authz-ingress.yaml",
        "ingress-policy@156",
        "`$CLIENT_IP` shell placeholder the task substitutes before applying",
    ),
    (
        "docs-tasks/security/authz-ingress.yaml",
        "ingress-policy@172",
        "`$CLIENT_IP` shell placeholder the task substitutes before applying",
    ),
    (
        "docs-tasks/security/authz-ingress.yaml",
        "ingress-policy@188",
        "`$CLIENT_IP` shell placeholder the task substitutes before applying",
    ),
    (
        "gateway-api-translation/mesh.yaml.golden",
        "tls~tls~0~istio-autogenerated-k8s-gateway",
        "generated by istiod (not validated): SNI host outside the VirtualService hosts",
    ),
    (
        "legacy/analyzers-1.5.0/testdata/mtls-exports.yaml",
        "Policy/default",
        "legacy Policy named default with targets",
    ),
    (
        "legacy/analyzers-1.5.0/testdata/mtls-no-dr.yaml",
        "Policy/default",
        "legacy Policy named default with targets",
    ),
    (
        "legacy/analyzers-1.5.0/testdata/mtls-with-port.yaml",
        "Policy/default",
        "legacy Policy named default with targets",
    ),
    (
        "legacy/analyzers-1.5.0/testdata/policy-with-peerauthentication-crd.yaml",
        "namespace-level-policy",
        "legacy Policy without targets not named default",
    ),
    (
        "legacy/analyzers-1.5.0/testdata/policy-without-peerauthentication-crd.yaml",
        "namespace-level-policy",
        "legacy Policy without targets not named default",
    ),
    (
        "legacy/analyzers-1.5.0/testdata/servicerolebindings.yaml",
        "service-role",
        "ServiceRole without rules",
    ),
    (
        "legacy/analyzers-1.5.0/testdata/servicerolebindings.yaml",
        "test-binding@30",
        "ServiceRoleBinding without roleRef",
    ),
    (
        "pilot/networking/ingress-gateway/configs.yaml",
        "BACKEND",
        "istiod test fixture: ServiceEntry port name `HTTPS` is not a DNS label",
    ),
    (
        "pilot/config/rule-websocket-route.yaml",
        "websocket-route",
        "`http[].websocketUpgrade`, removed from the VirtualService API",
    ),
    (
        "pilot/config/rule-websocket-route.yaml",
        "websocket-route2",
        "`http[].websocketUpgrade`, removed from the VirtualService API",
    ),
    (
        "telemetry/mtls-gateway/istio-mtls-vs.yaml",
        "direct-cnn-through-egress-gateway",
        "unrendered Go template `{{.Namespace}}` in a host",
    ),
];

/// An exception names an object as `name`, `Kind/name` or `name@line` (the document's first
/// line, for files that reuse a name).
fn names_object(id: &str, obj: &plexus_api::Object) -> bool {
    if let Some((name, line)) = id.split_once('@') {
        return name == obj.name && line.parse() == Ok(obj.origin.pos.line);
    }
    match id.split_once('/') {
        Some((kind, name)) => kind == obj.kind && name == obj.name,
        None => id == obj.name,
    }
}

/// Validation sets whose every document is meant to be rejected (`*-invalid.yaml`).
pub fn is_invalid_set(rel: &str) -> bool {
    rel.ends_with("-invalid.yaml")
}

/// Typed decode and semantic checks (this suite's layers; the envelope rules are tested with
/// `validate`): all diagnostics of one object.
fn validate(obj: &plexus_api::Object) -> Vec<String> {
    match kinds::decode(obj) {
        Ok(res) => semantic::check(obj, &res)
            .iter()
            .map(ToString::to_string)
            .collect(),
        Err(d) => vec![d.to_string()],
    }
}

#[test]
fn corpus_valid_objects_decode_and_pass_semantic_checks() {
    let dir = common::corpus_dir();
    let (mut passed, mut excepted) = (0usize, 0usize);
    let mut used = vec![false; INVALID_IN_CORPUS.len()];
    let mut failures = Vec::new();
    for rel in common::plain_yaml_files() {
        if is_invalid_set(&rel) {
            continue;
        }
        for obj in load_file(&dir.join(&rel)).objects {
            if !common::is_served(&obj) {
                continue;
            }
            let problems = validate(&obj);
            let listed = INVALID_IN_CORPUS
                .iter()
                .position(|(f, n, _)| *f == rel && names_object(n, &obj));
            match (problems.is_empty(), listed) {
                (true, None) => passed += 1,
                (false, Some(i)) => {
                    excepted += 1;
                    used[i] = true;
                }
                (false, None) => {
                    failures.extend(problems.into_iter().map(|d| format!("{rel}: {d}")))
                }
                (true, Some(i)) => failures.push(format!(
                    "{rel}: {} {} at line {} is valid but listed as invalid: {}",
                    obj.kind, obj.name, obj.origin.pos.line, INVALID_IN_CORPUS[i].2
                )),
            }
        }
    }
    for (i, used) in used.iter().enumerate() {
        if !used {
            failures.push(format!(
                "exception not found in the corpus: {:?}",
                INVALID_IN_CORPUS[i]
            ));
        }
    }
    println!(
        "corpus: {passed} valid objects decoded and passed semantic checks; {excepted} listed invalid objects rejected; {} failures",
        failures.len()
    );
    assert!(passed > 900, "too few objects found: {passed}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unknown_field_names_path_and_line() {
    let text = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n      weigth: 50\n";
    let loaded = plexus_api::load_str(text, "vs.yaml");
    let err = kinds::decode(&loaded.objects[0]).expect_err("typo must fail");
    assert_eq!(
        err.to_string(),
        "vs.yaml:9:7: error: VirtualService default/r: unknown field \"spec.http[0].route[0].weigth\""
    );
}

#[test]
fn snake_case_aliases_and_enums_decode() {
    let text = "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: r}\nspec:\n  jwtRules:\n  - issuer: x\n    jwks_uri: https://a/b\n";
    let obj = &plexus_api::load_str(text, "ra.yaml").objects[0];
    let Ok(kinds::Resource::RequestAuthentication(ra)) = kinds::decode(obj) else {
        panic!("decode failed");
    };
    assert_eq!(
        ra.jwt_rules[0].jwks_uri_snake.as_deref(),
        Some("https://a/b")
    );
    let text = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: d}\nspec:\n  host: a\n  trafficPolicy: {tls: {mode: ISTIO_MUTUAL}}\n";
    let obj = &plexus_api::load_str(text, "dr.yaml").objects[0];
    let Ok(kinds::Resource::DestinationRule(dr)) = kinds::decode(obj) else {
        panic!("decode failed");
    };
    let mode = dr.traffic_policy.and_then(|p| p.tls).and_then(|t| t.mode);
    assert_eq!(mode, Some(kinds::ClientTlsMode::IstioMutual));
    let json = serde_json::to_value(kinds::ClientTlsMode::IstioMutual).expect("serialize");
    assert_eq!(json, "ISTIO_MUTUAL");
}

#[test]
fn kubernetes_top_level_fields_are_checked() {
    let text = "apiVersion: v1\nkind: Endpoints\nmetadata: {name: e}\nsubsets:\n- addresses: [{ip: 10.0.0.1}]\n  ports: [{port: 80}]\n";
    let obj = &plexus_api::load_str(text, "ep.yaml").objects[0];
    let Ok(kinds::Resource::Endpoints(ep)) = kinds::decode(obj) else {
        panic!("decode failed");
    };
    assert_eq!(ep.subsets[0].addresses[0].ip, "10.0.0.1");
    let text = "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: s}\nspec: {}\n";
    let obj = &plexus_api::load_str(text, "sa.yaml").objects[0];
    let err = kinds::decode(obj).expect_err("ServiceAccount has no spec");
    assert_eq!(err.pos.line, 4);
    assert!(err.message.contains("unknown field \"spec\""), "{err}");
}
