//! Resilience scenarios: retries, fault injection, circuit breakers, outlier detection, active
//! health checks.
#![allow(clippy::wildcard_imports)]

use super::*;

pub fn scenarios() -> Vec<Scenario> {
    use rt::header_matcher::HeaderMatchSpecifier as H;
    vec![
        Scenario {
            name: "retries: 5xx, connect-failure, status codes, per-try timeout, exhaustion",
            routes: vec![vhost(
                "retry",
                &["*"],
                vec![
                    route(prefix("/5xx"), retrying("mixed", "5xx", |_| {})),
                    route(
                        prefix("/gateway"),
                        retrying("mixed", "gateway-error", |_| {}),
                    ),
                    route(prefix("/cf"), retrying("cf", "connect-failure", |_| {})),
                    route(
                        prefix("/codes"),
                        retrying("mixed", "retriable-status-codes", |p| {
                            p.retriable_status_codes = vec![503]
                        }),
                    ),
                    route(
                        prefix("/pertry"),
                        retrying("slowmixed", "5xx", |p| {
                            p.per_try_timeout = Some(PbDuration {
                                seconds: 0,
                                nanos: 300_000_000,
                            })
                        }),
                    ),
                    route(prefix("/exhaust"), retrying("flakyonly", "5xx", |_| {})),
                    route(
                        prefix("/not-retriable"),
                        retrying("flakyonly", "connect-failure", |_| {}),
                    ),
                ],
            )],
            checks: vec![
                Check {
                    workload: Some("a"),
                    ..get("h", "/5xx", 200)
                },
                Check {
                    workload: Some("a"),
                    ..get("h", "/5xx", 200)
                },
                Check {
                    workload: Some("a"),
                    ..get("h", "/gateway", 200)
                },
                Check {
                    workload: Some("a"),
                    ..get("h", "/cf", 200)
                },
                Check {
                    workload: Some("a"),
                    ..get("h", "/cf", 200)
                },
                Check {
                    workload: Some("a"),
                    ..get("h", "/codes", 200)
                },
                Check {
                    workload: Some("a"),
                    ..get("h", "/pertry", 200)
                },
                Check {
                    workload: Some("a"),
                    ..get("h", "/pertry", 200)
                },
                Check {
                    workload: Some("flaky"),
                    ..get("h", "/exhaust", 503)
                },
                Check {
                    workload: Some("flaky"),
                    ..get("h", "/not-retriable", 503)
                },
            ],
        },
        Scenario {
            name: "fault injection: aborts, delays, header-gated, virtual host override",
            routes: vec![
                rt::VirtualHost {
                    typed_per_filter_config: fault_config(|f| {
                        f.abort = abort(fault::fault_abort::ErrorType::HttpStatus(429), 100)
                    }),
                    ..vhost(
                        "vh-fault",
                        &["vh-fault.test"],
                        vec![route(prefix("/"), forward(|_| {}))],
                    )
                },
                vhost(
                    "faults",
                    &["*"],
                    vec![
                        with_fault("/abort-zero", |f| {
                            f.abort = abort(fault::fault_abort::ErrorType::HttpStatus(418), 0)
                        }),
                        with_fault("/abort", |f| {
                            f.abort = abort(fault::fault_abort::ErrorType::HttpStatus(418), 100)
                        }),
                        with_fault("/gated", |f| {
                            f.abort = abort(fault::fault_abort::ErrorType::HttpStatus(503), 100);
                            f.headers = vec![header("x-fault", H::PresentMatch(true), false)];
                        }),
                        with_fault("/grpc", |f| {
                            f.abort = abort(fault::fault_abort::ErrorType::GrpcStatus(14), 100)
                        }),
                        with_fault("/delay", |f| {
                            f.delay = Some(common_fault::FaultDelay {
                                percentage: percent(100),
                                fault_delay_secifier: Some(
                                    common_fault::fault_delay::FaultDelaySecifier::FixedDelay(
                                        PbDuration {
                                            seconds: 0,
                                            nanos: 300_000_000,
                                        },
                                    ),
                                ),
                            })
                        }),
                        route(prefix("/"), forward(|_| {})),
                    ],
                ),
            ],
            checks: vec![
                Check {
                    workload: Some("a"),
                    ..get("h", "/abort-zero", 200)
                },
                get("h", "/abort", 418),
                Check {
                    headers: vec![("x-fault", "1")],
                    ..get("h", "/gated", 503)
                },
                Check {
                    workload: Some("a"),
                    ..get("h", "/gated", 200)
                },
                Check {
                    headers: vec![("content-type", "application/grpc")],
                    response_header: Some(("grpc-status", Some("14"))),
                    ..get("h", "/grpc", 200)
                },
                Check {
                    workload: Some("a"),
                    min_elapsed: Some(std::time::Duration::from_millis(250)),
                    ..get("h", "/delay", 200)
                },
                get("vh-fault.test", "/", 429),
                Check {
                    workload: Some("a"),
                    ..get("h", "/", 200)
                },
            ],
        },
        Scenario {
            name: "circuit breakers: max_requests and max_pending_requests overflow (UO), queueing",
            routes: vec![vhost(
                "cb",
                &["*"],
                vec![
                    route(
                        prefix("/cb-requests"),
                        forward(|a| {
                            a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::Cluster(
                                "cb_requests".into(),
                            ))
                        }),
                    ),
                    route(
                        prefix("/cb-pending"),
                        forward(|a| {
                            a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::Cluster(
                                "cb_pending".into(),
                            ))
                        }),
                    ),
                    route(
                        prefix("/cb-queue"),
                        forward(|a| {
                            a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::Cluster(
                                "cb_queue".into(),
                            ))
                        }),
                    ),
                ],
            )],
            checks: vec![
                Check {
                    workload: Some("a"),
                    ..get("h", "/cb-requests", 200)
                },
                Check {
                    in_flight: Some("/cb-requests"),
                    ..get("h", "/cb-requests", 503)
                },
                Check {
                    workload: Some("a"),
                    ..get("h", "/cb-requests", 200)
                },
                // Every new connection waits as pending, so max_pending_requests 0 refuses all.
                get("h", "/cb-pending", 503),
                get("h", "/cb-pending", 503),
                // One connection allowed, one pending: the check waits for the slow request.
                Check {
                    workload: Some("a"),
                    ..get("h", "/cb-queue", 200)
                },
                Check {
                    in_flight: Some("/cb-queue"),
                    workload: Some("a"),
                    min_elapsed: Some(std::time::Duration::from_millis(500)),
                    ..get("h", "/cb-queue", 200)
                },
            ],
        },
        Scenario {
            name: "outlier detection: consecutive 5xx ejects; a cluster with every host ejected panics",
            routes: vec![vhost(
                "od",
                &["*"],
                vec![
                    route(
                        prefix("/od-single"),
                        forward(|a| {
                            a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::Cluster(
                                "outlier_single".into(),
                            ))
                        }),
                    ),
                    route(
                        prefix("/od"),
                        forward(|a| {
                            a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::Cluster(
                                "outlier".into(),
                            ))
                        }),
                    ),
                ],
            )],
            checks: vec![
                // Round robin over [flaky, a] from wherever it starts: within four requests
                // flaky fails twice in a row for the detector and is ejected.
                Check {
                    status: ANY,
                    ..get("h", "/od", 0)
                },
                Check {
                    status: ANY,
                    ..get("h", "/od", 0)
                },
                Check {
                    status: ANY,
                    ..get("h", "/od", 0)
                },
                Check {
                    status: ANY,
                    ..get("h", "/od", 0)
                },
                // Round robin without ejection alternates, so two answers in a row from `a`
                // mean flaky is out; then every answer must come from `a`.
                Check {
                    workload: Some("a"),
                    until_stable: 2,
                    ..get("h", "/od", 200)
                },
                Check {
                    workload: Some("a"),
                    ..get("h", "/od", 200)
                },
                Check {
                    workload: Some("a"),
                    ..get("h", "/od", 200)
                },
                Check {
                    workload: Some("a"),
                    ..get("h", "/od", 200)
                },
                Check {
                    workload: Some("a"),
                    ..get("h", "/od", 200)
                },
                // The only host is ejected after one 503, yet traffic still reaches it (panic).
                Check {
                    workload: Some("flaky"),
                    ..get("h", "/od-single", 503)
                },
                Check {
                    workload: Some("flaky"),
                    ..get("h", "/od-single", 503)
                },
            ],
        },
        Scenario {
            name: "active health checks: hosts failing an HTTP or TCP check get no traffic",
            routes: vec![vhost(
                "hc",
                &["*"],
                vec![
                    route(prefix("/hc-http"), to_cluster("hc_http")),
                    route(prefix("/hc-tcp"), to_cluster("hc_tcp")),
                ],
            )],
            // flaky answers its health path with 503 and `closed` refuses connections, so once
            // the first checks are done every answer comes from `a` (round robin would
            // otherwise alternate).
            checks: vec![
                Check {
                    workload: Some("a"),
                    until_stable: 4,
                    ..get("h", "/hc-http", 200)
                },
                Check {
                    workload: Some("a"),
                    ..get("h", "/hc-http", 200)
                },
                Check {
                    workload: Some("a"),
                    until_stable: 4,
                    ..get("h", "/hc-tcp", 200)
                },
                Check {
                    workload: Some("a"),
                    ..get("h", "/hc-tcp", 200)
                },
            ],
        },
    ]
}
