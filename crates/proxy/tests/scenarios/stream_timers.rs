//! The stream timers for the whole life of a stream: the idle timeout after the response headers
//! (a stalled body is cut short or reset, a steady one is not), the route timeout over the
//! response body (the per-try timeout does not cover it), and `max_stream_duration` — the
//! route's own, `grpc_timeout_header_max` / `grpc_timeout_header_offset` with a `grpc-timeout`
//! header, the router `timeout` a route with `max_stream_duration` no longer applies, and the
//! connection manager's limit (2.5 s on the `internal` listener, see
//! `timeouts::internal_listener`); and the deprecated `max_grpc_timeout` Istio sends Envoy
//! sidecars, which makes `grpc-timeout` the router timeout of gRPC requests only. The echo's
//! paced bodies (`x-echo-body-chunks`,
//! `x-echo-body-gap-ms`) send the headers at once and stall between pieces.

use std::time::Duration;

use super::*;

fn ms(n: i32) -> Option<PbDuration> {
    Some(PbDuration {
        seconds: 0,
        nanos: n * 1_000_000,
    })
}

fn limit(
    max: Option<i32>,
    header_max: Option<i32>,
    offset: Option<i32>,
) -> impl FnOnce(&mut rt::RouteAction) {
    move |a: &mut rt::RouteAction| {
        a.max_stream_duration = Some(rt::route_action::MaxStreamDuration {
            max_stream_duration: max.and_then(ms),
            grpc_timeout_header_max: header_max.and_then(ms),
            grpc_timeout_header_offset: offset.and_then(ms),
        });
    }
}

fn to(cluster: &str, timeout: i32, f: impl FnOnce(&mut rt::RouteAction)) -> rt::route::Action {
    forward(|a| {
        a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::Cluster(cluster.into()));
        a.timeout = ms(timeout);
        f(a);
    })
}

/// `max_grpc_timeout: 0s`: deprecated in Envoy's API, yet what Istio sends Envoy sidecars.
#[allow(deprecated)]
fn legacy_grpc_timeout(a: &mut rt::RouteAction) {
    a.max_grpc_timeout = ms(0);
}

/// Headers then the first half of the body, the rest 1.5 s later.
const STALL: [(&str, &str); 2] = [("x-echo-body-chunks", "2"), ("x-echo-body-gap-ms", "1500")];

fn check(path: &'static str, headers: &[(&'static str, &'static str)], status: u16) -> Check {
    Check {
        headers: headers.to_vec(),
        ..get("timers.test", path, status)
    }
}

fn grpc(path: &'static str, headers: &[(&'static str, &'static str)], code: &'static str) -> Check {
    Check {
        grpc: true,
        grpc_status: Some(code),
        ..check(path, headers, 200)
    }
}

fn truncated(path: &'static str, h2: bool) -> Check {
    Check {
        h2,
        truncated: true,
        ..check(path, &STALL, 200)
    }
}

