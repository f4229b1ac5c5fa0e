//! Gateway rules: servers, ports (unique names, known protocols), `[ns/]host` forms, TLS
//! required for HTTPS/TLS and forbidden on plaintext HTTP except `httpsRedirect`; server TLS
//! settings (shared with Sidecar ingress).

use std::collections::BTreeSet;

use super::Ctx;
use super::util;
use crate::kinds::{Gateway, Server, ServerTlsMode, ServerTlsSettings};

pub fn check(cx: &mut Ctx<'_>, gw: &Gateway) {
    util::labels(cx, "spec.selector", &gw.selector);
    if gw.servers.is_empty() {
        cx.err("spec.servers", "a Gateway must have at least one server");
    }
    let mut port_names = BTreeSet::new();
    let mut server_names = BTreeSet::new();
    for (i, s) in gw.servers.iter().enumerate() {
        let path = format!("spec.servers[{i}]");
        if let Some(name) = s.name.as_deref()
            && !server_names.insert(name)
        {
            cx.err(
                &format!("{path}.name"),
                format!("duplicate server name {name:?}"),
            );
        }
        let protocol = check_server_port(cx, &path, s, &mut port_names);
        if s.hosts.is_empty() {
            cx.err(&format!("{path}.hosts"), "at least one host is required");
        }
        for (j, h) in s.hosts.iter().enumerate() {
            cx.check(
                &format!("{path}.hosts[{j}]"),
                util::namespaced_host(h, false),
            );
        }
        check_server_tls_presence(cx, &path, s, &protocol);
    }
}

/// Port number, protocol and (gateway-unique) name, and the bind address. Returns the
/// upper-cased protocol.
fn check_server_port<'a>(
    cx: &mut Ctx<'_>,
    path: &str,
    s: &'a Server,
    names: &mut BTreeSet<&'a str>,
) -> String {
    let unix_bind = s.bind.as_deref().is_some_and(|b| b.starts_with("unix://"));
    if let Some(b) = &s.bind
        && !unix_bind
        && !util::is_ip(b)
    {
        cx.err(
            &format!("{path}.bind"),
            format!("bind {b:?} must be an IP address or unix:// path"),
        );
    }
    let Some(p) = &s.port else {
        cx.err(&format!("{path}.port"), "port is required");
        return String::new();
    };
    let number = i64::from(p.number.unwrap_or(0));
    if !(unix_bind && number == 0) {
        cx.check(&format!("{path}.port.number"), util::port(number));
    }
    let protocol = p.protocol.clone().unwrap_or_default().to_ascii_uppercase();
    cx.check(&format!("{path}.port.protocol"), util::protocol(&protocol));
    match p.name.as_deref() {
        None | Some("") => cx.err(&format!("{path}.port.name"), "port name is required"),
        Some(n) if !names.insert(n) => cx.err(
            &format!("{path}.port.name"),
            format!("port names must be unique, duplicate {n:?}"),
        ),
        Some(_) => {}
    }
    protocol
}

/// TLS is required for HTTPS/TLS servers; a plaintext HTTP server may only ask for a redirect.
fn check_server_tls_presence(cx: &mut Ctx<'_>, path: &str, s: &Server, protocol: &str) {
    let tls_protocol = matches!(protocol, "HTTPS" | "TLS");
    match &s.tls {
        None if tls_protocol => cx.err(
            &format!("{path}.tls"),
            format!("server TLS settings are required for protocol {protocol}"),
        ),
        None => {}
        Some(tls) => {
            if protocol == "HTTP" && tls.https_redirect != Some(true) && tls.mode.is_some() {
                cx.err(
                    &format!("{path}.tls"),
                    "a plaintext HTTP server cannot have TLS settings other than httpsRedirect",
                );
            }
            if tls_protocol || tls.mode.is_some() {
                check_server_tls(cx, &format!("{path}.tls"), tls, false);
            }
        }
    }
}

