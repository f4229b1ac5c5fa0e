//! Differential tests: every scenario in `scenarios/` runs against the Plexus proxy and against
//! a real Envoy 1.40, both fed the same xDS by one fake ADS server, and both must show the
//! expected observations. Without Envoy the test fails under `CI=true` and runs Plexus only
//! locally (printing why).

mod common;
mod scenarios;

use std::net::SocketAddr;

use common::*;
use envoy_types::util::pack_any;
use plexus_testkit::echo::{self, EchoConfig};
use plexus_testkit::envoy::{Envoy, binary_for_test};
use plexus_testkit::{FakeAds, eventually};
use plexus_xds::ROUTE_TYPE;
use scenarios::{Backends, Check, Scenario};

fn observe(check: &Check, got: &Got) -> Result<(), String> {
    let json = got.json();
    let field = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let mut problems = Vec::new();
    if got.status != check.status {
        problems.push(format!("status {} (want {})", got.status, check.status));
    }
    let mut want = |what: &str, have: Option<String>, want: Option<&str>| {
        if have.as_deref() != want {
            problems.push(format!("{what} {have:?} (want {want:?})"));
        }
    };
    if let Some(w) = check.workload {
        want("workload", field("workload"), Some(w));
    }
    if let Some(b) = check.body {
        want(
            "body",
            Some(String::from_utf8_lossy(&got.body).into_owned()),
            Some(b),
        );
    }
    if let Some(p) = check.upstream_path {
        want("upstream path", field("path"), Some(p));
    }
    if let Some(h) = check.upstream_host {
        want("upstream host", field("host"), Some(h));
    }
    if let Some(p) = check.upstream_protocol {
        want("upstream protocol", field("protocol"), Some(p));
    }
    if let Some((name, value)) = check.upstream_header {
        let have = json
            .get("headers")
            .and_then(|h| h.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_string);
        want(&format!("upstream header {name}"), have, value);
    }
    if let Some((name, value)) = check.response_header {
        want(&format!("response header {name}"), got.header(name), value);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join(", "))
    }
}

/// Run one check, polling until it holds (config reaches proxies asynchronously).
async fn run_check(target: &str, addr: SocketAddr, check: &Check) -> Result<(), String> {
    let last = std::sync::Mutex::new(String::new());
    let r = eventually(WAIT, "check", || async {
        let outcome = match request(
            addr,
            false,
            check.method,
            check.host,
            check.path,
            &check.headers,
        )
        .await
        {
            Ok(got) => observe(check, &got),
            Err(e) => Err(e),
        };
        match outcome {
            Ok(()) => Some(()),
            Err(e) => {
                *last.lock().unwrap_or_else(|p| p.into_inner()) = e;
                None
            }
        }
    })
    .await;
    let last = last.into_inner().unwrap_or_else(|p| p.into_inner());
    r.map_err(|_| {
        format!(
            "{target}: {} {}{}: {last}",
            check.method, check.host, check.path
        )
    })
}

fn base_clusters(b: &Backends) -> Config {
    let a2 = h2_cluster(static_cluster("a2", &[b.a]));
    Config {
        listeners: vec![("main".into(), http_listener_rds("main", "r1"))],
        routes: vec![],
        clusters: vec![
            static_cluster("a", &[b.a]),
            eds_cluster("b"),
            eds_cluster("empty"),
            static_cluster("closed", &[b.closed]),
            a2,
        ],
        endpoints: vec![
            ("b".into(), assignment("b", &[b.b])),
            ("empty".into(), assignment("empty", &[])),
        ],
    }
}

async fn closed_port() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    l.local_addr().expect("addr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differential_scenarios() {
    let a = echo::start_http(
        EchoConfig {
            workload: "a".into(),
            ..Default::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("echo a");
    let b = echo::start_http(
        EchoConfig {
            workload: "b".into(),
            ..Default::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("echo b");
    let backends = Backends {
        a: a.addr,
        b: b.addr,
        closed: closed_port().await,
    };
    let ads = FakeAds::start().await.expect("fake ADS");
    let base = base_clusters(&backends);
    let all = scenarios::all();
    push(
        &ads,
        &Config {
            routes: vec![route_config("r1", all[0].routes.clone())],
            ..base_clone(&base)
        },
    );

    let plexus = start_proxy(&ads).await;
    let plexus_addr = wait_listener(&plexus, "main").await;
    let envoy = match binary_for_test("differential_scenarios") {
        Some(bin) => {
            let envoy = Envoy::start(
                &bin,
                "sidecar~127.0.0.2~envoy-0.default~default.svc.cluster.local",
                ads.addr,
            )
            .await
            .expect("envoy starts");
            let addr = envoy
                .wait_listener("main", WAIT)
                .await
                .expect("envoy listener");
            Some((envoy, addr))
        }
        None => None,
    };

    let (mut plexus_passed, mut envoy_passed) = (0, 0);
    let mut failures = Vec::new();
    for Scenario {
        name,
        routes,
        checks,
    } in all
    {
        ads.push(
            ROUTE_TYPE,
            vec![("r1".into(), pack_any(route_config("r1", routes)))],
        );
        let mut targets = vec![("plexus", plexus_addr)];
        if let Some((_, addr)) = &envoy {
            targets.push(("envoy", *addr));
        }
        for (target, addr) in targets {
            let mut ok = true;
            for check in &checks {
                if let Err(e) = run_check(target, addr, check).await {
                    failures.push(format!("[{name}] {e}"));
                    ok = false;
                }
            }
            if ok {
                if target == "plexus" {
                    plexus_passed += 1
                } else {
                    envoy_passed += 1
                }
            }
        }
    }
    println!("scenario counts: plexus={plexus_passed} envoy={envoy_passed}");
    if let Some((envoy, _)) = envoy.as_ref().filter(|_| !failures.is_empty()) {
        println!("envoy log: {}", envoy.log_path().display());
    }
    assert!(
        failures.is_empty(),
        "scenario failures:\n{}",
        failures.join("\n")
    );
}

fn base_clone(c: &Config) -> Config {
    Config {
        listeners: c.listeners.clone(),
        routes: c.routes.clone(),
        clusters: c.clusters.clone(),
        endpoints: c.endpoints.clone(),
    }
}
