//! The TLS scenarios of the differential run, on their own listeners and clusters: termination
//! with an inline certificate (HTTP/1.1 and HTTP/2 by ALPN), with an SDS certificate and its
//! rotation, a listener warming until its secret arrives, filter chains chosen by SNI and by ALPN, mTLS required, Istio's gateway shape for
//! `MUTUAL` with an RSA and an ECDSA certificate and a combined validation context, and TLS to
//! an upstream with SNI and a CA check (HTTP/1.1 and HTTP/2; a wrong CA answers 503), and
//! health checks over that TLS (see `health::tls_flags`).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use envoy_types::pb::envoy::config::cluster::v3 as c;
use envoy_types::pb::envoy::config::listener::v3 as l;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::google::protobuf::{Any, BoolValue};
use envoy_types::util::pack_any;

use crate::common::*;
use crate::tls_support::*;

type Vct = tls::common_tls_context::ValidationContextType;

/// The TLS listeners, by name.
pub const LISTENERS: [&str; 7] = [
    "tls-gw",
    "tls-inline",
    "tls-sds",
    "tls-sni",
    "tls-alpn",
    "tls-mtls",
    "tls-up",
];

/// SDS secret the `tls-sds` listener serves.
pub const SDS_CERT: &str = "scenario-server-cert";

/// Certificates and the TLS upstream every target shares.
pub struct Fixture {
    pub ca: Ca,
    pub wrong_ca: Ca,
    pub main: Leaf,
    pub sds_first: Leaf,
    pub sds_second: Leaf,
    pub sni_a: Leaf,
    pub sni_b: Leaf,
    pub gw_rsa: Leaf,
    pub gw_ecdsa: Leaf,
    /// The certificate of `certs::TIMEOUT_CERT`, pushed late.
    pub late: Leaf,
    /// TLS in front of backend `a`, answering only SNI `backend.example`.
    pub front: TlsFront,
}

impl Fixture {
    pub async fn start(backend_a: SocketAddr) -> Fixture {
        let ca = Ca::new("scenario-ca");
        let backend = ca.leaf(&["backend.example"], &[]);
        let front = tls_front_for_sni(backend_a, &backend, "backend.example").await;
        Fixture {
            main: ca.leaf(&["main.example"], &[]),
            sds_first: ca.leaf(&["sds.example"], &[]),
            sds_second: ca.leaf(&["sds.example"], &[]),
            sni_a: ca.leaf(&["a.example"], &[]),
            sni_b: ca.leaf(&["b.example"], &[]),
            gw_rsa: ca.leaf_rsa(&["gw.example"]),
            gw_ecdsa: ca.leaf(&["gw.example"], &[]),
            late: ca.leaf(&["late.example"], &[]),
            wrong_ca: Ca::new("wrong-ca"),
            ca,
            front,
        }
    }
}

/// Routes of the terminating listeners: `require_tls: ALL`, which a request over the
/// proxy's own TLS satisfies (`x-forwarded-proto: https`).
fn routes(cluster: &str) -> rt::RouteConfiguration {
    let mut vh = vhost("all", &["*"], vec![route(prefix("/"), to_cluster(cluster))]);
    vh.require_tls = rt::virtual_host::TlsRequirementType::All as i32;
    route_config("tls", vec![vh])
}

fn server(
    certs: (Option<&Leaf>, Option<&str>),
    alpn: &[&str],
    v: Option<Vct>,
    require: bool,
) -> core_ts {
    downstream_socket(tls::DownstreamTlsContext {
        common_tls_context: Some(common(certs.0, certs.1, alpn, v)),
        require_client_certificate: Some(BoolValue { value: require }),
        ..Default::default()
    })
}

#[allow(non_camel_case_types)]
type core_ts = envoy_types::pb::envoy::config::core::v3::TransportSocket;

