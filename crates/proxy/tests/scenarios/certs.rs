//! Differential scenarios for which certificate a server presents and when TLS resources
//! start: a context with seven certificates picked by SNI, wildcard, CN and key type
//! (`tls-pick`, and `tls-pick-scan` with `full_scan_certs_on_sni_mismatch`); a listener whose second chain's SDS certificate never comes before its 1 s
//! `initial_fetch_timeout` (`tls-timeout`) and a cluster whose SDS CA does not either
//! (`up-timeout`): both start, the chain fails its handshakes and the cluster answers 503.
//! Then the same secrets with `0s` keep a listener and a cluster warming (`tls-patient`,
//! `up-patient`) until the late secrets arrive, after which everything serves.
//!
//! Envoy holds its server initialisation for listeners and clusters at startup, so the `0s`
//! ones are pushed once every proxy runs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3 as c;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3 as tls;
use envoy_types::pb::google::protobuf::Any;

use super::tls::{Fixture, listed};
use crate::common::*;
use crate::tls_support::*;

type Vct = tls::common_tls_context::ValidationContextType;

/// Listeners every proxy must have bound at startup.
pub const LISTENERS: [&str; 4] = ["tls-pick", "tls-pick-scan", "tls-timeout", "tls-timeout-up"];
/// The certificate of `tls-timeout`'s `late.example` chain and of `tls-patient`.
pub const TIMEOUT_CERT: &str = "scenario-timeout-cert";
/// The CA of clusters `up-timeout` and `up-patient`.
pub const TIMEOUT_CA: &str = "scenario-timeout-ca";
const FETCH_TIMEOUT: Duration = Duration::from_secs(1);

/// The secrets pushed late.
pub fn late_secrets(f: &Fixture) -> Vec<(String, Any)> {
    vec![
        cert_secret(TIMEOUT_CERT, &f.late),
        ca_secret(TIMEOUT_CA, &f.ca.pem, vec![]),
    ]
}

fn ca_cluster(name: &str, f: &Fixture, wait: Duration) -> c::Cluster {
    let trust = Vct::ValidationContextSdsSecretConfig(sds_waiting(TIMEOUT_CA, wait));
    tls_cluster(
        name,
        f.front.addr,
        client_ctx("backend.example", common(None, None, &[], Some(trust))),
    )
}

/// Add the startup listeners and cluster.
pub fn extend(cfg: &mut Config, f: &Fixture, choice: &Choice) {
    let pick = with_tls(
        http_listener_inline("tls-pick", routes_to("a")),
        downstream_socket(choice.context()),
    );
    let scan = with_tls(
        http_listener_inline("tls-pick-scan", routes_to("a")),
        downstream_socket(choice.context_full_scan()),
    );
    let main = server_ctx(common(Some(&f.main), None, &[], None), false);
    let late = sds_server(sds_waiting(TIMEOUT_CERT, FETCH_TIMEOUT));
    let timeout = sni_listener(
        "tls-timeout",
        vec![("main.example", main, "a"), ("late.example", late, "a")],
    );
    let vhosts = ["up-timeout", "up-patient"]
        .iter()
        .map(|c| vhost(c, &[c], vec![route(prefix("/"), to_cluster(c))]))
        .collect();
    // `up-patient` comes later: Envoy checks an inline route table's clusters unless told not to.
    let mut table = route_config("timeout-up", vhosts);
    table.validate_clusters = Some(envoy_types::pb::google::protobuf::BoolValue { value: false });
    let up = http_listener_inline("tls-timeout-up", table);
    cfg.listeners.extend([
        ("tls-pick".to_string(), pick),
        ("tls-pick-scan".to_string(), scan),
        ("tls-timeout".to_string(), timeout),
        ("tls-timeout-up".to_string(), up),
    ]);
    cfg.clusters
        .push(ca_cluster("up-timeout", f, FETCH_TIMEOUT));
}

/// One TLS request; `Ok` when it got 200 from backend `a` with certificate `leaf`.
async fn served(addr: SocketAddr, sni: &str, leaf: &Leaf, f: &Fixture) -> Result<(), String> {
    let o = ClientOpts {
        sni: sni.into(),
        ..opts(&f.ca, &[])
    };
    let (got, hs) = get(addr, &o, sni, "/").await?;
    if got.status != 200 || got.json()["workload"] != "a" {
        return Err(format!("{} from {}", got.status, got.json()["workload"]));
    }
    if hs.peer_leaf != leaf.der() {
        return Err("served another certificate".into());
    }
    Ok(())
}

