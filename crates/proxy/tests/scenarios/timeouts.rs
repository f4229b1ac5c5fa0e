//! Stream idle timeouts (route `idle_timeout`, connection manager `stream_idle_timeout`) and the
//! `x-envoy-*` override headers, honoured only for internal clients: checks with `internal`
//! go to the listener whose `internal_address_config` covers 127.0.0.0/8 (with
//! `use_remote_address` and a 1 s `stream_idle_timeout`); the others to the main listener,
//! where every client is external.
#![allow(clippy::wildcard_imports)]

use std::time::Duration;

use super::*;

fn ms(n: i32) -> Option<PbDuration> {
    Some(PbDuration {
        seconds: 0,
        nanos: n * 1_000_000,
    })
}

fn to(cluster: &str, f: impl FnOnce(&mut rt::RouteAction)) -> rt::route::Action {
    forward(|a| {
        a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::Cluster(cluster.into()));
        f(a);
    })
}

fn delayed(path: &'static str, delay: &'static str, status: u16) -> Check {
    Check {
        headers: vec![("x-echo-delay-ms", delay)],
        ..get("t", path, status)
    }
}

pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        name: "idle timeouts and override headers for internal clients",
        routes: vec![
            rt::VirtualHost {
                require_tls: rt::virtual_host::TlsRequirementType::ExternalOnly as i32,
                ..vhost(
                    "tls-external",
                    &["tls.test"],
                    vec![route(prefix("/"), to("a", |_| {}))],
                )
            },
            vhost(
                "timeouts",
                &["*"],
                vec![
                    route(
                        prefix("/idle-route"),
                        to("a", |a| {
                            a.timeout = ms(0);
                            a.idle_timeout = ms(300);
                        }),
                    ),
                    route(
                        prefix("/idle-off"),
                        to("a", |a| {
                            a.timeout = ms(0);
                            a.idle_timeout = ms(0);
                        }),
                    ),
                    route(prefix("/idle-hcm"), to("a", |a| a.timeout = ms(0))),
                    route(prefix("/plain"), to("a", |_| {})),
                    route(prefix("/mixed"), to("mixed", |_| {})),
                    route(prefix("/grpc.Mixed/"), to("mixed_h2", |_| {})),
                    route(prefix("/slowmixed"), to("slowmixed", |_| {})),
                ],
            ),
        ],
        checks: vec![
            // `require_tls: EXTERNAL_ONLY` redirects external requests only.
            Check {
                response_header: Some(("location", Some("https://tls.test/x"))),
                ..get("tls.test", "/x", 301)
            },
            Check {
                internal: true,
                workload: Some("a"),
                ..get("tls.test", "/x", 200)
            },
            // The route's idle timeout: a request waiting longer for its response gets 504.
            Check {
                min_elapsed: Some(Duration::from_millis(250)),
                ..delayed("/idle-route", "1000", 504)
            },
            delayed("/idle-route", "50", 200),
            // The connection manager's stream_idle_timeout (1 s on the internal listener) ...
            Check {
                internal: true,
                min_elapsed: Some(Duration::from_millis(900)),
                ..delayed("/idle-hcm", "2000", 504)
            },
            // ... which a route's `idle_timeout: 0s` disables.
            Check {
                internal: true,
                workload: Some("a"),
                ..delayed("/idle-off", "1500", 200)
            },
            // External: the override headers are dropped and change nothing.
            Check {
                headers: vec![
                    ("x-echo-delay-ms", "600"),
                    ("x-envoy-upstream-rq-timeout-ms", "100"),
                ],
                workload: Some("a"),
                ..get("t", "/plain", 200)
            },
            Check {
                headers: vec![("x-envoy-retry-on", "5xx"), ("x-envoy-internal", "true")],
                upstream_header: Some(("x-envoy-retry-on", None)),
                ..get("t", "/plain", 200)
            },
            Check {
                headers: vec![("x-envoy-internal", "true")],
                upstream_header: Some(("x-envoy-internal", None)),
                ..get("t", "/plain", 200)
            },
            // Internal: the request is marked and the overrides apply.
            Check {
                internal: true,
                upstream_header: Some(("x-envoy-internal", Some("true"))),
                ..get("t", "/plain", 200)
            },
            // `suppress_envoy_headers` on this listener's router: Envoy adds none of its
            // router headers, which Plexus never adds.
            Check {
                internal: true,
                upstream_header: Some(("x-envoy-expected-rq-timeout-ms", None)),
                response_header: Some(("x-envoy-upstream-service-time", None)),
                ..get("t", "/plain", 200)
            },
            Check {
                internal: true,
                headers: vec![
                    ("x-echo-delay-ms", "600"),
                    ("x-envoy-upstream-rq-timeout-ms", "100"),
                ],
                ..get("t", "/plain", 504)
            },
            Check {
                internal: true,
                headers: vec![("x-envoy-retry-on", "5xx"), ("x-envoy-max-retries", "2")],
                workload: Some("a"),
                until_stable: 4,
                ..get("t", "/mixed", 200)
            },
            Check {
                internal: true,
                headers: vec![
                    ("x-envoy-retry-on", "5xx"),
                    ("x-envoy-upstream-rq-per-try-timeout-ms", "300"),
                ],
                workload: Some("a"),
                until_stable: 2,
                ..get("t", "/slowmixed", 200)
            },
            // `flaky` answers gRPC calls with UNAVAILABLE: the header asks to retry those.
            Check {
                internal: true,
                grpc: true,
                headers: vec![("x-envoy-retry-grpc-on", "unavailable")],
                grpc_status: Some("0"),
                backend: Some("a"),
                until_stable: 4,
                ..get("t", "/grpc.Mixed/Call", 200)
            },
        ],
    }]
}
