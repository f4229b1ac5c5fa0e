//! Which certificate a TLS listener serves and when it starts: a server context with several
//! certificates picks by SNI, then key type (Envoy's documented rules, with and without
//! `full_scan_certs_on_sni_mismatch`), and a listener or
//! cluster whose SDS secret does not come starts after the secret's `initial_fetch_timeout`
//! with that TLS context failing, while `0s` keeps it warming until the secret arrives.

mod common;
mod tls_support;

use std::time::Duration;

use common::*;
use plexus_proxy::ERROR_HEADER;
use plexus_testkit::{FakeAds, eventually};
use plexus_xds::{LISTENER_TYPE, SECRET_TYPE};
use tls_support::*;

type Vct = envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::common_tls_context::ValidationContextType;

/// Long enough for the checks made before it runs out, short for the suite.
const FETCH_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test]
async fn server_certificate_is_chosen_by_sni_then_key_type() {
    let a = echo_named("a").await;
    let ca = Ca::new("ca");
    let choice = Choice::new(&ca);
    let ads = FakeAds::start().await.expect("ads");
    let listener = |name: &str, ctx| {
        let li = http_listener_inline(name, routes_to("a"));
        (name.to_string(), with_tls(li, downstream_socket(ctx)))
    };
    push(
        &ads,
        &Config {
            listeners: vec![
                listener("main", choice.context()),
                listener("scan", choice.context_full_scan()),
            ],
            routes: vec![],
            clusters: vec![static_cluster("a", &[a.addr])],
            endpoints: vec![],
        },
    );
    let proxy = start_proxy(&ads).await;
    let main = wait_listener(&proxy, "main").await;
    let scan = wait_listener(&proxy, "scan").await;
    let cases = choice.cases().into_iter().map(|c| (main, c));
    for (addr, (check, sni, rsa_only, want)) in
        cases.chain(choice.full_scan_cases().into_iter().map(|c| (scan, c)))
    {
        let (_, hs) = connect(addr, &any_cert_client(sni, rsa_only))
            .await
            .unwrap_or_else(|e| panic!("{check}: {e}"));
        assert!(hs.peer_leaf == want.der(), "{check}: another certificate");
    }
}

async fn config_dump(proxy: &plexus_proxy::ProxyHandle) -> serde_json::Value {
    let url = format!("http://{}/config_dump", proxy.admin);
    let (_, body) = plexus_testkit::envoy::http_get(&url)
        .await
        .expect("config_dump");
    serde_json::from_str(&body).expect("JSON")
}

/// Listener `main`: chain `a.example` with an inline certificate, chain `b.example` with SDS
/// secret `late` (2 s timeout). Listener `patient`: the same secret with `0s`.
#[tokio::test]
async fn a_listener_starts_after_initial_fetch_timeout_and_its_chain_fails_until_the_secret() {
    let (a, b) = (echo_named("a").await, echo_named("b").await);
    let ca = Ca::new("ca");
    let (leaf_a, late) = (ca.leaf(&["a.example"], &[]), ca.leaf(&["b.example"], &[]));
    let ads = FakeAds::start().await.expect("ads");
    let inline_a = server_ctx(common(Some(&leaf_a), None, &[], None), false);
    let main = sni_listener(
        "main",
        vec![
            ("a.example", inline_a, "a"),
            (
                "b.example",
                sds_server(sds_waiting("late", FETCH_TIMEOUT)),
                "b",
            ),
        ],
    );
    let patient = with_tls(
        http_listener_inline("patient", routes_to("a")),
        downstream_socket(sds_server(sds_waiting("late", Duration::ZERO))),
    );
    let lds = push(
        &ads,
        &Config {
            listeners: vec![("main".into(), main), ("patient".into(), patient)],
            routes: vec![],
            clusters: vec![
                static_cluster("a", &[a.addr]),
                static_cluster("b", &[b.addr]),
            ],
            endpoints: vec![],
        },
    )
    .0;
    let proxy = start_proxy(&ads).await;
    ads.wait_ack(LISTENER_TYPE, &lds, WAIT)
        .await
        .expect("LDS ACK");
    let dump = config_dump(&proxy).await;
    assert_eq!(
        dump["tls"]["warming_listeners"],
        serde_json::json!(["main", "patient"]),
        "both wait for the secret at first"
    );
    let addr = wait_listener(&proxy, "main").await;
    // Started by the timeout: `0s` still waits.
    assert_eq!(proxy.listener_addr("patient"), None);
    let dump = config_dump(&proxy).await;
    assert_eq!(
        dump["tls"]["warming_listeners"],
        serde_json::json!(["patient"])
    );
    assert_eq!(
        dump["tls"]["listeners_missing_secrets"],
        serde_json::json!({"main": ["late"]})
    );
    let ok = |sni: &str| ClientOpts {
        sni: sni.into(),
        ..opts(&ca, &[])
    };
    let (got, hs) = get(addr, &ok("a.example"), "a.example", "/")
        .await
        .expect("chain a");
    assert_eq!((got.status, hs.peer_leaf), (200, leaf_a.der()));
    assert!(
        connect(addr, &ok("b.example")).await.is_err(),
        "the chain without its secret fails the handshake"
    );
    let v = ads.push(SECRET_TYPE, vec![cert_secret("late", &late)]);
    ads.wait_ack(SECRET_TYPE, &v, WAIT).await.expect("SDS ACK");
    let (got, hs) = get(addr, &ok("b.example"), "b.example", "/")
        .await
        .expect("chain b");
    assert_eq!((got.status, hs.peer_leaf), (200, late.der()));
    assert_eq!(got.json()["workload"], "b");
    assert_eq!(proxy.listener_addr("main"), Some(addr), "same socket");
    let patient = wait_listener(&proxy, "patient").await;
    let (got, _) = get(patient, &ok("b.example"), "b.example", "/")
        .await
        .expect("patient");
    assert_eq!(got.status, 200);
    let dump = config_dump(&proxy).await;
    assert_eq!(
        dump["tls"]["listeners_missing_secrets"],
        serde_json::json!({})
    );
}

