//! Scenarios run unchanged against Plexus and against real Envoy: the same xDS pushed by the
//! fake ADS server, the same requests, the same expected observations.
#![allow(dead_code)]

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::r#type::matcher::v3 as m;
use envoy_types::pb::google::protobuf::{BoolValue, Duration as PbDuration, UInt32Value};

use envoy_types::pb::envoy::extensions::filters::common::fault::v3 as common_fault;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{self as fault, HttpFault};
use envoy_types::pb::envoy::r#type::v3::FractionalPercent;

use crate::common::*;

pub mod certs;
mod clusters;
pub mod detection;
pub mod envoy_headers;
pub mod health;
mod istio_defaults;
pub mod request_id;
mod resilience;
mod routing;
pub mod stream_timers;
pub mod subnets;
pub mod timeouts;
pub mod tls;

/// The backends every scenario can use.
pub struct Backends {
    pub a: SocketAddr,
    pub b: SocketAddr,
    /// A port with nothing listening (connect failures).
    pub closed: SocketAddr,
    /// Answers every request with 503 (workload `flaky`).
    pub flaky: SocketAddr,
    /// Answers after 2 s (workload `slow`).
    pub slow: SocketAddr,
    /// TCP byte echo.
    pub tcp: SocketAddr,
    /// Receives mirrored requests (workload `mirror`).
    pub mirror: SocketAddr,
    /// Server-first TCP: greets on accept, then echoes.
    pub greeter: SocketAddr,
    /// Echoes whose gRPC health service reports `reviews` (SERVING at start; the test flips
    /// `grpc_two`).
    pub grpc_one: SocketAddr,
    pub grpc_two: SocketAddr,
}

/// One request and what must be observed.
#[derive(Debug, Clone, Default)]
pub struct Check {
    pub host: &'static str,
    pub path: &'static str,
    pub method: &'static str,
    /// Send as h2c with prior knowledge instead of HTTP/1.1.
    pub h2: bool,
    pub headers: Vec<(&'static str, &'static str)>,
    pub status: u16,
    /// `workload` in the echo's JSON (which backend answered).
    pub workload: Option<&'static str>,
    pub body: Option<&'static str>,
    /// Path (with query) the backend received.
    pub upstream_path: Option<&'static str>,
    pub upstream_host: Option<&'static str>,
    pub upstream_protocol: Option<&'static str>,
    /// Request header at the backend: `Some(value)` present with value, `None` absent.
    pub upstream_header: Option<(&'static str, Option<&'static str>)>,
    pub response_header: Option<(&'static str, Option<&'static str>)>,
    /// The response may not arrive sooner (injected delays).
    pub min_elapsed: Option<std::time::Duration>,
    /// Path of a slow request (1 s at backend `a`) kept in flight while this check runs.
    pub in_flight: Option<&'static str>,
    /// Send a unary gRPC call over h2c instead (`path` is the method).
    pub grpc: bool,
    /// Expected `grpc-status` (trailers, or headers of a trailers-only reply).
    pub grpc_status: Option<&'static str>,
    /// Response header naming the backend (gRPC replies have no JSON body).
    pub backend: Option<&'static str>,
    /// Ask to upgrade to this protocol on a raw HTTP/1.1 connection; with status 101 the
    /// tunnel must echo bytes.
    pub upgrade: Option<&'static str>,
    /// Send `CONNECT host` (with `headers`) on a raw HTTP/1.1 connection; with status 200 the
    /// tunnel must echo.
    pub connect: bool,
    /// Repeat the request (at most 20 times) until it has passed this many times in a row:
    /// for state an implementation applies asynchronously (Envoy ejects outliers on its main
    /// thread, a moment after the worker saw the failures).
    pub until_stable: u32,
    /// After the response, the mirror backend must receive a copy with this host.
    pub mirrored: Option<&'static str>,
    /// Send to the listener whose `internal_address_config` makes the client internal.
    pub internal: bool,
    /// The response starts with `status` and its body then fails: cut short (HTTP/1.1) or
    /// reset (HTTP/2).
    pub truncated: bool,
    /// With `upgrade`: after the echo, keep the tunnel busy then quiet and expect it closed.
    pub tunnel_idle: Option<TunnelIdle>,
}

/// Traffic through an upgraded tunnel, then silence: the proxy must close it.
#[derive(Clone, Copy, Debug)]
pub struct TunnelIdle {
    /// Echo round trips, `gap` apart, that must all go through.
    pub rounds: u32,
    pub gap: std::time::Duration,
    /// The close must come this long after the last byte: at least the first, at most the
    /// second.
    pub closes_after: (std::time::Duration, std::time::Duration),
}

pub struct Scenario {
    pub name: &'static str,
    pub routes: Vec<rt::VirtualHost>,
    pub checks: Vec<Check>,
}

/// `status` value meaning "any status" (warm-up requests whose outcome is not asserted).
pub const ANY: u16 = 0;

