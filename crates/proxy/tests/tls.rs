//! TLS termination through the proxy with real sockets and certificates generated per test:
//! inline and SDS certificates, ALPN h2 and http/1.1, mTLS with SAN matching, SDS warming,
//! rotation and NACKs, filter-chain selection by SNI and ALPN, Istio's gateway MUTUAL shape.
//! TLS to upstreams is in `tls_upstream.rs`.

mod common;
mod tls_support;

use common::*;
use envoy_types::pb::envoy::config::listener::v3 as l;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::util::pack_any;
use plexus_testkit::FakeAds;
use plexus_xds::{LISTENER_TYPE, SECRET_TYPE};
use tls_support::*;

type Vct = tls::common_tls_context::ValidationContextType;
#[tokio::test]
async fn inline_certificate_terminates_http1_and_h2_by_alpn() {
    let a = echo_named("a").await;
    let ca = Ca::new("ca");
    let leaf = ca.leaf(&["main.example"], &[]);
    let ads = FakeAds::start().await.expect("ads");
    let ctx = server_ctx(common(Some(&leaf), None, &["h2", "http/1.1"], None), false);
    push_tls_http(&ads, ctx, vec![static_cluster("a", &[a.addr])]);
    let proxy = start_proxy(&ads).await;
    let addr = wait_listener(&proxy, "main").await;
    for (alpn, want) in [("h2", "h2"), ("http/1.1", "http/1.1")] {
        let (got, hs) = get(addr, &opts(&ca, &[alpn]), "main.example", "/x")
            .await
            .expect("TLS request");
        assert_eq!(got.status, 200, "{alpn}");
        assert_eq!(hs.alpn.as_deref(), Some(want));
        assert_eq!(hs.peer_leaf, leaf.der());
        assert_eq!(got.json()["workload"], "a");
    }
    // Plaintext on a TLS chain is not served.
    let plain = request(addr, false, "GET", "main.example", "/", &[]).await;
    assert!(plain.is_err(), "{:?}", plain.map(|g| g.status));
}

#[tokio::test]
async fn sds_certificate_warms_then_rotates_without_a_restart_sotw() {
    sds_warming_and_rotation(false).await;
}

#[tokio::test]
async fn sds_certificate_warms_then_rotates_without_a_restart_delta() {
    sds_warming_and_rotation(true).await;
}

async fn sds_warming_and_rotation(delta: bool) {
    let a = echo_named("a").await;
    let ca = Ca::new("ca");
    let (first, second) = (
        ca.leaf(&["main.example"], &[]),
        ca.leaf(&["main.example"], &[]),
    );
    let ads = FakeAds::start().await.expect("ads");
    let ctx = server_ctx(common(None, Some("gw-cert"), &[], None), false);
    let lds = push_tls_http(&ads, ctx, vec![static_cluster("a", &[a.addr])]);
    let proxy = start_proxy_with(&ads, delta).await;
    ads.wait_ack(LISTENER_TYPE, &lds, WAIT)
        .await
        .expect("LDS ACK");
    // Warming: the listener is accepted but not bound until its secret arrives.
    assert_eq!(proxy.listener_addr("main"), None, "bound before its secret");
    let dump = config_dump(&proxy).await;
    assert_eq!(
        dump["tls"]["warming_listeners"],
        serde_json::json!(["main"])
    );
    let v1 = ads.push(SECRET_TYPE, vec![cert_secret("gw-cert", &first)]);
    ads.wait_ack(SECRET_TYPE, &v1, WAIT).await.expect("SDS ACK");
    let addr = wait_listener(&proxy, "main").await;
    let (got, hs) = get(addr, &opts(&ca, &[]), "main.example", "/")
        .await
        .expect("TLS request");
    assert_eq!((got.status, hs.peer_leaf), (200, first.der()));
    let dump = config_dump(&proxy).await;
    let tls = &dump["tls"];
    assert_eq!(tls["warming_listeners"], serde_json::json!([]));
    assert_eq!(
        tls["secrets"],
        serde_json::json!([{"name": "gw-cert", "type": "tls_certificate"}])
    );
    assert!(!dump.to_string().contains("PRIVATE KEY"));
    let v2 = ads.push(SECRET_TYPE, vec![cert_secret("gw-cert", &second)]);
    ads.wait_ack(SECRET_TYPE, &v2, WAIT).await.expect("SDS ACK");
    let (got, hs) = get(addr, &opts(&ca, &[]), "main.example", "/")
        .await
        .expect("TLS request after rotation");
    assert_eq!((got.status, hs.peer_leaf), (200, second.der()));
    assert_eq!(proxy.listener_addr("main"), Some(addr), "same socket");
}

