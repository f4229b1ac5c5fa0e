//! rustls configs from a TLS context and the secrets at hand. The xDS handler calls `bind_*`
//! when a listener or cluster is accepted and again whenever secrets change; the data path
//! only loads the config last stored. A context whose secrets have not all arrived gets no
//! config: its listener or cluster is warming, as in Envoy.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ServerConfig};

use super::context::{CertSource, Common, DownstreamTls, SdsSecret, UpstreamTls, ValidationSource};
use super::secret::{CertKey, Secret, Validation, merge};
use super::verify::{ClientVerifier, ServerVerifier};

/// SDS secrets by name.
pub type Secrets = BTreeMap<String, Arc<Secret>>;

/// Why a context has no config yet: a secret is missing or is of the wrong kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReady(pub String);

fn cert(src: &CertSource, secrets: &Secrets) -> Result<CertKey, NotReady> {
    match src {
        CertSource::Inline(c) => Ok(c.clone()),
        CertSource::Sds(SdsSecret { name, .. }) => match secrets.get(name).map(|s| &**s) {
            Some(Secret::Certificate(c)) => Ok(c.clone()),
            Some(Secret::Validation(_)) => Err(NotReady(format!(
                "secret {name:?} is a validation context, not a certificate"
            ))),
            None => Err(NotReady(format!("waiting for secret {name:?}"))),
        },
    }
}

fn validation(src: &ValidationSource, secrets: &Secrets) -> Result<Validation, NotReady> {
    let named = |name: &str| match secrets.get(name).map(|s| &**s) {
        Some(Secret::Validation(v)) => Ok(v.clone()),
        Some(Secret::Certificate(_)) => Err(NotReady(format!(
            "secret {name:?} is a certificate, not a validation context"
        ))),
        None => Err(NotReady(format!("waiting for secret {name:?}"))),
    };
    match src {
        ValidationSource::Inline(v) => Ok(v.clone()),
        ValidationSource::Sds(s) => named(&s.name),
        ValidationSource::Combined(default, s) => Ok(merge(default, &named(&s.name)?)),
    }
}

fn alpn(common: &Common) -> Vec<Vec<u8>> {
    common.alpn.iter().map(|p| p.as_bytes().to_vec()).collect()
}

/// A server config for `tls`, or why there is none yet.
pub fn server_config(tls: &DownstreamTls, secrets: &Secrets) -> Result<ServerConfig, NotReady> {
    let common = &tls.common;
    let certs = common
        .certs
        .iter()
        .map(|src| cert(src, secrets))
        .collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err(NotReady("no certificate".into()));
    }
    let builder = ServerConfig::builder_with_provider(super::provider())
        .with_protocol_versions(&common.versions.list())
        .map_err(|e| NotReady(format!("protocol versions: {e}")))?;
    let builder = match &common.validation {
        None => builder.with_no_client_auth(),
        Some(src) => {
            let v = validation(src, secrets)?;
            let roots = v.root_store().map_err(NotReady)?;
            let mut b = WebPkiClientVerifier::builder_with_provider(roots, super::provider());
            if !tls.require_client_cert {
                b = b.allow_unauthenticated();
            }
            let inner = b
                .build()
                .map_err(|e| NotReady(format!("validation context: {e}")))?;
            builder.with_client_cert_verifier(Arc::new(ClientVerifier {
                inner,
                sans: v.sans.clone(),
            }))
        }
    };
    let mut cfg = builder.with_cert_resolver(Arc::new(super::sni::BySni::new(
        &certs,
        tls.full_scan_certs_on_sni_mismatch,
    )));
    cfg.alpn_protocols = alpn(common);
    Ok(cfg)
}

/// A client config for `tls`; `default_alpn` is offered when the context sets none (Envoy
/// offers the cluster's HTTP protocol).
pub fn client_config(
    tls: &UpstreamTls,
    secrets: &Secrets,
    default_alpn: Option<&str>,
) -> Result<ClientConfig, NotReady> {
    let common = &tls.common;
    let verifier = match &common.validation {
        None => ServerVerifier {
            roots: None,
            sans: Vec::new(),
        },
        Some(src) => {
            let v = validation(src, secrets)?;
            if v.roots.is_empty() {
                return Err(NotReady("the validation context has no trusted_ca".into()));
            }
            ServerVerifier {
                roots: Some(v.root_store().map_err(NotReady)?),
                sans: v.sans,
            }
        }
    };
    let builder = ClientConfig::builder_with_provider(super::provider())
        .with_protocol_versions(&common.versions.list())
        .map_err(|e| NotReady(format!("protocol versions: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut cfg = match common.certs.first() {
        None => builder.with_no_client_auth(),
        Some(src) => {
            let c = cert(src, secrets)?;
            builder.with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(
                c.key.clone(),
            )))
        }
    };
    cfg.alpn_protocols = alpn(common);
    if cfg.alpn_protocols.is_empty()
        && let Some(p) = default_alpn
    {
        cfg.alpn_protocols = vec![p.as_bytes().to_vec()];
    }
    cfg.enable_sni = tls.sni.is_some();
    Ok(cfg)
}

/// Store the server config for `tls` (or clear it while warming).
pub fn bind_downstream(tls: &DownstreamTls, secrets: &Secrets) -> Result<(), NotReady> {
    match server_config(tls, secrets) {
        Ok(cfg) => {
            tls.acceptor.store(Some(Arc::new(cfg)));
            Ok(())
        }
        Err(e) => {
            tls.acceptor.store(None);
            Err(e)
        }
    }
}

/// Store the client configs for `tls` (or clear them while warming); `http_alpn` is the
/// cluster's HTTP protocol, offered by HTTP pools when the context names no ALPN.
pub fn bind_upstream(
    tls: &UpstreamTls,
    secrets: &Secrets,
    http_alpn: &str,
) -> Result<(), NotReady> {
    let built = client_config(tls, secrets, Some(http_alpn))
        .and_then(|http| Ok((http, client_config(tls, secrets, None)?)));
    match built {
        Ok((http, raw)) => {
            tls.connector.store(Some(Arc::new(http)));
            tls.raw_connector.store(Some(Arc::new(raw)));
            Ok(())
        }
        Err(e) => {
            tls.connector.store(None);
            tls.raw_connector.store(None);
            Err(e)
        }
    }
}
