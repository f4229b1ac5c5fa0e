//! Conformance: Istio's `pilot/config` rule files through `plexus control` and a client sidecar
//! of each kind (Plexus proxy, Envoy 1.40). The rules are used unchanged; only what must point
//! at this machine changes: ServiceEntry endpoint addresses become echo workloads, and service
//! port 80 becomes 7080 so no privileged port is bound. One more rule is written here in the
//! same shape (the corpus has no request timeout): a VirtualService `timeout`, which must end a
//! slow request with 504 on both data planes. Prints
//! `conformance: plexus=N envoy=M scenarios passed`.
//!
//! Split tolerance: ±0.05 over 1000 requests (above 4 standard deviations at p = 0.75).

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use common::*;
use plexus_testkit::echo::{self, EchoConfig, EchoHandle};

const PORT_80: u16 = 7080;

/// The rule file with its ServiceEntry endpoints pointed at `backends` (in order of
/// appearance) and port 80 moved to 7080.
fn localize(file: &str, backends: &[SocketAddr]) -> String {
    let path = corpus_dir().join("pilot/config").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = String::new();
    let mut rest = text.as_str();
    let mut i = 0;
    while let Some(at) = rest.find(ENDPOINT) {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        // `address: 127.0.0.N\n      ports:\n        http: PORT`
        let block_end = after
            .match_indices("http: ")
            .next()
            .map(|(p, _)| p + 6 + after[p + 6..].find('\n').unwrap_or(after.len() - p - 6))
            .unwrap_or(after.len());
        let block = &after[..block_end];
        let indent = block
            .lines()
            .nth(1)
            .map(|l| l.len() - l.trim_start().len())
            .unwrap_or(6);
        let b = backends
            .get(i)
            .unwrap_or_else(|| panic!("{file}: more endpoints than backends"));
        out.push_str(&format!(
            "address: {}\n{:indent$}ports:\n{:w$}http: {}",
            b.ip(),
            "",
            "",
            b.port(),
            w = indent + 2
        ));
        rest = &after[block_end..];
        i += 1;
    }
    out.push_str(rest);
    out.replace("number: 80\n", &format!("number: {PORT_80}\n"))
}

/// How the rule files' ServiceEntry endpoints start.
const ENDPOINT: &str = "address: 127.0.0.";

async fn echo(workload: &str, version: &str) -> EchoHandle {
    let cfg = EchoConfig {
        workload: workload.into(),
        version: version.into(),
        ..Default::default()
    };
    echo::start_http(cfg, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("echo")
}

type Fut<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// A ServiceEntry for `backend` and a VirtualService with `timeout: 0.5s` (not in the corpus).
fn timeout_rule(backend: SocketAddr) -> String {
    format!(
        "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: timeout
  namespace: testns
spec:
  hosts:
  - timeout.test.istio.io
  ports:
  - number: {PORT_80}
    name: http
    protocol: HTTP
  resolution: STATIC
  endpoints:
  - address: {}
    ports:
      http: {}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: timeout-route
  namespace: testns
spec:
  hosts:
  - timeout.test.istio.io
  http:
  - timeout: 0.5s
    route:
    - destination:
        host: timeout.test.istio.io
",
        backend.ip(),
        backend.port()
    )
}

/// A reply slower than the route's 0.5 s timeout is 504 after about 0.5 s; a fast one is 200
/// (with Istio's `server: istio-envoy`).
fn request_timeout(s: &Sidecar) -> Fut<'_> {
    Box::pin(async move {
        let host = "timeout.test.istio.io";
        let fast = s
            .request("GET", host, PORT_80, &[("x-echo-delay-ms", "50")])
            .await?;
        if fast.status != 200 {
            return Err(format!("timeout: a 50 ms reply got {}", fast.status));
        }
        // Istio's proxies name themselves in every answer (HCM `server_name`).
        if fast.header("server") != Some("istio-envoy") {
            return Err(format!("server header {:?}", fast.header("server")));
        }
        let started = std::time::Instant::now();
        let slow = s
            .request("GET", host, PORT_80, &[("x-echo-delay-ms", "3000")])
            .await?;
        let took = started.elapsed();
        if slow.status != 504 || took >= std::time::Duration::from_millis(2500) {
            return Err(format!(
                "timeout: a 3 s reply got {} after {took:?} (want 504 after about 0.5 s)",
                slow.status
            ));
        }
        Ok(())
    })
}

fn weighted(s: &Sidecar) -> Fut<'_> {
    Box::pin(async move {
        let mut t: BTreeMap<String, usize> = BTreeMap::new();
        for _ in 0..1000 {
            let r = s
                .request("GET", "c-weighted.extsvc.com", PORT_80, &[])
                .await?;
            let key = format!(
                "{}:{}",
                r.status,
                r.json["version"].as_str().unwrap_or_default()
            );
            *t.entry(key).or_default() += 1;
        }
        let v1 = t.get("200:v1").copied().unwrap_or(0) as f64 / 1000.0;
        let v2 = t.get("200:v2").copied().unwrap_or(0) as f64 / 1000.0;
        if (v1 - 0.75).abs() > 0.05 || (v1 + v2 - 1.0).abs() > f64::EPSILON {
            return Err(format!("c-weighted: want v1 0.75 / v2 0.25, got {t:?}"));
        }
        Ok(())
    })
}

fn append_headers(s: &Sidecar) -> Fut<'_> {
    Box::pin(async move {
        let r = s
            .request("GET", "appendh.test.istio.io", PORT_80, &[])
            .await?;
        let seen = r.json["headers"]["istio-custom-header"].as_str();
        if r.status != 200 || seen != Some("user-defined-value") {
            return Err(format!("appendh: status {} header {seen:?}", r.status));
        }
        Ok(())
    })
}

