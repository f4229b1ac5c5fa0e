//! Differential tests: every scenario in `scenarios/` runs against the Plexus proxy and against
//! a real Envoy 1.40, both fed the same xDS by one fake ADS server, and both must show the
//! expected observations. Without Envoy the test fails under `CI=true` and runs Plexus only
//! locally (printing why).

mod common;
mod scenarios;
mod tls_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::google::protobuf::UInt32Value;
use envoy_types::util::pack_any;
use plexus_testkit::echo::{self, EchoConfig, EchoHandle};
use plexus_testkit::envoy::{Envoy, binary_for_test};
use plexus_testkit::{FakeAds, eventually};
use plexus_xds::{ROUTE_TYPE, SECRET_TYPE};
use scenarios::{Backends, Check, Scenario};

fn observe(check: &Check, got: &Got) -> Result<(), String> {
    let json = got.json();
    let field = |k: &str| json.get(k).and_then(|v| v.as_str()).map(str::to_string);
    let mut problems = Vec::new();
    if check.status != scenarios::ANY && got.status != check.status {
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
    if let Some(g) = check.grpc_status {
        want("grpc-status", got.grpc_status(), Some(g));
    }
    if let Some(b) = check.backend {
        want("x-echo-workload", got.header("x-echo-workload"), Some(b));
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

/// Run one check: once, or until it passes `until_stable` times in a row.
async fn run_check(
    target: &str,
    addr: SocketAddr,
    check: &Check,
    live: &Live<'_>,
) -> Result<(), String> {
    if check.until_stable == 0 {
        return run_check_once(target, addr, check, live).await;
    }
    let mut in_a_row = 0;
    let mut last = Ok(());
    for _ in 0..20 {
        last = run_check_once(target, addr, check, live).await;
        in_a_row = if last.is_ok() { in_a_row + 1 } else { 0 };
        if in_a_row >= check.until_stable {
            return Ok(());
        }
    }
    let never = format!(
        "{target}: {}{} never passed {} times in a row",
        check.host, check.path, check.until_stable
    );
    last.and(Err(never))
}

/// Backends whose state checks observe.
struct Live<'a> {
    a_requests: &'a AtomicU64,
    /// The mirror cluster's only backend.
    mirror: &'a EchoHandle,
}

/// Wait until the mirror backend has seen a new request for `host`.
async fn wait_mirrored(mirror: &EchoHandle, before: u64, host: &str) -> Result<(), String> {
    eventually(WAIT, &format!("a mirrored request for {host}"), || async {
        let count = mirror.requests.load(Ordering::Relaxed);
        let last = mirror.last.lock().ok()?.clone()?;
        (count > before && last.host == host).then_some(())
    })
    .await
}

/// Run one check once: the scenario's config is known to be applied (see `wait_applied`).
async fn run_check_once(
    target: &str,
    addr: SocketAddr,
    check: &Check,
    live: &Live<'_>,
) -> Result<(), String> {
    // A slow request held open at backend `a` while the check runs (circuit breakers).
    let in_flight = match check.in_flight {
        Some(path) => {
            let before = live.a_requests.load(Ordering::Relaxed);
            let host = check.host;
            let slow = tokio::spawn(async move {
                request(
                    addr,
                    false,
                    "GET",
                    host,
                    path,
                    &[("x-echo-delay-ms", "1000")],
                )
                .await
            });
            eventually(WAIT, "the in-flight request to reach backend a", || async {
                (live.a_requests.load(Ordering::Relaxed) > before).then_some(())
            })
            .await?;
            Some(slow)
        }
        None => None,
    };
    let mirrored_before = live.mirror.requests.load(Ordering::Relaxed);
    let started = std::time::Instant::now();
    if let Some(protocol) = check.upgrade {
        return run_upgrade(target, addr, check, protocol).await;
    }
    if check.connect {
        return run_connect(target, addr, check).await;
    }
    if check.truncated {
        return run_truncated(target, addr, check).await;
    }
    let sent = if check.grpc {
        grpc_request(addr, check.host, check.path, &check.headers).await
    } else {
        request(
            addr,
            check.h2,
            check.method,
            check.host,
            check.path,
            &check.headers,
        )
        .await
    };
    let outcome = match sent {
        Ok(got) => observe(check, &got).and_then(|()| match check.min_elapsed {
            Some(min) if started.elapsed() < min => Err(format!(
                "answered after {:?} (want at least {min:?})",
                started.elapsed()
            )),
            _ => Ok(()),
        }),
        Err(e) => Err(e),
    };
    let outcome = match (outcome, check.mirrored) {
        (Ok(()), Some(host)) => wait_mirrored(live.mirror, mirrored_before, host).await,
        (other, _) => other,
    };
    let in_flight_status = match in_flight {
        Some(slow) => match slow.await {
            Ok(Ok(got)) if got.status == 200 => Ok(()),
            Ok(Ok(got)) => Err(format!("the in-flight request got {}", got.status)),
            Ok(Err(e)) => Err(format!("the in-flight request failed: {e}")),
            Err(e) => Err(e.to_string()),
        },
        None => Ok(()),
    };
    outcome.and(in_flight_status).map_err(|e| {
        format!(
            "{target}: {} {}{}: {e}",
            check.method, check.host, check.path
        )
    })
}

/// A response whose body must fail after its head: the status, then a body error.
async fn run_truncated(target: &str, addr: SocketAddr, check: &Check) -> Result<(), String> {
    let where_ = format!("{target}: {} {}{}", check.method, check.host, check.path);
    let (got, body_error) = request_partial(
        addr,
        check.h2,
        check.method,
        check.host,
        check.path,
        &check.headers,
    )
    .await
    .map_err(|e| format!("{where_}: {e}"))?;
    if got.status != check.status {
        return Err(format!(
            "{where_}: status {} (want {})",
            got.status, check.status
        ));
    }
    match body_error {
        Some(_) => Ok(()),
        None => Err(format!(
            "{where_}: the body arrived whole ({} bytes), want it cut short",
            got.body.len()
        )),
    }
}

async fn run_upgrade(
    target: &str,
    addr: SocketAddr,
    check: &Check,
    protocol: &str,
) -> Result<(), String> {
    let where_ = format!(
        "{target}: upgrade to {protocol} {}{}",
        check.host, check.path
    );
    let Some(idle) = check.tunnel_idle else {
        let got = upgrade_request(addr, check.host, check.path, protocol).await;
        return tunnel_observed(&where_, got, check, 101);
    };
    let (got, stream) = match upgrade_stream(addr, check.host, check.path, protocol).await {
        Ok((got, stream)) => (Ok(got), stream),
        Err(e) => return Err(format!("{where_}: {e}")),
    };
    tunnel_observed(&where_, got, check, 101)?;
    // Envoy resets the stream when its timer fires but closes an HTTP/1.1 connection only
    // after its `delayed_close_timeout` (1 s by default); Plexus closes at once.
    let late = if target.starts_with("envoy") {
        std::time::Duration::from_secs(1)
    } else {
        std::time::Duration::ZERO
    };
    tunnel_closed_when_idle(stream, idle, late)
        .await
        .map_err(|e| format!("{where_}: {e}"))
}

/// Echo round trips `gap` apart through the tunnel, then silence until the proxy closes it.
async fn tunnel_closed_when_idle(
    mut s: tokio::net::TcpStream,
    idle: scenarios::TunnelIdle,
    late: std::time::Duration,
) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut last = std::time::Instant::now();
    let mut buf = [0u8; 4];
    for round in 0..idle.rounds {
        tokio::time::sleep(idle.gap).await;
        let trip = async {
            s.write_all(b"ping").await?;
            s.read_exact(&mut buf).await
        };
        match tokio::time::timeout(WAIT, trip).await {
            Ok(Ok(_)) if &buf == b"ping" => last = std::time::Instant::now(),
            Ok(Ok(_)) => return Err(format!("round {round}: echoed {buf:?}")),
            Ok(Err(e)) => {
                let after = last.elapsed();
                return Err(format!(
                    "round {round}: tunnel failed {after:?} after the last byte: {e}"
                ));
            }
            Err(_) => return Err(format!("round {round}: no echo")),
        }
    }
    let (min, max) = (idle.closes_after.0 + late, idle.closes_after.1 + late);
    let wait = max + std::time::Duration::from_secs(1);
    match tokio::time::timeout(wait, s.read(&mut buf)).await {
        Ok(Ok(0) | Err(_)) => {
            let after = last.elapsed();
            if after < min || after > max {
                return Err(format!(
                    "closed {after:?} after the last byte (want {min:?}..{max:?})"
                ));
            }
            Ok(())
        }
        Ok(Ok(n)) => Err(format!("{n} unexpected bytes from a quiet tunnel")),
        Err(_) => Err(format!("still open {wait:?} after the last byte")),
    }
}

async fn run_connect(target: &str, addr: SocketAddr, check: &Check) -> Result<(), String> {
    let where_ = format!("{target}: CONNECT {} {:?}", check.host, check.headers);
    let got = connect_request(addr, check.host, &check.headers).await;
    tunnel_observed(&where_, got, check, 200)
}

/// The expected status; with `tunnel_status`, bytes echoed through the tunnel; the backend.
fn tunnel_observed(
    where_: &str,
    got: Result<Upgraded, String>,
    check: &Check,
    tunnel_status: u16,
) -> Result<(), String> {
    let got = got.map_err(|e| format!("{where_}: {e}"))?;
    if got.status != check.status {
        return Err(format!(
            "{where_}: status {} (want {}); head {:?}",
            got.status, check.status, got.head
        ));
    }
    if got.status == tunnel_status && !got.echoed {
        return Err(format!("{where_}: the tunnel did not echo"));
    }
    if let Some(b) = check.backend {
        let want = format!("x-echo-workload: {b}");
        if !got.head.to_ascii_lowercase().contains(&want) {
            return Err(format!("{where_}: no {want:?} in {:?}", got.head));
        }
    }
    Ok(())
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

/// Echo once, then stay quiet: the proxy must close within its idle timeout (300 ms), and not
/// much sooner.
async fn tcp_idle_close(addr: SocketAddr) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"idle").await?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await?;
        let quiet_from = std::time::Instant::now();
        let n = s.read(&mut buf).await.unwrap_or(0);
        Ok::<_, std::io::Error>((n, quiet_from.elapsed()))
    };
    match tokio::time::timeout(WAIT, io).await {
        Ok(Ok((0, after))) if after >= std::time::Duration::from_millis(250) => Ok(()),
        Ok(Ok((0, after))) => Err(format!("closed after only {after:?}")),
        Ok(Ok((n, _))) => Err(format!("read {n} unexpected bytes")),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("not closed within the wait".into()),
    }
}