#[tokio::test]
async fn a_bad_secret_is_nacked_by_name_without_key_material() {
    let ca = Ca::new("ca");
    let (one, other) = (ca.leaf(&["a"], &[]), ca.leaf(&["b"], &[]));
    let ads = FakeAds::start().await.expect("ads");
    let ctx = server_ctx(common(None, Some("gw-cert"), &[], None), false);
    push_tls_http(&ads, ctx, vec![]);
    let proxy = start_proxy(&ads).await;
    let good = ads.push(SECRET_TYPE, vec![cert_secret("gw-cert", &one)]);
    ads.wait_ack(SECRET_TYPE, &good, WAIT).await.expect("ACK");
    let addr = wait_listener(&proxy, "main").await;
    let mismatched = Leaf {
        cert: one.cert.clone(),
        key: other.key.clone(),
    };
    let garbage = Leaf {
        cert: "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n".into(),
        key: one.key.clone(),
    };
    for (bad, why) in [(mismatched, "does not match"), (garbage, "not a PEM")] {
        let before = ads.acks().len();
        ads.push(SECRET_TYPE, vec![cert_secret("gw-cert", &bad)]);
        let nack = ads
            .wait_nack(SECRET_TYPE, before, WAIT)
            .await
            .expect("NACK");
        let msg = nack.error.unwrap_or_default();
        assert!(
            msg.contains("Secret \"gw-cert\"") && msg.contains(why),
            "{msg}"
        );
        assert!(!msg.contains("BEGIN") && !msg.contains("MII"), "{msg}");
        assert_eq!(nack.version, good, "a NACK keeps the last good version");
    }
    // The last good certificate still serves.
    let (_, hs) = connect(
        addr,
        &ClientOpts {
            sni: "a".into(),
            ..opts(&ca, &[])
        },
    )
    .await
    .expect("handshake");
    assert_eq!(hs.peer_leaf, one.der());
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_from_the_ca_with_a_matching_san() {
    let a = echo_named("a").await;
    let ca = Ca::new("ca");
    let stranger = Ca::new("other");
    let leaf = ca.leaf(&["main.example"], &[]);
    let good_id = "spiffe://cluster.local/ns/default/sa/good";
    let ads = FakeAds::start().await.expect("ads");
    let v = Vct::ValidationContextSdsSecretConfig(sds("trust"));
    let ctx = server_ctx(common(Some(&leaf), None, &[], Some(v)), true);
    push_tls_http(&ads, ctx, vec![static_cluster("a", &[a.addr])]);
    ads.push(
        SECRET_TYPE,
        vec![ca_secret("trust", &ca.pem, uri_sans(&[good_id]))],
    );
    let proxy = start_proxy(&ads).await;
    let addr = wait_listener(&proxy, "main").await;
    let with = |cert: Option<Leaf>| ClientOpts {
        client_cert: cert,
        ..opts(&ca, &[])
    };
    let ok = get(
        addr,
        &with(Some(ca.leaf(&[], &[good_id]))),
        "main.example",
        "/",
    )
    .await;
    assert_eq!(ok.map(|(g, _)| g.status), Ok(200));
    let cases = [
        ("no client certificate", None),
        ("another CA", Some(stranger.leaf(&[], &[good_id]))),
        (
            "SAN mismatch",
            Some(ca.leaf(&[], &["spiffe://cluster.local/ns/default/sa/bad"])),
        ),
    ];
    for (what, cert) in cases {
        let got = get(addr, &with(cert), "main.example", "/").await;
        assert!(got.is_err(), "{what}: {:?}", got.map(|(g, _)| g.status));
    }
    // The server counts a failed handshake just after the client saw its alert: poll.
    let url = format!("http://{}/stats/prometheus", proxy.admin);
    let want = [
        "plexus_downstream_tls_handshake_total 1\n",
        "plexus_downstream_tls_error_total 3\n",
    ];
    plexus_testkit::eventually(WAIT, "TLS handshake counters", || async {
        let (_, metrics) = plexus_testkit::envoy::http_get(&url).await?;
        want.iter().all(|l| metrics.contains(l)).then_some(())
    })
    .await
    .expect("1 handshake and 3 failures counted");
}

/// Two TLS chains picked by SNI and two by ALPN, each terminating with its own certificate.
#[tokio::test]
async fn chains_are_selected_by_sni_and_by_client_hello_alpn() {
    let (a, b) = (echo_named("a").await, echo_named("b").await);
    let ca = Ca::new("ca");
    let (leaf_a, leaf_b) = (ca.leaf(&["a.example"], &[]), ca.leaf(&["b.example"], &[]));
    let ads = FakeAds::start().await.expect("ads");
    let chain = |m: l::FilterChainMatch, leaf: &Leaf, cluster: &str| {
        let li: l::Listener =
            plexus_xds::unpack(&http_listener_inline("x", routes_to(cluster))).expect("listener");
        let mut fc = li.filter_chains[0].clone();
        fc.filter_chain_match = Some(m);
        fc.transport_socket = Some(downstream_socket(server_ctx(
            common(Some(leaf), None, &[], None),
            false,
        )));
        fc
    };
    let by_sni = |n: &str| l::FilterChainMatch {
        server_names: vec![n.into()],
        ..Default::default()
    };
    let by_alpn = |p: &[&str]| l::FilterChainMatch {
        application_protocols: p.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let listener = |name: &str, chains: Vec<l::FilterChain>| {
        let mut li: l::Listener =
            plexus_xds::unpack(&http_listener_inline(name, routes_to("a"))).expect("listener");
        li.filter_chains = chains;
        li.listener_filters = vec![tls_inspector()];
        (name.to_string(), pack_any(li))
    };
    push(
        &ads,
        &Config {
            listeners: vec![
                listener(
                    "sni",
                    vec![
                        chain(by_sni("a.example"), &leaf_a, "a"),
                        chain(by_sni("b.example"), &leaf_b, "b"),
                    ],
                ),
                listener(
                    "alpn",
                    vec![
                        chain(
                            by_alpn(&["istio-peer-exchange", "istio-http/1.1"]),
                            &leaf_a,
                            "a",
                        ),
                        chain(by_alpn(&["h2", "http/1.1"]), &leaf_b, "b"),
                    ],
                ),
            ],
            routes: vec![],
            clusters: vec![
                static_cluster("a", &[a.addr]),
                static_cluster("b", &[b.addr]),
            ],
            endpoints: vec![],
        },
    );
    let proxy = start_proxy(&ads).await;
    let (sni, alpn) = (
        wait_listener(&proxy, "sni").await,
        wait_listener(&proxy, "alpn").await,
    );
    let cases = [
        (sni, "a.example", vec![], "a", &leaf_a),
        (sni, "b.example", vec![], "b", &leaf_b),
        (alpn, "a.example", vec!["istio-peer-exchange"], "a", &leaf_a),
        (alpn, "b.example", vec!["http/1.1"], "b", &leaf_b),
    ];
    for (addr, name, protocols, want, leaf) in cases {
        let o = ClientOpts {
            sni: name.into(),
            ca_pem: ca.pem.clone(),
            alpn: protocols.iter().map(|p: &&str| p.to_string()).collect(),
            client_cert: None,
            rsa_only: false,
            any_server_cert: false,
        };
        // istio-peer-exchange is not an HTTP ALPN: the client still speaks HTTP/1.1.
        let (got, hs) = get(addr, &o, name, "/").await.expect("request");
        assert_eq!(
            (got.json()["workload"].as_str(), &hs.peer_leaf),
            (Some(want), &leaf.der())
        );
    }
    let o = ClientOpts {
        sni: "c.example".into(),
        ..opts(&ca, &[])
    };
    assert!(connect(sni, &o).await.is_err(), "no chain for c.example");
}

fn tls_inspector() -> l::ListenerFilter {
    use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
    l::ListenerFilter {
        name: "envoy.filters.listener.tls_inspector".into(),
        config_type: Some(l::listener_filter::ConfigType::TypedConfig(pack_any(
            TlsInspector::default(),
        ))),
        ..Default::default()
    }
}

#[tokio::test]
async fn unsupported_tls_fields_are_nacked_by_name() {
    let ca = Ca::new("ca");
    let leaf = ca.leaf(&["a"], &[]);
    let ads = FakeAds::start().await.expect("ads");
    let proxy = start_proxy(&ads).await;
    let require_sni = tls::DownstreamTlsContext {
        require_sni: Some(envoy_types::pb::google::protobuf::BoolValue { value: true }),
        ..server_ctx(common(Some(&leaf), None, &[], None), false)
    };
    let mut api_sds = sds("x");
    if let Some(cs) = api_sds.sds_config.as_mut() {
        cs.config_source_specifier = Some(
            envoy_types::pb::envoy::config::core::v3::config_source::ConfigSourceSpecifier::ApiConfigSource(Default::default()),
        );
    }
    let api = tls::DownstreamTlsContext {
        common_tls_context: Some(tls::CommonTlsContext {
            tls_certificate_sds_secret_configs: vec![api_sds],
            ..Default::default()
        }),
        ..Default::default()
    };
    let sans_only = Vct::ValidationContext(tls::CertificateValidationContext {
        match_typed_subject_alt_names: uri_sans(&["spiffe://x/y"]),
        ..Default::default()
    });
    let no_ca = server_ctx(common(Some(&leaf), None, &[], Some(sans_only)), false);
    let cases = [
        (require_sni, "transport_socket.typed_config.require_sni"),
        (api, "tls_certificate_sds_secret_configs[0].sds_config"),
        (
            no_ca,
            "common_tls_context.validation_context.trusted_ca: required",
        ),
    ];
    for (ctx, field) in cases {
        let before = ads.acks().len();
        let li = with_tls(
            http_listener_inline("main", routes_to("a")),
            downstream_socket(ctx),
        );
        ads.push(LISTENER_TYPE, vec![("main".into(), li)]);
        let nack = ads
            .wait_nack(LISTENER_TYPE, before, WAIT)
            .await
            .expect("NACK");
        let msg = nack.error.unwrap_or_default();
        assert!(msg.contains(field), "{field}: {msg}");
    }
    drop(proxy);
}

/// Istio's gateway shape for `mode: MUTUAL` with `credentialNames`: an RSA and an ECDSA
/// certificate over SDS, and a combined validation context (SAN matchers inline, the CA over
/// SDS as `<name>-cacert`).
#[tokio::test]
async fn gateway_mutual_with_two_certificates_and_a_combined_validation_context() {
    let a = echo_named("a").await;
    let ca = Ca::new("ca");
    let (rsa, ecdsa) = (
        ca.leaf_rsa(&["main.example"]),
        ca.leaf(&["main.example"], &[]),
    );
    let id = "spiffe://partners/client";
    let ads = FakeAds::start().await.expect("ads");
    let combined = Vct::CombinedValidationContext(
        tls::common_tls_context::CombinedCertificateValidationContext {
            default_validation_context: Some(tls::CertificateValidationContext {
                match_typed_subject_alt_names: uri_sans(&[id]),
                ..Default::default()
            }),
            validation_context_sds_secret_config: Some(sds("partners-cacert")),
            ..Default::default()
        },
    );
    let mut common = common(None, None, &["h2", "http/1.1"], Some(combined));
    common.tls_certificate_sds_secret_configs = vec![sds("partners-rsa"), sds("partners-ecdsa")];
    push_tls_http(
        &ads,
        server_ctx(common, true),
        vec![static_cluster("a", &[a.addr])],
    );
    ads.push(
        SECRET_TYPE,
        vec![
            cert_secret("partners-rsa", &rsa),
            cert_secret("partners-ecdsa", &ecdsa),
            ca_secret("partners-cacert", &ca.pem, vec![]),
        ],
    );
    let proxy = start_proxy(&ads).await;
    let addr = wait_listener(&proxy, "main").await;
    let client = |cert: Leaf, rsa_only: bool| ClientOpts {
        client_cert: Some(cert),
        rsa_only,
        ..opts(&ca, &["h2"])
    };
    let (got, hs) = get(
        addr,
        &client(ca.leaf(&[], &[id]), false),
        "main.example",
        "/",
    )
    .await
    .expect("ECDSA-capable client");
    assert_eq!((got.status, hs.peer_leaf), (200, ecdsa.der()));
    let (got, hs) = get(
        addr,
        &client(ca.leaf(&[], &[id]), true),
        "main.example",
        "/",
    )
    .await
    .expect("RSA-only client");
    assert_eq!((got.status, hs.peer_leaf), (200, rsa.der()));
    let wrong_san = get(
        addr,
        &client(ca.leaf(&[], &["spiffe://x/y"]), false),
        "main.example",
        "/",
    )
    .await;
    assert!(
        wrong_san.is_err(),
        "SAN matchers from the default context apply"
    );
}

#[test]
fn debug_output_of_a_tls_listener_carries_no_key_material() {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let ca = Ca::new("ca");
    let leaf = ca.leaf(&["a"], &[]);
    let ctx = server_ctx(common(Some(&leaf), None, &[], None), false);
    let li = with_tls(
        http_listener_inline("main", routes_to("a")),
        downstream_socket(ctx),
    );
    let pb: l::Listener = plexus_xds::unpack(&li).expect("listener");
    let cfg = plexus_proxy::config::Listener::try_from(&pb).expect("accepted");
    let tls = cfg.kind.tls().expect("TLS chain");
    plexus_proxy::tls::build::bind_downstream(tls, &Default::default()).expect("built");
    let dump = format!("{cfg:?}");
    let der = PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).expect("key");
    let bytes = format!("{:?}", &der.secret_der()[..24]);
    assert!(dump.contains("ready: true"), "{dump}");
    assert!(
        !dump.contains(bytes.trim_end_matches(']')),
        "key bytes in {dump}"
    );
    assert!(!dump.contains("PRIVATE KEY"));
}

async fn config_dump(proxy: &plexus_proxy::ProxyHandle) -> serde_json::Value {
    let url = format!("http://{}/config_dump", proxy.admin);
    let (_, body) = plexus_testkit::envoy::http_get(&url)
        .await
        .expect("config_dump");
    serde_json::from_str(&body).expect("JSON")
}
