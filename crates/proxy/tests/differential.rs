//! Differential tests: every scenario in `scenarios/` runs against the Plexus proxy and against
//! a real Envoy 1.40, both fed the same xDS by one fake ADS server, and both must show the
//! expected observations. Without Envoy the test fails under `CI=true` and runs Plexus only
//! locally (printing why).

mod common;
mod scenarios;

use std::net::SocketAddr;

use common::*;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::route::v3 as rt;
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

/// Run one check once: the scenario's config is known to be applied (see `wait_applied`).
async fn run_check(target: &str, addr: SocketAddr, check: &Check) -> Result<(), String> {
    let started = std::time::Instant::now();
    let outcome = match request(
        addr,
        check.h2,
        check.method,
        check.host,
        check.path,
        &check.headers,
    )
    .await
    {
        Ok(got) => observe(check, &got).and_then(|()| match check.min_elapsed {
            Some(min) if started.elapsed() < min => Err(format!(
                "answered after {:?} (want at least {min:?})",
                started.elapsed()
            )),
            _ => Ok(()),
        }),
        Err(e) => Err(e),
    };
    outcome.map_err(|e| {
        format!(
            "{target}: {} {}{}: {e}",
            check.method, check.host, check.path
        )
    })
}

/// Every scenario's route configuration carries a probe virtual host answering with the
/// scenario's name; once a proxy answers it, that proxy runs the scenario's routes.
const PROBE_HOST: &str = "probe.scenario";

fn with_probe(name: &str, mut vhosts: Vec<rt::VirtualHost>) -> Vec<rt::VirtualHost> {
    let probe = rt::route::Action::DirectResponse(rt::DirectResponseAction {
        status: 200,
        body: Some(core::DataSource {
            specifier: Some(core::data_source::Specifier::InlineString(name.into())),
            ..Default::default()
        }),
        ..Default::default()
    });
    vhosts.insert(
        0,
        vhost("probe", &[PROBE_HOST], vec![route(prefix("/"), probe)]),
    );
    vhosts
}

async fn wait_applied(target: &str, addr: SocketAddr, name: &str) -> Result<(), String> {
    eventually(
        WAIT,
        &format!("{target} to apply scenario {name:?}"),
        || async {
            let got = request(addr, false, "GET", PROBE_HOST, "/", &[])
                .await
                .ok()?;
            (got.body == name.as_bytes()).then_some(())
        },
    )
    .await
}

async fn tcp_roundtrip(addr: SocketAddr) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let mut echoed = Vec::new();
        for chunk in [&b"first "[..], b"second"] {
            s.write_all(chunk).await?;
            let mut buf = vec![0u8; chunk.len()];
            s.read_exact(&mut buf).await?;
            echoed.extend_from_slice(&buf);
        }
        Ok::<_, std::io::Error>(echoed)
    };
    match tokio::time::timeout(WAIT, io).await {
        Ok(Ok(echoed)) if echoed == b"first second" => Ok(()),
        Ok(Ok(echoed)) => Err(format!("echoed {:?}", String::from_utf8_lossy(&echoed))),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("timed out".into()),
    }
}

fn base_clusters(b: &Backends) -> Config {
    let a2 = h2_cluster(static_cluster("a2", &[b.a]));
    Config {
        listeners: vec![
            ("main".into(), http_listener_rds_with_fault("main", "r1")),
            ("tcp".into(), tcp_listener("tcp", "tcpecho")),
        ],
        routes: vec![],
        clusters: vec![
            static_cluster("tcpecho", &[b.tcp]),
            static_cluster("mixed", &[b.flaky, b.a]),
            static_cluster("cf", &[b.closed, b.a]),
            static_cluster("flakyonly", &[b.flaky]),
            static_cluster("slowmixed", &[b.slow, b.a]),
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
    let flaky = echo::start_http(
        EchoConfig {
            workload: "flaky".into(),
            fail_fraction: 1.0,
            fail_status: 503,
            ..Default::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("echo flaky");
    let slow = echo::start_http(
        EchoConfig {
            workload: "slow".into(),
            delay: std::time::Duration::from_secs(2),
            ..Default::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("echo slow");
    let tcp_echo = echo::start_tcp("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("tcp echo");
    let backends = Backends {
        tcp: tcp_echo.addr,
        flaky: flaky.addr,
        slow: slow.addr,
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
    let plexus_tcp = wait_listener(&plexus, "tcp").await;
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
            let tcp = envoy
                .wait_listener("tcp", WAIT)
                .await
                .expect("envoy tcp listener");
            Some((envoy, addr, tcp))
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
        let rc = route_config("r1", with_probe(name, routes));
        ads.push(ROUTE_TYPE, vec![("r1".into(), pack_any(rc))]);
        let mut targets = vec![("plexus", plexus_addr)];
        if let Some((_, addr, _)) = &envoy {
            targets.push(("envoy", *addr));
        }
        for (target, addr) in targets {
            if let Err(e) = wait_applied(target, addr, name).await {
                failures.push(format!("[{name}] {e}"));
                continue;
            }
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
    // TCP proxy: bytes go through both ways, in several writes.
    let mut tcp_targets = vec![("plexus", plexus_tcp)];
    if let Some((_, _, tcp)) = &envoy {
        tcp_targets.push(("envoy", *tcp));
    }
    for (target, addr) in tcp_targets {
        match tcp_roundtrip(addr).await {
            Ok(()) if target == "plexus" => plexus_passed += 1,
            Ok(()) => envoy_passed += 1,
            Err(e) => failures.push(format!("[tcp proxy] {target}: {e}")),
        }
    }
    println!("scenario counts: plexus={plexus_passed} envoy={envoy_passed}");
    if let Some((envoy, _, _)) = envoy.as_ref().filter(|_| !failures.is_empty()) {
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
