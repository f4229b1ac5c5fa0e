//! Gateway server TLS options (istio-api.md §5): OPTIONAL_MUTUAL, client SAN checks, protocol
//! versions, and the settings that stay warned by field.

mod common;

use common::rules::{node, translated};
use envoy_types::pb::envoy::config::core::v3::{data_source, transport_socket};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use plexus_pilot::translate::Generated;
use prost::Message;
use serde_json::json;
use tls::common_tls_context::ValidationContextType;
use tls::subject_alt_name_matcher::SanType;
use tls::tls_parameters::TlsProtocol as V;

fn gateway(tls_yaml: &str) -> Generated {
    let cfg = format!(
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: app}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: 8443, name: https, protocol: HTTPS}}\n    hosts: [\"app/web.example.com\"]\n    tls: {tls_yaml}\n"
    );
    let n = node("router", "app", json!({"istio": "ingressgateway"}), "NONE");
    translated(&cfg, &n)
}

/// The server's TLS context, if its filter chain was generated.
fn server_tls(g: &Generated) -> Option<tls::DownstreamTlsContext> {
    let chain = g
        .listeners
        .iter()
        .flat_map(|l| &l.filter_chains)
        .find(|c| c.transport_socket.is_some())?;
    match chain.transport_socket.as_ref()?.config_type.as_ref()? {
        transport_socket::ConfigType::TypedConfig(any) => {
            Some(tls::DownstreamTlsContext::decode(any.value.as_slice()).expect("tls context"))
        }
    }
}

fn warnings(g: &Generated) -> Vec<String> {
    g.warnings.iter().map(|w| w.message.clone()).collect()
}

const FILES: &str = "serverCertificate: /etc/certs/tls.crt, privateKey: /etc/certs/tls.key";

#[test]
fn optional_mutual_validates_without_requiring_a_certificate() {
    let g = gateway(&format!(
        "{{mode: OPTIONAL_MUTUAL, {FILES}, caCertificates: /etc/certs/ca.crt, subjectAltNames: [client.example.com, \"spiffe://td/ns/a/sa/b\"]}}"
    ));
    assert!(g.warnings.is_empty(), "{:?}", warnings(&g));
    let t = server_tls(&g).expect("OPTIONAL_MUTUAL server translated");
    assert_eq!(t.require_client_certificate.map(|b| b.value), Some(false));
    let Some(ValidationContextType::ValidationContext(v)) =
        t.common_tls_context.and_then(|c| c.validation_context_type)
    else {
        panic!("inline validation context expected");
    };
    let ca = v.trusted_ca.and_then(|d| d.specifier);
    assert_eq!(
        ca,
        Some(data_source::Specifier::Filename("/etc/certs/ca.crt".into()))
    );
    // Each SAN is matched exactly, whatever kind of SAN the client certificate carries it as.
    let got: Vec<(SanType, String)> = v
        .match_typed_subject_alt_names
        .iter()
        .map(|m| {
            let exact = match m.matcher.as_ref().and_then(|s| s.match_pattern.as_ref()) {
                Some(MatchPattern::Exact(e)) => e.clone(),
                other => panic!("exact matcher expected, got {other:?}"),
            };
            (m.san_type(), exact)
        })
        .collect();
    let mut want = Vec::new();
    for san in ["client.example.com", "spiffe://td/ns/a/sa/b"] {
        for kind in [
            SanType::Dns,
            SanType::Uri,
            SanType::Email,
            SanType::IpAddress,
        ] {
            want.push((kind, san.to_string()));
        }
    }
    assert_eq!(got, want);
}

