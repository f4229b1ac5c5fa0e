//! Fields translation sets for Istio's defaults, observed the same on Plexus and Envoy:
//! `include_request_attempt_count`, `require_tls`, Istio's default `retry_on` (with
//! `refused-stream` and gRPC conditions) and `max_stream_duration.grpc_timeout_header_max`.

use super::*;

pub fn scenarios() -> Vec<Scenario> {
    let istio_retry = |p: &mut rt::RetryPolicy| {
        p.retry_on =
            "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes".into();
        p.retriable_status_codes = vec![503];
    };
    let grpc_max = |a: &mut rt::RouteAction| {
        a.max_stream_duration = Some(rt::route_action::MaxStreamDuration {
            grpc_timeout_header_max: Some(PbDuration {
                seconds: 0,
                nanos: 0,
            }),
            ..Default::default()
        });
    };
    vec![Scenario {
        name: "istio defaults: attempt count, require_tls, default retry_on, grpc timeout max",
        routes: vec![
            rt::VirtualHost {
                include_request_attempt_count: true,
                ..vhost(
                    "counted",
                    &["counted.test"],
                    vec![
                        route(prefix("/exhaust"), retrying("flakyonly", "5xx", |_| {})),
                        route(prefix("/istio"), retrying("flakyonly", "", istio_retry)),
                        route(prefix("/"), forward(grpc_max)),
                    ],
                )
            },
            rt::VirtualHost {
                require_tls: rt::virtual_host::TlsRequirementType::All as i32,
                ..vhost(
                    "secure",
                    &["secure.test"],
                    vec![route(prefix("/"), forward(|_| {}))],
                )
            },
        ],
        checks: vec![
            Check {
                workload: Some("a"),
                upstream_header: Some(("x-envoy-attempt-count", Some("1"))),
                ..get("counted.test", "/ok", 200)
            },
            Check {
                workload: Some("flaky"),
                upstream_header: Some(("x-envoy-attempt-count", Some("3"))),
                ..get("counted.test", "/exhaust", 503)
            },
            Check {
                workload: Some("flaky"),
                upstream_header: Some(("x-envoy-attempt-count", Some("3"))),
                ..get("counted.test", "/istio", 503)
            },
            Check {
                response_header: Some(("location", Some("https://secure.test/p?q=1"))),
                ..get("secure.test", "/p?q=1", 301)
            },
        ],
    }]
}
