//! The headers Envoy adds by itself, in the differential run: the connection manager's
//! `server` response header (`server_name`, `server_header_transformation`, local replies
//! included) and the router's `x-envoy-upstream-service-time` (responses from an upstream) and
//! `x-envoy-expected-rq-timeout-ms` (upstream requests: route timeout, per-try timeout,
//! internal override headers, `suppress_envoy_headers`, gRPC requests under
//! `grpc_timeout_header_max`, whose `grpc-timeout` Envoy never announces). Own listeners and
//! a header-echoing backend for gRPC requests (the testkit echo answers those in gRPC), reached from
//! 127.0.0.5 (internal where 127.0.0.0/8 is configured). The service time varies, so only its
//! format is compared; every other value exactly.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::google::protobuf::{Any, BoolValue, Duration as PbDuration, UInt32Value};
use envoy_types::util::pack_any;

use crate::common::*;

const CLIENT_IP: &str = "127.0.0.5";

pub const LISTENERS: [&str; 6] = [
    "hdr-external",
    "hdr-internal",
    "hdr-suppress",
    "hdr-istio",
    "hdr-append",
    "hdr-pass",
];

const EXPECTED: &str = "x-envoy-expected-rq-timeout-ms";
const GRPC_CT: (&str, &str) = ("content-type", "application/grpc");
const GRPC: &[(&str, &str)] = &[GRPC_CT];
const GRPC_5S: &[(&str, &str)] = &[GRPC_CT, ("grpc-timeout", "5S")];
const GRPC_500MS: &[(&str, &str)] = &[GRPC_CT, ("grpc-timeout", "500m")];
const GRPC_OVERRIDE: &[(&str, &str)] = &[
    GRPC_CT,
    ("grpc-timeout", "500m"),
    ("x-envoy-upstream-rq-timeout-ms", "2500"),
];
const SERVICE_TIME: &str = "x-envoy-upstream-service-time";
const RQ_TIMEOUT: &str = "x-envoy-upstream-rq-timeout-ms";
const PER_TRY: &str = "x-envoy-upstream-rq-per-try-timeout-ms";

fn secs(s: i64) -> Option<PbDuration> {
    Some(PbDuration {
        seconds: s,
        nanos: 0,
    })
}

/// A route to backend `a` with this timeout and, if any, this per-try timeout.
fn timed(p: &str, timeout: i64, per_try: Option<i64>) -> rt::Route {
    let retry_policy = per_try.map(|t| rt::RetryPolicy {
        retry_on: "5xx".into(),
        per_try_timeout: secs(t),
        ..Default::default()
    });
    let action = rt::RouteAction {
        cluster_specifier: Some(rt::route_action::ClusterSpecifier::Cluster("a".into())),
        timeout: secs(timeout),
        retry_policy,
        ..Default::default()
    };
    route(prefix(p), rt::route::Action::Route(action))
}

/// `grpc_timeout_header_max: 0s` (as Istio sets on every route) with this route timeout and
/// per-try timeout, to the header-echoing backend.
fn grpc_route(p: &str, timeout: Option<i64>, per_try: Option<i64>) -> rt::Route {
    let mut r = timed(p, 0, per_try);
    if let Some(rt::route::Action::Route(a)) = &mut r.action {
        a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::Cluster(
            GRPC_CLUSTER.into(),
        ));
        a.timeout = timeout.and_then(secs);
        a.max_stream_duration = Some(rt::route_action::MaxStreamDuration {
            grpc_timeout_header_max: secs(0),
            ..Default::default()
        });
    }
    r
}

/// The cluster of `raw_echo`.
pub const GRPC_CLUSTER: &str = "hdr-raw";

/// Unset route timeout (Envoy's 15 s) on `/`; `/named` sets a `server` response header;
/// `/g*` are gRPC routes.
fn routes() -> rt::RouteConfiguration {
    use core::header_value_option::HeaderAppendAction as A;
    let named = rt::Route {
        response_headers_to_add: vec![super::hvo(
            "server",
            "from-route",
            A::OverwriteIfExistsOrAdd,
        )],
        ..route(prefix("/named"), to_cluster("a"))
    };
    route_config(
        "hdr",
        vec![vhost(
            "hdr",
            &["*"],
            vec![
                grpc_route("/g3", Some(3), None),
                grpc_route("/gbig", Some(3), Some(5)),
                grpc_route("/gdef", None, None),
                timed("/t0", 0, None),
                timed("/t3", 3, None),
                timed("/ptbig", 3, Some(5)),
                timed("/pt0", 0, Some(1)),
                timed("/pt", 3, Some(1)),
                route(prefix("/direct"), super::direct("direct")),
                route(prefix("/down"), to_cluster("closed")),
                named,
                route(prefix("/"), to_cluster("a")),
            ],
        )],
    )
}