async fn status(addr: SocketAddr, host: &str) -> Result<u16, String> {
    request(addr, false, "GET", host, "/", &[])
        .await
        .map(|g| g.status)
}

/// A 503 for a failed upstream connection (`UF`): Envoy says so in its body, Plexus in its
/// error header.
fn connect_failure(proxy: &str, g: &Got) -> bool {
    if proxy == "envoy" {
        let body = String::from_utf8_lossy(&g.body);
        body.contains("upstream connect error") && body.contains("connection failure")
    } else {
        g.header(plexus_proxy::ERROR_HEADER)
            .is_some_and(|e| e.starts_with("UF: "))
    }
}

/// Whether cluster `name` is active, per the proxy's `/clusters` (Envoy lists active ones).
async fn cluster_active(proxy: &str, admin: SocketAddr, name: &str) -> Option<bool> {
    let (path, key) = if proxy == "envoy" {
        ("/clusters?format=json", "cluster_statuses")
    } else {
        ("/clusters", "clusters")
    };
    let (_, body) = plexus_testkit::envoy::http_get(&format!("http://{admin}{path}")).await?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    Some(v[key].as_array()?.iter().any(|c| c["name"] == name))
}

/// Checks on a started proxy: `(check, outcome)`.
pub async fn check(
    f: &Fixture,
    choice: &Choice,
    addrs: &BTreeMap<&'static str, SocketAddr>,
    proxy: &str,
    admin: SocketAddr,
) -> Vec<(&'static str, Result<(), String>)> {
    let at = |n: &str| addrs.get(n).copied().unwrap_or(([127, 0, 0, 1], 1).into());
    let mut out = Vec::new();
    let cases = choice.cases().into_iter().map(|c| ("tls-pick", c));
    let scans = choice.full_scan_cases().into_iter();
    for (listener, (name, sni, rsa_only, want)) in cases.chain(scans.map(|c| ("tls-pick-scan", c)))
    {
        let outcome = match connect(at(listener), &any_cert_client(sni, rsa_only)).await {
            Ok((_, hs)) if hs.peer_leaf == want.der() => Ok(()),
            Ok(_) => Err("served another certificate".into()),
            Err(e) => Err(e),
        };
        out.push((name, outcome));
    }
    out.push((
        "timed-out listener: the chain with its certificate serves",
        served(at("tls-timeout"), "main.example", &f.main, f).await,
    ));
    let o = ClientOpts {
        sni: "late.example".into(),
        ..opts(&f.ca, &[])
    };
    out.push((
        "timed-out listener: the chain without its certificate fails",
        match connect(at("tls-timeout"), &o).await {
            Err(_) => Ok(()),
            Ok(_) => Err("handshake completed".into()),
        },
    ));
    let up = match request(at("tls-timeout-up"), false, "GET", "up-timeout", "/", &[]).await {
        Ok(g) if g.status == 503 && connect_failure(proxy, &g) => {
            match cluster_active(proxy, admin, "up-timeout").await {
                Some(true) => Ok(()),
                other => Err(format!("answers 503 UF but is not active ({other:?})")),
            }
        }
        Ok(g) => Err(format!(
            "{} {:?} {:?} (want 503 UF from an active cluster)",
            g.status,
            g.header(plexus_proxy::ERROR_HEADER),
            String::from_utf8_lossy(&g.body)
        )),
        Err(e) => Err(e),
    };
    out.push(("timed-out cluster: active, its connections fail", up));
    out
}

/// A proxy under test: label, `envoy`/`plexus`, admin, listener addresses.
pub type Target<'a> = (
    String,
    &'static str,
    SocketAddr,
    &'a BTreeMap<&'static str, SocketAddr>,
);

