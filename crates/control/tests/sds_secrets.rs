//! The SDS resources a proxy may ask for: Istio's names, the `-cacert` precedence (a separate
//! Secret wins over `ca.crt` in the credential), the namespace rule, and summaries without keys.

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{Secret, secret};
use plexus_control::secrets::{SecretStore, summary};
use plexus_testkit::tls::{TestCa, generic_secret_yaml, tls_secret_yaml};
use plexus_xds::unpack;

fn store(yaml: &str) -> SecretStore {
    let loaded = plexus_api::load_str(yaml, "secrets.yaml");
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    SecretStore::from_objects(&loaded.objects)
}

fn trusted_ca(s: &Secret) -> Vec<u8> {
    match &s.r#type {
        Some(secret::Type::ValidationContext(v)) => {
            match v.trusted_ca.as_ref().and_then(|d| d.specifier.clone()) {
                Some(
                    envoy_types::pb::envoy::config::core::v3::data_source::Specifier::InlineBytes(
                        b,
                    ),
                ) => b,
                _ => Vec::new(),
            }
        }
        _ => Vec::new(),
    }
}

#[test]
fn names_precedence_and_namespace_rule() {
    let ca = TestCa::new("ca").expect("ca");
    let inner_ca = TestCa::new("inner").expect("ca");
    let separate_ca = TestCa::new("separate").expect("ca");
    let id = ca.issue(&["a.example.com"], false).expect("issue");
    let yaml = [
        tls_secret_yaml("a", "istio-system", &id, Some(&inner_ca.cert_pem)),
        generic_secret_yaml(
            "a-cacert",
            "istio-system",
            None,
            Some(&separate_ca.cert_pem),
        ),
        tls_secret_yaml("b", "istio-system", &id, Some(&inner_ca.cert_pem)),
        tls_secret_yaml("c", "default", &id, None),
    ]
    .join("---\n");
    let s = store(&yaml);
    let sys = s.resources("istio-system");
    let names: Vec<&str> = sys.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "kubernetes://a",
            "kubernetes://a-cacert",
            "kubernetes://b",
            "kubernetes://b-cacert",
            "kubernetes://istio-system/a",
            "kubernetes://istio-system/a-cacert",
            "kubernetes://istio-system/b",
            "kubernetes://istio-system/b-cacert",
        ]
    );
    let a_ca: Secret = unpack(&sys["kubernetes://a-cacert"]).expect("secret");
    assert_eq!(a_ca.name, "kubernetes://a-cacert");
    assert_eq!(trusted_ca(&a_ca), separate_ca.cert_pem.as_bytes());
    let b_ca: Secret = unpack(&sys["kubernetes://b-cacert"]).expect("secret");
    assert_eq!(trusted_ca(&b_ca), inner_ca.cert_pem.as_bytes());
    let a: Secret = unpack(&sys["kubernetes://a"]).expect("secret");
    assert!(matches!(a.r#type, Some(secret::Type::TlsCertificate(_))));
    let def = s.resources("default");
    assert!(def.contains_key("kubernetes://c") && !def.contains_key("kubernetes://a"));
    assert!(s.resources("other").is_empty());
    let shown = summary("kubernetes://a", &sys["kubernetes://a"]).to_string();
    assert!(
        shown.contains("DNSName(a.example.com)") && shown.contains("sha256"),
        "{shown}"
    );
    let key_body = id.key_pem.lines().nth(1).expect("key");
    assert!(
        !shown.contains(key_body) && !shown.contains("PRIVATE KEY"),
        "{shown}"
    );
}
