//! Which server certificate a handshake gets when a `DownstreamTlsContext` has several, by
//! the rules Envoy documents ("Certificate selection" in its TLS overview):
//!
//! - a certificate's server names are its DNS SANs, or its subject CN when it has no SAN;
//! - with SNI, certificates naming the SNI exactly are tried first, then those whose
//!   `*.rest` wildcard covers it (one label deep); in each group a certificate of the key type
//!   the client prefers (ECDSA when it can verify it, else RSA) wins, else the group's first
//!   RSA certificate for an ECDSA-capable client (the candidate);
//! - nothing fits the SNI: the first certificate, or with
//!   `full_scan_certs_on_sni_mismatch` a scan of every certificate as without SNI;
//! - without SNI every certificate is scanned the same way, then the candidate, then the first.
//!
//! Envoy only knows RSA and ECDSA keys; any non-ECDSA key is treated as RSA here.

use std::sync::Arc;

use rustls::SignatureAlgorithm;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::secret::CertKey;

/// The server names Envoy matches a certificate against SNI with: its DNS SANs, or its
/// subject common name when it has no subject-alt-name extension at all (RFC 6125 6.4.4: a
/// URI or other SAN rules the CN out too, as a differential run against Envoy showed);
/// lower-cased. A leaf that does not parse has none (it can still be the fallback).
pub fn server_names(leaf_der: &[u8]) -> Vec<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, cert)) = X509Certificate::from_der(leaf_der) else {
        return Vec::new();
    };
    match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        Ok(None) => cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .map(str::to_ascii_lowercase)
            .collect(),
        Err(_) => Vec::new(),
    }
}

struct Entry {
    key: Arc<CertifiedKey>,
    names: Vec<String>,
    ecdsa: bool,
}

/// The certificates of one server context, in configuration order.
pub struct BySni {
    certs: Vec<Entry>,
    /// `full_scan_certs_on_sni_mismatch`: when nothing fits the SNI, scan every certificate
    /// as for a client without SNI instead of taking the first.
    full_scan: bool,
}

impl std::fmt::Debug for BySni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BySni({} certificates)", self.certs.len())
    }
}

/// How a certificate suits the client's key-type support.
#[derive(PartialEq, Eq)]
enum Fit {
    /// The key type the client prefers.
    Perfect,
    /// RSA for a client that prefers ECDSA.
    Candidate,
    /// ECDSA the client cannot verify.
    Unfit,
}

impl BySni {
    pub fn new(certs: &[CertKey], full_scan: bool) -> Self {
        let certs = certs
            .iter()
            .map(|c| Entry {
                key: c.key.clone(),
                names: c.names.clone(),
                ecdsa: c.key.key.algorithm() == SignatureAlgorithm::ECDSA,
            })
            .collect();
        BySni { certs, full_scan }
    }

    /// Among certificates with server name `name` (any: `None`), in order: the first perfect
    /// fit, and the first candidate.
    fn scan(
        &self,
        name: Option<&str>,
        fit: &dyn Fn(&Entry) -> Fit,
    ) -> (Option<usize>, Option<usize>) {
        let mut candidate = None;
        let named = |e: &&Entry| name.is_none_or(|n| e.names.iter().any(|x| x == n));
        for (i, e) in self.certs.iter().enumerate().filter(|(_, e)| named(e)) {
            match fit(e) {
                Fit::Perfect => return (Some(i), candidate),
                Fit::Candidate if candidate.is_none() => candidate = Some(i),
                Fit::Candidate | Fit::Unfit => {}
            }
        }
        (None, candidate)
    }

    /// Index of the chosen certificate (`None` only when there is none at all).
    fn choose(
        &self,
        sni: Option<&str>,
        ecdsa_client: bool,
        usable: impl Fn(&Entry) -> bool,
    ) -> Option<usize> {
        let fit = |e: &Entry| match (e.ecdsa, ecdsa_client) {
            (true, _) if usable(e) => Fit::Perfect,
            (true, _) => Fit::Unfit,
            (false, false) => Fit::Perfect,
            (false, true) => Fit::Candidate,
        };
        let first = (!self.certs.is_empty()).then_some(0);
        if let Some(sni) = sni.map(str::to_ascii_lowercase) {
            // An RSA certificate naming the SNI exactly beats a wildcard one of the preferred type.
            let (exact, exact_candidate) = self.scan(Some(&sni), &fit);
            if let Some(i) = exact.or(exact_candidate) {
                return Some(i);
            }
            let wildcard = sni
                .split_once('.')
                .filter(|(label, rest)| !label.is_empty() && !rest.is_empty())
                .map(|(_, rest)| format!("*.{rest}"));
            let (wild, wild_candidate) = match wildcard {
                Some(w) => self.scan(Some(&w), &fit),
                None => (None, None),
            };
            if let Some(i) = wild.or(wild_candidate) {
                return Some(i);
            }
            if !self.full_scan {
                return first;
            }
        }
        let (perfect, candidate) = self.scan(None, &fit);
        perfect.or(candidate).or(first)
    }
}

impl ResolvesServerCert for BySni {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = hello.signature_schemes();
        let ecdsa_client = schemes.iter().any(|s| {
            use rustls::SignatureScheme as S;
            matches!(
                s,
                S::ECDSA_NISTP256_SHA256 | S::ECDSA_NISTP384_SHA384 | S::ECDSA_NISTP521_SHA512
            )
        });
        let usable = |e: &Entry| e.key.key.choose_scheme(schemes).is_some();
        self.choose(hello.server_name(), ecdsa_client, usable)
            .and_then(|i| self.certs.get(i))
            .map(|e| e.key.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::server_names;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn leaf(dns: &[&str], uri: Option<&str>) -> Vec<u8> {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(DnType::CommonName, "Named.Example");
        for d in dns {
            params
                .subject_alt_names
                .push(SanType::DnsName((*d).try_into().expect("dns")));
        }
        if let Some(u) = uri {
            params
                .subject_alt_names
                .push(SanType::URI(u.try_into().expect("uri")));
        }
        let key = KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn dns_sans_name_a_certificate_and_the_common_name_only_without_any_san() {
        assert_eq!(
            server_names(&leaf(&["A.example", "*.b.example"], None)),
            ["a.example", "*.b.example"]
        );
        assert!(server_names(&leaf(&[], Some("spiffe://td/x"))).is_empty());
        assert_eq!(server_names(&leaf(&[], None)), ["named.example"]);
        assert!(server_names(b"not a certificate").is_empty());
    }
}