/// A chain of `http_listener_inline(.., routes(cluster))` with a match and a TLS socket.
fn chain(m: l::FilterChainMatch, ts: core_ts, cluster: &str) -> l::FilterChain {
    let li: l::Listener =
        plexus_xds::unpack(&http_listener_inline("x", routes(cluster))).expect("listener");
    l::FilterChain {
        filter_chain_match: Some(m),
        transport_socket: Some(ts),
        ..li.filter_chains[0].clone()
    }
}

fn inspected(name: &str, chains: Vec<l::FilterChain>) -> Any {
    let mut li: l::Listener =
        plexus_xds::unpack(&http_listener_inline(name, routes("a"))).expect("listener");
    li.filter_chains = chains;
    li.listener_filters = vec![l::ListenerFilter {
        name: "envoy.filters.listener.tls_inspector".into(),
        config_type: Some(l::listener_filter::ConfigType::TypedConfig(pack_any(
            TlsInspector::default(),
        ))),
        ..Default::default()
    }];
    pack_any(li)
}

fn upstream(name: &str, f: &Fixture, ca: &Ca, h2: bool) -> c::Cluster {
    #[allow(deprecated)] // http2_protocol_options is what Istio still sends
    c::Cluster {
        transport_socket: Some(upstream_socket(tls::UpstreamTlsContext {
            sni: "backend.example".into(),
            common_tls_context: Some(common(
                None,
                None,
                &[],
                Some(Vct::ValidationContext(validation(&ca.pem, vec![]))),
            )),
            ..Default::default()
        })),
        http2_protocol_options: h2.then(Default::default),
        ..static_cluster(name, &[f.front.addr])
    }
}

