//! Kubernetes Secrets as TLS credentials, the way Istio reads a gateway's `credentialName`:
//! a `kubernetes.io/tls` Secret (`tls.crt`, `tls.key`, optional `ca.crt`) or the generic form
//! (`cert`, `key`, `cacert`), values from `data` (base64) or `stringData` (plain; it wins, as in
//! Kubernetes). A CA-only Secret (`cacert`/`ca.crt` alone) is the `<name>-cacert` form for
//! MUTUAL gateways; CRLs (`ca.crl`/`crl`) travel with the CA.
//!
//! Validation is strict — PEM that parses, X.509 certificates, a private key rustls can use
//! that matches the first certificate — so a broken Secret is rejected at load time instead of
//! being NACKed by every gateway. Errors name the field and never quote a value; the key's
//! bytes live in [`KeyPem`], whose `Debug` is redacted.

use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

use crate::kinds::k8s::Secret;

/// The Kubernetes TLS Secret type.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";

/// PEM private key bytes. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPem(pub Vec<u8>);

impl std::fmt::Debug for KeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPem(<redacted>)")
    }
}

/// What a Secret holds for TLS, all PEM.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credential {
    /// Certificate chain and its private key (absent in a CA-only Secret).
    pub identity: Option<(Vec<u8>, KeyPem)>,
    /// Trusted CA certificates for client validation.
    pub ca: Option<Vec<u8>>,
    pub crl: Option<Vec<u8>>,
}

/// Why a Secret is not a usable credential: the field (`data[tls.key]`) and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialError {
    pub field: String,
    pub message: String,
}

/// One decoded value and the field it came from.
struct Value {
    field: String,
    bytes: Vec<u8>,
}

fn invalid(field: &str, why: &str) -> CredentialError {
    CredentialError {
        field: field.to_string(),
        message: format!("Invalid value: {why}"),
    }
}

/// `key` of the Secret, decoded: `stringData` first, then `data` (base64).
fn value(s: &Secret, key: &str) -> Result<Option<Value>, CredentialError> {
    if let Some(v) = s.string_data.get(key) {
        return Ok(Some(Value {
            field: format!("stringData[{key}]"),
            bytes: v.as_bytes().to_vec(),
        }));
    }
    let Some(v) = s.data.get(key) else {
        return Ok(None);
    };
    let field = format!("data[{key}]");
    // The decoder's own error quotes the offending byte: a key's byte must not be logged.
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.trim())
        .map_err(|_| invalid(&field, "not valid base64"))?;
    Ok(Some(Value { field, bytes }))
}

