//! Gateway server TLS (istio-api.md §5, ServerTLSSettings) → `DownstreamTlsContext`:
//! certificates (SDS or files), client certificate validation for MUTUAL and OPTIONAL_MUTUAL
//! (CA, SAN checks), the protocol version range. Settings the Plexus proxy cannot enforce are
//! warned by field.

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use plexus_api::Object;
use plexus_api::kinds::{ServerTlsMode, ServerTlsSettings, TlsProtocol};
use tls::common_tls_context::ValidationContextType;
use tls::subject_alt_name_matcher::SanType;
use tls::tls_parameters::TlsProtocol as Version;

use super::{Ctx, pb};

/// Istio's SDS name scheme for Kubernetes Secrets: `kubernetes://<name>` is the Secret
/// `<name>` in the requesting proxy's namespace.
pub const KUBERNETES_SECRET_PREFIX: &str = "kubernetes://";
/// Suffix of the SDS name of a credential's CA bundle (Istio's `-cacert`).
pub const CA_SUFFIX: &str = "-cacert";

/// The SDS resource name for a `credentialName`, as Istio names it: `kubernetes://` added
/// unless given. Other schemes (`sds://`, `builtin://`, files) are not served by Plexus.
pub fn sds_resource_name(credential: &str) -> Result<String, String> {
    if credential.starts_with(KUBERNETES_SECRET_PREFIX) {
        Ok(credential.to_string())
    } else if credential.contains("://") || credential.starts_with("file-") {
        Err(format!(
            "credential \"{credential}\": only Kubernetes Secrets (kubernetes://) are served"
        ))
    } else {
        Ok(format!("{KUBERNETES_SECRET_PREFIX}{credential}"))
    }
}

/// The TLS settings of one terminating server; `f` is the field path of its `tls`.
pub(super) struct ServerTls<'a> {
    pub obj: &'a Object,
    pub f: String,
    pub t: &'a ServerTlsSettings,
}

impl ServerTls<'_> {
    fn warn(&self, ctx: &Ctx<'_>, field: &str, msg: impl Into<String>) {
        ctx.warn(self.obj, &format!("{}.{field}", self.f), msg);
    }
}

/// Certificates: `credentialName` → SDS secret `kubernetes://<credentialName>` over ADS;
/// `serverCertificate` and `privateKey` → files. MUTUAL and OPTIONAL_MUTUAL validate clients
/// with `caCertificates` (file), `caCertCredentialName`, or the SDS secret
/// `kubernetes://<credentialName>-cacert`; MUTUAL requires a client certificate, OPTIONAL_MUTUAL
/// checks one only when sent. `None` leaves the server out (warned).
pub(super) fn downstream_tls(
    ctx: &Ctx<'_>,
    s: &ServerTls<'_>,
) -> Option<tls::DownstreamTlsContext> {
    let (mut common, resource_names) = certificates(ctx, s)?;
    untranslated_fields(ctx, s);
    common.tls_params = tls_params(ctx, s)?;
    let mode = s.t.mode.unwrap_or_default();
    let require = match mode {
        ServerTlsMode::Mutual => Some(true),
        ServerTlsMode::OptionalMutual => Some(false),
        _ => None,
    };
    if require.is_some() {
        common.validation_context_type = validation(ctx, s, &resource_names)?;
    } else if !s.t.subject_alt_names.is_empty() {
        // As in Istio: without client validation there is no certificate to check.
        s.warn(
            ctx,
            "subjectAltNames",
            "subjectAltNames checks client certificates and is only used with MUTUAL or OPTIONAL_MUTUAL; ignored",
        );
    }
    Some(tls::DownstreamTlsContext {
        common_tls_context: Some(common),
        require_client_certificate: require.map(pb::boolv),
        ..Default::default()
    })
}

/// The server certificates and the SDS names of the credentials they come from.
fn certificates(ctx: &Ctx<'_>, s: &ServerTls<'_>) -> Option<(tls::CommonTlsContext, Vec<String>)> {
    let t = s.t;
    let mut common = tls::CommonTlsContext::default();
    // One certificate source (CEL-validated); two entries give RSA + ECDSA certificates.
    let credentials: Vec<&String> = t
        .credential_name
        .iter()
        .chain(&t.credential_names)
        .collect();
    let files: Vec<(&String, &String)> = match (&t.server_certificate, &t.private_key) {
        (Some(c), Some(k)) => vec![(c, k)],
        _ => t
            .tls_certificates
            .iter()
            .filter_map(|c| Some((c.server_certificate.as_ref()?, c.private_key.as_ref()?)))
            .collect(),
    };
    let mut resource_names = Vec::new();
    for (i, c) in credentials.iter().enumerate() {
        match sds_resource_name(c) {
            Ok(n) => resource_names.push(n),
            Err(why) => {
                let field = if t.credential_name.is_some() {
                    "credentialName".to_string()
                } else {
                    format!("credentialNames[{i}]")
                };
                s.warn(ctx, &field, format!("{why}; server left out"));
                return None;
            }
        }
    }
    common.tls_certificate_sds_secret_configs =
        resource_names.iter().map(|n| sds(n.clone())).collect();
    common.tls_certificates = files
        .iter()
        .map(|(cert, key)| tls::TlsCertificate {
            certificate_chain: Some(file(cert)),
            private_key: Some(file(key)),
            ..Default::default()
        })
        .collect();
    if common.tls_certificate_sds_secret_configs.is_empty() && common.tls_certificates.is_empty() {
        ctx.warn(s.obj, &s.f, "needs credentialName(s), serverCertificate+privateKey or tlsCertificates; server left out");
        return None;
    }
    Some((common, resource_names))
}