fn cors(s: &Sidecar) -> Fut<'_> {
    Box::pin(async move {
        let pre = [
            ("origin", "http://foo.example"),
            ("access-control-request-method", "GET"),
        ];
        let r = s
            .request("OPTIONS", "cors.test.istio.io", PORT_80, &pre)
            .await?;
        let origin = r.header("access-control-allow-origin");
        let methods = r.header("access-control-allow-methods").unwrap_or_default();
        let max_age = r.header("access-control-max-age");
        if origin != Some("http://foo.example")
            || !methods.contains("GET")
            || max_age != Some("300")
        {
            return Err(format!("cors preflight: {} {:?}", r.status, r.headers));
        }
        let other = [
            ("origin", "http://bar.example"),
            ("access-control-request-method", "GET"),
        ];
        let r = s
            .request("OPTIONS", "cors.test.istio.io", PORT_80, &other)
            .await?;
        if r.header("access-control-allow-origin").is_some() {
            return Err(format!(
                "cors: http://bar.example was allowed: {:?}",
                r.headers
            ));
        }
        Ok(())
    })
}

fn redirect(s: &Sidecar) -> Fut<'_> {
    Box::pin(async move {
        let r = s
            .request(
                "GET",
                "redirect.test.istio.io",
                8080,
                &[("testredirect", "enabled")],
            )
            .await?;
        let loc = r.header("location").unwrap_or_default();
        if r.status != 301
            || !loc.contains("redirect2.test.istio.io")
            || !loc.ends_with("/new/path")
        {
            return Err(format!("redirect: {} location {loc:?}", r.status));
        }
        let r = s
            .request("GET", "redirect.test.istio.io", 8080, &[])
            .await?;
        if r.status != 404 {
            return Err(format!(
                "redirect without the header: {} (want 404, no route)",
                r.status
            ));
        }
        Ok(())
    })
}

fn regex_route(s: &Sidecar) -> Fut<'_> {
    Box::pin(async move {
        for (value, want) in [("bar", "v2"), ("baz", "v2"), ("xyz", "v1")] {
            let r = s
                .request("GET", "regex.extsvc.com", 9003, &[("foo", value)])
                .await?;
            if r.status != 200 || r.json["version"] != want {
                return Err(format!(
                    "regex foo={value}: {} {}, want {want}",
                    r.status, r.json["version"]
                ));
            }
        }
        Ok(())
    })
}

type Check = for<'a> fn(&'a Sidecar) -> Fut<'a>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_pilot_config_rules() {
    let mesh = Mesh::start().await;
    let (a1, a2) = (
        echo("c-weighted", "v1").await,
        echo("c-weighted", "v2").await,
    );
    let plain = echo("plain", "v1").await;
    let (r1, r2) = (echo("regex", "v1").await, echo("regex", "v2").await);
    let rules: Vec<(&str, String, Check)> = vec![
        (
            "rule-weighted-route",
            localize("rule-weighted-route.yaml", &[a1.addr, a2.addr]),
            weighted,
        ),
        (
            "rule-default-route-append-headers",
            localize("rule-default-route-append-headers.yaml", &[plain.addr]),
            append_headers,
        ),
        (
            "rule-default-route-cors-policy",
            localize("rule-default-route-cors-policy.yaml", &[plain.addr]),
            cors,
        ),
        (
            "rule-redirect-injection",
            localize("rule-redirect-injection.yaml", &[plain.addr]),
            redirect,
        ),
        (
            "rule-regex-route",
            localize("rule-regex-route.yaml", &[r1.addr, r2.addr]),
            regex_route,
        ),
        ("request-timeout", timeout_rule(plain.addr), request_timeout),
    ];
    let mut sidecars = vec![Sidecar::plexus(&mesh, false).await];
    if let Some(e) = Sidecar::envoy(&mesh, "conformance_pilot_config_rules", false).await {
        sidecars.push(e);
    }
    let mut failures = Vec::new();
    let mut ready = Vec::new();
    // Sidecars that never routed stay up, so their NACKs stay visible on the hub.
    let mut not_ready = Vec::new();
    for s in sidecars {
        match s.wait_ready("productpage").await {
            Ok(()) => ready.push(s),
            Err(e) => {
                failures.push(format!("[{}] never routed: {e}", s.plane));
                not_ready.push(s);
            }
        }
    }
    let ids: Vec<String> = ready.iter().map(|s| s.node_id.clone()).collect();
    let mut passed: BTreeMap<&str, usize> = BTreeMap::new();
    for (name, text, check) in &rules {
        let file = format!("{name}.yaml");
        mesh.write(&file, text);
        if let Err(e) = mesh.settle_of(&file, text, Some(&ids)).await {
            failures.push(format!("{name}: {e}"));
            continue;
        }
        let rejected = mesh.control.config().rejected.clone();
        if !rejected.is_empty() {
            failures.push(format!("{name}: rejected {rejected:?}"));
        }
        for s in &ready {
            match s.check_after_ack(*check).await {
                Ok(()) => *passed.entry(s.plane).or_default() += 1,
                Err(e) => failures.push(format!("{name} [{}]: {e}", s.plane)),
            }
        }
    }
    let n = |p: &str| passed.get(p).copied().unwrap_or(0);
    println!(
        "conformance: plexus={} envoy={} scenarios passed (pilot/config rules)",
        n("plexus"),
        n("envoy")
    );
    let nacked = mesh.nacks();
    if !nacked.is_empty() {
        failures.push(format!("NACKs: {nacked:#?}"));
    }
    drop(not_ready);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