/// Server-side TLS: certificate sources per mode, ISTIO_MUTUAL exclusivity, CRL rules, protocol
/// version range. `sidecar` applies the Sidecar ingress restrictions.
pub fn check_server_tls(cx: &mut Ctx<'_>, path: &str, tls: &ServerTlsSettings, sidecar: bool) {
    let mode = tls.mode.unwrap_or_default();
    let files = tls.server_certificate.is_some() || tls.private_key.is_some();
    let credential = tls.credential_name.is_some() || !tls.credential_names.is_empty();
    let sources = [files, credential, !tls.tls_certificates.is_empty()];
    if sources.iter().filter(|s| **s).count() > 1 {
        cx.err(path, "only one of serverCertificate/privateKey, credentialName, credentialNames or tlsCertificates may be set");
    }
    if sidecar {
        check_sidecar_tls(cx, path, tls, mode, credential);
    }
    match mode {
        ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual => {
            check_certificate_source(cx, path, tls, mode, credential);
        }
        ServerTlsMode::IstioMutual
            if files
                || credential
                || tls.ca_certificates.is_some()
                || !tls.tls_certificates.is_empty() =>
        {
            cx.err(path, "ISTIO_MUTUAL uses the mesh certificates: no certificate, key, CA or credential may be set");
        }
        _ => {}
    }
    // TLS_AUTO (0) as the maximum means "no limit".
    if let (Some(min), Some(max)) = (tls.min_protocol_version, tls.max_protocol_version)
        && min as u8 > max as u8
        && max as u8 != 0
    {
        cx.err(
            path,
            "minProtocolVersion must not be greater than maxProtocolVersion",
        );
    }
}

fn check_sidecar_tls(
    cx: &mut Ctx<'_>,
    path: &str,
    tls: &ServerTlsSettings,
    mode: ServerTlsMode,
    credential: bool,
) {
    if !matches!(mode, ServerTlsMode::Simple | ServerTlsMode::Mutual) {
        cx.err(
            &format!("{path}.mode"),
            "Sidecar ingress TLS mode must be SIMPLE or MUTUAL",
        );
    }
    if credential {
        cx.err(
            &format!("{path}.credentialName"),
            "credentialName is not supported on Sidecar ingress",
        );
    }
    if tls.https_redirect.is_some() {
        cx.err(
            &format!("{path}.httpsRedirect"),
            "httpsRedirect is not supported on Sidecar ingress",
        );
    }
}

/// SIMPLE/MUTUAL/OPTIONAL_MUTUAL need a certificate and key (from files, a credential or
/// `tlsCertificates`), mutual modes a CA; a CRL needs client validation from files.
fn check_certificate_source(
    cx: &mut Ctx<'_>,
    path: &str,
    tls: &ServerTlsSettings,
    mode: ServerTlsMode,
    credential: bool,
) {
    let mode_name = util::yaml_name(&mode);
    if !credential && tls.tls_certificates.is_empty() {
        if tls.server_certificate.is_none() {
            cx.err(
                &format!("{path}.serverCertificate"),
                format!(
                    "{mode_name} TLS requires serverCertificate, credentialName or tlsCertificates"
                ),
            );
        }
        if tls.private_key.is_none() {
            cx.err(
                &format!("{path}.privateKey"),
                format!("{mode_name} TLS requires privateKey, credentialName or tlsCertificates"),
            );
        }
        if mode != ServerTlsMode::Simple
            && tls.ca_certificates.is_none()
            && tls.ca_cert_credential_name.is_none()
        {
            cx.err(
                &format!("{path}.caCertificates"),
                format!("{mode_name} TLS requires caCertificates (or a credential)"),
            );
        }
    }
    if mode == ServerTlsMode::Simple && tls.ca_crl.is_some() {
        cx.err(
            &format!("{path}.caCrl"),
            "caCrl cannot be used with SIMPLE TLS",
        );
    }
    if credential && tls.ca_crl.is_some() {
        cx.err(
            &format!("{path}.caCrl"),
            "caCrl cannot be combined with credentialName",
        );
    }
}
