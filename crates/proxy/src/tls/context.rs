//! `transport_socket` -> TLS contexts. A listener filter chain may carry a
//! `DownstreamTlsContext`, a cluster an `UpstreamTlsContext`; both hold a `CommonTlsContext`
//! with certificates (inline or SDS over ADS), a validation context (inline, SDS or combined),
//! ALPN and protocol versions. Everything else set is rejected naming the field. Inline PEM is
//! decoded here so a bad certificate NACKs the resource that carries it.

// Deprecated fields are still on the wire; matching them makes setting one an error.
#![allow(deprecated)]

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use prost::Name;

use super::Versions;
use super::secret::{CertKey, Validation, cert_key, validation};
use crate::config::{FieldError, FieldResult, duration, unpack_field};
use crate::deny_set;

/// Envoy's `initial_fetch_timeout` when a `ConfigSource` leaves it unset.
pub const DEFAULT_INITIAL_FETCH_TIMEOUT: Duration = Duration::from_secs(15);

/// An SDS secret fetched over ADS, and how long a listener or cluster waits for its first
/// version before starting without it (`initial_fetch_timeout`; `None`: `0s`, for ever).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdsSecret {
    pub name: String,
    pub initial_fetch_timeout: Option<Duration>,
}

/// Where a certificate/key pair comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum CertSource {
    Inline(CertKey),
    Sds(SdsSecret),
}

/// Where the validation context comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ValidationSource {
    Inline(Validation),
    Sds(SdsSecret),
    /// `combined_validation_context`: the default merged with the SDS secret.
    Combined(Validation, SdsSecret),
}

/// What a `CommonTlsContext` asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Common {
    /// Server side: one per key type, chosen by what the client supports; client side: at
    /// most one.
    pub certs: Vec<CertSource>,
    pub validation: Option<ValidationSource>,
    pub alpn: Vec<String>,
    pub versions: Versions,
}

impl Common {
    /// SDS secrets this context needs.
    pub fn sds_secrets(&self) -> Vec<&SdsSecret> {
        let mut out = Vec::new();
        for c in &self.certs {
            if let CertSource::Sds(s) = c {
                out.push(s);
            }
        }
        if let Some(ValidationSource::Sds(s) | ValidationSource::Combined(_, s)) = &self.validation
        {
            out.push(s);
        }
        out
    }

    /// SDS secret names this context needs.
    pub fn secret_names(&self) -> Vec<String> {
        self.sds_secrets()
            .into_iter()
            .map(|s| s.name.clone())
            .collect()
    }
}

/// A filter chain's TLS termination.
#[derive(Clone)]
pub struct DownstreamTls {
    pub common: Common,
    pub require_client_cert: bool,
    /// With several certificates and an SNI none fits: scan them all instead of taking the
    /// first (`full_scan_certs_on_sni_mismatch`).
    pub full_scan_certs_on_sni_mismatch: bool,
    /// The filter chain's `transport_socket_connect_timeout`: the handshake must finish within
    /// it or the connection is closed (none: no limit, Envoy's default).
    pub handshake_timeout: Option<std::time::Duration>,
    /// Built from `common` and the current secrets; `None` while a secret is missing.
    pub acceptor: Arc<ArcSwapOption<rustls::ServerConfig>>,
}

// The built rustls configs hold private keys: Debug shows only the declarative part.
impl std::fmt::Debug for DownstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownstreamTls")
            .field("common", &self.common)
            .field("require_client_cert", &self.require_client_cert)
            .field(
                "full_scan_certs_on_sni_mismatch",
                &self.full_scan_certs_on_sni_mismatch,
            )
            .field("handshake_timeout", &self.handshake_timeout)
            .field("ready", &self.acceptor.load().is_some())
            .finish()
    }
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("common", &self.common)
            .field("sni", &self.sni)
            .field("ready", &self.connector.load().is_some())
            .finish()
    }
}

impl PartialEq for DownstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.common == other.common
            && self.require_client_cert == other.require_client_cert
            && self.full_scan_certs_on_sni_mismatch == other.full_scan_certs_on_sni_mismatch
            && self.handshake_timeout == other.handshake_timeout
    }
}

/// A cluster's TLS origination.
#[derive(Clone)]
pub struct UpstreamTls {
    pub common: Common,
    /// `sni`; none sends no SNI.
    pub sni: Option<String>,
    /// For HTTP pools: built from `common` and the current secrets, offering the cluster's
    /// HTTP protocol by ALPN when `alpn_protocols` is empty; `None` while a secret is missing.
    pub connector: Arc<ArcSwapOption<rustls::ClientConfig>>,
    /// The same for the TCP proxy, which offers only the configured ALPN.
    pub raw_connector: Arc<ArcSwapOption<rustls::ClientConfig>>,
}