/// Push `tls-patient` and `up-patient` (`0s`) with the other `listeners` and `clusters`;
/// on every target they must stay warming while the timed-out ones are active. Returns the
/// outcomes and the listeners pushed (later pushes must keep them).
pub async fn patient(
    f: &Fixture,
    ads: &plexus_testkit::FakeAds,
    targets: &[Target<'_>],
    mut listeners: Vec<(String, Any)>,
    mut clusters: Vec<c::Cluster>,
) -> (Vec<(usize, Result<(), String>)>, Vec<(String, Any)>) {
    let patient = with_tls(
        http_listener_inline("tls-patient", routes_to("a")),
        downstream_socket(sds_server(sds_waiting(TIMEOUT_CERT, Duration::ZERO))),
    );
    listeners.push(("tls-patient".into(), patient));
    clusters.push(ca_cluster("up-patient", f, Duration::ZERO));
    let clusters: Vec<(String, Any)> = clusters
        .into_iter()
        .map(|c| (c.name.clone(), envoy_types::util::pack_any(c)))
        .collect();
    ads.push(plexus_xds::CLUSTER_TYPE, clusters);
    let lds = ads.push(plexus_xds::LISTENER_TYPE, listeners.clone());
    // Envoy holds its CDS ACK while a cluster warms: wait for the LDS ACKs, then for each
    // proxy to show the cluster warming.
    let acked = plexus_testkit::eventually(WAIT, "every proxy to ACK the 0s listener", || async {
        let n = ads
            .acks()
            .iter()
            .filter(|a| a.type_url == plexus_xds::LISTENER_TYPE && a.version == lds)
            .filter(|a| a.error.is_none())
            .count();
        (n >= targets.len()).then_some(())
    })
    .await;
    let mut out = Vec::new();
    for (i, (label, proxy, admin, _)) in targets.iter().enumerate() {
        let outcome = match &acked {
            Err(e) => Err(e.clone()),
            Ok(()) => waiting(proxy, *admin).await,
        };
        out.push((
            i,
            outcome.map_err(|e| format!("[TLS: 0s waits] {label}: {e}")),
        ));
    }
    (out, listeners)
}

/// Whether cluster `name` is warming, per the proxy's `/config_dump`.
async fn cluster_warming(proxy: &str, admin: SocketAddr, name: &str) -> Option<bool> {
    let path = if proxy == "envoy" {
        "/config_dump?resource=dynamic_warming_clusters"
    } else {
        "/config_dump"
    };
    let (_, body) = plexus_testkit::envoy::http_get(&format!("http://{admin}{path}")).await?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    Some(if proxy == "envoy" {
        v["configs"]
            .as_array()?
            .iter()
            .any(|c| c["cluster"]["name"] == name)
    } else {
        v["tls"]["warming_clusters"]
            .as_array()?
            .iter()
            .any(|c| c == name)
    })
}

async fn waiting(proxy: &str, admin: SocketAddr) -> Result<(), String> {
    plexus_testkit::eventually(WAIT, "up-patient warming", || async {
        cluster_warming(proxy, admin, "up-patient")
            .await?
            .then_some(())
    })
    .await?;
    if let Some(addr) = listed(admin, "tls-patient").await {
        return Err(format!("tls-patient active at {addr} before its secret"));
    }
    match (
        cluster_active(proxy, admin, "up-patient").await,
        cluster_active(proxy, admin, "up-timeout").await,
    ) {
        (Some(false), Some(true)) => Ok(()),
        other => Err(format!("(up-patient, up-timeout) active: {other:?}")),
    }
}

/// After the late secrets: every waiting or failing resource serves.
pub async fn after_late(f: &Fixture, targets: &[Target<'_>]) -> Vec<(usize, Result<(), String>)> {
    let mut out = Vec::new();
    for (i, (label, _, admin, addrs)) in targets.iter().enumerate() {
        let outcome = plexus_testkit::eventually(WAIT, "the late secrets in use", || async {
            let patient = listed(*admin, "tls-patient").await?;
            served(patient, "late.example", &f.late, f).await.ok()?;
            let timeout = addrs.get("tls-timeout").copied()?;
            served(timeout, "late.example", &f.late, f).await.ok()?;
            let up = addrs.get("tls-timeout-up").copied()?;
            for host in ["up-timeout", "up-patient"] {
                (status(up, host).await.ok()? == 200).then_some(())?;
            }
            Some(())
        })
        .await;
        out.push((
            i,
            outcome.map_err(|e| format!("[TLS: late secrets] {label}: {e}")),
        ));
    }
    out
}
