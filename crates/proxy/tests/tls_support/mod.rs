//! TLS helpers shared by the TLS integration tests and the differential scenarios:
//! certificates generated with rcgen (a CA, leaves with DNS/URI SANs), the xDS shapes of
//! transport sockets and SDS secrets, a TLS HTTP client (SNI, ALPN, optional client
//! certificate) and a TLS front that terminates TLS before a plaintext echo backend.
#![allow(dead_code)]

mod certs;
#[allow(unused_imports)] // not every test binary uses these
pub use certs::*;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::listener::v3 as l;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::google::protobuf::Any;
use envoy_types::util::pack_any;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

use crate::common::{
    Config, http_listener_inline, prefix, push, route, route_config, static_cluster, to_cluster,
    vhost,
};
use envoy_types::pb::envoy::config::cluster::v3 as c;
use plexus_testkit::FakeAds;

/// A certificate authority that signs leaves.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate and its key, PEM.
#[derive(Clone)]
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf with these DNS and URI SANs, usable as server and client certificate.
    pub fn leaf(&self, dns: &[&str], uris: &[&str]) -> Leaf {
        self.leaf_with(KeyPair::generate().expect("key"), dns, uris)
    }

    /// Like `leaf`, with an RSA key.
    pub fn leaf_rsa(&self, dns: &[&str]) -> Leaf {
        let key = KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("RSA key");
        self.leaf_with(key, dns, &[])
    }

    fn leaf_with(&self, key: KeyPair, dns: &[&str], uris: &[&str]) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        for d in dns {
            params
                .subject_alt_names
                .push(SanType::DnsName((*d).try_into().expect("dns")));
        }
        for u in uris {
            params
                .subject_alt_names
                .push(SanType::URI((*u).try_into().expect("uri")));
        }
        params.distinguished_name.push(DnType::CommonName, "leaf");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

impl Leaf {
    pub fn der(&self) -> Vec<u8> {
        CertificateDer::from_pem_slice(self.cert.as_bytes())
            .expect("pem")
            .to_vec()
    }
}

fn inline(s: &str) -> Option<core::DataSource> {
    Some(core::DataSource {
        specifier: Some(core::data_source::Specifier::InlineString(s.into())),
        ..Default::default()
    })
}

pub fn tls_certificate(leaf: &Leaf) -> tls::TlsCertificate {
    tls::TlsCertificate {
        certificate_chain: inline(&leaf.cert),
        private_key: inline(&leaf.key),
        ..Default::default()
    }
}

/// `match_typed_subject_alt_names` entries: exact URI SANs.
pub fn uri_sans(uris: &[&str]) -> Vec<tls::SubjectAltNameMatcher> {
    uris.iter()
        .map(|u| tls::SubjectAltNameMatcher {
            san_type: tls::subject_alt_name_matcher::SanType::Uri as i32,
            matcher: Some(matcher::StringMatcher {
                match_pattern: Some(matcher::string_matcher::MatchPattern::Exact(
                    (*u).to_string(),
                )),
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect()
}

pub fn validation(
    ca_pem: &str,
    sans: Vec<tls::SubjectAltNameMatcher>,
) -> tls::CertificateValidationContext {
    tls::CertificateValidationContext {
        trusted_ca: inline(ca_pem),
        match_typed_subject_alt_names: sans,
        ..Default::default()
    }
}

pub fn sds(name: &str) -> tls::SdsSecretConfig {
    tls::SdsSecretConfig {
        name: name.into(),
        sds_config: Some(core::ConfigSource {
            resource_api_version: core::ApiVersion::V3 as i32,
            config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(
                Default::default(),
            )),
            ..Default::default()
        }),
    }
}

/// An SDS `Secret` holding a certificate and key, with its name.
pub fn cert_secret(name: &str, leaf: &Leaf) -> (String, Any) {
    let s = tls::Secret {
        name: name.into(),
        r#type: Some(tls::secret::Type::TlsCertificate(tls_certificate(leaf))),
    };
    (name.to_string(), pack_any(s))
}

/// An SDS `Secret` holding a validation context, with its name.
pub fn ca_secret(name: &str, ca_pem: &str, sans: Vec<tls::SubjectAltNameMatcher>) -> (String, Any) {
    let s = tls::Secret {
        name: name.into(),
        r#type: Some(tls::secret::Type::ValidationContext(validation(
            ca_pem, sans,
        ))),
    };
    (name.to_string(), pack_any(s))
}

