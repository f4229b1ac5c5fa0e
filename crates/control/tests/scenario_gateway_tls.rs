//! Conformance scenarios: Istio Gateway TLS end to end. `plexus control` serves Kubernetes
//! Secrets from its config directory over SDS (`kubernetes://<credentialName>`), and an
//! ingress gateway (`router` node in `istio-system`, labelled `istio: ingressgateway`) serves
//! on its own 127.x address, per data plane:
//!
//! - SIMPLE: HTTPS with SNI `bookinfo.example.com`, the served certificate verified against
//!   the test CA and equal to the one in `istio-system/gw-cred` (not the Secret of the same
//!   name in `default`), routed by a VirtualService to reviews v1 or v2 by path;
//! - MUTUAL: without a client certificate, or with one from another CA, the request fails;
//!   with one from the client CA it succeeds — the CA from `ca.crt` in the credential, and
//!   from a separate `<name>-cacert` Secret;
//! - OPTIONAL_MUTUAL: no client certificate or one from the client CA is served, one from
//!   another CA refused; with `subjectAltNames`, a client certificate with another SAN is
//!   refused;
//! - `minProtocolVersion: TLSV1_3` refuses a TLS 1.2-only client; `maxProtocolVersion: TLSV1_2`
//!   negotiates TLS 1.2;
//! - PASSTHROUGH: TLS routed by SNI to a backend that terminates TLS itself (its certificate
//!   is the one the client sees);
//! - rotation: a new certificate in the Secret file is served within 2 s, no restart, and the
//!   SDS push reaches only the gateway that asked for that Secret;
//! - an invalid Secret (key not matching the certificate) is rejected naming the object and
//!   field, the last good certificate keeps being served, and no key material shows up in the
//!   debug API.
//!
//! A NACK anywhere fails. Prints `conformance: plexus=N envoy=M scenarios passed`.

mod common;
#[path = "gateway_tls/options.rs"]
mod options;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::*;
use plexus_testkit::echo::{self, EchoConfig, EchoHandle};
use plexus_testkit::tls::{self as ttls, Issued, TestCa};
use plexus_xds::node::{NodeIdentity, ProxyType};

const HTTPS: u16 = 8443;
/// The data planes these scenarios run on.
const PLANES: [&str; 2] = ["plexus", "envoy"];

fn gateway_node(name: &str, namespace: &str, istio_label: &str) -> NodeIdentity {
    let mut node = identity(name, &unique_ip());
    node.proxy_type = ProxyType::Router;
    node.namespace = namespace.into();
    node.labels = BTreeMap::from([("istio".to_string(), istio_label.to_string())]);
    node
}

/// Certificates of one test run.
struct Pki {
    ca: TestCa,
    client_ca: TestCa,
    other_ca: TestCa,
    bookinfo: Issued,
    mtls: Issued,
    mtls2: Issued,
    backend: Issued,
    decoy: Issued,
    optional: Issued,
    tls13: Issued,
    tls12: Issued,
}

impl Pki {
    fn new() -> Pki {
        let ca = TestCa::new("plexus test CA").expect("ca");
        let client_ca = TestCa::new("plexus client CA").expect("client ca");
        let other_ca = TestCa::new("someone else").expect("other ca");
        let issue = |names: &[&str]| ca.issue(names, false).expect("issue");
        Pki {
            bookinfo: issue(&["bookinfo.example.com"]),
            mtls: issue(&["mtls.example.com"]),
            mtls2: issue(&["mtls2.example.com"]),
            backend: issue(&["secure.example.com"]),
            decoy: issue(&["bookinfo.example.com"]),
            optional: issue(&["optional.example.com", "sans.example.com"]),
            tls13: issue(&["tls13.example.com"]),
            tls12: issue(&["tls12.example.com"]),
            ca,
            client_ca,
            other_ca,
        }
    }