pub fn scenarios() -> Vec<Scenario> {
    let routes = vec![
        route(prefix("/idle"), to("a", 0, |a| a.idle_timeout = ms(300))),
        route(prefix("/route-timeout"), to("a", 300, |_| {})),
        route(
            prefix("/per-try"),
            to("a", 0, |a| {
                a.retry_policy = Some(rt::RetryPolicy {
                    retry_on: "5xx".into(),
                    per_try_timeout: ms(300),
                    ..Default::default()
                })
            }),
        ),
        route(
            prefix("/msd-route-timeout"),
            to("a", 100, limit(None, Some(0), None)),
        ),
        route(prefix("/msd"), to("a", 0, limit(Some(300), None, None))),
        route(
            prefix("/hcm"),
            to("a", 0, |a| {
                a.idle_timeout = ms(0);
                limit(None, Some(0), None)(a);
            }),
        ),
        route(
            prefix("/grpc.Capped/"),
            to("a2", 0, limit(None, Some(100), None)),
        ),
        route(
            prefix("/grpc.Offset/"),
            to("a2", 0, limit(None, Some(0), Some(100))),
        ),
        route(prefix("/grpc.Legacy/"), to("a2", 100, legacy_grpc_timeout)),
    ];
    let delay = |ms: &'static str| [("x-echo-delay-ms", ms)];
    let checks = vec![
        // Idle after the response headers: HTTP/1.1 cut short, HTTP/2 reset ...
        truncated("/idle", false),
        truncated("/idle", true),
        // ... but five pieces 150 ms apart are never 300 ms quiet.
        Check {
            workload: Some("a"),
            ..check(
                "/idle",
                &[("x-echo-body-chunks", "5"), ("x-echo-body-gap-ms", "150")],
                200,
            )
        },
        // The route timeout also covers the response body.
        truncated("/route-timeout", false),
        truncated("/route-timeout", true),
        // The per-try timeout (300 ms) ends at the response headers, in Envoy as in Plexus:
        // a body stalled 1.5 s after them arrives whole, while a late answer still gets 504.
        Check {
            workload: Some("a"),
            ..check("/per-try", &STALL, 200)
        },
        Check {
            h2: true,
            workload: Some("a"),
            ..check("/per-try", &STALL, 200)
        },
        check("/per-try", &delay("1000"), 504),
        Check {
            workload: Some("a"),
            ..check(
                "/route-timeout",
                &[("x-echo-body-chunks", "2"), ("x-echo-body-gap-ms", "100")],
                200,
            )
        },
        // The route's max_stream_duration: 504 before the headers, a reset after.
        Check {
            min_elapsed: Some(Duration::from_millis(250)),
            ..check("/msd", &delay("1000"), 504)
        },
        Check {
            h2: true,
            ..check("/msd", &delay("1000"), 504)
        },
        truncated("/msd", false),
        // With max_stream_duration set the route's 100 ms `timeout` is not applied ...
        Check {
            workload: Some("a"),
            ..check("/msd-route-timeout", &delay("400"), 200)
        },
        // ... and `grpc-timeout` sets the limit even on a request that is not gRPC.
        check(
            "/msd-route-timeout",
            &[("x-echo-delay-ms", "1000"), ("grpc-timeout", "150m")],
            504,
        ),
        // gRPC: the header capped by grpc_timeout_header_max (5 s -> 100 ms): DEADLINE_EXCEEDED.
        grpc(
            "/grpc.Capped/Call",
            &[("grpc-timeout", "5S"), ("x-echo-delay-ms", "1000")],
            "4",
        ),
        // No header: no limit (the main listener has none of its own).
        grpc("/grpc.Capped/Call", &delay("300"), "0"),
        // The offset (100 ms) leaves nothing of a 50 ms header, and 1.9 s of a 2 s one.
        grpc("/grpc.Offset/Call", &[("grpc-timeout", "50m")], "4"),
        grpc("/grpc.Offset/Call", &[("grpc-timeout", "2S")], "0"),
        // max_grpc_timeout: gRPC takes its router timeout from the header (UT: UNAVAILABLE) or
        // has none, plain HTTP keeps the route's 100 ms.
        grpc(
            "/grpc.Legacy/Call",
            &[("grpc-timeout", "150m"), ("x-echo-delay-ms", "1000")],
            "14",
        ),
        grpc("/grpc.Legacy/Call", &delay("300"), "0"),
        check("/grpc.Legacy/Call", &delay("300"), 504),
        // The connection manager's 2.5 s limit (internal listener; the route disables idling).
        Check {
            internal: true,
            min_elapsed: Some(Duration::from_millis(2300)),
            ..check("/hcm", &delay("4000"), 504)
        },
    ];
    vec![
        Scenario {
            name: "stream timers: idle after the headers, max_stream_duration, grpc-timeout",
            routes: vec![vhost("timers", &["timers.test"], routes)],
            checks,
        },
        tunnels(),
    ]
}

/// A WebSocket tunnel stays under the stream timers: the route's `idle_timeout` (500 ms)
/// closes it once quiet, however long traffic kept it open before; `max_stream_duration`
/// (800 ms, idling off) closes it from the request's arrival.
fn tunnels() -> Scenario {
    let routes = vec![
        route(prefix("/ws-idle"), to("a", 0, |a| a.idle_timeout = ms(500))),
        route(
            prefix("/ws-msd"),
            to("a", 0, |a| {
                a.idle_timeout = ms(0);
                limit(Some(800), None, None)(a);
            }),
        ),
    ];
    let ws = |path, rounds, closes_after: (u64, u64)| Check {
        upgrade: Some("websocket"),
        backend: Some("a"),
        tunnel_idle: Some(TunnelIdle {
            rounds,
            gap: Duration::from_millis(200),
            closes_after: (
                Duration::from_millis(closes_after.0),
                Duration::from_millis(closes_after.1),
            ),
        }),
        ..get("tunnel.test", path, 101)
    };
    Scenario {
        name: "stream timers on WebSocket tunnels: idle timeout, max_stream_duration",
        routes: vec![vhost("tunnels", &["tunnel.test"], routes)],
        checks: vec![
            ws("/ws-idle", 0, (450, 800)),
            // Six round trips 200 ms apart: open for 1.2 s, then closed once quiet.
            ws("/ws-idle", 6, (450, 800)),
            ws("/ws-msd", 0, (700, 1100)),
        ],
    }
}
