//! Stream idle timeouts (route `idle_timeout`, connection manager `stream_idle_timeout`) and the
//! `x-envoy-*` override headers, honoured only for internal clients: checks with `internal`
//! go to the listener whose `internal_address_config` covers 127.0.0.0/8 (with
//! `use_remote_address`, a 1 s `stream_idle_timeout` and a 2.5 s `max_stream_duration`); the
//! others to the main listener,
//! where every client is external.
#![allow(clippy::wildcard_imports)]

use std::time::Duration;

use super::*;
use envoy_types::util::pack_any;

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
            Check {
                headers: vec![("x-envoy-retriable-status-codes", "503")],
                upstream_header: Some(("x-envoy-retriable-status-codes", None)),
                ..get("t", "/plain", 200)
            },
            Check {
                headers: vec![("x-envoy-upstream-alt-stat-name", "x")],
                upstream_header: Some(("x-envoy-upstream-alt-stat-name", None)),
                ..get("t", "/plain", 200)
            },
            Check {
                headers: vec![("x-envoy-hedge-on-per-try-timeout", "true")],
                upstream_header: Some(("x-envoy-hedge-on-per-try-timeout", None)),
                ..get("t", "/plain", 200)
            },
            Check {
                headers: vec![("x-envoy-original-url", "http://x/")],
                upstream_header: Some(("x-envoy-original-url", None)),
                ..get("t", "/plain", 200)
            },
            // Edge-only headers stay on external requests without `use_remote_address`.
            Check {
                headers: vec![("x-envoy-decorator-operation", "op")],
                upstream_header: Some(("x-envoy-decorator-operation", Some("op"))),
                ..get("t", "/plain", 200)
            },
            Check {
                headers: vec![("x-envoy-downstream-service-cluster", "c")],
                upstream_header: Some(("x-envoy-downstream-service-cluster", Some("c"))),
                ..get("t", "/plain", 200)
            },
            Check {
                internal: true,
                headers: vec![("x-envoy-decorator-operation", "op")],
                upstream_header: Some(("x-envoy-decorator-operation", Some("op"))),
                ..get("t", "/plain", 200)
            },
            // An external request on the edge (`use_remote_address`) listener loses them.
            Check {
                internal: true,
                headers: vec![
                    ("x-forwarded-for", "10.1.1.1"),
                    ("x-envoy-decorator-operation", "op"),
                ],
                upstream_header: Some(("x-envoy-decorator-operation", None)),
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
                    ("x-envoy-retry-on", "retriable-status-codes"),
                    ("x-envoy-retriable-status-codes", "502,503"),
                ],
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

/// An RDS listener for `route`: `use_remote_address`, every loopback client internal, a
/// 1 s `stream_idle_timeout`, a 2.5 s `common_http_protocol_options.max_stream_duration`
/// (longer than any check on it but the one about it), and a router with
/// `suppress_envoy_headers`.
pub fn internal_listener(name: &str, route: &str) -> envoy_types::pb::google::protobuf::Any {
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
    let any = http_listener_rds_with_fault(name, route);
    let mut l: envoy_types::pb::envoy::config::listener::v3::Listener =
        prost::Message::decode(any.value.as_slice()).expect("listener");
    for chain in &mut l.filter_chains {
        for f in &mut chain.filters {
            if let Some(
                envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(t),
            ) = &mut f.config_type
            {
                let mut m: hcm::HttpConnectionManager =
                    prost::Message::decode(t.value.as_slice()).expect("hcm");
                m.use_remote_address =
                    Some(envoy_types::pb::google::protobuf::BoolValue { value: true });
                if let Some(router) = m.http_filters.last_mut() {
                    use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
                    router.config_type = Some(hcm::http_filter::ConfigType::TypedConfig(pack_any(
                        Router {
                            suppress_envoy_headers: true,
                            ..Default::default()
                        },
                    )));
                }
                m.stream_idle_timeout = Some(envoy_types::pb::google::protobuf::Duration {
                    seconds: 1,
                    nanos: 0,
                });
                m.common_http_protocol_options = Some(core::HttpProtocolOptions {
                    max_stream_duration: Some(envoy_types::pb::google::protobuf::Duration {
                        seconds: 2,
                        nanos: 500_000_000,
                    }),
                    ..Default::default()
                });
                m.internal_address_config =
                    Some(hcm::http_connection_manager::InternalAddressConfig {
                        unix_sockets: false,
                        cidr_ranges: vec![core::CidrRange {
                            address_prefix: "127.0.0.0".into(),
                            prefix_len: Some(UInt32Value { value: 8 }),
                        }],
                    });
                *t = pack_any(m);
            }
        }
    }
    pack_any(l)
}