fn with_limits(
    mut cl: envoy_types::pb::envoy::config::cluster::v3::Cluster,
    f: impl FnOnce(&mut envoy_types::pb::envoy::config::cluster::v3::circuit_breakers::Thresholds),
) -> envoy_types::pb::envoy::config::cluster::v3::Cluster {
    let mut t = Default::default();
    f(&mut t);
    cl.circuit_breakers = Some(
        envoy_types::pb::envoy::config::cluster::v3::CircuitBreakers {
            thresholds: vec![t],
            ..Default::default()
        },
    );
    cl
}

/// Eject after `consecutive` 5xx for 60 s (longer than the test), up to every host.
fn with_outlier(
    mut cl: envoy_types::pb::envoy::config::cluster::v3::Cluster,
    consecutive: u32,
) -> envoy_types::pb::envoy::config::cluster::v3::Cluster {
    use envoy_types::pb::google::protobuf::Duration as PbDuration;
    cl.outlier_detection = Some(
        envoy_types::pb::envoy::config::cluster::v3::OutlierDetection {
            consecutive_5xx: Some(UInt32Value { value: consecutive }),
            interval: Some(PbDuration {
                seconds: 60,
                nanos: 0,
            }),
            base_ejection_time: Some(PbDuration {
                seconds: 60,
                nanos: 0,
            }),
            max_ejection_percent: Some(UInt32Value { value: 100 }),
            enforcing_success_rate: Some(UInt32Value { value: 0 }),
            ..Default::default()
        },
    );
    cl
}