fn listener(name: &str, f: impl FnOnce(&mut hcm::HttpConnectionManager)) -> (String, Any) {
    (name.to_string(), http_listener_tweaked(name, routes(), f))
}

fn internal(m: &mut hcm::HttpConnectionManager) {
    m.use_remote_address = Some(BoolValue { value: true });
    m.internal_address_config = Some(hcm::http_connection_manager::InternalAddressConfig {
        unix_sockets: false,
        cidr_ranges: vec![core::CidrRange {
            address_prefix: "127.0.0.0".into(),
            prefix_len: Some(UInt32Value { value: 8 }),
        }],
    });
}

pub fn listeners() -> Vec<(String, Any)> {
    use hcm::http_connection_manager::ServerHeaderTransformation as T;
    vec![
        listener("hdr-external", |_| {}),
        listener("hdr-internal", internal),
        listener("hdr-suppress", |m| {
            internal(m);
            if let Some(router) = m.http_filters.last_mut() {
                let quiet = Router {
                    suppress_envoy_headers: true,
                    ..Default::default()
                };
                router.config_type =
                    Some(hcm::http_filter::ConfigType::TypedConfig(pack_any(quiet)));
            }
        }),
        listener("hdr-istio", |m| m.server_name = "istio-envoy".into()),
        listener("hdr-append", |m| {
            m.server_name = "istio-envoy".into();
            m.server_header_transformation = T::AppendIfAbsent as i32;
        }),
        listener("hdr-pass", |m| {
            m.server_header_transformation = T::PassThrough as i32;
        }),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Want {
    Absent,
    Is(&'static str),
    /// Whole milliseconds (a service time).
    Millis,
}

struct Case {
    listener: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    status: u16,
    /// Request headers at the backend.
    upstream: Vec<(&'static str, Want)>,
    /// Response headers at the client.
    response: Vec<(&'static str, Want)>,
}

fn case(listener: &'static str, path: &'static str) -> Case {
    Case {
        listener,
        path,
        headers: &[],
        status: 200,
        upstream: Vec::new(),
        response: Vec::new(),
    }
}

/// The router's headers: which timeout Envoy announces upstream, and that local replies get
/// no service time.
fn router_cases() -> Vec<Case> {
    use Want::*;
    let expect = |listener, path, headers, want: Option<&'static str>| Case {
        headers,
        upstream: vec![(EXPECTED, want.map_or(Absent, Is))],
        ..case(listener, path)
    };
    let ext = "hdr-external";
    let int = "hdr-internal";
    vec![
        Case {
            upstream: vec![(EXPECTED, Is("15000"))],
            response: vec![(SERVICE_TIME, Millis), ("server", Is("envoy"))],
            ..case(ext, "/")
        },
        expect(ext, "/t0", &[], None),
        expect(ext, "/t3", &[], Some("3000")),
        // A per-try timeout counts only below the route timeout (or without one).
        expect(ext, "/pt", &[], Some("1000")),
        expect(ext, "/ptbig", &[], Some("3000")),
        expect(ext, "/pt0", &[], Some("1000")),
        // External requests lose the override headers and a client's own value.
        expect(ext, "/", &[(RQ_TIMEOUT, "2500")], Some("15000")),
        expect(ext, "/", &[(PER_TRY, "700")], Some("15000")),
        expect(ext, "/t0", &[(EXPECTED, "42")], None),
        Case {
            response: vec![(SERVICE_TIME, Absent), ("server", Is("envoy"))],
            ..case(ext, "/direct")
        },
        Case {
            status: 503,
            response: vec![(SERVICE_TIME, Absent), ("server", Is("envoy"))],
            ..case(ext, "/down")
        },
        // Internal requests: the overrides decide, and are consumed.
        Case {
            headers: &[(RQ_TIMEOUT, "2500")],
            upstream: vec![(EXPECTED, Is("2500")), (RQ_TIMEOUT, Absent)],
            response: vec![(SERVICE_TIME, Millis)],
            ..case(int, "/")
        },
        expect(int, "/", &[(RQ_TIMEOUT, "0")], None),
        expect(int, "/pt", &[(RQ_TIMEOUT, "0")], Some("1000")),
        expect(int, "/t0", &[(RQ_TIMEOUT, "2500")], Some("2500")),
        expect(int, "/", &[(PER_TRY, "700")], Some("700")),
        expect(int, "/", &[(PER_TRY, "70000")], Some("15000")),
        expect(int, "/t0", &[(PER_TRY, "700")], Some("700")),
        expect(int, "/ptbig", &[(PER_TRY, "700")], Some("700")),
        // A client's own value is replaced when there is a timeout, else passed on.
        expect(int, "/", &[(EXPECTED, "42")], Some("15000")),
        expect(int, "/t0", &[(EXPECTED, "42")], Some("42")),
        // gRPC under `grpc_timeout_header_max`: neither the route timeout nor `grpc-timeout`
        // is announced; the per-try timeout (even above the route timeout) and an internal
        // override are.
        expect(ext, "/g3", GRPC, None),
        expect(ext, "/g3", GRPC_5S, None),
        expect(ext, "/gdef", GRPC_5S, None),
        expect(ext, "/gbig", GRPC_500MS, Some("5000")),
        expect(int, "/gdef", GRPC_OVERRIDE, Some("2500")),
        // `suppress_envoy_headers`: neither header, and the override is still consumed.
        Case {
            upstream: vec![(EXPECTED, Absent)],
            response: vec![(SERVICE_TIME, Absent), ("server", Is("envoy"))],
            ..case("hdr-suppress", "/")
        },
        Case {
            headers: &[(RQ_TIMEOUT, "500"), (EXPECTED, "42")],
            upstream: vec![(EXPECTED, Is("42")), (RQ_TIMEOUT, Absent)],
            ..case("hdr-suppress", "/pt")
        },
    ]
}

/// `server_name` and `server_header_transformation`, on proxied and local replies.
fn server_cases() -> Vec<Case> {
    use Want::*;
    let server = |listener, path, status, want: Option<&'static str>| Case {
        status,
        response: vec![("server", want.map_or(Absent, Is))],
        ..case(listener, path)
    };
    vec![
        server("hdr-external", "/named", 200, Some("envoy")),
        server("hdr-istio", "/", 200, Some("istio-envoy")),
        server("hdr-istio", "/named", 200, Some("istio-envoy")),
        server("hdr-istio", "/direct", 200, Some("istio-envoy")),
        server("hdr-istio", "/down", 503, Some("istio-envoy")),
        server("hdr-append", "/", 200, Some("istio-envoy")),
        server("hdr-append", "/named", 200, Some("from-route")),
        server("hdr-append", "/down", 503, Some("istio-envoy")),
        server("hdr-pass", "/", 200, None),
        server("hdr-pass", "/named", 200, Some("from-route")),
        server("hdr-pass", "/direct", 200, None),
        server("hdr-pass", "/down", 503, None),
    ]
}

/// Every case, one result per listener (the first problem found on it).
pub async fn check(
    target: &str,
    addrs: &BTreeMap<&'static str, SocketAddr>,
) -> Vec<Result<(), String>> {
    let mut by_listener: BTreeMap<&str, Result<(), String>> = BTreeMap::new();
    for c in router_cases().into_iter().chain(server_cases()) {
        let outcome = match addrs.get(c.listener) {
            Some(addr) => run(*addr, &c).await,
            None => Err("listener not started".to_string()),
        };
        let slot = by_listener.entry(c.listener).or_insert(Ok(()));
        if let (Ok(()), Err(e)) = (&slot, outcome) {
            *slot = Err(format!(
                "[envoy headers] {target}: {} {} {:?}: {e}",
                c.listener, c.path, c.headers
            ));
        }
    }
    by_listener.into_values().collect()
}

fn judge(what: &str, have: Option<String>, want: Want) -> Option<String> {
    let ok = match want {
        Want::Absent => have.is_none(),
        Want::Is(v) => have.as_deref() == Some(v),
        Want::Millis => have
            .as_deref()
            .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit())),
    };
    (!ok).then(|| format!("{what} {have:?} (want {want:?})"))
}

async fn run(addr: SocketAddr, c: &Case) -> Result<(), String> {
    let got = answer_from(CLIENT_IP, addr, "hdr.test", c.path, c.headers, c.status).await?;
    let upstream = |name: &str| got.echoed_header(name);
    let problems: Vec<String> =
        c.upstream
            .iter()
            .filter_map(|(name, want)| judge(&format!("upstream {name}"), upstream(name), *want))
            .chain(c.response.iter().filter_map(|(name, want)| {
                judge(&format!("response {name}"), got.header(name), *want)
            }))
            .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join(", "))
    }
}

/// A backend that answers every request, gRPC included, with its request headers as JSON
/// (`{"headers": {...}}`, names lower-case) over HTTP/1.1, one request per connection.
pub async fn raw_echo() -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 2048];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&head).into_owned();
                let headers: serde_json::Map<String, serde_json::Value> = text
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_lowercase(), v.trim().into()))
                    .collect();
                let body = serde_json::json!({ "headers": headers }).to_string();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    addr
}
