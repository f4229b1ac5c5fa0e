//! Key material: Envoy `DataSource`s holding PEM, certificate chains with their private key
//! (`TlsCertificate`), trust roots with subject-alt-name matchers (`CertificateValidationContext`)
//! and the SDS `Secret` that carries either. Errors name the field and never the bytes: key
//! material must not reach logs or NACK messages.

// Deprecated fields are still on the wire; matching them makes setting one an error.
#![allow(deprecated)]

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use rustls::RootCertStore;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::verify::SanMatcher;
use crate::config::{FieldError, FieldResult};
use crate::deny_set;

/// A certificate chain and the private key that signs for it, ready for rustls.
#[derive(Clone)]
pub struct CertKey {
    pub key: Arc<CertifiedKey>,
    /// The leaf's server names for certificate choice by SNI (`sni::server_names`).
    pub names: Vec<String>,
    /// The chain's and the key's DER bytes, only for equality (a re-sent identical secret or
    /// inline certificate must not rebuild configs); never printed.
    chain: Vec<Vec<u8>>,
    key_der: Vec<u8>,
}

impl std::fmt::Debug for CertKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CertKey({} certificates)", self.chain.len())
    }
}

impl PartialEq for CertKey {
    fn eq(&self, other: &Self) -> bool {
        self.chain == other.chain && self.key_der == other.key_der
    }
}

/// Trust roots and SAN matchers of a validation context.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Validation {
    /// DER of each trusted CA certificate (`trusted_ca`).
    pub roots: Vec<Vec<u8>>,
    /// A peer certificate must have a SAN matching one of these (none: any SAN).
    pub sans: Vec<SanMatcher>,
}

impl Validation {
    pub fn root_store(&self) -> Result<Arc<RootCertStore>, String> {
        let mut store = RootCertStore::empty();
        for der in &self.roots {
            store
                .add(CertificateDer::from(der.clone()))
                .map_err(|e| format!("trusted_ca: {e}"))?;
        }
        Ok(Arc::new(store))
    }
}

/// A decoded SDS secret.
#[derive(Debug, Clone, PartialEq)]
pub enum Secret {
    Certificate(CertKey),
    Validation(Validation),
}

impl TryFrom<&tls::Secret> for Secret {
    type Error = FieldError;
    fn try_from(s: &tls::Secret) -> FieldResult<Self> {
        match &s.r#type {
            Some(tls::secret::Type::TlsCertificate(c)) => Ok(Secret::Certificate(
                cert_key(c).map_err(|e| e.within("tls_certificate"))?,
            )),
            Some(tls::secret::Type::ValidationContext(v)) => Ok(Secret::Validation(
                validation(v).map_err(|e| e.within("validation_context"))?,
            )),
            Some(tls::secret::Type::SessionTicketKeys(_)) => {
                Err(FieldError::unsupported("session_ticket_keys"))
            }
            Some(tls::secret::Type::GenericSecret(_)) => {
                Err(FieldError::unsupported("generic_secret"))
            }
            None => Err(FieldError::invalid("type", "a secret needs a type")),
        }
    }
}

/// The bytes of a `DataSource` (inline, file or environment variable).
pub fn data_source(d: Option<&core::DataSource>) -> FieldResult<Vec<u8>> {
    use core::data_source::Specifier;
    let Some(core::DataSource {
        watched_directory,
        specifier,
    }) = d
    else {
        return Err(FieldError::invalid("", "required"));
    };
    deny_set!(watched_directory);
    match specifier {
        Some(Specifier::InlineBytes(b)) => Ok(b.clone()),
        Some(Specifier::InlineString(s)) => Ok(s.clone().into_bytes()),
        Some(Specifier::Filename(f)) => std::fs::read(f)
            .map_err(|e| FieldError::invalid("filename", format!("cannot read {f:?}: {e}"))),
        Some(Specifier::EnvironmentVariable(v)) => std::env::var(v)
            .map(String::into_bytes)
            .map_err(|_| FieldError::invalid("environment_variable", format!("{v} is not set"))),
        None => Err(FieldError::invalid("", "a data source needs a specifier")),
    }
}

/// PEM certificates (at least one).
pub fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate list ({})", pem_error(&e)))?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

/// The kind of a PEM failure, without any of the input.
fn pem_error(e: &rustls_pki_types::pem::Error) -> &'static str {
    use rustls_pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { .. } => "a section has no END line",
        E::IllegalSectionStart { .. } => "malformed BEGIN line",
        E::Base64Decode(_) => "bad base64",
        E::Io(_) => "read error",
        E::NoItemsFound => "no PEM section found",
        _ => "malformed PEM",
    }
}

