//! Every plain-YAML object of a known kind in the Istio corpus that is meant to be valid decodes
//! into its typed model; the few intentionally broken ones are listed with the reason, and must
//! still fail (so the list stays true).

mod common;

use plexus_api::kinds;
use plexus_api::load_file;

/// Objects in the corpus that are not meant to decode: `(file, object name, why)`.
const DECODE_EXCEPTIONS: &[(&str, &str, &str)] = &[
    (
        "analyzers/testdata/deprecation.yaml",
        "istio-multicluster-egressgateway",
        "EnvoyFilter with `workloadLabels`/`filters`, fields removed from the API (deprecation analyzer input)",
    ),
    (
        "analyzers/testdata/envoy-filter-add-operation.yaml",
        "test-auth-4",
        "EnvoyFilter match with an unknown `app` field (analyzer input, not valid config)",
    ),
    (
        "analyzers/testdata/envoy-filter-add-operation.yaml",
        "test-auth-5",
        "EnvoyFilter match with an unknown `app` field (analyzer input, not valid config)",
    ),
    (
        "pilot/config/rule-websocket-route.yaml",
        "websocket-route",
        "`http[].websocketUpgrade` was removed from the VirtualService API",
    ),
    (
        "pilot/config/rule-websocket-route.yaml",
        "websocket-route2",
        "`http[].websocketUpgrade` was removed from the VirtualService API",
    ),
];

/// Files whose every document is meant to be rejected.
pub fn is_invalid_set(rel: &str) -> bool {
    rel.contains("-invalid")
}

#[test]
fn corpus_objects_decode() {
    let dir = common::corpus_dir();
    let (mut decoded, mut excepted, mut failures) = (0usize, 0usize, Vec::new());
    for rel in common::plain_yaml_files() {
        if is_invalid_set(&rel) {
            continue;
        }
        for obj in load_file(&dir.join(&rel)).objects {
            if !common::is_served(&obj) {
                continue;
            }
            let exception = DECODE_EXCEPTIONS
                .iter()
                .find(|(f, n, _)| *f == rel && *n == obj.name);
            match (kinds::decode(&obj), exception) {
                (Ok(_), None) => decoded += 1,
                (Err(_), Some(_)) => excepted += 1,
                (Err(d), None) => failures.push(format!("{rel}: {d}")),
                (Ok(_), Some((_, _, why))) => {
                    failures.push(format!("{rel}: {} decoded but is listed: {why}", obj.name))
                }
            }
        }
    }
    println!(
        "corpus: {decoded} objects decoded, {excepted} listed exceptions rejected, {} failures",
        failures.len()
    );
    assert!(decoded > 1000, "too few objects found: {decoded}");
    assert_eq!(excepted, DECODE_EXCEPTIONS.len());
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