/// The client certificate check: trusted CA (file or SDS) plus `subjectAltNames`. With an SDS
/// CA and SANs the context is combined, as Istio sends it. The outer `None` leaves the server
/// out (warned).
fn validation(
    ctx: &Ctx<'_>,
    s: &ServerTls<'_>,
    resource_names: &[String],
) -> Option<Option<ValidationContextType>> {
    let t = s.t;
    let sans: Vec<tls::SubjectAltNameMatcher> = t
        .subject_alt_names
        .iter()
        .flat_map(|n| san_matchers(n))
        .collect();
    if let Some(ca) = &t.ca_certificates {
        return Some(Some(ValidationContextType::ValidationContext(
            tls::CertificateValidationContext {
                trusted_ca: Some(file(ca)),
                match_typed_subject_alt_names: sans,
                ..Default::default()
            },
        )));
    }
    let cred = match &t.ca_cert_credential_name {
        Some(c) => match sds_resource_name(c) {
            Ok(n) => Some(n),
            Err(why) => {
                s.warn(
                    ctx,
                    "caCertCredentialName",
                    format!("{why}; server left out"),
                );
                return None;
            }
        },
        None => resource_names.first().map(|n| format!("{n}{CA_SUFFIX}")),
    };
    Some(cred.map(|c| {
        if sans.is_empty() {
            ValidationContextType::ValidationContextSdsSecretConfig(sds(c))
        } else {
            ValidationContextType::CombinedValidationContext(
                tls::common_tls_context::CombinedCertificateValidationContext {
                    default_validation_context: Some(tls::CertificateValidationContext {
                        match_typed_subject_alt_names: sans,
                        ..Default::default()
                    }),
                    validation_context_sds_secret_config: Some(sds(c)),
                    ..Default::default()
                },
            )
        }
    }))
}

/// Istio sends gateway `subjectAltNames` as untyped exact matchers, which Envoy checks against
/// every SAN kind; one exact matcher per kind keeps that meaning with typed matchers.
fn san_matchers(name: &str) -> Vec<tls::SubjectAltNameMatcher> {
    [
        SanType::Dns,
        SanType::Uri,
        SanType::Email,
        SanType::IpAddress,
    ]
    .into_iter()
    .map(|kind| tls::SubjectAltNameMatcher {
        san_type: kind as i32,
        matcher: pb::string_match(Some(name), None, None),
        ..Default::default()
    })
    .collect()
}

/// `minProtocolVersion`/`maxProtocolVersion` → `tls_params` (unset when both are TLS_AUTO).
/// The proxy speaks TLS 1.2 and 1.3 only: an older minimum is raised to 1.2 (warned), an
/// older maximum leaves the server out (warned). The outer `None` leaves the server out.
fn tls_params(ctx: &Ctx<'_>, s: &ServerTls<'_>) -> Option<Option<tls::TlsParameters>> {
    let min = version(
        ctx,
        s,
        "minProtocolVersion",
        s.t.min_protocol_version,
        "the minimum stays TLSV1_2",
    );
    let max = version(
        ctx,
        s,
        "maxProtocolVersion",
        s.t.max_protocol_version,
        "server left out",
    );
    let max = max?;
    let min = min.unwrap_or(Version::TlsAuto);
    if min == Version::TlsAuto && max == Version::TlsAuto {
        return Some(None);
    }
    Some(Some(tls::TlsParameters {
        tls_minimum_protocol_version: min as i32,
        tls_maximum_protocol_version: max as i32,
        ..Default::default()
    }))
}

/// One protocol version; `None` (warned with `then`) for TLS 1.0/1.1.
fn version(
    ctx: &Ctx<'_>,
    s: &ServerTls<'_>,
    field: &str,
    v: Option<TlsProtocol>,
    then: &str,
) -> Option<Version> {
    match v.unwrap_or_default() {
        TlsProtocol::TlsAuto => Some(Version::TlsAuto),
        TlsProtocol::Tlsv12 => Some(Version::TlSv12),
        TlsProtocol::Tlsv13 => Some(Version::TlSv13),
        old @ (TlsProtocol::Tlsv10 | TlsProtocol::Tlsv11) => {
            let name = if old == TlsProtocol::Tlsv10 {
                "TLSV1_0"
            } else {
                "TLSV1_1"
            };
            s.warn(
                ctx,
                field,
                format!(
                    "{field} {name} is not supported by the Plexus proxy (TLS 1.2 and 1.3 only); {then}"
                ),
            );
            None
        }
    }
}

/// Server TLS settings the Plexus proxy cannot enforce, reported by field.
fn untranslated_fields(ctx: &Ctx<'_>, s: &ServerTls<'_>) {
    let t = s.t;
    for (set, name) in [
        (!t.cipher_suites.is_empty(), "cipherSuites"),
        (!t.ecdh_curves.is_empty(), "ecdhCurves"),
        (
            !t.verify_certificate_spki.is_empty(),
            "verifyCertificateSpki",
        ),
        (
            !t.verify_certificate_hash.is_empty(),
            "verifyCertificateHash",
        ),
        (t.ca_crl.is_some(), "caCrl"),
        (t.insecure_skip_verify.is_some(), "insecureSkipVerify"),
    ] {
        if set {
            s.warn(ctx, name, format!("{name} is not translated yet"));
        }
    }
}

/// An SDS secret fetched over the ADS stream.
fn sds(name: String) -> tls::SdsSecretConfig {
    tls::SdsSecretConfig {
        name,
        sds_config: Some(pb::ads()),
    }
}

fn file(path: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_string())),
        ..Default::default()
    }
}