pub fn common(
    cert: Option<&Leaf>,
    cert_sds: Option<&str>,
    alpn: &[&str],
    validation: Option<tls::common_tls_context::ValidationContextType>,
) -> tls::CommonTlsContext {
    tls::CommonTlsContext {
        tls_certificates: cert.map(tls_certificate).into_iter().collect(),
        tls_certificate_sds_secret_configs: cert_sds.map(sds).into_iter().collect(),
        alpn_protocols: alpn.iter().map(|p| p.to_string()).collect(),
        validation_context_type: validation,
        ..Default::default()
    }
}

pub fn downstream_socket(ctx: tls::DownstreamTlsContext) -> core::TransportSocket {
    core::TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(core::transport_socket::ConfigType::TypedConfig(pack_any(
            ctx,
        ))),
    }
}

pub fn upstream_socket(ctx: tls::UpstreamTlsContext) -> core::TransportSocket {
    core::TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(core::transport_socket::ConfigType::TypedConfig(pack_any(
            ctx,
        ))),
    }
}

/// Put `ts` on the first filter chain of a packed listener.
pub fn with_tls(listener: Any, ts: core::TransportSocket) -> Any {
    let mut li: l::Listener = plexus_xds::unpack(&listener).expect("listener");
    li.filter_chains[0].transport_socket = Some(ts);
    pack_any(li)
}

/// How a TLS client should connect.
#[derive(Clone, Default)]
pub struct ClientOpts {
    pub sni: String,
    pub ca_pem: String,
    pub alpn: Vec<String>,
    pub client_cert: Option<Leaf>,
    /// Offer only RSA signature schemes (a client that cannot verify ECDSA).
    pub rsa_only: bool,
    /// Take any server certificate (to see which one a server picks for a name it lacks).
    pub any_server_cert: bool,
}

/// What a TLS connection showed: the server's leaf certificate and the negotiated ALPN.
pub struct Handshake {
    pub peer_leaf: Vec<u8>,
    pub alpn: Option<String>,
}

pub fn client_config(o: &ClientOpts) -> rustls::ClientConfig {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if o.rsa_only {
        let algs = &mut provider.signature_verification_algorithms;
        let rsa: Vec<_> = algs
            .mapping
            .iter()
            .filter(|(s, _)| format!("{s:?}").starts_with("RSA"))
            .copied()
            .collect();
        // The provider wants 'static tables; a test leaks one small copy.
        algs.mapping = Box::leak(rsa.into_boxed_slice());
    }
    let provider = Arc::new(provider);
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(o.ca_pem.as_bytes()) {
        roots.add(c.expect("ca pem")).expect("root");
    }
    let b = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let b = if o.any_server_cert {
        b.dangerous()
            .with_custom_certificate_verifier(Arc::new(certs::AnyServerCert(provider)))
    } else {
        b.with_root_certificates(roots)
    };
    let mut cfg = match &o.client_cert {
        Some(leaf) => b
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(leaf.cert.as_bytes()).expect("cert")],
                PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).expect("key"),
            )
            .expect("client cert"),
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = o.alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    cfg
}

/// Connect and complete a TLS handshake (and, for TLS 1.3, the first read, which is where a
/// server's rejection of the client certificate shows).
pub async fn connect(
    addr: SocketAddr,
    o: &ClientOpts,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Handshake), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(o.sni.clone()).map_err(|e| e.to_string())?;
    let conn = tokio_rustls::TlsConnector::from(Arc::new(client_config(o)));
    let s = tokio::time::timeout(crate::common::WAIT, conn.connect(name, tcp))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let (_, session) = s.get_ref();
    let hs = Handshake {
        peer_leaf: session
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.to_vec())
            .unwrap_or_default(),
        alpn: session
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
    };
    Ok((s, hs))
}

/// One GET over TLS, HTTP/2 when ALPN settles on h2, else HTTP/1.1.
pub async fn get(
    addr: SocketAddr,
    o: &ClientOpts,
    host: &str,
    path: &str,
) -> Result<(crate::common::Got, Handshake), String> {
    let (s, hs) = connect(addr, o).await?;
    let io = TokioIo::new(s);
    let h2 = hs.alpn.as_deref() == Some("h2");
    let uri = format!("https://{host}{path}");
    let mut req = http::Request::get(uri);
    if !h2 {
        req = req.header("host", host);
    } else {
        req = req.version(http::Version::HTTP_2);
    }
    let req = req
        .body(Full::<Bytes>::default())
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let resp = if h2 {
            let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            send.send_request(req).await.map_err(|e| e.to_string())?
        } else {
            let (mut send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            send.send_request(req).await.map_err(|e| e.to_string())?
        };
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>(crate::common::Got {
            status,
            headers,
            body,
            trailers: None,
        })
    };
    let got = tokio::time::timeout(crate::common::WAIT, exchange)
        .await
        .map_err(|_| "request timed out".to_string())??;
    Ok((got, hs))
}

