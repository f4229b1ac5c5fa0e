//! `gateway.CertificateAnalyzer`: the same certificate on two Gateways served by one workload
//! lets HTTP/2 clients reuse a connection across both hosts, which then answers 404.
//! A Gateway is reported when another one with the same certificate selects at least every
//! label it selects (so their workloads overlap).

use super::super::Analyzer;
use super::super::catalogue::GATEWAY_DUPLICATE_CERTIFICATE;
use super::super::context::{Context, Entry};
use super::super::istio::{Gateway, s};
use super::super::message::{Arg, Message};
use super::gateways;

pub struct CertificateAnalyzer;

/// Identities of the certificates a Gateway serves: `credentialName`s, or the file pair.
fn certificates(gw: &Gateway) -> Vec<String> {
    let mut out = Vec::new();
    for server in &gw.servers {
        let Some(tls) = &server.tls else { continue };
        if let Some(name) = tls.credential_name.as_deref().filter(|n| !n.is_empty()) {
            out.push(format!("secret:{name}"));
        }
        out.extend(tls.credential_names.iter().map(|n| format!("secret:{n}")));
        if let Some(cert) = tls.server_certificate.as_deref().filter(|c| !c.is_empty()) {
            out.push(format!("file:{cert}|{}", s(&tls.private_key)));
        }
    }
    out
}

impl Analyzer for CertificateAnalyzer {
    fn name(&self) -> &'static str {
        "gateway.CertificateAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let all: Vec<(&Entry<'_>, Gateway, Vec<String>)> = gateways(ctx)
            .map(|(e, g)| {
                let certs = certificates(&g);
                (e, g, certs)
            })
            .collect();
        for (i, (entry, gw, certs)) in all.iter().enumerate() {
            let mut names = Vec::new();
            for (j, (other, ogw, ocerts)) in all.iter().enumerate() {
                let shares = certs.iter().any(|c| ocerts.contains(c));
                let covers = gw
                    .selector
                    .iter()
                    .all(|(k, v)| ogw.selector.get(k) == Some(v));
                if i != j && shares && covers {
                    names.push(other.full_name());
                }
            }
            if !names.is_empty() {
                names.insert(0, entry.full_name());
                out.push(Message::new(
                    &GATEWAY_DUPLICATE_CERTIFICATE,
                    entry,
                    "spec.servers",
                    &[Arg::List(names)],
                ));
            }
        }
    }
}