/// Cluster `late` trusts a CA from SDS with a 2 s timeout, `patient` the same with `0s`:
/// once the timeout has run out `late` exists and its connections fail (503 `UF`) while
/// `patient` is still missing (503 `NC`); the CA's arrival makes both work.
#[tokio::test]
async fn a_cluster_starts_after_initial_fetch_timeout_and_fails_connections_until_the_secret() {
    let backend = echo_named("backend").await;
    let ca = Ca::new("ca");
    let front = tls_front(backend.addr, &ca.leaf(&["backend.example"], &[]), &[], None).await;
    let ads = FakeAds::start().await.expect("ads");
    let cluster = |name: &str, wait: Duration| {
        let trust = Vct::ValidationContextSdsSecretConfig(sds_waiting("late-ca", wait));
        tls_cluster(
            name,
            front.addr,
            client_ctx("backend.example", common(None, None, &[], Some(trust))),
        )
    };
    let vhosts = ["late", "patient"]
        .iter()
        .map(|c| vhost(c, &[c], vec![route(prefix("/"), to_cluster(c))]))
        .collect();
    push(
        &ads,
        &Config {
            listeners: vec![(
                "main".into(),
                http_listener_inline("main", route_config("r", vhosts)),
            )],
            routes: vec![],
            clusters: vec![
                cluster("late", FETCH_TIMEOUT),
                cluster("patient", Duration::ZERO),
            ],
            endpoints: vec![],
        },
    );
    let proxy = start_proxy(&ads).await;
    let addr = wait_listener(&proxy, "main").await;
    let cause = |g: &Got| g.header(ERROR_HEADER).unwrap_or_default();
    let failing = get_until(addr, "late", "/", |g| cause(g).starts_with("UF: ")).await;
    assert_eq!(failing.status, 503);
    let missing = request(addr, false, "GET", "patient", "/", &[])
        .await
        .expect("reply");
    assert_eq!(missing.status, 503);
    assert!(cause(&missing).starts_with("NC: "), "{}", cause(&missing));
    let dump = config_dump(&proxy).await;
    assert_eq!(
        dump["tls"]["warming_clusters"],
        serde_json::json!(["patient"])
    );
    assert_eq!(
        dump["tls"]["clusters_missing_secrets"],
        serde_json::json!({"late": ["late-ca"]})
    );
    ads.push(SECRET_TYPE, vec![ca_secret("late-ca", &ca.pem, vec![])]);
    for host in ["late", "patient"] {
        let got = get_until(addr, host, "/", |g| g.status == 200).await;
        assert_eq!(got.json()["workload"], "backend");
    }
    let settled = eventually(WAIT, "no cluster missing a secret", || async {
        let dump = config_dump(&proxy).await;
        (dump["tls"]["clusters_missing_secrets"] == serde_json::json!({})).then_some(())
    })
    .await;
    assert_eq!(settled, Ok(()));
}