    /// The gateway credentials: the TLS type with base64 `data`, and the generic form in
    /// `stringData`; a decoy of the same name in `default`.
    fn secrets(&self, bookinfo: &Issued) -> String {
        [
            ttls::tls_secret_yaml("gw-cred", "istio-system", bookinfo, None),
            ttls::tls_secret_yaml(
                "mtls-cred",
                "istio-system",
                &self.mtls,
                Some(&self.client_ca.cert_pem),
            ),
            ttls::generic_secret_yaml("mtls2-cred", "istio-system", Some(&self.mtls2), None),
            ttls::generic_secret_yaml(
                "mtls2-cred-cacert",
                "istio-system",
                None,
                Some(&self.client_ca.cert_pem),
            ),
            ttls::tls_secret_yaml("gw-cred", "default", &self.decoy, None),
            ttls::tls_secret_yaml(
                "optional-cred",
                "istio-system",
                &self.optional,
                Some(&self.client_ca.cert_pem),
            ),
            ttls::tls_secret_yaml("tls13-cred", "istio-system", &self.tls13, None),
            ttls::tls_secret_yaml("tls12-cred", "istio-system", &self.tls12, None),
        ]
        .join("---\n")
    }
}

fn config(backend_port: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: tls-gateway, namespace: istio-system}}
spec:
  selector: {{istio: ingressgateway}}
  servers:
  - port: {{number: {HTTPS}, name: https-simple, protocol: HTTPS}}
    hosts: [bookinfo.example.com]
    tls: {{mode: SIMPLE, credentialName: gw-cred}}
  - port: {{number: {HTTPS}, name: https-mutual, protocol: HTTPS}}
    hosts: [mtls.example.com]
    tls: {{mode: MUTUAL, credentialName: mtls-cred}}
  - port: {{number: {HTTPS}, name: https-mutual2, protocol: HTTPS}}
    hosts: [mtls2.example.com]
    tls: {{mode: MUTUAL, credentialName: mtls2-cred}}
  - port: {{number: {HTTPS}, name: https-optional, protocol: HTTPS}}
    hosts: [optional.example.com]
    tls: {{mode: OPTIONAL_MUTUAL, credentialName: optional-cred}}
  - port: {{number: {HTTPS}, name: https-sans, protocol: HTTPS}}
    hosts: [sans.example.com]
    tls: {{mode: OPTIONAL_MUTUAL, credentialName: optional-cred, subjectAltNames: [client.example.com]}}
  - port: {{number: {HTTPS}, name: https-tls13, protocol: HTTPS}}
    hosts: [tls13.example.com]
    tls: {{mode: SIMPLE, credentialName: tls13-cred, minProtocolVersion: TLSV1_3}}
  - port: {{number: {HTTPS}, name: https-tls12, protocol: HTTPS}}
    hosts: [tls12.example.com]
    tls: {{mode: SIMPLE, credentialName: tls12-cred, minProtocolVersion: TLSV1_2, maxProtocolVersion: TLSV1_2}}
  - port: {{number: {HTTPS}, name: tls-passthrough, protocol: TLS}}
    hosts: [secure.example.com]
    tls: {{mode: PASSTHROUGH}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: side-gateway, namespace: default}}
spec:
  selector: {{istio: side}}
  servers:
  - port: {{number: {HTTPS}, name: https, protocol: HTTPS}}
    hosts: [bookinfo.example.com]
    tls: {{mode: SIMPLE, credentialName: gw-cred}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: bookinfo-tls, namespace: default}}
