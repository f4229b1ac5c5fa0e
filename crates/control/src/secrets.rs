//! Kubernetes Secrets served over SDS (`envoy.extensions.transport_sockets.tls.v3.Secret`),
//! named the way Istio names gateway credentials:
//!
//! - `kubernetes://<name>`: the certificate chain and key of Secret `<name>` (or, for a
//!   CA-only Secret, its CA bundle as a validation context);
//! - `kubernetes://<name>-cacert`: the CA bundle for client validation — the Secret
//!   `<name>-cacert` if it exists, else `ca.crt`/`cacert` of Secret `<name>`;
//! - `kubernetes://<ns>/<name>` and its `-cacert` form, the same with the namespace spelled out.
//!
//! A proxy gets only Secrets of its own namespace (Istio's rule for gateways: the credential
//! lives with the gateway workload), and only the names it asks for (SDS is not wildcard).
//! Validation happened when the object was accepted (`plexus_api::credential`); a Secret that
//! does not hold TLS material is not served.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, Secret, TlsCertificate, secret,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use plexus_api::Object;
use plexus_api::credential::{self, Credential};
use plexus_api::kinds::{self, Resource};
use plexus_pilot::translate::{CA_SUFFIX, KUBERNETES_SECRET_PREFIX};
use plexus_xds::unpack;
use serde_json::{Value, json};

/// Accepted TLS Secrets by namespace, then name.
#[derive(Default)]
pub struct SecretStore {
    by_ns: BTreeMap<String, BTreeMap<String, Credential>>,
}

impl SecretStore {
    /// The TLS credentials among `objects` (accepted objects: they decode and validate).
    pub fn from_objects(objects: &[Object]) -> SecretStore {
        let mut by_ns: BTreeMap<String, BTreeMap<String, Credential>> = BTreeMap::new();
        for obj in objects
            .iter()
            .filter(|o| o.group.is_empty() && o.kind == "Secret")
        {
            let Ok(Resource::Secret(s)) = kinds::decode(obj) else {
                continue;
            };
            if let Ok(Some(cred)) = credential::from_secret(&s) {
                by_ns
                    .entry(obj.namespace_or_default().to_string())
                    .or_default()
                    .insert(obj.name.clone(), cred);
            }
        }
        SecretStore { by_ns }
    }

    /// Every SDS resource a proxy in `namespace` may ask for, by resource name.
    pub fn resources(&self, namespace: &str) -> BTreeMap<String, Any> {
        let mut out = BTreeMap::new();
        let Some(secrets) = self.by_ns.get(namespace) else {
            return out;
        };
        let mut add = |name: String, s: Secret| {
            for n in [
                format!("{KUBERNETES_SECRET_PREFIX}{name}"),
                format!("{KUBERNETES_SECRET_PREFIX}{namespace}/{name}"),
            ] {
                out.insert(
                    n.clone(),
                    pack_any(Secret {
                        name: n,
                        ..s.clone()
                    }),
                );
            }
        };
        // CA bundles carried inside a credential first, so a separate `<name>-cacert` Secret
        // (added below under the same name) wins, as in Istio.
        for (name, cred) in secrets {
            if cred.identity.is_some()
                && let Some(ca) = &cred.ca
            {
                add(
                    format!("{name}{CA_SUFFIX}"),
                    validation(ca, cred.crl.as_deref()),
                );
            }
        }
        for (name, cred) in secrets {
            match (&cred.identity, &cred.ca) {
                (Some((chain, key)), _) => add(name.clone(), certificate(chain, &key.0)),
                (None, Some(ca)) => add(name.clone(), validation(ca, cred.crl.as_deref())),
                (None, None) => {}
            }
        }
        out
    }
}

fn inline(bytes: &[u8]) -> Option<DataSource> {
    Some(DataSource {
        specifier: Some(data_source::Specifier::InlineBytes(bytes.to_vec())),
        ..Default::default()
    })
}

fn certificate(chain: &[u8], key: &[u8]) -> Secret {
    Secret {
        r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
            certificate_chain: inline(chain),
            private_key: inline(key),
            ..Default::default()
        })),
        ..Default::default()
    }
}

fn validation(ca: &[u8], crl: Option<&[u8]>) -> Secret {
    Secret {
        r#type: Some(secret::Type::ValidationContext(
            CertificateValidationContext {
                trusted_ca: inline(ca),
                crl: crl.and_then(inline),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

/// What `/debug/config_dump` and `plexus proxy-config secrets` show of an SDS resource: its
/// name, kind, and per certificate its SANs, expiry and SHA-256 fingerprint. Never the
/// private key.
pub fn summary(name: &str, any: &Any) -> Value {
    let s = match unpack::<Secret>(any) {
        Ok(s) => s,
        Err(e) => return json!({"name": name, "error": e.to_string()}),
    };
    let pem = |d: &Option<DataSource>| match d.as_ref().and_then(|d| d.specifier.as_ref()) {
        Some(data_source::Specifier::InlineBytes(b)) => credential::describe(b),
        _ => Vec::new(),
    };
    let (kind, certs) = match &s.r#type {
        Some(secret::Type::TlsCertificate(t)) => ("Cert Chain", pem(&t.certificate_chain)),
        Some(secret::Type::ValidationContext(v)) => ("CA", pem(&v.trusted_ca)),
        _ => ("other", Vec::new()),
    };
    json!({"name": s.name, "kind": kind, "certificates": certs})
}