impl PartialEq for UpstreamTls {
    fn eq(&self, other: &Self) -> bool {
        self.common == other.common && self.sni == other.sni
    }
}

const TLS_SOCKET: &str = "envoy.transport_sockets.tls";

/// The `typed_config` of a transport socket, if it is TLS (raw_buffer means none).
fn socket_any(
    ts: &core::TransportSocket,
) -> FieldResult<Option<&envoy_types::pb::google::protobuf::Any>> {
    let core::TransportSocket { name, config_type } = ts;
    match config_type {
        Some(core::transport_socket::ConfigType::TypedConfig(any)) => {
            if any.type_url
                == envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer::type_url()
            {
                return Ok(None);
            }
            Ok(Some(any))
        }
        None if name == "envoy.transport_sockets.raw_buffer" => Ok(None),
        None => Err(FieldError::invalid(
            "typed_config",
            format!("{name}: a typed_config is required"),
        )),
    }
}

/// A filter chain's `transport_socket`, with the chain's `transport_socket_connect_timeout`
/// (which only TLS makes meaningful: a plain socket is connected at once).
pub fn downstream(
    ts: Option<&core::TransportSocket>,
    handshake_timeout: Option<std::time::Duration>,
) -> FieldResult<Option<Arc<DownstreamTls>>> {
    let Some(ts) = ts else { return Ok(None) };
    let Some(any) = socket_any(ts)? else {
        return Ok(None);
    };
    if any.type_url != tls::DownstreamTlsContext::type_url() {
        return Err(FieldError::unsupported(format!(
            "typed_config ({}; only {TLS_SOCKET} with a DownstreamTlsContext)",
            any.type_url
        )));
    }
    let ctx: tls::DownstreamTlsContext = unpack_field(any, "typed_config")?;
    downstream_context(&ctx)
        .map(|d| {
            Some(Arc::new(DownstreamTls {
                handshake_timeout,
                ..d
            }))
        })
        .map_err(|e| e.within("typed_config"))
}

fn downstream_context(c: &tls::DownstreamTlsContext) -> FieldResult<DownstreamTls> {
    let tls::DownstreamTlsContext {
        common_tls_context,
        require_client_certificate,
        require_sni,
        disable_stateful_session_resumption,
        session_timeout,
        ocsp_staple_policy,
        full_scan_certs_on_sni_mismatch,
        prefer_client_ciphers,
        session_ticket_keys_type,
    } = c;
    let require_sni = require_sni.as_ref().is_some_and(|b| b.value);
    deny_set!(
        require_sni,
        disable_stateful_session_resumption,
        session_timeout,
        ocsp_staple_policy,
        prefer_client_ciphers,
        session_ticket_keys_type
    );
    let common =
        common(common_tls_context.as_ref(), true).map_err(|e| e.within("common_tls_context"))?;
    if common.certs.is_empty() {
        return Err(FieldError::invalid(
            "common_tls_context.tls_certificates",
            "a server needs a certificate (tls_certificates or tls_certificate_sds_secret_configs)",
        ));
    }
    let require_client_cert = require_client_certificate.as_ref().is_some_and(|b| b.value);
    if require_client_cert && common.validation.is_none() {
        return Err(FieldError::unsupported(
            "require_client_certificate (without a validation context)",
        ));
    }
    Ok(DownstreamTls {
        common,
        require_client_cert,
        full_scan_certs_on_sni_mismatch: full_scan_certs_on_sni_mismatch
            .as_ref()
            .is_some_and(|b| b.value),
        handshake_timeout: None,
        acceptor: Arc::default(),
    })
}

/// A cluster's `transport_socket`.
pub fn upstream(ts: Option<&core::TransportSocket>) -> FieldResult<Option<Arc<UpstreamTls>>> {
    let Some(ts) = ts else { return Ok(None) };
    let Some(any) = socket_any(ts)? else {
        return Ok(None);
    };
    if any.type_url != tls::UpstreamTlsContext::type_url() {
        return Err(FieldError::unsupported(format!(
            "typed_config ({}; only {TLS_SOCKET} with an UpstreamTlsContext)",
            any.type_url
        )));
    }
    let ctx: tls::UpstreamTlsContext = unpack_field(any, "typed_config")?;
    upstream_context(&ctx)
        .map(|u| Some(Arc::new(u)))
        .map_err(|e| e.within("typed_config"))
}