/// Add the TLS listeners, clusters to the base config; returns the secrets to push.
pub fn extend(cfg: &mut Config, f: &Fixture) -> Vec<(String, Any)> {
    let sni = |n: &str| l::FilterChainMatch {
        server_names: vec![n.into()],
        ..Default::default()
    };
    let alpn = |p: &[&str]| l::FilterChainMatch {
        application_protocols: p.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let trust = || Some(Vct::ValidationContext(validation(&f.ca.pem, vec![])));
    let up_routes = route_config(
        "tls-up",
        ["up-ok", "up-wrong-ca", "up-h2"]
            .iter()
            .map(|c| vhost(c, &[c], vec![route(prefix("/"), to_cluster(c))]))
            .collect(),
    );
    let listeners = [
        (
            "tls-inline",
            with_handshake_timeout(with_tls(
                http_listener_inline("tls-inline", routes("a")),
                server((Some(&f.main), None), &["h2", "http/1.1"], None, false),
            )),
        ),
        (
            "tls-sds",
            with_tls(
                http_listener_inline("tls-sds", routes("a")),
                server((None, Some(SDS_CERT)), &[], None, false),
            ),
        ),
        (
            "tls-sni",
            inspected(
                "tls-sni",
                vec![
                    chain(
                        sni("a.example"),
                        server((Some(&f.sni_a), None), &[], None, false),
                        "a",
                    ),
                    chain(
                        sni("b.example"),
                        server((Some(&f.sni_b), None), &[], None, false),
                        "b",
                    ),
                ],
            ),
        ),
        (
            "tls-alpn",
            inspected(
                "tls-alpn",
                vec![
                    chain(
                        alpn(&["istio-peer-exchange", "istio"]),
                        server((Some(&f.sni_a), None), &[], None, false),
                        "a",
                    ),
                    chain(
                        alpn(&["h2", "http/1.1"]),
                        server((Some(&f.sni_b), None), &["http/1.1"], None, false),
                        "b",
                    ),
                ],
            ),
        ),
        (
            "tls-mtls",
            with_tls(
                http_listener_inline("tls-mtls", routes("a")),
                server((Some(&f.main), None), &[], trust(), true),
            ),
        ),
        ("tls-up", http_listener_inline("tls-up", up_routes)),
        ("tls-gw", gateway_mutual()),
    ];
    cfg.listeners
        .extend(listeners.into_iter().map(|(n, a)| (n.to_string(), a)));
    let checked = |name: &str, ca: &Ca| c::Cluster {
        health_checks: vec![super::health::tls_check()],
        ..upstream(name, f, ca, false)
    };
    cfg.clusters.extend([
        upstream("up-ok", f, &f.ca, false),
        upstream("up-wrong-ca", f, &f.wrong_ca, false),
        upstream("up-h2", f, &f.ca, true),
        checked(super::health::TLS_OK, &f.ca),
        checked(super::health::TLS_WRONG_CA, &f.wrong_ca),
    ]);
    secrets(f, false, false)
}

/// Secret of the listener added later to check warming (pushed after it).
const LATE_CERT: &str = "scenario-late-cert";

/// Every secret the scenarios use (a state-of-the-world push replaces the whole set): the SDS
/// certificate before or after its rotation, and the late one once it is due.
fn secrets(f: &Fixture, rotated: bool, late: bool) -> Vec<(String, Any)> {
    let sds = if rotated { &f.sds_second } else { &f.sds_first };
    let mut all = vec![
        cert_secret(SDS_CERT, sds),
        cert_secret("gw-rsa", &f.gw_rsa),
        cert_secret("gw-ecdsa", &f.gw_ecdsa),
        ca_secret("gw-cacert", &f.ca.pem, vec![]),
    ];
    if late {
        all.push(cert_secret(LATE_CERT, &f.main));
        all.extend(super::certs::late_secrets(f));
    }
    all
}

/// `transport_socket_connect_timeout` of 300 ms on the listener's first chain.
fn with_handshake_timeout(listener: Any) -> Any {
    let mut li: l::Listener = plexus_xds::unpack(&listener).expect("listener");
    li.filter_chains[0].transport_socket_connect_timeout =
        Some(envoy_types::pb::google::protobuf::Duration {
            seconds: 0,
            nanos: 300_000_000,
        });
    pack_any(li)
}

/// A client that connects and never starts its handshake is closed after the chain's
/// `transport_socket_connect_timeout` (300 ms), not much sooner.
async fn silent_client_closed(addr: SocketAddr) -> Result<(), String> {
    use tokio::io::AsyncReadExt;
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let since = std::time::Instant::now();
        let mut buf = [0u8; 64];
        // A reset instead of a clean close also ends the connection.
        let n = s.read(&mut buf).await.unwrap_or(0);
        Ok::<_, std::io::Error>((n, since.elapsed()))
    };
    match tokio::time::timeout(WAIT, io).await {
        Ok(Ok((0, after))) if after >= std::time::Duration::from_millis(250) => Ok(()),
        Ok(Ok((0, after))) => Err(format!("closed after only {after:?}")),
        Ok(Ok((n, _))) => Err(format!("read {n} unexpected bytes")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("still open after the wait".into()),
    }
}

/// Peer identity the gateway's default validation context requires.
const GW_CLIENT: &str = "spiffe://partners/client";

/// As Istio translates a `MUTUAL` server with `credentialNames: [gw-rsa, gw-ecdsa]`.
fn gateway_mutual() -> Any {
    let combined = Vct::CombinedValidationContext(
        tls::common_tls_context::CombinedCertificateValidationContext {
            default_validation_context: Some(tls::CertificateValidationContext {
                match_typed_subject_alt_names: uri_sans(&[GW_CLIENT]),
                ..Default::default()
            }),
            validation_context_sds_secret_config: Some(sds("gw-cacert")),
            ..Default::default()
        },
    );
    let mut common = common(None, None, &["h2", "http/1.1"], Some(combined));
    common.tls_certificate_sds_secret_configs = vec![sds("gw-rsa"), sds("gw-ecdsa")];
    let ts = downstream_socket(tls::DownstreamTlsContext {
        common_tls_context: Some(common),
        require_client_certificate: Some(BoolValue { value: true }),
        ..Default::default()
    });
    with_tls(http_listener_inline("tls-gw", routes("a")), ts)
}

/// One TLS request and what must be observed: workload `a`/`b` with the expected leaf, or
/// a refused handshake.
async fn expect(
    addr: SocketAddr,
    o: &ClientOpts,
    leaf: Option<&Leaf>,
    workload: &str,
    alpn: Option<&str>,
) -> Result<(), String> {
    let (got, hs) = get(addr, o, &o.sni, "/").await?;
    let w = got.json()["workload"].as_str().map(str::to_string);
    if got.status != 200 || w.as_deref() != Some(workload) {
        return Err(format!(
            "{} from {w:?} (want 200 from {workload})",
            got.status
        ));
    }
    let xfp = got.json()["headers"]["x-forwarded-proto"].clone();
    if xfp != "https" {
        return Err(format!(
            "x-forwarded-proto {xfp} at the backend (want https)"
        ));
    }
    if leaf.is_some_and(|l| l.der() != hs.peer_leaf) {
        return Err("served another certificate".into());
    }
    if hs.alpn.as_deref() != alpn {
        return Err(format!("ALPN {:?} (want {alpn:?})", hs.alpn));
    }
    Ok(())
}

fn opts(f: &Fixture, sni: &str, alpn: &[&str], cert: Option<Leaf>) -> ClientOpts {
    ClientOpts {
        sni: sni.into(),
        ca_pem: f.ca.pem.clone(),
        alpn: alpn.iter().map(|p| p.to_string()).collect(),
        client_cert: cert,
        rsa_only: false,
        any_server_cert: false,
    }
}

/// One TLS request of the scenarios: a listener, a client, and what must happen.
struct Case<'a> {
    name: &'static str,
    listener: &'static str,
    client: ClientOpts,
    /// `Some((leaf, workload, ALPN))`: served with that certificate by that backend after
    /// that ALPN; `None`: the handshake (or the first read) fails.
    served: Option<(Option<&'a Leaf>, &'static str, Option<&'static str>)>,
}

fn cases(f: &Fixture) -> Vec<Case<'_>> {
    let case = |name, listener, client, served| Case {
        name,
        listener,
        client,
        served,
    };
    let partner = || Some(f.ca.leaf(&[], &[GW_CLIENT]));
    let rsa_only = ClientOpts {
        rsa_only: true,
        ..opts(f, "gw.example", &["h2"], partner())
    };
    let stranger = Some(f.ca.leaf(&[], &["spiffe://x/y"]));
    let client_cert = Some(f.ca.leaf(&["client.example"], &[]));
    vec![
        case(
            "inline certificate, ALPN h2",
            "tls-inline",
            opts(f, "main.example", &["h2"], None),
            Some((Some(&f.main), "a", Some("h2"))),
        ),
        case(
            "inline certificate, ALPN http/1.1",
            "tls-inline",
            opts(f, "main.example", &["http/1.1"], None),
            Some((Some(&f.main), "a", Some("http/1.1"))),
        ),
        case(
            "SDS certificate",
            "tls-sds",
            opts(f, "sds.example", &[], None),
            Some((Some(&f.sds_first), "a", None)),
        ),
        case(
            "chain by SNI a",
            "tls-sni",
            opts(f, "a.example", &[], None),
            Some((Some(&f.sni_a), "a", None)),
        ),
        case(
            "chain by SNI b",
            "tls-sni",
            opts(f, "b.example", &[], None),
            Some((Some(&f.sni_b), "b", None)),
        ),
        case(
            "chain by ALPN istio-peer-exchange",
            "tls-alpn",
            opts(f, "a.example", &["istio-peer-exchange"], None),
            Some((Some(&f.sni_a), "a", None)),
        ),
        case(
            "chain by ALPN http/1.1",
            "tls-alpn",
            opts(f, "b.example", &["http/1.1"], None),
            Some((Some(&f.sni_b), "b", Some("http/1.1"))),
        ),
        case(
            "mTLS with a client certificate",
            "tls-mtls",
            opts(f, "main.example", &[], client_cert),
            Some((None, "a", None)),
        ),
        case(
            "mTLS without a client certificate fails",
            "tls-mtls",
            opts(f, "main.example", &[], None),
            None,
        ),
        case(
            "gateway MUTUAL: ECDSA certificate for an ECDSA-capable client",
            "tls-gw",
            opts(f, "gw.example", &["h2"], partner()),
            Some((Some(&f.gw_ecdsa), "a", Some("h2"))),
        ),
        case(
            "gateway MUTUAL: RSA certificate for an RSA-only client",
            "tls-gw",
            rsa_only,
            Some((Some(&f.gw_rsa), "a", Some("h2"))),
        ),
        case(
            "gateway MUTUAL: a client SAN outside the default context fails",
            "tls-gw",
            opts(f, "gw.example", &[], stranger),
            None,
        ),
    ]
}