/// (SNI, ALPN) of one handshake a `TlsFront` accepted.
pub type Seen = (Option<String>, Option<String>);

/// A TLS server in front of a plaintext backend: terminates TLS and splices the bytes. Notes
/// the SNI and ALPN of each handshake.
pub struct TlsFront {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    _stop: tokio::sync::watch::Sender<bool>,
}

pub async fn tls_front(
    backend: SocketAddr,
    leaf: &Leaf,
    alpn: &[&str],
    client_ca: Option<&str>,
) -> TlsFront {
    tls_front_with(backend, leaf, alpn, client_ca, None).await
}

/// A front (ALPN h2 and http/1.1) that closes connections whose SNI is not `sni`.
pub async fn tls_front_for_sni(backend: SocketAddr, leaf: &Leaf, sni: &str) -> TlsFront {
    tls_front_with(
        backend,
        leaf,
        &["h2", "http/1.1"],
        None,
        Some(sni.to_string()),
    )
    .await
}

async fn tls_front_with(
    backend: SocketAddr,
    leaf: &Leaf,
    alpn: &[&str],
    client_ca: Option<&str>,
    only_sni: Option<String>,
) -> TlsFront {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let b = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let b = match client_ca {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(c.expect("ca")).expect("root");
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("verifier");
            b.with_client_cert_verifier(v)
        }
        None => b.with_no_client_auth(),
    };
    let mut cfg = b
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(leaf.cert.as_bytes()).expect("cert")],
            PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).expect("key"),
        )
        .expect("server config");
    cfg.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Arc<Mutex<Vec<_>>> = Arc::default();
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let notes = seen.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = tokio::select! {
                r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
                _ = stopped.changed() => return,
            };
            let acceptor = acceptor.clone();
            let notes = notes.clone();
            let only_sni = only_sni.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let (_, session) = s.get_ref();
                let note = (
                    session.server_name().map(str::to_string),
                    session
                        .alpn_protocol()
                        .map(|p| String::from_utf8_lossy(p).into_owned()),
                );
                let wrong_sni = only_sni.is_some() && note.0 != only_sni;
                notes.lock().unwrap_or_else(|p| p.into_inner()).push(note);
                if wrong_sni {
                    return;
                }
                let Ok(mut up) = TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut s, &mut up).await;
            });
        }
    });
    TlsFront {
        addr,
        seen,
        _stop: stop,
    }
}

// Shared shapes of the TLS integration tests.

pub fn routes_to(cluster: &str) -> envoy_types::pb::envoy::config::route::v3::RouteConfiguration {
    route_config(
        "r",
        vec![vhost(
            "all",
            &["*"],
            vec![route(prefix("/"), to_cluster(cluster))],
        )],
    )
}

pub fn server_ctx(
    common: tls::CommonTlsContext,
    require_client: bool,
) -> tls::DownstreamTlsContext {
    tls::DownstreamTlsContext {
        common_tls_context: Some(common),
        require_client_certificate: Some(envoy_types::pb::google::protobuf::BoolValue {
            value: require_client,
        }),
        ..Default::default()
    }
}

/// A TLS HTTP listener "main" to cluster "a", pushed with everything else; the LDS version.
pub fn push_tls_http(
    ads: &FakeAds,
    ctx: tls::DownstreamTlsContext,
    clusters: Vec<c::Cluster>,
) -> String {
    let listener = with_tls(
        http_listener_inline("main", routes_to("a")),
        downstream_socket(ctx),
    );
    push(
        ads,
        &Config {
            listeners: vec![("main".into(), listener)],
            routes: vec![],
            clusters,
            endpoints: vec![],
        },
    )
    .0
}

pub fn opts(ca: &Ca, alpn: &[&str]) -> ClientOpts {
    ClientOpts {
        sni: "main.example".into(),
        ca_pem: ca.pem.clone(),
        alpn: alpn.iter().map(|p| p.to_string()).collect(),
        client_cert: None,
        rsa_only: false,
        any_server_cert: false,
    }
}

pub fn tls_cluster(
    name: &str,
    addr: std::net::SocketAddr,
    ctx: tls::UpstreamTlsContext,
) -> c::Cluster {
    c::Cluster {
        transport_socket: Some(upstream_socket(ctx)),
        ..static_cluster(name, &[addr])
    }
}

pub fn client_ctx(sni: &str, common: tls::CommonTlsContext) -> tls::UpstreamTlsContext {
    tls::UpstreamTlsContext {
        sni: sni.into(),
        common_tls_context: Some(common),
        ..Default::default()
    }
}