#[test]
fn mutual_requires_a_certificate_and_simple_has_no_validation() {
    let g = gateway(&format!(
        "{{mode: MUTUAL, {FILES}, caCertificates: /etc/certs/ca.crt}}"
    ));
    let t = server_tls(&g).expect("MUTUAL server");
    assert_eq!(t.require_client_certificate.map(|b| b.value), Some(true));
    let v = t.common_tls_context.and_then(|c| c.validation_context_type);
    assert!(
        matches!(v, Some(ValidationContextType::ValidationContext(ref c)) if c.match_typed_subject_alt_names.is_empty())
    );

    let g = gateway(&format!(
        "{{mode: SIMPLE, {FILES}, subjectAltNames: [client.example.com]}}"
    ));
    let t = server_tls(&g).expect("SIMPLE server");
    assert_eq!(t.require_client_certificate, None);
    assert!(
        t.common_tls_context
            .expect("common")
            .validation_context_type
            .is_none()
    );
    assert_eq!(
        warnings(&g),
        [
            "subjectAltNames checks client certificates and is only used with MUTUAL or OPTIONAL_MUTUAL; ignored"
        ]
    );
}

/// min, max, expected tls_params (min, max), server kept, expected warning (empty: none).
type VersionCase = (
    &'static str,
    &'static str,
    Option<(V, V)>,
    bool,
    &'static str,
);

#[test]
fn protocol_versions() {
    let cases: [VersionCase; 7] = [
        ("TLS_AUTO", "TLS_AUTO", None, true, ""),
        (
            "TLSV1_2",
            "TLS_AUTO",
            Some((V::TlSv12, V::TlsAuto)),
            true,
            "",
        ),
        (
            "TLSV1_3",
            "TLS_AUTO",
            Some((V::TlSv13, V::TlsAuto)),
            true,
            "",
        ),
        (
            "TLS_AUTO",
            "TLSV1_2",
            Some((V::TlsAuto, V::TlSv12)),
            true,
            "",
        ),
        ("TLSV1_2", "TLSV1_3", Some((V::TlSv12, V::TlSv13)), true, ""),
        (
            "TLSV1_0",
            "TLSV1_3",
            Some((V::TlsAuto, V::TlSv13)),
            true,
            "minProtocolVersion TLSV1_0 is not supported by the Plexus proxy (TLS 1.2 and 1.3 only); the minimum stays TLSV1_2",
        ),
        (
            "TLSV1_0",
            "TLSV1_1",
            None,
            false,
            "maxProtocolVersion TLSV1_1 is not supported by the Plexus proxy (TLS 1.2 and 1.3 only); server left out",
        ),
    ];
    for (min, max, params, kept, warning) in cases {
        let g = gateway(&format!(
            "{{mode: SIMPLE, {FILES}, minProtocolVersion: {min}, maxProtocolVersion: {max}}}"
        ));
        let case = format!("min {min} max {max}");
        let t = server_tls(&g);
        assert_eq!(t.is_some(), kept, "{case}");
        if let Some(t) = t {
            let got = t.common_tls_context.and_then(|c| c.tls_params).map(|p| {
                (
                    p.tls_minimum_protocol_version(),
                    p.tls_maximum_protocol_version(),
                )
            });
            assert_eq!(got, params, "{case}");
        }
        let w = warnings(&g);
        if warning.is_empty() {
            assert!(w.is_empty(), "{case}: {w:?}");
        } else {
            assert!(w.iter().any(|m| m == warning), "{case}: {w:?}");
        }
    }
}

#[test]
fn unenforced_settings_are_warned_by_field() {
    let g = gateway(&format!(
        "{{mode: MUTUAL, {FILES}, caCertificates: /etc/certs/ca.crt, caCrl: /etc/certs/crl.pem, cipherSuites: [ECDHE-RSA-AES128-GCM-SHA256], ecdhCurves: [P-256], verifyCertificateSpki: [abc], verifyCertificateHash: [def], insecureSkipVerify: true}}"
    ));
    assert!(server_tls(&g).is_some());
    let w = warnings(&g);
    for field in [
        "cipherSuites",
        "ecdhCurves",
        "verifyCertificateSpki",
        "verifyCertificateHash",
        "caCrl",
        "insecureSkipVerify",
    ] {
        let want = format!("{field} is not translated yet");
        assert!(w.contains(&want), "{want} missing: {w:?}");
    }
    assert_eq!(w.len(), 6, "{w:?}");
}
