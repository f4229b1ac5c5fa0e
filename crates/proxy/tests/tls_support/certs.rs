//! TLS test helpers for certificate choice and SDS `initial_fetch_timeout`: SDS configs with
//! a timeout, SNI-matched listeners, a client that takes any server certificate, and the
//! certificate set whose choice by SNI and key type the tests and differential scenarios check.

use std::sync::Arc;

use envoy_types::pb::envoy::config::listener::v3 as l;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use rustls::pki_types::{CertificateDer, ServerName};

use super::{
    Ca, ClientOpts, Leaf, common, downstream_socket, routes_to, sds, server_ctx, tls_certificate,
};
use crate::common::http_listener_inline;

/// Accepts every server certificate but still checks the handshake signatures.
#[derive(Debug)]
pub(super) struct AnyServerCert(pub(super) Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServerCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `sds(name)` with `initial_fetch_timeout` set (zero: wait for ever).
pub fn sds_waiting(name: &str, timeout: std::time::Duration) -> tls::SdsSecretConfig {
    let mut s = sds(name);
    if let Some(cs) = s.sds_config.as_mut() {
        cs.initial_fetch_timeout = Some(envoy_types::pb::google::protobuf::Duration {
            seconds: i64::try_from(timeout.as_secs()).expect("seconds"),
            nanos: i32::try_from(timeout.subsec_nanos()).expect("nanos"),
        });
    }
    s
}

/// A server context whose one certificate comes from `secret`.
pub fn sds_server(secret: tls::SdsSecretConfig) -> tls::DownstreamTlsContext {
    let mut c = common(None, None, &[], None);
    c.tls_certificate_sds_secret_configs = vec![secret];
    server_ctx(c, false)
}

/// A listener with the TLS inspector whose chains are picked by SNI:
/// `(server name, TLS context, cluster)` each, HTTP to the cluster.
pub fn sni_listener(name: &str, chains: Vec<(&str, tls::DownstreamTlsContext, &str)>) -> Any {
    use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
    let mut li: l::Listener =
        plexus_xds::unpack(&http_listener_inline(name, routes_to("a"))).expect("listener");
    li.filter_chains = chains
        .into_iter()
        .map(|(sni, ctx, cluster)| {
            let one: l::Listener =
                plexus_xds::unpack(&http_listener_inline(name, routes_to(cluster)))
                    .expect("listener");
            l::FilterChain {
                filter_chain_match: Some(l::FilterChainMatch {
                    server_names: vec![sni.into()],
                    ..Default::default()
                }),
                transport_socket: Some(downstream_socket(ctx)),
                ..one.filter_chains[0].clone()
            }
        })
        .collect();
    li.listener_filters = vec![l::ListenerFilter {
        name: "envoy.filters.listener.tls_inspector".into(),
        config_type: Some(l::listener_filter::ConfigType::TypedConfig(pack_any(
            TlsInspector::default(),
        ))),
        ..Default::default()
    }];
    pack_any(li)
}

/// A client that takes whatever certificate the server picks; `sni` empty sends none.
pub fn any_cert_client(sni: &str, rsa_only: bool) -> ClientOpts {
    ClientOpts {
        sni: if sni.is_empty() {
            "127.0.0.1".into()
        } else {
            sni.into()
        },
        rsa_only,
        any_server_cert: true,
        ..Default::default()
    }
}

/// The certificates of the SNI-choice checks, in configuration order, and the context
/// holding them inline.
pub struct Choice {
    pub rsa_a: Leaf,
    pub ecdsa_a: Leaf,
    pub ecdsa_wild_b: Leaf,
    pub rsa_c: Leaf,
    /// RSA, named exactly `d.b.example`, which `*.b.example` also covers.
    pub rsa_d: Leaf,
    /// No SAN at all: its subject CN `leaf` is its server name.
    pub ecdsa_cn: Leaf,
    /// A URI SAN only: its CN `leaf` does not count (Envoy, RFC 6125 6.4.4).
    pub ecdsa_uri: Leaf,
}

impl Choice {
    pub fn new(ca: &Ca) -> Choice {
        Choice {
            rsa_a: ca.leaf_rsa(&["a.example"]),
            ecdsa_a: ca.leaf(&["a.example"], &[]),
            ecdsa_wild_b: ca.leaf(&["*.b.example"], &[]),
            rsa_c: ca.leaf_rsa(&["c.example"]),
            rsa_d: ca.leaf_rsa(&["d.b.example"]),
            ecdsa_cn: ca.leaf(&[], &[]),
            ecdsa_uri: ca.leaf(&[], &["spiffe://td/uri-only"]),
        }
    }

    /// `context()` with `full_scan_certs_on_sni_mismatch`.
    pub fn context_full_scan(&self) -> tls::DownstreamTlsContext {
        tls::DownstreamTlsContext {
            full_scan_certs_on_sni_mismatch: Some(envoy_types::pb::google::protobuf::BoolValue {
                value: true,
            }),
            ..self.context()
        }
    }

    /// With `full_scan_certs_on_sni_mismatch`: `(check, SNI, RSA-only client, certificate)`.
    pub fn full_scan_cases(&self) -> Vec<(&'static str, &'static str, bool, &Leaf)> {
        vec![
            (
                "full scan: no name matches, ECDSA client",
                "other.example",
                false,
                &self.ecdsa_a,
            ),
            (
                "full scan: no name matches, RSA-only client",
                "other.example",
                true,
                &self.rsa_a,
            ),
            (
                "full scan: a matching name still wins",
                "c.example",
                false,
                &self.rsa_c,
            ),
        ]
    }

    pub fn context(&self) -> tls::DownstreamTlsContext {
        let mut c = common(None, None, &[], None);
        c.tls_certificates = [
            &self.rsa_a,
            &self.ecdsa_a,
            &self.ecdsa_wild_b,
            &self.rsa_c,
            &self.rsa_d,
            &self.ecdsa_uri,
            &self.ecdsa_cn,
        ]
        .into_iter()
        .map(tls_certificate)
        .collect();
        server_ctx(c, false)
    }

    /// `(check, SNI ("" for none), RSA-only client, certificate served)`, Envoy's rules.
    pub fn cases(&self) -> Vec<(&'static str, &'static str, bool, &Leaf)> {
        vec![
            (
                "exact name, ECDSA client",
                "a.example",
                false,
                &self.ecdsa_a,
            ),
            (
                "exact name, RSA-only client",
                "a.example",
                true,
                &self.rsa_a,
            ),
            ("wildcard name", "x.b.example", false, &self.ecdsa_wild_b),
            (
                "wildcard covers one label only",
                "y.x.b.example",
                false,
                &self.rsa_a,
            ),
            (
                "RSA for the name beats ECDSA elsewhere",
                "c.example",
                false,
                &self.rsa_c,
            ),
            (
                "exact RSA beats wildcard ECDSA",
                "d.b.example",
                false,
                &self.rsa_d,
            ),
            (
                "only an unusable ECDSA names it: the first",
                "x.b.example",
                true,
                &self.rsa_a,
            ),
            (
                "no name matches: the first, whatever its key",
                "other.example",
                false,
                &self.rsa_a,
            ),
            (
                "common name of a certificate without SANs, not of one with a URI SAN",
                "leaf",
                false,
                &self.ecdsa_cn,
            ),
            ("no SNI, ECDSA client", "", false, &self.ecdsa_a),
            ("no SNI, RSA-only client", "", true, &self.rsa_a),
        ]
    }
}