/// `TlsCertificate`: the chain, the key, and a check that the key belongs to the chain.
pub fn cert_key(c: &tls::TlsCertificate) -> FieldResult<CertKey> {
    let tls::TlsCertificate {
        certificate_chain,
        private_key,
        watched_directory,
        private_key_provider,
        password,
        ocsp_staple,
        signed_certificate_timestamp,
        tls_params,
        pkcs12,
    } = c;
    deny_set!(
        tls_params,
        pkcs12,
        watched_directory,
        private_key_provider,
        password,
        ocsp_staple,
        signed_certificate_timestamp
    );
    let chain_pem =
        data_source(certificate_chain.as_ref()).map_err(|e| e.within("certificate_chain"))?;
    let key_pem = data_source(private_key.as_ref()).map_err(|e| e.within("private_key"))?;
    let chain =
        certificates(&chain_pem).map_err(|e| FieldError::invalid("certificate_chain", e))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        FieldError::invalid(
            "private_key",
            format!("not a PEM private key ({})", pem_error(&e)),
        )
    })?;
    let key_der = key.secret_der().to_vec();
    let provider = super::provider();
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|_| FieldError::invalid("private_key", "unsupported or malformed key"))?;
    let der: Vec<Vec<u8>> = chain.iter().map(|c| c.to_vec()).collect();
    let names = der
        .first()
        .map(|leaf| super::sni::server_names(leaf))
        .unwrap_or_default();
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|_| {
        FieldError::invalid(
            "private_key",
            "does not match the first certificate of certificate_chain",
        )
    })?;
    Ok(CertKey {
        key: Arc::new(certified),
        names,
        chain: der,
        key_der,
    })
}

/// `CertificateValidationContext`: `trusted_ca` and SAN matchers; the rest is rejected.
pub fn validation(v: &tls::CertificateValidationContext) -> FieldResult<Validation> {
    let tls::CertificateValidationContext {
        trusted_ca,
        ca_certificate_provider_instance,
        system_root_certs,
        watched_directory,
        verify_certificate_spki,
        verify_certificate_hash,
        match_typed_subject_alt_names,
        match_subject_alt_names,
        require_signed_certificate_timestamp,
        crl,
        allow_expired_certificate,
        trust_chain_verification,
        custom_validator_config,
        only_verify_leaf_cert_crl,
        max_verify_depth,
        suppress_client_ca_list,
    } = v;
    deny_set!(
        ca_certificate_provider_instance,
        system_root_certs,
        watched_directory,
        verify_certificate_spki,
        verify_certificate_hash,
        require_signed_certificate_timestamp,
        crl,
        allow_expired_certificate,
        trust_chain_verification,
        custom_validator_config,
        only_verify_leaf_cert_crl,
        max_verify_depth,
        suppress_client_ca_list
    );
    let roots = match trusted_ca {
        Some(ds) => {
            let pem = data_source(Some(ds)).map_err(|e| e.within("trusted_ca"))?;
            certificates(&pem)
                .map_err(|e| FieldError::invalid("trusted_ca", e))?
                .iter()
                .map(|c| c.to_vec())
                .collect()
        }
        None => Vec::new(),
    };
    let mut sans = Vec::new();
    for (i, m) in match_typed_subject_alt_names.iter().enumerate() {
        sans.push(
            SanMatcher::typed(m)
                .map_err(|e| e.within(&format!("match_typed_subject_alt_names[{i}]")))?,
        );
    }
    for (i, m) in match_subject_alt_names.iter().enumerate() {
        sans.push(
            SanMatcher::any_type(m)
                .map_err(|e| e.within(&format!("match_subject_alt_names[{i}]")))?,
        );
    }
    let out = Validation { roots, sans };
    out.root_store()
        .map_err(|e| FieldError::invalid("trusted_ca", e))?;
    Ok(out)
}

/// Envoy's merge of a combined validation context: the SDS-provided context's repeated fields
/// are appended to the default's, and its `trusted_ca` replaces the default's when set.
pub fn merge(default: &Validation, dynamic: &Validation) -> Validation {
    Validation {
        roots: if dynamic.roots.is_empty() {
            default.roots.clone()
        } else {
            dynamic.roots.clone()
        },
        sans: default
            .sans
            .iter()
            .chain(dynamic.sans.iter())
            .cloned()
            .collect(),
    }
}