fn first(s: &Secret, keys: &[&str]) -> Result<Option<Value>, CredentialError> {
    for k in keys {
        if let Some(v) = value(s, k)? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

/// Read `s` as a TLS credential. `Ok(None)`: the Secret holds no TLS keys at all (some other
/// Secret, not served).
pub fn from_secret(s: &Secret) -> Result<Option<Credential>, CredentialError> {
    let is_tls_type = s.type_.as_deref() == Some(TLS_SECRET_TYPE);
    let has = |k: &str| s.data.contains_key(k) || s.string_data.contains_key(k);
    let (cert_key, key_key) = if has("tls.crt") || has("tls.key") || is_tls_type {
        ("tls.crt", "tls.key")
    } else {
        ("cert", "key")
    };
    if has("tls.ocsp-staple") {
        let field = if s.string_data.contains_key("tls.ocsp-staple") {
            "stringData[tls.ocsp-staple]"
        } else {
            "data[tls.ocsp-staple]"
        };
        return Err(CredentialError {
            field: field.into(),
            message: "OCSP stapling is not supported by Plexus yet".into(),
        });
    }
    let cert = value(s, cert_key)?;
    let key = value(s, key_key)?;
    let ca = first(s, &["cacert", "ca.crt"])?;
    let crl = first(s, &["crl", "ca.crl"])?;
    let identity = match (cert, key) {
        (Some(c), Some(k)) => Some(check_identity(&c, &k)?),
        (None, None) => None,
        (Some(_), None) => return Err(required(key_key)),
        (None, Some(_)) => return Err(required(cert_key)),
    };
    if identity.is_none() && is_tls_type {
        return Err(required(cert_key));
    }
    if let Some(ca) = &ca {
        certificates(ca)?;
    }
    if let Some(crl) = &crl {
        let n = CertificateRevocationListDer::pem_slice_iter(&crl.bytes)
            .try_fold(0usize, |n, r| r.map(|_| n + 1))
            .map_err(|_| invalid(&crl.field, "not a PEM X509 CRL"))?;
        if n == 0 {
            return Err(invalid(&crl.field, "no PEM X509 CRL found"));
        }
    }
    if identity.is_none() && ca.is_none() {
        return Ok(None);
    }
    Ok(Some(Credential {
        identity,
        ca: ca.map(|v| v.bytes),
        crl: crl.map(|v| v.bytes),
    }))
}

fn required(key: &str) -> CredentialError {
    CredentialError {
        field: format!("data[{key}]"),
        message: "Required value".into(),
    }
}

/// Every PEM certificate of `v`, each parsed as X.509; at least one.
fn certificates(v: &Value) -> Result<Vec<CertificateDer<'static>>, CredentialError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&v.bytes)
        .collect::<Result<_, _>>()
        .map_err(|_| invalid(&v.field, "not PEM"))?;
    if certs.is_empty() {
        return Err(invalid(&v.field, "no PEM CERTIFICATE found"));
    }
    for (i, c) in certs.iter().enumerate() {
        if x509_parser::parse_x509_certificate(c).is_err() {
            return Err(invalid(
                &v.field,
                &format!("certificate {} is not valid X.509", i + 1),
            ));
        }
    }
    Ok(certs)
}

/// The chain parses, the key is a private key rustls (aws-lc-rs) can sign with, and its public
/// key is the first certificate's.
fn check_identity(cert: &Value, key: &Value) -> Result<(Vec<u8>, KeyPem), CredentialError> {
    let certs = certificates(cert)?;
    let der = PrivateKeyDer::from_pem_slice(&key.bytes)
        .map_err(|_| invalid(&key.field, "no PEM private key found"))?;
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&der)
        .map_err(|_| invalid(&key.field, "not a usable RSA, ECDSA or Ed25519 private key"))?;
    let leaf_spki = x509_parser::parse_x509_certificate(&certs[0])
        .map(|(_, c)| c.tbs_certificate.subject_pki.raw.to_vec())
        .map_err(|_| invalid(&cert.field, "certificate 1 is not valid X.509"))?;
    if let Some(public) = signing.public_key()
        && public.as_ref() != leaf_spki.as_slice()
    {
        return Err(invalid(
            &key.field,
            &format!(
                "private key does not match the first certificate of {}",
                cert.field
            ),
        ));
    }
    Ok((cert.bytes.clone(), KeyPem(key.bytes.clone())))
}

/// What may be shown about a certificate (names, expiry, fingerprint): never key material.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CertInfo {
    pub sans: Vec<String>,
    pub not_after: String,
    /// SHA-256 of the DER certificate, hex.
    pub sha256: String,
}

/// Describe every certificate of a PEM bundle (those that do not parse are left out).
pub fn describe(pem: &[u8]) -> Vec<CertInfo> {
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .filter_map(|der| {
            let (_, c) = x509_parser::parse_x509_certificate(&der).ok()?;
            let sans = c
                .subject_alternative_name()
                .ok()
                .flatten()
                .map(|ext| {
                    ext.value
                        .general_names
                        .iter()
                        .map(|n| n.to_string())
                        .collect()
                })
                .unwrap_or_default();
            let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &der);
            Some(CertInfo {
                sans,
                not_after: c.validity().not_after.to_string(),
                sha256: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
            })
        })
        .collect()
}