fn connect(
    authority: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    status: u16,
) -> Check {
    Check {
        host: authority,
        method: "CONNECT",
        headers,
        status,
        connect: true,
        ..Default::default()
    }
}

fn get(host: &'static str, path: &'static str, status: u16) -> Check {
    Check {
        host,
        path,
        method: "GET",
        status,
        ..Default::default()
    }
}

fn direct(body: &str) -> rt::route::Action {
    rt::route::Action::DirectResponse(rt::DirectResponseAction {
        status: 200,
        body: Some(core::DataSource {
            specifier: Some(core::data_source::Specifier::InlineString(body.into())),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn path_match(p: rt::route_match::PathSpecifier) -> rt::RouteMatch {
    rt::RouteMatch {
        path_specifier: Some(p),
        ..Default::default()
    }
}

fn regex(r: &str) -> m::RegexMatcher {
    m::RegexMatcher {
        regex: r.into(),
        engine_type: None,
    }
}

fn header(
    name: &str,
    spec: rt::header_matcher::HeaderMatchSpecifier,
    invert: bool,
) -> rt::HeaderMatcher {
    rt::HeaderMatcher {
        name: name.into(),
        header_match_specifier: Some(spec),
        invert_match: invert,
        ..Default::default()
    }
}

fn string_match(p: m::string_matcher::MatchPattern) -> rt::header_matcher::HeaderMatchSpecifier {
    rt::header_matcher::HeaderMatchSpecifier::StringMatch(m::StringMatcher {
        match_pattern: Some(p),
        ignore_case: false,
    })
}

fn with_headers(headers: Vec<rt::HeaderMatcher>, body: &str) -> rt::Route {
    route(
        rt::RouteMatch {
            headers,
            ..prefix("/")
        },
        direct(body),
    )
}

fn hvo(
    k: &str,
    v: &str,
    action: core::header_value_option::HeaderAppendAction,
) -> core::HeaderValueOption {
    core::HeaderValueOption {
        header: Some(core::HeaderValue {
            key: k.into(),
            value: v.into(),
            raw_value: vec![],
        }),
        append_action: action as i32,
        ..Default::default()
    }
}

fn forward(f: impl FnOnce(&mut rt::RouteAction)) -> rt::route::Action {
    let mut a = rt::RouteAction {
        cluster_specifier: Some(rt::route_action::ClusterSpecifier::Cluster("a".into())),
        ..Default::default()
    };
    f(&mut a);
    rt::route::Action::Route(a)
}

fn retrying(
    cluster: &str,
    retry_on: &str,
    f: impl FnOnce(&mut rt::RetryPolicy),
) -> rt::route::Action {
    let mut policy = rt::RetryPolicy {
        retry_on: retry_on.into(),
        num_retries: Some(UInt32Value { value: 2 }),
        retry_back_off: Some(rt::retry_policy::RetryBackOff {
            base_interval: Some(PbDuration { seconds: 0, nanos: 5_000_000 }),
            max_interval: None,
        }),
        retry_host_predicate: vec![rt::retry_policy::RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".into(),
            config_type: Some(rt::retry_policy::retry_host_predicate::ConfigType::TypedConfig(
                envoy_types::util::pack_any(
                    envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate {},
                ),
            )),
        }],
        host_selection_retry_max_attempts: 5,
        ..Default::default()
    };
    f(&mut policy);
    forward(|a| {
        a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::Cluster(cluster.into()));
        a.retry_policy = Some(policy);
    })
}

fn fault_config(
    f: impl FnOnce(&mut HttpFault),
) -> std::collections::HashMap<String, envoy_types::pb::google::protobuf::Any> {
    let mut cfg = HttpFault::default();
    f(&mut cfg);
    std::collections::HashMap::from([(
        "envoy.filters.http.fault".to_string(),
        envoy_types::util::pack_any(cfg),
    )])
}

fn percent(n: u32) -> Option<FractionalPercent> {
    Some(FractionalPercent {
        numerator: n,
        denominator: 0,
    })
}

fn abort(error: fault::fault_abort::ErrorType, pct: u32) -> Option<fault::FaultAbort> {
    Some(fault::FaultAbort {
        error_type: Some(error),
        percentage: percent(pct),
        ..Default::default()
    })
}

fn with_fault(path: &str, f: impl FnOnce(&mut HttpFault)) -> rt::Route {
    rt::Route {
        typed_per_filter_config: fault_config(f),
        ..route(prefix(path), forward(|_| {}))
    }
}

fn redirect(r: rt::RedirectAction) -> rt::route::Action {
    rt::route::Action::Redirect(r)
}

/// Every scenario, routing first.
pub fn all() -> Vec<Scenario> {
    let mut all = routing::scenarios();
    all.extend(resilience::scenarios());
    all.extend(istio_defaults::scenarios());
    all.extend(timeouts::scenarios());
    all.extend(stream_timers::scenarios());
    all.extend(clusters::scenarios());
    all
}
