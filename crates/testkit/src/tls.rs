//! TLS for tests: a throwaway CA that issues server and client certificates (rcgen,
//! aws-lc-rs), rustls configs built from them, Kubernetes Secret YAML holding them, and an
//! HTTPS client that dials an address with a chosen SNI and verifies the served certificate
//! against the test CA (optionally presenting a client certificate).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SerialNumber,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A certificate and its key, PEM.
#[derive(Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A test certificate authority.
pub struct TestCa {
    pub cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl TestCa {
    pub fn new(name: &str) -> Result<TestCa, String> {
        let key = KeyPair::generate().map_err(err)?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(err)?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.serial_number = Some(SerialNumber::from(rand::random::<u64>()));
        let cert = params.self_signed(&key).map_err(err)?;
        Ok(TestCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// A leaf certificate for `names` (DNS SANs), for servers, or clients when `client`.
    pub fn issue(&self, names: &[&str], client: bool) -> Result<Issued, String> {
        let key = KeyPair::generate().map_err(err)?;
        let sans: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(sans).map_err(err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("test"));
        // Random serials: two certificates for one name must differ (rotation tests).
        params.serial_number = Some(SerialNumber::from(rand::random::<u64>()));
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        let cert = params.signed_by(&key, &self.issuer).map_err(err)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Kubernetes Secret YAML: `kubernetes.io/tls` with `tls.crt`/`tls.key` (and `ca.crt`) in
/// base64 `data`.
pub fn tls_secret_yaml(name: &str, namespace: &str, id: &Issued, ca: Option<&str>) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut y = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: {}\n  tls.key: {}\n",
        b64(&id.cert_pem),
        b64(&id.key_pem)
    );
    if let Some(ca) = ca {
        y.push_str(&format!("  ca.crt: {}\n", b64(ca)));
    }
    y
}

/// The generic form Istio accepts: `cert`/`key`/`cacert` in plain `stringData`.
pub fn generic_secret_yaml(
    name: &str,
    namespace: &str,
    id: Option<&Issued>,
    ca: Option<&str>,
) -> String {
    let block =
        |k: &str, v: &str| format!("  {k}: |\n    {}\n", v.trim_end().replace('\n', "\n    "));
    let mut y = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\ntype: Opaque\nstringData:\n"
    );
    if let Some(id) = id {
        y.push_str(&block("cert", &id.cert_pem));
        y.push_str(&block("key", &id.key_pem));
    }
    if let Some(ca) = ca {
        y.push_str(&block("cacert", ca));
    }
    y
}

fn certs(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(err)
}

fn key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(err)
}

/// A server config presenting `id` (HTTP/1.1 over ALPN).
pub fn server_config(id: &Issued) -> Result<Arc<ServerConfig>, String> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(err)?
        .with_no_client_auth()
        .with_single_cert(certs(&id.cert_pem)?, key(&id.key_pem)?)
        .map_err(err)?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A client config trusting only `ca_pem`, presenting `client` if given.
pub fn client_config(ca_pem: &str, client: Option<&Issued>) -> Result<Arc<ClientConfig>, String> {
    client_config_versions(ca_pem, client, rustls::DEFAULT_VERSIONS)
}

/// As [`client_config`], offering TLS 1.2 only (to check a server's minimum version).
pub fn client_config_tls12(
    ca_pem: &str,
    client: Option<&Issued>,
) -> Result<Arc<ClientConfig>, String> {
    client_config_versions(ca_pem, client, &[&rustls::version::TLS12])
}

fn client_config_versions(
    ca_pem: &str,
    client: Option<&Issued>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca_pem)? {
        roots.add(c).map_err(err)?;
    }
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(err)?
        .with_root_certificates(roots);
    let mut cfg = match client {
        Some(id) => builder
            .with_client_auth_cert(certs(&id.cert_pem)?, key(&id.key_pem)?)
            .map_err(err)?,
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// What an HTTPS request saw: status, JSON body, and the served leaf certificate (DER).
#[derive(Debug)]
pub struct HttpsReply {
    pub status: u16,
    pub json: serde_json::Value,
    pub peer_cert: Vec<u8>,
    /// The negotiated TLS version (`TLSv1_2`, `TLSv1_3`).
    pub version: String,
}

/// `GET https://<sni><path>` sent to `addr` on a new connection: TLS with SNI `sni`, the
/// server's certificate verified for `sni` against the config's roots.
pub async fn https_get(
    addr: SocketAddr,
    sni: &str,
    path: &str,
    cfg: Arc<ClientConfig>,
) -> Result<HttpsReply, String> {
    let work = async {
        let tcp = TcpStream::connect(addr).await.map_err(err)?;
        let name = ServerName::try_from(sni.to_string()).map_err(err)?;
        let tls = TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake: {e}"))?;
        let peer_cert = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default();
        let version = tls
            .get_ref()
            .1
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(err)?;
        tokio::spawn(conn);
        let req = http::Request::builder()
            .uri(path)
            .header("host", sni)
            .body(Full::<Bytes>::default())
            .map_err(err)?;
        let resp = send.send_request(req).await.map_err(err)?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.map_err(err)?.to_bytes();
        Ok(HttpsReply {
            status,
            json: serde_json::from_slice(&body).unwrap_or_default(),
            peer_cert,
            version,
        })
    };
    tokio::time::timeout(Duration::from_secs(10), work)
        .await
        .map_err(|_| format!("https://{sni}{path} via {addr}: no answer within 10 s"))?
}

/// The leaf certificate of a PEM bundle, DER (to compare with [`HttpsReply::peer_cert`]).
pub fn leaf_der(pem: &str) -> Vec<u8> {
    certs(pem)
        .ok()
        .and_then(|c| c.into_iter().next())
        .map(|c| c.to_vec())
        .unwrap_or_default()
}