/// Every TLS check against one target: `(check name, outcome)`.
pub async fn check(
    f: &Fixture,
    addrs: &BTreeMap<&'static str, SocketAddr>,
) -> Vec<(&'static str, Result<(), String>)> {
    let at = |n: &str| {
        addrs
            .get(n)
            .copied()
            .unwrap_or_else(|| ([127, 0, 0, 1], 1).into())
    };
    let mut out = Vec::new();
    for c in cases(f) {
        let addr = at(c.listener);
        let outcome = match c.served {
            Some((leaf, workload, alpn)) => expect(addr, &c.client, leaf, workload, alpn).await,
            None => match get(addr, &c.client, &c.client.sni, "/").await {
                Err(_) => Ok(()),
                Ok((g, _)) => Err(format!("answered {} (want a failed handshake)", g.status)),
            },
        };
        out.push((c.name, outcome));
    }
    out.push((
        "handshake timeout closes a silent client",
        silent_client_closed(at("tls-inline")).await,
    ));
    out.extend(upstream_checks(at("tls-up")).await);
    out
}

async fn upstream_checks(addr: SocketAddr) -> Vec<(&'static str, Result<(), String>)> {
    let mut out = Vec::new();
    for (name, host, status, protocol) in [
        (
            "upstream TLS with SNI and CA",
            "up-ok",
            200,
            Some("HTTP/1.1"),
        ),
        (
            "upstream TLS, HTTP/2 by ALPN",
            "up-h2",
            200,
            Some("HTTP/2.0"),
        ),
        ("upstream TLS, wrong CA is 503", "up-wrong-ca", 503, None),
    ] {
        // A client-supplied XFCC header never reaches the upstream (SANITIZE, the default).
        let xfcc = [("x-forwarded-client-cert", "By=spiffe://forged")];
        let r = match request(addr, false, "GET", host, "/", &xfcc).await {
            Ok(g) => {
                let p = g.json()["protocol"].as_str().map(str::to_string);
                let forged = g.json()["headers"].get("x-forwarded-client-cert").cloned();
                if let Some(v) = forged {
                    Err(format!(
                        "{host}: the upstream got x-forwarded-client-cert {v}"
                    ))
                } else if g.status == status && p.as_deref() == protocol {
                    Ok(())
                } else {
                    Err(format!(
                        "{host}: {} {p:?} (want {status} {protocol:?})",
                        g.status
                    ))
                }
            }
            Err(e) => Err(e),
        };
        out.push((name, r));
    }
    out
}