fn upstream_context(c: &tls::UpstreamTlsContext) -> FieldResult<UpstreamTls> {
    let tls::UpstreamTlsContext {
        common_tls_context,
        sni,
        auto_host_sni,
        auto_sni_san_validation,
        allow_renegotiation,
        max_session_keys,
        enforce_rsa_key_usage,
    } = c;
    deny_set!(
        auto_host_sni,
        auto_sni_san_validation,
        allow_renegotiation,
        max_session_keys,
        enforce_rsa_key_usage
    );
    let common =
        common(common_tls_context.as_ref(), false).map_err(|e| e.within("common_tls_context"))?;
    let sni = (!sni.is_empty()).then(|| sni.clone());
    if let Some(name) = &sni {
        rustls_pki_types::ServerName::try_from(name.as_str())
            .map_err(|_| FieldError::invalid("sni", format!("{name:?} is not a DNS name")))?;
    }
    Ok(UpstreamTls {
        common,
        sni,
        connector: Arc::default(),
        raw_connector: Arc::default(),
    })
}

fn common(c: Option<&tls::CommonTlsContext>, server: bool) -> FieldResult<Common> {
    let Some(c) = c else {
        return Ok(Common {
            certs: Vec::new(),
            validation: None,
            alpn: Vec::new(),
            versions: versions(None, server)?,
        });
    };
    let tls::CommonTlsContext {
        tls_params,
        tls_certificates,
        tls_certificate_sds_secret_configs,
        tls_certificate_provider_instance,
        custom_tls_certificate_selector,
        tls_certificate_certificate_provider,
        tls_certificate_certificate_provider_instance,
        alpn_protocols,
        custom_handshaker,
        key_log,
        validation_context_type,
    } = c;
    deny_set!(
        tls_certificate_provider_instance,
        custom_tls_certificate_selector,
        tls_certificate_certificate_provider,
        tls_certificate_certificate_provider_instance,
        custom_handshaker,
        key_log
    );
    let versions = versions(tls_params.as_ref(), server).map_err(|e| e.within("tls_params"))?;
    // Envoy uses the inline certificates when both are set; Plexus refuses the ambiguity.
    if !tls_certificates.is_empty() && !tls_certificate_sds_secret_configs.is_empty() {
        return Err(FieldError::unsupported(
            "tls_certificate_sds_secret_configs (together with tls_certificates)",
        ));
    }
    let mut certs = Vec::new();
    for (i, c) in tls_certificates.iter().enumerate() {
        let at = format!("tls_certificates[{i}]");
        certs.push(CertSource::Inline(cert_key(c).map_err(|e| e.within(&at))?));
    }
    for (i, s) in tls_certificate_sds_secret_configs.iter().enumerate() {
        let at = format!("tls_certificate_sds_secret_configs[{i}]");
        certs.push(CertSource::Sds(sds(s).map_err(|e| e.within(&at))?));
    }
    if !server && certs.len() > 1 {
        // Envoy: a client context holds at most one certificate.
        return Err(FieldError::invalid(
            "tls_certificates",
            "a client context takes at most one certificate",
        ));
    }
    let validation = validation_source(validation_context_type.as_ref())?;
    Ok(Common {
        certs,
        validation,
        alpn: alpn_protocols.clone(),
        versions,
    })
}

fn validation_source(
    v: Option<&tls::common_tls_context::ValidationContextType>,
) -> FieldResult<Option<ValidationSource>> {
    use tls::common_tls_context::ValidationContextType as V;
    Ok(match v {
        None => None,
        Some(V::ValidationContext(v)) => {
            let v = validation(v).map_err(|e| e.within("validation_context"))?;
            if v.roots.is_empty() {
                // Envoy refuses SAN checks without a CA; Plexus verifies only against one.
                return Err(FieldError::invalid(
                    "validation_context.trusted_ca",
                    "required: peers are verified against trusted_ca",
                ));
            }
            Some(ValidationSource::Inline(v))
        }
        Some(V::ValidationContextSdsSecretConfig(s)) => {
            Some(ValidationSource::Sds(sds(s).map_err(|e| {
                e.within("validation_context_sds_secret_config")
            })?))
        }
        Some(V::CombinedValidationContext(c)) => {
            let tls::common_tls_context::CombinedCertificateValidationContext {
                default_validation_context,
                validation_context_sds_secret_config,
                validation_context_certificate_provider,
                validation_context_certificate_provider_instance,
            } = c;
            deny_set!(
                validation_context_certificate_provider,
                validation_context_certificate_provider_instance
            );
            let at = "combined_validation_context";
            let default = match default_validation_context {
                Some(d) => validation(d)
                    .map_err(|e| e.within(&format!("{at}.default_validation_context")))?,
                None => Validation::default(),
            };
            let name = sds(validation_context_sds_secret_config
                .as_ref()
                .ok_or_else(|| {
                    FieldError::invalid(
                        format!("{at}.validation_context_sds_secret_config"),
                        "required",
                    )
                })?)
            .map_err(|e| e.within(&format!("{at}.validation_context_sds_secret_config")))?;
            Some(ValidationSource::Combined(default, name))
        }
        Some(_) => {
            return Err(FieldError::unsupported(
                "validation_context_certificate_provider",
            ));
        }
    })
}