/// Active health checking every 100 ms (also before any traffic); one failure fails a host.
fn with_health_check(
    mut cl: envoy_types::pb::envoy::config::cluster::v3::Cluster,
    checker: envoy_types::pb::envoy::config::core::v3::health_check::HealthChecker,
) -> envoy_types::pb::envoy::config::cluster::v3::Cluster {
    use envoy_types::pb::google::protobuf::Duration as PbDuration;
    let ms = |n: i32| {
        Some(PbDuration {
            seconds: 0,
            nanos: n * 1_000_000,
        })
    };
    cl.health_checks = vec![envoy_types::pb::envoy::config::core::v3::HealthCheck {
        timeout: ms(500),
        interval: ms(100),
        no_traffic_interval: ms(100),
        unhealthy_threshold: Some(UInt32Value { value: 1 }),
        healthy_threshold: Some(UInt32Value { value: 1 }),
        health_checker: Some(checker),
        ..Default::default()
    }];
    cl
}

fn base_clusters(b: &Backends) -> Config {
    use envoy_types::pb::envoy::config::core::v3::health_check as hc;
    let http_hc = hc::HealthChecker::HttpHealthCheck(hc::HttpHealthCheck {
        path: "/healthz".into(),
        ..Default::default()
    });
    let tcp_hc = hc::HealthChecker::TcpHealthCheck(hc::TcpHealthCheck::default());
    let a2 = h2_cluster(static_cluster("a2", &[b.a]));
    Config {
        listeners: vec![
            ("main".into(), http_listener_rds_with_fault("main", "r1")),
            (
                "internal".into(),
                scenarios::timeouts::internal_listener("internal", "r1"),
            ),
            ("tcp".into(), tcp_listener("tcp", "tcpecho")),
            (
                "tcp-idle".into(),
                tcp_listener_idle("tcp-idle", "tcpecho", 300),
            ),
            (
                "sniff".into(),
                scenarios::detection::sniffing_listener("sniff", "a", "greeter"),
            ),
        ],
        routes: vec![],
        clusters: vec![
            static_cluster("tcpecho", &[b.tcp]),
            static_cluster("greeter", &[b.greeter]),
            static_cluster("mirror", &[b.mirror]),
            with_outlier(static_cluster("outlier", &[b.flaky, b.a]), 2),
            with_outlier(static_cluster("outlier_single", &[b.flaky]), 1),
            with_limits(static_cluster("cb_requests", &[b.a]), |t| {
                t.max_requests = Some(UInt32Value { value: 1 })
            }),
            with_limits(static_cluster("cb_pending", &[b.a]), |t| {
                t.max_pending_requests = Some(UInt32Value { value: 0 });
            }),
            with_limits(static_cluster("cb_queue", &[b.a]), |t| {
                t.max_connections = Some(UInt32Value { value: 1 });
                t.max_pending_requests = Some(UInt32Value { value: 1 });
            }),
            static_cluster("mixed", &[b.flaky, b.a]),
            h2_cluster(static_cluster("mixed_h2", &[b.flaky, b.a])),
            with_health_check(static_cluster("hc_http", &[b.flaky, b.a]), http_hc),
            with_health_check(static_cluster("hc_tcp", &[b.closed, b.a]), tcp_hc),
            with_health_check(
                h2_cluster(static_cluster("hc_grpc", &[b.grpc_one, b.grpc_two])),
                scenarios::health::grpc_checker(),
            ),
            with_health_check(
                static_cluster("hc_h2", &[b.flaky, b.a]),
                scenarios::health::http2_checker(),
            ),
            static_cluster("cf", &[b.closed, b.a]),
            static_cluster("flakyonly", &[b.flaky]),
            static_cluster("slowmixed", &[b.slow, b.a]),
            static_cluster("a", &[b.a]),
            dns_cluster(
                "logical",
                envoy_types::pb::envoy::config::cluster::v3::cluster::DiscoveryType::LogicalDns,
                "localhost",
                b.a.port(),
                200,
            ),
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
    let mirror = echo::start_http(
        EchoConfig {
            workload: "mirror".into(),
            ..Default::default()
        },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("echo mirror");
    let (grpc_one, grpc_two) = scenarios::health::grpc_echoes().await;
    let live = Live {
        a_requests: &a.requests,
        mirror: &mirror,
    };
    let tcp_echo = echo::start_tcp("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("tcp echo");
    let closed = plexus_testkit::ClosedPort::new().expect("closed port");
    let backends = Backends {
        mirror: mirror.addr,
        tcp: tcp_echo.addr,
        flaky: flaky.addr,
        slow: slow.addr,
        a: a.addr,
        b: b.addr,
        closed: closed.addr,
        greeter: scenarios::detection::greeting_server().await,
        grpc_one: grpc_one.addr,
        grpc_two: grpc_two.addr,
    };
    let ads = FakeAds::start().await.expect("fake ADS");
    let mut base = base_clusters(&backends);
    let subnets = scenarios::subnets::Fixture::start();
    base.listeners
        .extend(scenarios::subnets::listeners(&subnets));
    base.listeners.extend(scenarios::request_id::listeners());
    base.listeners.extend(scenarios::envoy_headers::listeners());
    base.clusters.push(static_cluster(
        scenarios::envoy_headers::GRPC_CLUSTER,
        &[scenarios::envoy_headers::raw_echo().await],
    ));
    let tls = scenarios::tls::Fixture::start(a.addr).await;
    let choice = tls_support::Choice::new(&tls.ca);
    scenarios::certs::extend(&mut base, &tls, &choice);
    ads.push(SECRET_TYPE, scenarios::tls::extend(&mut base, &tls));
    let all = scenarios::all();
    push(
        &ads,
        &Config {
            routes: vec![route_config("r1", all[0].routes.clone())],
            ..base_clone(&base)
        },
    );

    // Each implementation runs twice: state-of-the-world and delta xDS, same server.
    let mut targets: Vec<Target> = Vec::new();
    let mut proxies = Vec::new();
    for delta in [false, true] {
        let plexus = start_proxy_with(&ads, delta).await;
        let http = wait_listener(&plexus, "main").await;
        let tcp = wait_listener(&plexus, "tcp").await;
        let tcp_idle = wait_listener(&plexus, "tcp-idle").await;
        let sniff = wait_listener(&plexus, "sniff").await;
        let internal = wait_listener(&plexus, "internal").await;
        let by_ip = [
            wait_listener(&plexus, "subnets").await,
            wait_listener(&plexus, "subnets-src").await,
        ];
        let mut tls = BTreeMap::new();
        for name in tls_listeners() {
            tls.insert(name, wait_listener(&plexus, name).await);
        }
        let mut rid = BTreeMap::new();
        for name in scenarios::request_id::LISTENERS {
            rid.insert(name, wait_listener(&plexus, name).await);
        }
        for name in scenarios::envoy_headers::LISTENERS {
            rid.insert(name, wait_listener(&plexus, name).await);
        }
        targets.push(Target {
            proxy: "plexus",
            delta,
            http,
            internal,
            by_ip,
            admin: plexus.admin,
            tcp,
            tcp_idle,
            sniff,
            tls,
            rid,
        });
        proxies.push(plexus);
    }
    let mut envoys = Vec::new();
    if let Some(bin) = binary_for_test("differential_scenarios") {
        for (delta, ip) in [(false, "127.0.0.2"), (true, "127.0.0.3")] {
            let node = format!("sidecar~{ip}~envoy-0.default~default.svc.cluster.local");
            let envoy = Envoy::start_with(&bin, &node, ads.addr, delta)
                .await
                .expect("envoy starts");
            let http = envoy
                .wait_listener("main", STARTUP_WAIT)
                .await
                .expect("envoy listener");
            let tcp = envoy
                .wait_listener("tcp", STARTUP_WAIT)
                .await
                .expect("envoy tcp listener");
            let tcp_idle = envoy
                .wait_listener("tcp-idle", STARTUP_WAIT)
                .await
                .expect("envoy tcp-idle listener");
            let sniff = envoy
                .wait_listener("sniff", STARTUP_WAIT)
                .await
                .expect("envoy sniff listener");
            let internal = envoy
                .wait_listener("internal", STARTUP_WAIT)
                .await
                .expect("envoy internal listener");
            let mut by_ip = Vec::new();
            for name in ["subnets", "subnets-src"] {
                let addr = envoy.wait_listener(name, STARTUP_WAIT).await;
                by_ip.push(addr.expect("envoy IP-matching listener"));
            }
            let mut tls = BTreeMap::new();
            for name in tls_listeners() {
                let addr = envoy.wait_listener(name, STARTUP_WAIT).await;
                tls.insert(name, addr.expect("envoy TLS listener"));
            }
            let mut rid = BTreeMap::new();
            for name in scenarios::request_id::LISTENERS {
                let addr = envoy.wait_listener(name, STARTUP_WAIT).await;
                rid.insert(name, addr.expect("envoy request-id listener"));
            }
            for name in scenarios::envoy_headers::LISTENERS {
                let addr = envoy.wait_listener(name, STARTUP_WAIT).await;
                rid.insert(name, addr.expect("envoy server/router headers listener"));
            }
            targets.push(Target {
                proxy: "envoy",
                delta,
                http,
                internal,
                by_ip: [by_ip[0], by_ip[1]],
                admin: envoy.admin,
                tcp,
                tcp_idle,
                sniff,
                tls,
                rid,
            });
            envoys.push(envoy);
        }
    }

    let mut passed: BTreeMap<(&str, bool), usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for Scenario {
        name,
        routes,
        checks,
    } in all
    {
        let rc = route_config("r1", with_probe(name, routes));
        ads.push(ROUTE_TYPE, vec![("r1".into(), pack_any(rc))]);
        for t in &targets {
            let label = t.label();
            if let Err(e) = wait_applied(&label, t.http, name).await {
                failures.push(format!("[{name}] {e}"));
                continue;
            }
            let mut ok = true;
            for check in &checks {
                let addr = if check.internal { t.internal } else { t.http };
                if let Err(e) = run_check(&label, addr, check, &live).await {
                    failures.push(format!("[{name}] {e}"));
                    ok = false;
                }
            }
            if ok {
                *passed.entry((t.proxy, t.delta)).or_default() += 1;
            }
        }
    }
    // TCP proxy: bytes go through both ways, in several writes.
    for t in &targets {
        match tcp_roundtrip(t.tcp).await {
            Ok(()) => *passed.entry((t.proxy, t.delta)).or_default() += 1,
            Err(e) => failures.push(format!("[tcp proxy] {}: {e}", t.label())),
        }
        match tcp_idle_close(t.tcp_idle).await {
            Ok(()) => *passed.entry((t.proxy, t.delta)).or_default() += 1,
            Err(e) => failures.push(format!("[tcp idle timeout] {}: {e}", t.label())),
        }
        match scenarios::detection::check(t.sniff).await {
            Ok(()) => *passed.entry((t.proxy, t.delta)).or_default() += 1,
            Err(e) => failures.push(format!("[protocol detection] {}: {e}", t.label())),
        }
        for outcome in scenarios::subnets::check(&subnets, t.by_ip[0], t.by_ip[1]).await {
            match outcome {
                Ok(()) => *passed.entry((t.proxy, t.delta)).or_default() += 1,
                Err(e) => failures.push(format!("[chain by IP] {}: {e}", t.label())),
            }
        }
        for outcome in scenarios::request_id::check(&t.label(), &t.rid).await {
            match outcome {
                Ok(()) => *passed.entry((t.proxy, t.delta)).or_default() += 1,
                Err(e) => failures.push(e),
            }
        }
        for outcome in scenarios::envoy_headers::check(&t.label(), &t.rid).await {
            match outcome {
                Ok(()) => *passed.entry((t.proxy, t.delta)).or_default() += 1,
                Err(e) => failures.push(e),
            }
        }
    }
    // Health flags in `/clusters`: the same transitions on every proxy.
    let admins: Vec<(String, &'static str, SocketAddr)> = targets
        .iter()
        .map(|t| (t.label(), t.proxy, t.admin))
        .collect();
    let flips = |status: u64| grpc_two.set_health("reviews", status);
    // One outcome per target, in `targets` order.
    let mut tally = |what: &str, outcomes: Vec<Result<(), String>>| {
        for (t, outcome) in targets.iter().zip(outcomes) {
            match outcome {
                Ok(()) => *passed.entry((t.proxy, t.delta)).or_default() += 1,
                Err(e) => failures.push(format!("[{what}] {e}")),
            }
        }
    };
    tally(
        "health flags",
        scenarios::health::flags_follow_checks(&admins, &backends, flips).await,
    );
    tally(
        "health checks over TLS",
        scenarios::health::tls_flags(&admins, tls.front.addr).await,
    );
    // TLS: termination, chain selection, mTLS, origination; then an SDS rotation.
    let tls_targets: Vec<_> = targets.iter().map(|t| (t.label(), &t.tls)).collect();
    let mut outcomes = scenarios::tls::run(&tls, &ads, &tls_targets).await;
    // Certificate choice by SNI, SDS initial_fetch_timeout; `0s` waits until the late push.
    let cert_targets: Vec<scenarios::certs::Target> = targets
        .iter()
        .map(|t| (t.label(), t.proxy, t.admin, &t.tls))
        .collect();
    for (i, t) in targets.iter().enumerate() {
        for (name, outcome) in
            scenarios::certs::check(&tls, &choice, &t.tls, t.proxy, t.admin).await
        {
            outcomes.push((
                i,
                outcome.map_err(|e| format!("[TLS: {name}] {}: {e}", t.label())),
            ));
        }
    }
    let (waited, listeners) = scenarios::certs::patient(
        &tls,
        &ads,
        &cert_targets,
        base.listeners.clone(),
        base.clusters.clone(),
    )
    .await;
    outcomes.extend(waited);
    let admins: Vec<_> = targets.iter().map(|t| (t.label(), t.admin)).collect();
    outcomes.extend(scenarios::tls::warming(&tls, &ads, &admins, listeners).await);
    outcomes.extend(scenarios::certs::after_late(&tls, &cert_targets).await);
    for (i, outcome) in outcomes {
        let t = &targets[i];
        match outcome {
            Ok(()) => *passed.entry((t.proxy, t.delta)).or_default() += 1,
            Err(e) => failures.push(e),
        }
    }
    // Every pushed resource must be accepted by every proxy, Envoy included.
    for nack in ads.acks().into_iter().filter(|a| a.error.is_some()) {
        failures.push(format!(
            "[NACK] {} {}: {}",
            nack.node_id,
            nack.type_url,
            nack.error.unwrap_or_default()
        ));
    }
    let count = |proxy: &str| {
        passed
            .iter()
            .filter(|((p, _), _)| *p == proxy)
            .map(|(_, n)| n)
            .sum::<usize>()
    };
    println!(
        "scenario counts: plexus={} envoy={}",
        count("plexus"),
        count("envoy")
    );
    for ((proxy, delta), n) in &passed {
        println!(
            "  {proxy} ({}): {n}",
            if *delta {
                "delta xDS"
            } else {
                "state-of-the-world xDS"
            }
        );
    }
    if !failures.is_empty() {
        for e in &envoys {
            println!("envoy log: {}", e.log_path().display());
        }
    }
    assert!(
        failures.is_empty(),
        "scenario failures:\n{}",
        failures.join("\n")
    );
    drop(proxies);
}

/// One proxy under test.
struct Target {
    proxy: &'static str,
    delta: bool,
    http: SocketAddr,
    /// The `r1` routes behind `internal_address_config` 127.0.0.0/8 (see `internal_listener`).
    internal: SocketAddr,
    /// The `subnets` and `subnets-src` listeners (chains by destination and source IP).
    by_ip: [SocketAddr; 2],
    /// The admin endpoint (`/clusters`; `/listeners?format=json` has one shape on both).
    admin: SocketAddr,
    tcp: SocketAddr,
    /// TCP proxy with a 300 ms idle timeout.
    tcp_idle: SocketAddr,
    /// http_inspector + tls_inspector listener with HTTP and TCP chains.
    sniff: SocketAddr,
    /// The TLS scenarios' listeners by name.
    tls: BTreeMap<&'static str, SocketAddr>,
    /// The request-id / trusted-hops and server/router-header listeners by name.
    rid: BTreeMap<&'static str, SocketAddr>,
}

impl Target {
    fn label(&self) -> String {
        format!("{}{}", self.proxy, if self.delta { "/delta" } else { "" })
    }
}

/// Every TLS scenario listener a proxy must have bound before the checks.
fn tls_listeners() -> impl Iterator<Item = &'static str> {
    scenarios::tls::LISTENERS
        .into_iter()
        .chain(scenarios::certs::LISTENERS)
}

fn base_clone(c: &Config) -> Config {
    Config {
        listeners: c.listeners.clone(),
        routes: c.routes.clone(),
        clusters: c.clusters.clone(),
        endpoints: c.endpoints.clone(),
    }
}