/// After `SDS_CERT` was replaced by `sds_second`: the same listener serves the new
/// certificate (polled: proxies apply the secret asynchronously).
pub async fn check_rotated(f: &Fixture, addr: SocketAddr) -> Result<(), String> {
    plexus_testkit::eventually(WAIT, "the rotated certificate", || async {
        expect(
            addr,
            &opts(f, "sds.example", &[], None),
            Some(&f.sds_second),
            "a",
            None,
        )
        .await
        .ok()
    })
    .await
}

/// Every check against every target (`(label, TLS listeners)`), then an SDS rotation checked on
/// each: `(target index, outcome)` per check, failures already naming check and target.
pub async fn run(
    f: &Fixture,
    ads: &plexus_testkit::FakeAds,
    targets: &[(String, &BTreeMap<&'static str, SocketAddr>)],
) -> Vec<(usize, Result<(), String>)> {
    let mut out = Vec::new();
    for (i, (label, addrs)) in targets.iter().enumerate() {
        for (name, outcome) in check(f, addrs).await {
            out.push((
                i,
                outcome.map_err(|e| format!("[TLS: {name}] {label}: {e}")),
            ));
        }
    }
    ads.push(plexus_xds::SECRET_TYPE, secrets(f, true, false));
    for (i, (label, addrs)) in targets.iter().enumerate() {
        let addr = addrs.get("tls-sds").copied();
        let outcome = match addr {
            Some(addr) => check_rotated(f, addr).await,
            None => Err("no tls-sds listener".into()),
        };
        out.push((
            i,
            outcome.map_err(|e| format!("[TLS: SDS rotation] {label}: {e}")),
        ));
    }
    let seen = f.front.seen.lock().map(|s| s.clone()).unwrap_or_default();
    println!("TLS upstream saw (SNI, ALPN): {seen:?}");
    out
}

/// A proxy's listener as its admin `/listeners?format=json` lists it (Plexus and Envoy share
/// the shape); Envoy lists active listeners only, Plexus only bound ones.
pub async fn listed(admin: SocketAddr, name: &str) -> Option<SocketAddr> {
    let (_, body) =
        plexus_testkit::envoy::http_get(&format!("http://{admin}/listeners?format=json")).await?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let status = v["listener_statuses"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == name)?;
    let sock = &status["local_address"]["socket_address"];
    format!(
        "{}:{}",
        sock["address"].as_str()?,
        sock["port_value"].as_u64()?
    )
    .parse()
    .ok()
}

/// Warming, on every target (`(label, admin address)`): a new listener whose certificate has
/// not been pushed is accepted (LDS ACKed) but not active; once the secret arrives it serves.
pub async fn warming(
    f: &Fixture,
    ads: &plexus_testkit::FakeAds,
    targets: &[(String, SocketAddr)],
    mut listeners: Vec<(String, Any)>,
) -> Vec<(usize, Result<(), String>)> {
    let late = with_tls(
        http_listener_inline("tls-warm", routes("a")),
        server((None, Some(LATE_CERT)), &[], None, false),
    );
    listeners.push(("tls-warm".into(), late));
    let version = ads.push(plexus_xds::LISTENER_TYPE, listeners);
    let acked =
        plexus_testkit::eventually(WAIT, "every proxy to ACK the warming listener", || async {
            let n = ads
                .acks()
                .iter()
                .filter(|a| a.type_url == plexus_xds::LISTENER_TYPE && a.version == version)
                .filter(|a| a.error.is_none())
                .count();
            (n >= targets.len()).then_some(())
        })
        .await;
    let mut out = Vec::new();
    for (i, (label, admin)) in targets.iter().enumerate() {
        let before = match (&acked, listed(*admin, "tls-warm").await) {
            (Err(e), _) => Err(e.clone()),
            (Ok(()), Some(addr)) => Err(format!("active at {addr} before its secret")),
            (Ok(()), None) => Ok(()),
        };
        out.push((
            i,
            before.map_err(|e| format!("[TLS: warming] {label}: {e}")),
        ));
    }
    ads.push(plexus_xds::SECRET_TYPE, secrets(f, true, true));
    for (i, (label, admin)) in targets.iter().enumerate() {
        let serving = plexus_testkit::eventually(WAIT, "the warmed listener to serve", || async {
            let addr = listed(*admin, "tls-warm").await?;
            let o = opts(f, "main.example", &[], None);
            expect(addr, &o, Some(&f.main), "a", None).await.ok()
        })
        .await;
        out.push((
            i,
            serving.map_err(|e| format!("[TLS: warmed] {label}: {e}")),
        ));
    }
    out
}