spec:
  hosts: [bookinfo.example.com]
  gateways: [istio-system/tls-gateway, default/side-gateway]
  http:
  - match: [{{uri: {{prefix: /v2}}}}]
    route: [{{destination: {{host: reviews, subset: v2, port: {{number: {PORT}}}}}}}]
  - route: [{{destination: {{host: reviews, subset: v1, port: {{number: {PORT}}}}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: mtls, namespace: default}}
spec:
  hosts: [mtls.example.com, mtls2.example.com, optional.example.com, sans.example.com, tls13.example.com, tls12.example.com]
  gateways: [istio-system/tls-gateway]
  http:
  - route: [{{destination: {{host: ratings, port: {{number: {PORT}}}}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: secure, namespace: default}}
spec:
  hosts: [secure.example.com]
  gateways: [istio-system/tls-gateway]
  tls:
  - match: [{{sniHosts: [secure.example.com]}}]
    route: [{{destination: {{host: secure-backend, port: {{number: 9443}}}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: secure-backend, namespace: default}}
spec:
  selector: {{app: secure-backend}}
  ports:
  - {{name: tls, port: 9443, targetPort: tls}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: secure-backend, namespace: default}}
spec:
  address: 127.0.0.1
  labels: {{app: secure-backend}}
  ports: {{tls: {backend_port}}}
"#
    )
}

/// The gateways of one data plane: `main` in istio-system, `side` in default.
struct Plane {
    main: Sidecar,
    side: Sidecar,
}

impl Plane {
    fn ids(&self) -> Vec<String> {
        vec![self.main.node_id.clone(), self.side.node_id.clone()]
    }
}

async fn start_plane(mesh: &Mesh, plane: &str, test: &str) -> Option<Plane> {
    let main = gateway_node(&format!("gw-{plane}"), "istio-system", "ingressgateway");
    let side = gateway_node(&format!("side-{plane}"), "default", "side");
    if plane == "plexus" {
        return Some(Plane {
            main: Sidecar::plexus_node(mesh, false, main).await,
            side: Sidecar::plexus_node(mesh, true, side).await,
        });
    }
    Some(Plane {
        main: Sidecar::envoy_node(mesh, test, false, main).await?,
        side: Sidecar::envoy_node(mesh, test, true, side).await?,
    })
}

fn at(g: &Sidecar) -> std::net::SocketAddr {
    std::net::SocketAddr::new(g.addr.ip(), HTTPS)
}

/// GET over TLS until it answers (listeners warm up while their secrets arrive).
async fn get_ready(
    g: &Sidecar,
    sni: &str,
    path: &str,
    ca: &str,
    client: Option<&Issued>,
) -> Result<ttls::HttpsReply, String> {
    let cfg = ttls::client_config(ca, client)?;
    let last = std::sync::Mutex::new(String::new());
    plexus_testkit::eventually(
        WAIT,
        &format!("{} https://{sni}{path}", g.plane),
        || async {
            match ttls::https_get(at(g), sni, path, cfg.clone()).await {
                Ok(r) => Some(r),
                Err(e) => {
                    if let Ok(mut l) = last.lock() {
                        *l = e;
                    }
                    None
                }
            }
        },
    )
    .await
    .map_err(|e| {
        format!(
            "{e}; last error: {}",
            last.lock().map(|l| l.clone()).unwrap_or_default()
        )
    })
}

async fn simple(p: &Plane, pki: &Pki) -> Result<(), String> {
    let plane = p.main.plane;
    for (path, want) in [("/v2/x", "v2"), ("/", "v1")] {
        let r = get_ready(
            &p.main,
            "bookinfo.example.com",
            path,
            &pki.ca.cert_pem,
            None,
        )
        .await?;
        if r.status != 200 || r.json["workload"] != "reviews" || r.json["version"] != want {
            return Err(format!("[{plane}] SIMPLE {path}: {} {}", r.status, r.json));
        }
        if r.peer_cert != ttls::leaf_der(&pki.bookinfo.cert_pem) {
            return Err(format!(
                "[{plane}] SIMPLE: served certificate is not istio-system/gw-cred's"
            ));
        }
    }
    // The side gateway lives in `default`: `kubernetes://gw-cred` is default's Secret there.
    let r = get_ready(&p.side, "bookinfo.example.com", "/", &pki.ca.cert_pem, None).await?;
    if r.status != 200 || r.peer_cert != ttls::leaf_der(&pki.decoy.cert_pem) {
        return Err(format!(
            "[{plane}] side gateway: {} or not default/gw-cred's certificate",
            r.status
        ));
    }
    Ok(())
}

async fn mutual(p: &Plane, pki: &Pki) -> Result<(), String> {
    let plane = p.main.plane;
    let client = pki.client_ca.issue(&["client.example.com"], true)?;
    let stranger = pki.other_ca.issue(&["client.example.com"], true)?;
    for host in ["mtls.example.com", "mtls2.example.com"] {
        let r = get_ready(&p.main, host, "/", &pki.ca.cert_pem, Some(&client)).await?;
        if r.status != 200 || r.json["workload"] != "ratings" {
            return Err(format!(
                "[{plane}] MUTUAL {host} with client cert: {} {}",
                r.status, r.json
            ));
        }
        for (what, cert) in [
            ("no client cert", None),
            ("a foreign client cert", Some(&stranger)),
        ] {
            let cfg = ttls::client_config(&pki.ca.cert_pem, cert)?;
            if let Ok(r) = ttls::https_get(at(&p.main), host, "/", cfg).await {
                return Err(format!(
                    "[{plane}] MUTUAL {host} with {what} answered {}",
                    r.status
                ));
            }
        }
    }
    Ok(())
}

async fn passthrough(p: &Plane, pki: &Pki) -> Result<(), String> {
    let plane = p.main.plane;
    let r = get_ready(&p.main, "secure.example.com", "/", &pki.ca.cert_pem, None).await?;
    if r.status != 200 || r.json["workload"] != "secure-backend" {
        return Err(format!("[{plane}] PASSTHROUGH: {} {}", r.status, r.json));
    }
    if r.peer_cert != ttls::leaf_der(&pki.backend.cert_pem) {
        return Err(format!(
            "[{plane}] PASSTHROUGH: the certificate seen is not the backend's"
        ));
    }
    Ok(())
}

/// SDS pushes the control plane made to `id` so far.
fn sds_pushes(mesh: &Mesh, id: &str) -> u64 {
    mesh.control
        .hub
        .proxy(id)
        .and_then(|p| p.types.get(plexus_xds::SECRET_TYPE).map(|t| t.pushes))
        .unwrap_or(0)
}

/// Rotate istio-system/gw-cred; the new certificate must be served within 2 s.
async fn rotation(
    mesh: &Mesh,
    planes: &mut [Plane],
    pki: &Pki,
    rotated: &Issued,
) -> Vec<Result<(), String>> {
    let want = ttls::leaf_der(&rotated.cert_pem);
    let side_before: Vec<u64> = planes
        .iter()
        .map(|p| sds_pushes(mesh, &p.side.node_id))
        .collect();
    let written = Instant::now();
    mesh.write("secrets.yaml", &pki.secrets(rotated));
    let mut out = Vec::new();
    for (i, p) in planes.iter_mut().enumerate() {
        let plane = p.main.plane;
        let cfg = ttls::client_config(&pki.ca.cert_pem, None).expect("client config");
        let seen = plexus_testkit::eventually(WAIT, "the rotated certificate", || async {
            let r = ttls::https_get(at(&p.main), "bookinfo.example.com", "/", cfg.clone()).await;
            r.ok()
                .filter(|r| r.status == 200 && r.peer_cert == want)
                .map(|_| written.elapsed())
        })
        .await;
        let result = match seen {
            Err(e) => Err(format!("[{plane}] rotation: {e}")),
            Ok(t) if t > Duration::from_secs(2) => {
                Err(format!("[{plane}] rotation took {t:?} (> 2 s)"))
            }
            Ok(t) => {
                println!("scenario: [{plane}] rotated certificate served {t:?} after the write");
                Ok(())
            }
        }
        .and_then(|()| {
            if !p.main.is_running() {
                return Err(format!("[{plane}] gateway restarted"));
            }
            let after = sds_pushes(mesh, &p.side.node_id);
            if after != side_before[i] {
                return Err(format!(
                    "[{plane}] SDS pushed to the side gateway ({} -> {after})",
                    side_before[i]
                ));
            }
            Ok(())
        });
        out.push(result);
    }
    out
}

/// A key that does not match: rejected with object and field, last good served, no key text
/// anywhere in the debug API.
async fn invalid_secret(
    mesh: &Mesh,
    planes: &[Plane],
    pki: &Pki,
    good: &Issued,
) -> Vec<Result<(), String>> {
    let other = pki
        .ca
        .issue(&["bookinfo.example.com"], false)
        .expect("issue");
    let broken = Issued {
        cert_pem: other.cert_pem.clone(),
        key_pem: pki.mtls.key_pem.clone(),
    };
    mesh.write("secrets.yaml", &pki.secrets(&broken));
    let path = mesh.dir.join("secrets.yaml").display().to_string();
    let rejected = plexus_testkit::eventually(WAIT, "the broken Secret to be rejected", || async {
        let state = mesh.control.config();
        state
            .rejected
            .iter()
            .find(|r| r.path == path)
            .map(|r| r.to_string())
    })
    .await;
    let want =
        "Secret istio-system/gw-cred: data[tls.key]: Invalid value: private key does not match";
    let verdict = match &rejected {
        Ok(text) if text.contains(want) => Ok(()),
        Ok(text) => Err(format!("rejection does not name object and field: {text}")),
        Err(e) => Err(e.clone()),
    };
    let mut out = Vec::new();
    for p in planes {
        let plane = p.main.plane;
        let result = verdict.clone().map_err(|e| format!("[{plane}] {e}"));
        let result = match result {
            Err(e) => Err(e),
            Ok(()) => {
                let cfg = ttls::client_config(&pki.ca.cert_pem, None).expect("client config");
                match ttls::https_get(at(&p.main), "bookinfo.example.com", "/", cfg).await {
                    Ok(r) if r.peer_cert == ttls::leaf_der(&good.cert_pem) => Ok(()),
                    Ok(_) => Err(format!(
                        "[{plane}] the last good certificate is no longer served"
                    )),
                    Err(e) => Err(format!("[{plane}] after the broken Secret: {e}")),
                }
            }
        };
        out.push(result.and_then(|()| no_key_material(mesh, &p.main.node_id, pki, good)));
    }
    out
}

fn no_key_material(mesh: &Mesh, id: &str, pki: &Pki, good: &Issued) -> Result<(), String> {
    let hub = &mesh.control.hub;
    let texts = [
        plexus_control::debug::syncz(hub).to_string(),
        plexus_control::debug::configz(&mesh.control.config()).to_string(),
        plexus_control::debug::config_dump(hub, id, None)
            .map(|v| v.to_string())
            .unwrap_or_default(),
    ];
    let dump = &texts[2];
    if !dump.contains("kubernetes://gw-cred") || !dump.contains("DNSName(bookinfo.example.com)") {
        return Err(format!("config_dump lacks the secret summary: {dump}"));
    }
    for key in [&good.key_pem, &pki.mtls.key_pem, &pki.mtls2.key_pem] {
        let body = key.lines().nth(1).unwrap_or_default();
        if texts
            .iter()
            .any(|t| t.contains(body) || t.contains("PRIVATE KEY"))
        {
            return Err("private key material in the debug API".into());
        }
    }
    Ok(())
}

async fn start_backend(pki: &Pki) -> EchoHandle {
    let cfg = EchoConfig {
        workload: "secure-backend".into(),
        tls: Some(ttls::server_config(&pki.backend).expect("backend tls")),
        ..Default::default()
    };
    echo::start_http(cfg, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("tls echo")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_gateway_tls_scenarios() {
    const TEST: &str = "conformance_gateway_tls_scenarios";
    let mesh = Mesh::start().await;
    let pki = Pki::new();
    let backend = start_backend(&pki).await;
    let secrets = pki.secrets(&pki.bookinfo);
    mesh.write("secrets.yaml", &secrets);
    let config = config(backend.addr.port());
    mesh.write("gateway-tls.yaml", &config);
    let mut planes = Vec::new();
    for plane in PLANES {
        if let Some(p) = start_plane(&mesh, plane, TEST).await {
            planes.push(p);
        }
    }
    let ids: Vec<String> = planes.iter().flat_map(Plane::ids).collect();
    let mut failures = Vec::new();
    for (file, text) in [("secrets.yaml", &secrets), ("gateway-tls.yaml", &config)] {
        if let Err(e) = mesh.settle_of(file, text, Some(&ids)).await {
            failures.push(e);
        }
    }
    let mut passed: BTreeMap<&str, usize> = BTreeMap::new();
    let mut record = |plane: &'static str, r: Result<(), String>| match r {
        Ok(()) => *passed.entry(plane).or_default() += 1,
        Err(e) => failures.push(e),
    };
    for p in &planes {
        record(p.main.plane, simple(p, &pki).await);
        record(p.main.plane, mutual(p, &pki).await);
        record(p.main.plane, passthrough(p, &pki).await);
        record(p.main.plane, options::optional_mutual(p, &pki).await);
        record(p.main.plane, options::protocol_versions(p, &pki).await);
    }
    let rotated = pki
        .ca
        .issue(&["bookinfo.example.com"], false)
        .expect("issue");
    let results = rotation(&mesh, &mut planes, &pki, &rotated).await;
    for (p, r) in planes.iter().zip(results) {
        record(p.main.plane, r);
    }
    // The rotated certificate is the last good one from here on.
    let invalid = invalid_secret(&mesh, &planes, &pki, &rotated).await;
    for (p, r) in planes.iter().zip(invalid) {
        record(p.main.plane, r);
    }
    let nacked = mesh.nacks();
    if !nacked.is_empty() {
        failures.push(format!("NACKs: {nacked:#?}"));
    }
    let count = |plane| passed.get(plane).copied().unwrap_or(0);
    println!(
        "conformance: plexus={} envoy={} scenarios passed",
        count("plexus"),
        count("envoy")
    );
    if !failures.is_empty() {
        for p in &planes {
            eprintln!("--- {} log ---\n{}", p.main.plane, p.main.log());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
