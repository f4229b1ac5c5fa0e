//! Peer certificate checks as Envoy's default certificate validator does them: the chain must
//! lead to a `trusted_ca` root, and when subject-alt-name matchers are configured one SAN of
//! the leaf must match one of them. Envoy does not check an upstream certificate against the
//! SNI it sent unless told to, and without a validation context it accepts any upstream
//! certificate; `ServerVerifier` mirrors both.

use std::net::IpAddr;
use std::sync::Arc;

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::config::{FieldError, FieldResult, StringMatch};

/// Which SAN kinds a matcher looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanKind {
    Dns,
    Uri,
    Email,
    Ip,
    /// `match_subject_alt_names` (deprecated): any of the above.
    Any,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SanMatcher {
    pub kind: SanKind,
    pub matcher: StringMatch,
}

impl SanMatcher {
    pub fn typed(m: &tls::SubjectAltNameMatcher) -> FieldResult<Self> {
        use tls::subject_alt_name_matcher::SanType;
        let tls::SubjectAltNameMatcher {
            san_type,
            matcher,
            oid: _,
        } = m;
        let kind = match SanType::try_from(*san_type) {
            Ok(SanType::Dns) => SanKind::Dns,
            Ok(SanType::Uri) => SanKind::Uri,
            Ok(SanType::Email) => SanKind::Email,
            Ok(SanType::IpAddress) => SanKind::Ip,
            Ok(SanType::OtherName) => return Err(FieldError::unsupported("san_type (OTHER_NAME)")),
            _ => return Err(FieldError::invalid("san_type", "a SAN type is required")),
        };
        Ok(SanMatcher {
            kind,
            matcher: string_matcher(matcher.as_ref()).map_err(|e| e.within("matcher"))?,
        })
    }

    pub fn any_type(m: &matcher::StringMatcher) -> FieldResult<Self> {
        Ok(SanMatcher {
            kind: SanKind::Any,
            matcher: string_matcher(Some(m))?,
        })
    }

    fn matches(&self, san: &San) -> bool {
        let kind_ok = self.kind == SanKind::Any || self.kind == san.kind;
        if !kind_ok {
            return false;
        }
        // RFC 6125 6.4.3: a `*.example.com` DNS SAN stands for one label, for exact matchers.
        if let (SanKind::Dns, StringMatch::Exact(want, _)) = (san.kind, &self.matcher)
            && let Some(suffix) = san.value.strip_prefix("*.")
        {
            return want.split_once('.').is_some_and(|(label, rest)| {
                !label.is_empty() && rest.eq_ignore_ascii_case(suffix)
            });
        }
        self.matcher.matches(&san.value)
    }
}

fn string_matcher(m: Option<&matcher::StringMatcher>) -> FieldResult<StringMatch> {
    let m = m.ok_or_else(|| FieldError::invalid("", "required"))?;
    StringMatch::try_from(m)
}

struct San {
    kind: SanKind,
    value: String,
}

/// The leaf's SANs of the kinds Envoy matches (DNS, URI, email, IP).
fn sans(der: &[u8]) -> Result<Vec<San>, rustls::Error> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding))?;
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for name in &ext.value.general_names {
        let (kind, value) = match name {
            GeneralName::DNSName(d) => (SanKind::Dns, d.to_string()),
            GeneralName::URI(u) => (SanKind::Uri, u.to_string()),
            GeneralName::RFC822Name(e) => (SanKind::Email, e.to_string()),
            GeneralName::IPAddress(b) => match ip(b) {
                Some(ip) => (SanKind::Ip, ip.to_string()),
                None => continue,
            },
            _ => continue,
        };
        out.push(San { kind, value });
    }
    Ok(out)
}

fn ip(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
        _ => None,
    }
}

/// No matchers: any SAN; else one SAN must match one matcher.
fn check_sans(matchers: &[SanMatcher], leaf: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    if matchers.is_empty() {
        return Ok(());
    }
    let sans = sans(leaf)?;
    if sans.iter().any(|s| matchers.iter().any(|m| m.matches(s))) {
        Ok(())
    } else {
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::Other(rustls::OtherError(Arc::new(SanMismatch))),
        ))
    }
}

/// The peer certificate's SANs match none of the configured matchers.
#[derive(Debug)]
struct SanMismatch;

impl std::fmt::Display for SanMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no subject alternative name matches")
    }
}

impl std::error::Error for SanMismatch {}

fn algorithms() -> WebPkiSupportedAlgorithms {
    super::provider().signature_verification_algorithms
}

/// Upstream side: chain to `roots` (if any) and SAN matchers.
#[derive(Debug)]
pub struct ServerVerifier {
    /// `None`: no validation context, every certificate is accepted (Envoy's behaviour).
    pub roots: Option<Arc<RootCertStore>>,
    pub sans: Vec<SanMatcher>,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                algorithms().all,
            )?;
        }
        check_sans(&self.sans, end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        algorithms().supported_schemes()
    }
}

/// Downstream side: rustls' WebPKI client verifier, then the SAN matchers.
#[derive(Debug)]
pub struct ClientVerifier {
    pub inner: Arc<dyn ClientCertVerifier>,
    pub sans: Vec<SanMatcher>,
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    /// As in Envoy, SAN matchers make a client certificate mandatory even when
    /// `require_client_certificate` is false: a client without one cannot match them.
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory() || !self.sans.is_empty()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_sans(&self.sans, end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dns(value: &str) -> San {
        San {
            kind: SanKind::Dns,
            value: value.into(),
        }
    }

    #[test]
    fn dns_wildcard_sans_stand_for_one_label_under_exact_matchers() {
        let m = SanMatcher {
            kind: SanKind::Dns,
            matcher: StringMatch::Exact("api.example.com".into(), false),
        };
        assert!(m.matches(&dns("api.example.com")));
        assert!(m.matches(&dns("*.example.com")));
        assert!(!m.matches(&dns("*.other.com")));
        assert!(!m.matches(&San {
            kind: SanKind::Uri,
            value: "api.example.com".into()
        }));
        let uri = SanMatcher {
            kind: SanKind::Any,
            matcher: StringMatch::Prefix("spiffe://cluster.local/".into(), false),
        };
        assert!(uri.matches(&San {
            kind: SanKind::Uri,
            value: "spiffe://cluster.local/ns/a/sa/b".into()
        }));
    }
}
