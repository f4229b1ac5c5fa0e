//! `gateway.SecretAnalyzer`: a Gateway server's `credentialName` must name a Secret in the
//! namespace of the gateway workload, holding a usable certificate and key (`tls.crt` and
//! `tls.key`, a PEM certificate that parses and has not expired).

use std::collections::BTreeMap;

use base64::Engine;

use super::super::Analyzer;
use super::super::catalogue::{INVALID_GATEWAY_CREDENTIAL, REFERENCED_RESOURCE_NOT_FOUND};
use super::super::context::{Context, Entry, group};
use super::super::istio::Gateway;
use super::super::k8s::Secret;
use super::super::message::Message;
use super::{gateways, selected_pods};

pub struct SecretAnalyzer;

impl Analyzer for SecretAnalyzer {
    fn name(&self) -> &'static str {
        "gateway.SecretAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        for (entry, gw) in gateways(ctx) {
            let ns = workload_namespace(ctx, entry, &gw);
            for (i, server) in gw.servers.iter().enumerate() {
                let Some(tls) = &server.tls else { continue };
                let names = tls
                    .credential_name
                    .iter()
                    .chain(tls.credential_names.iter())
                    .filter(|n| !n.is_empty());
                for name in names {
                    let field = format!("spec.servers[{i}].tls.credentialName");
                    match ctx.find(group::CORE, "Secret", &ns, name) {
                        None => out.push(Message::new(
                            &REFERENCED_RESOURCE_NOT_FOUND,
                            entry,
                            &field,
                            &["credentialName".into(), name.into()],
                        )),
                        Some(secret) if !credential_is_valid(secret) => out.push(Message::new(
                            &INVALID_GATEWAY_CREDENTIAL,
                            entry,
                            &field,
                            &[entry.name().into(), entry.ns.clone().into()],
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
    }
}

/// Where the gateway's secrets must live: the namespace of a pod it selects, else the
/// Gateway's own namespace.
fn workload_namespace(ctx: &Context<'_>, entry: &Entry<'_>, gw: &Gateway) -> String {
    match selected_pods(ctx, &gw.selector).first() {
        Some(pod) => pod.ns.clone(),
        None => entry.ns.clone(),
    }
}

/// Secret values by key, base64-decoded from `data` or taken from `stringData`.
fn secret_values(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (k, v) in &secret.data {
        if let Ok(bytes) = b64.decode(v.split_whitespace().collect::<String>()) {
            out.insert(k.clone(), bytes);
        }
    }
    for (k, v) in &secret.string_data {
        out.insert(k.clone(), v.as_bytes().to_vec());
    }
    out
}

fn credential_is_valid(entry: &Entry<'_>) -> bool {
    let Some(secret) = entry.root::<Secret>() else {
        return false;
    };
    let values = secret_values(&secret);
    let (Some(cert), Some(key)) = (values.get("tls.crt"), values.get("tls.key")) else {
        return false;
    };
    certificate_is_current(cert) && is_pem_private_key(key)
}

/// The first PEM certificate parses and is within its validity period now.
fn certificate_is_current(pem: &[u8]) -> bool {
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(pem) else {
        return false;
    };
    match pem.parse_x509() {
        Ok(cert) => cert.validity().is_valid(),
        Err(_) => false,
    }
}

fn is_pem_private_key(pem: &[u8]) -> bool {
    match x509_parser::pem::parse_x509_pem(pem) {
        Ok((_, p)) => p.label.ends_with("PRIVATE KEY") && !p.contents.is_empty(),
        Err(_) => false,
    }
}
