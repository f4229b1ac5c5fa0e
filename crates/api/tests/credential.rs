//! Secrets as gateway credentials: what `plexus validate` and the control plane accept, and
//! the errors (object, field, no key material) for what they reject.

use base64::Engine;
use plexus_api::credential::{self, Credential};
use plexus_api::kinds::{self, Resource};
use plexus_api::{Options, load_str, validate_object};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

struct Pair {
    cert: String,
    key: String,
}

fn ca() -> (Pair, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("ca");
    let pair = Pair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    };
    (pair, Issuer::new(params, key))
}

fn leaf(issuer: &Issuer<'static, KeyPair>, host: &str) -> Pair {
    let key = KeyPair::generate().expect("key");
    let params = CertificateParams::new(vec![host.to_string()]).expect("params");
    let cert = params.signed_by(&key, issuer).expect("leaf");
    Pair {
        cert: cert.pem(),
        key: key.serialize_pem(),
    }
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn secret_yaml(ty: &str, data: &[(&str, String)], string_data: &[(&str, String)]) -> String {
    let mut y = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: cred\n  namespace: istio-system\ntype: {ty}\n"
    );
    if !data.is_empty() {
        y.push_str("data:\n");
        for (k, v) in data {
            y.push_str(&format!("  {k}: {v}\n"));
        }
    }
    if !string_data.is_empty() {
        y.push_str("stringData:\n");
        for (k, v) in string_data {
            let indented = v.replace('\n', "\n    ");
            y.push_str(&format!("  {k}: |\n    {}\n", indented.trim_end()));
        }
    }
    y
}

/// Validation errors as printed, and the decoded credential when valid.
fn check(yaml: &str) -> (Vec<String>, Option<Credential>) {
    let loaded = load_str(yaml, "secret.yaml");
    assert!(loaded.diagnostics.is_empty(), "{:?}", loaded.diagnostics);
    let obj = &loaded.objects[0];
    let errors: Vec<String> = validate_object(obj, Options::default())
        .iter()
        .map(|d| d.to_string())
        .collect();
    let cred = match kinds::decode(obj) {
        Ok(Resource::Secret(s)) => credential::from_secret(&s).ok().flatten(),
        _ => None,
    };
    (errors, cred)
}

#[test]
fn tls_secret_from_data_and_generic_from_string_data() {
    let (ca, issuer) = ca();
    let server = leaf(&issuer, "bookinfo.example.com");
    let yaml = secret_yaml(
        "kubernetes.io/tls",
        &[
            ("tls.crt", b64(&server.cert)),
            ("tls.key", b64(&server.key)),
            ("ca.crt", b64(&ca.cert)),
        ],
        &[],
    );
    let (errors, cred) = check(&yaml);
    assert!(errors.is_empty(), "{errors:?}");
    let cred = cred.expect("credential");
    assert!(cred.identity.is_some() && cred.ca.is_some());
    let yaml = secret_yaml(
        "Opaque",
        &[],
        &[("cert", server.cert.clone()), ("key", server.key.clone())],
    );
    let (errors, cred) = check(&yaml);
    assert!(errors.is_empty(), "{errors:?}");
    let cred = cred.expect("credential");
    let (cert, _) = cred.identity.expect("identity");
    let info = credential::describe(&cert);
    assert_eq!(
        info[0].sans,
        vec!["DNSName(bookinfo.example.com)".to_string()]
    );
    assert_eq!(info[0].sha256.len(), 64);
}

#[test]
fn ca_only_and_unrelated_secrets_are_accepted() {
    let (ca, _) = ca();
    let (errors, cred) = check(&secret_yaml("Opaque", &[("cacert", b64(&ca.cert))], &[]));
    assert!(errors.is_empty(), "{errors:?}");
    let cred = cred.expect("CA-only credential");
    assert!(cred.identity.is_none() && cred.ca.is_some());
    let (errors, cred) = check(&secret_yaml("Opaque", &[("password", b64("hunter2"))], &[]));
    assert!(errors.is_empty(), "{errors:?}");
    assert!(cred.is_none());
}

#[test]
fn broken_secrets_are_rejected_naming_the_field_without_key_material() {
    let (_, issuer) = ca();
    let a = leaf(&issuer, "a.example.com");
    let b = leaf(&issuer, "b.example.com");
    let key_line = a.key.lines().nth(1).expect("key body").to_string();
    let cases: Vec<(String, &str)> = vec![
        (
            secret_yaml(
                "kubernetes.io/tls",
                &[
                    ("tls.crt", b64(&a.cert)),
                    ("tls.key", "\"not*base64\"".into()),
                ],
                &[],
            ),
            "data[tls.key]: Invalid value: not valid base64",
        ),
        (
            secret_yaml(
                "kubernetes.io/tls",
                &[("tls.crt", b64("hello")), ("tls.key", b64(&a.key))],
                &[],
            ),
            "data[tls.crt]: Invalid value: no PEM CERTIFICATE found",
        ),
        (
            secret_yaml(
                "kubernetes.io/tls",
                &[("tls.crt", b64(&a.cert)), ("tls.key", b64(&b.key))],
                &[],
            ),
            "data[tls.key]: Invalid value: private key does not match the first certificate of data[tls.crt]",
        ),
        (
            secret_yaml("kubernetes.io/tls", &[("tls.crt", b64(&a.cert))], &[]),
            "data[tls.key]: Required value",
        ),
        (
            secret_yaml("Opaque", &[], &[("key", a.key.clone())]),
            "data[cert]: Required value",
        ),
    ];
    for (yaml, want) in cases {
        let (errors, cred) = check(&yaml);
        assert!(cred.is_none());
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("Secret istio-system/cred: ") && errors[0].ends_with(want),
            "{} does not end with {want}",
            errors[0]
        );
        assert!(
            !errors[0].contains(&key_line),
            "key material in {}",
            errors[0]
        );
    }
}

#[test]
fn debug_output_has_no_key_material() {
    let (_, issuer) = ca();
    let a = leaf(&issuer, "a.example.com");
    let yaml = secret_yaml(
        "Opaque",
        &[],
        &[("cert", a.cert.clone()), ("key", a.key.clone())],
    );
    let loaded = load_str(&yaml, "secret.yaml");
    let Ok(Resource::Secret(s)) = kinds::decode(&loaded.objects[0]) else {
        panic!("not a Secret");
    };
    let key_line = a.key.lines().nth(1).expect("key body");
    let cred = credential::from_secret(&s)
        .expect("valid")
        .expect("credential");
    for text in [format!("{s:?}"), format!("{cred:?}")] {
        assert!(!text.contains(key_line), "{text}");
    }
}