/// An `SdsSecretConfig`: a name fetched over the ADS stream, with its `initial_fetch_timeout`.
fn sds(s: &tls::SdsSecretConfig) -> FieldResult<SdsSecret> {
    let tls::SdsSecretConfig { name, sds_config } = s;
    if name.is_empty() {
        return Err(FieldError::invalid("name", "required"));
    }
    let Some(core::ConfigSource {
        authorities,
        initial_fetch_timeout,
        resource_api_version,
        config_source_specifier,
    }) = sds_config
    else {
        return Err(FieldError::unsupported(
            "sds_config (unset: static secrets from a bootstrap; Plexus fetches secrets over ADS)",
        ));
    };
    deny_set!(authorities);
    if !matches!(*resource_api_version, 0 | 2) {
        return Err(FieldError::unsupported("sds_config.resource_api_version"));
    }
    // Envoy: unset is 15 s, `0s` waits for ever.
    let initial_fetch_timeout = match initial_fetch_timeout {
        None => Some(DEFAULT_INITIAL_FETCH_TIMEOUT),
        Some(d) => {
            let d = duration(d).map_err(|e| e.within("sds_config.initial_fetch_timeout"))?;
            (!d.is_zero()).then_some(d)
        }
    };
    match config_source_specifier {
        Some(core::config_source::ConfigSourceSpecifier::Ads(_)) => Ok(SdsSecret {
            name: name.clone(),
            initial_fetch_timeout,
        }),
        _ => Err(FieldError::unsupported(
            "sds_config (only ads: secrets come over the ADS stream)",
        )),
    }
}

/// `tls_params`: protocol versions only; Envoy's defaults are TLS 1.2 to 1.3 for servers and
/// TLS 1.2 only for clients.
fn versions(p: Option<&tls::TlsParameters>, server: bool) -> FieldResult<Versions> {
    use tls::tls_parameters::TlsProtocol as P;
    let (min, max) = match p {
        None => (0, 0),
        Some(tls::TlsParameters {
            tls_minimum_protocol_version,
            tls_maximum_protocol_version,
            cipher_suites,
            ecdh_curves,
            signature_algorithms,
            compliance_policies,
        }) => {
            deny_set!(
                cipher_suites,
                ecdh_curves,
                signature_algorithms,
                compliance_policies
            );
            (*tls_minimum_protocol_version, *tls_maximum_protocol_version)
        }
    };
    let level = |v: i32, default: P, field: &str| -> FieldResult<i32> {
        match P::try_from(v) {
            Ok(P::TlsAuto) => Ok(default as i32),
            Ok(P::TlSv12) | Ok(P::TlSv13) => Ok(v),
            Ok(other) => Err(FieldError::unsupported(format!(
                "{field} ({}: Plexus speaks TLS 1.2 and 1.3 only)",
                other.as_str_name()
            ))),
            Err(_) => Err(FieldError::invalid(field, format!("unknown value {v}"))),
        }
    };
    let min = level(min, P::TlSv12, "tls_minimum_protocol_version")?;
    let max_default = if server { P::TlSv13 } else { P::TlSv12 };
    let max = level(max, max_default, "tls_maximum_protocol_version")?;
    if min > max {
        return Err(FieldError::invalid(
            "tls_minimum_protocol_version",
            "is above tls_maximum_protocol_version",
        ));
    }
    Ok(Versions {
        tls12: min <= P::TlSv12 as i32,
        tls13: max >= P::TlSv13 as i32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::Duration as PbDuration;

    fn with_timeout(t: Option<PbDuration>) -> FieldResult<SdsSecret> {
        sds(&tls::SdsSecretConfig {
            name: "s".into(),
            sds_config: Some(core::ConfigSource {
                initial_fetch_timeout: t,
                config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(
                    Default::default(),
                )),
                ..Default::default()
            }),
        })
    }

    fn pb(seconds: i64, nanos: i32) -> Option<PbDuration> {
        Some(PbDuration { seconds, nanos })
    }

    #[test]
    fn initial_fetch_timeout_defaults_to_envoys_15s_and_0s_waits_for_ever() {
        let timeout = |t| with_timeout(t).map(|s| s.initial_fetch_timeout);
        assert_eq!(timeout(None), Ok(Some(Duration::from_secs(15))));
        assert_eq!(timeout(pb(0, 0)), Ok(None));
        assert_eq!(timeout(pb(1, 500)), Ok(Some(Duration::new(1, 500))));
        let negative = with_timeout(pb(-1, 0)).map_err(|e| e.field);
        assert_eq!(
            negative,
            Err("sds_config.initial_fetch_timeout".to_string())
        );
    }
}
