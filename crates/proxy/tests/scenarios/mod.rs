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
}

pub struct Scenario {
    pub name: &'static str,
    pub routes: Vec<rt::VirtualHost>,
    pub checks: Vec<Check>,
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

pub fn all() -> Vec<Scenario> {
    use m::string_matcher::MatchPattern as P;
    use rt::header_matcher::HeaderMatchSpecifier as H;
    use rt::route_match::PathSpecifier as PS;
    vec![
        Scenario {
            name: "virtual hosts by domain",
            routes: vec![
                vhost("exact", &["exact.test", "exact.test:8080"], vec![route(prefix("/"), direct("exact"))]),
                vhost("suffix", &["*.wild.test"], vec![route(prefix("/"), direct("suffix"))]),
                vhost("longer-suffix", &["*.deep.wild.test"], vec![route(prefix("/"), direct("longer-suffix"))]),
                vhost("prefix", &["pre.*"], vec![route(prefix("/"), direct("prefix"))]),
                vhost("any", &["*"], vec![route(prefix("/"), direct("any"))]),
            ],
            checks: vec![
                Check { body: Some("exact"), ..get("exact.test", "/", 200) },
                Check { body: Some("exact"), ..get("EXACT.test:8080", "/", 200) },
                Check { body: Some("suffix"), ..get("x.wild.test", "/", 200) },
                Check { body: Some("longer-suffix"), ..get("x.deep.wild.test", "/", 200) },
                Check { body: Some("prefix"), ..get("pre.anything", "/", 200) },
                Check { body: Some("any"), ..get("wild.test", "/", 200) },
                Check { body: Some("any"), ..get("exact.test:9999", "/", 200) },
            ],
        },
        Scenario {
            name: "path matching",
            routes: vec![vhost(
                "paths",
                &["*"],
                vec![
                    route(path_match(PS::Path("/exact".into())), direct("exact")),
                    route(path_match(PS::SafeRegex(regex("/re/[0-9]+"))), direct("regex")),
                    route(path_match(PS::PathSeparatedPrefix("/sep".into())), direct("separated")),
                    route(
                        rt::RouteMatch { case_sensitive: Some(BoolValue { value: false }), ..prefix("/CASE") },
                        direct("case-insensitive"),
                    ),
                    route(prefix("/p"), direct("prefix")),
                ],
            )],
            checks: vec![
                Check { body: Some("exact"), ..get("h", "/exact?q=1", 200) },
                Check { body: Some("prefix"), ..get("h", "/pexact", 200) },
                Check { body: Some("regex"), ..get("h", "/re/123", 200) },
                get("h", "/re/12a", 404),
                Check { body: Some("separated"), ..get("h", "/sep", 200) },
                Check { body: Some("separated"), ..get("h", "/sep/x", 200) },
                get("h", "/sepx", 404),
                Check { body: Some("case-insensitive"), ..get("h", "/case/x", 200) },
                Check { body: Some("prefix"), ..get("h", "/path", 200) },
                get("h", "/nothing", 404),
            ],
        },
        Scenario {
            name: "header, method and query matching",
            routes: vec![vhost(
                "headers",
                &["*"],
                vec![
                    with_headers(vec![header("x-exact", string_match(P::Exact("v".into())), false)], "exact"),
                    with_headers(vec![header("x-prefix", string_match(P::Prefix("ab".into())), false)], "prefix"),
                    with_headers(vec![header("x-suffix", string_match(P::Suffix("yz".into())), false)], "suffix"),
                    with_headers(vec![header("x-contains", string_match(P::Contains("mid".into())), false)], "contains"),
                    with_headers(vec![header("x-regex", string_match(P::SafeRegex(regex("[a-c]+"))), false)], "regex"),
                    with_headers(vec![header("x-present", H::PresentMatch(true), false)], "present"),
                    with_headers(vec![header(":method", string_match(P::Exact("POST".into())), false)], "post"),
                    with_headers(
                        vec![
                            header("x-inv", string_match(P::Exact("no".into())), true),
                            header("x-inv", H::PresentMatch(true), false),
                        ],
                        "inverted",
                    ),
                    route(
                        rt::RouteMatch {
                            query_parameters: vec![rt::QueryParameterMatcher {
                                name: "debug".into(),
                                query_parameter_match_specifier: Some(
                                    rt::query_parameter_matcher::QueryParameterMatchSpecifier::StringMatch(m::StringMatcher {
                                        match_pattern: Some(P::Exact("1".into())),
                                        ignore_case: false,
                                    }),
                                ),
                            }],
                            ..prefix("/")
                        },
                        direct("query"),
                    ),
                    route(prefix("/"), direct("fallback")),
                ],
            )],
            checks: vec![
                Check { headers: vec![("x-exact", "v")], body: Some("exact"), ..get("h", "/", 200) },
                Check { headers: vec![("x-exact", "vv")], body: Some("fallback"), ..get("h", "/", 200) },
                Check { headers: vec![("x-prefix", "abc")], body: Some("prefix"), ..get("h", "/", 200) },
                Check { headers: vec![("x-suffix", "xyz")], body: Some("suffix"), ..get("h", "/", 200) },
                Check { headers: vec![("x-contains", "amidb")], body: Some("contains"), ..get("h", "/", 200) },
                Check { headers: vec![("x-regex", "abc")], body: Some("regex"), ..get("h", "/", 200) },
                Check { headers: vec![("x-regex", "abcd")], body: Some("fallback"), ..get("h", "/", 200) },
                Check { headers: vec![("x-present", "")], body: Some("present"), ..get("h", "/", 200) },
                Check { method: "POST", body: Some("post"), ..get("h", "/", 200) },
                Check { headers: vec![("x-inv", "yes")], body: Some("inverted"), ..get("h", "/", 200) },
                Check { headers: vec![("x-inv", "no")], body: Some("fallback"), ..get("h", "/", 200) },
                Check { body: Some("query"), ..get("h", "/x?a=2&debug=1", 200) },
                Check { body: Some("fallback"), ..get("h", "/x?debug=2", 200) },
            ],
        },
        Scenario {
            name: "forwarding, rewrites and header mutations",
            routes: vec![rt::VirtualHost {
                request_headers_to_add: vec![hvo("x-vh", "vh", core::header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd)],
                response_headers_to_add: vec![hvo("x-vh-resp", "1", core::header_value_option::HeaderAppendAction::AppendIfExistsOrAdd)],
                ..vhost(
                    "fwd",
                    &["*"],
                    vec![
                        route(prefix("/old/"), forward(|a| a.prefix_rewrite = "/new/".into())),
                        route(
                            prefix("/re/"),
                            forward(|a| {
                                a.regex_rewrite = Some(m::RegexMatchAndSubstitute {
                                    pattern: Some(regex("^/re/([a-z]+)/(.*)$")),
                                    substitution: "/\\2/\\1".into(),
                                })
                            }),
                        ),
                        route(
                            prefix("/host"),
                            forward(|a| {
                                a.host_rewrite_specifier =
                                    Some(rt::route_action::HostRewriteSpecifier::HostRewriteLiteral("rewritten.test".into()))
                            }),
                        ),
                        rt::Route {
                            request_headers_to_add: vec![hvo("x-added", "1", core::header_value_option::HeaderAppendAction::AppendIfExistsOrAdd)],
                            request_headers_to_remove: vec!["x-drop".into()],
                            response_headers_to_add: vec![hvo("x-resp", "r", core::header_value_option::HeaderAppendAction::OverwriteIfExistsOrAdd)],
                            response_headers_to_remove: vec!["x-echo-replica".into()],
                            ..route(prefix("/hdr"), forward(|_| {}))
                        },
                        route(prefix("/b"), forward(|a| a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::Cluster("b".into())))),
                        route(prefix("/h2"), forward(|a| a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::Cluster("a2".into())))),
                        route(prefix("/"), forward(|_| {})),
                    ],
                )
            }],
            checks: vec![
                Check { workload: Some("a"), upstream_path: Some("/new/x?y=1"), ..get("h", "/old/x?y=1", 200) },
                Check { workload: Some("a"), upstream_path: Some("/path/seg"), ..get("h", "/re/seg/path", 200) },
                Check { upstream_host: Some("rewritten.test"), ..get("h", "/host", 200) },
                Check {
                    headers: vec![("x-drop", "1")],
                    upstream_header: Some(("x-drop", None)),
                    response_header: Some(("x-resp", Some("r"))),
                    ..get("h", "/hdr", 200)
                },
                Check { upstream_header: Some(("x-added", Some("1"))), ..get("h", "/hdr", 200) },
                Check { response_header: Some(("x-echo-replica", None)), ..get("h", "/hdr", 200) },
                Check { upstream_header: Some(("x-vh", Some("vh"))), response_header: Some(("x-vh-resp", Some("1"))), ..get("h", "/", 200) },
                Check { workload: Some("b"), upstream_protocol: Some("HTTP/1.1"), ..get("h", "/b", 200) },
                Check {
                    h2: true,
                    workload: Some("b"),
                    upstream_protocol: Some("HTTP/1.1"),
                    upstream_host: Some("h"),
                    upstream_path: Some("/b/over-h2c?x=1"),
                    ..get("h", "/b/over-h2c?x=1", 200)
                },
                Check { workload: Some("a"), upstream_protocol: Some("HTTP/2.0"), upstream_host: Some("h"), ..get("h", "/h2", 200) },
            ],
        },
        Scenario {
            name: "redirects and direct responses",
            routes: vec![vhost(
                "redir",
                &["*"],
                vec![
                    route(
                        prefix("/https"),
                        redirect(rt::RedirectAction {
                            scheme_rewrite_specifier: Some(rt::redirect_action::SchemeRewriteSpecifier::HttpsRedirect(true)),
                            ..Default::default()
                        }),
                    ),
                    route(
                        prefix("/moved"),
                        redirect(rt::RedirectAction {
                            host_redirect: "elsewhere.test".into(),
                            path_rewrite_specifier: Some(rt::redirect_action::PathRewriteSpecifier::PathRedirect("/landing".into())),
                            response_code: rt::redirect_action::RedirectResponseCode::Found as i32,
                            ..Default::default()
                        }),
                    ),
                    route(
                        prefix("/pre/"),
                        redirect(rt::RedirectAction {
                            path_rewrite_specifier: Some(rt::redirect_action::PathRewriteSpecifier::PrefixRewrite("/post/".into())),
                            strip_query: true,
                            response_code: rt::redirect_action::RedirectResponseCode::TemporaryRedirect as i32,
                            ..Default::default()
                        }),
                    ),
                    route(
                        prefix("/teapot"),
                        rt::route::Action::DirectResponse(rt::DirectResponseAction { status: 418, ..Default::default() }),
                    ),
                ],
            )],
            checks: vec![
                Check { response_header: Some(("location", Some("https://r.test/https/x?q=1"))), ..get("r.test", "/https/x?q=1", 301) },
                Check { response_header: Some(("location", Some("http://elsewhere.test/landing?k=v"))), ..get("r.test", "/moved?k=v", 302) },
                Check { response_header: Some(("location", Some("http://r.test/post/a"))), ..get("r.test", "/pre/a?x=1", 307) },
                get("r.test", "/teapot", 418),
            ],
        },
        Scenario {
            name: "local failures: no route, no cluster, no endpoints, connect failure, timeout",
            routes: vec![vhost(
                "fail",
                &["fail.test"],
                vec![
                    route(prefix("/nocluster"), forward(|a| a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::Cluster("missing".into())))),
                    route(prefix("/empty"), forward(|a| a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::Cluster("empty".into())))),
                    route(prefix("/closed"), forward(|a| a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::Cluster("closed".into())))),
                    route(prefix("/slow"), forward(|a| a.timeout = Some(PbDuration { seconds: 0, nanos: 200_000_000 }))),
                    route(path_match(PS::Path("/only".into())), forward(|_| {})),
                ],
            )],
            checks: vec![
                get("other.test", "/", 404),
                get("fail.test", "/unrouted", 404),
                get("fail.test", "/nocluster", 503),
                get("fail.test", "/empty", 503),
                get("fail.test", "/closed", 503),
                Check { headers: vec![("x-echo-delay-ms", "2000")], ..get("fail.test", "/slow", 504) },
                Check { workload: Some("a"), ..get("fail.test", "/only", 200) },
            ],
        },
        Scenario {
            name: "retries: 5xx, connect-failure, status codes, per-try timeout, exhaustion",
            routes: vec![vhost(
                "retry",
                &["*"],
                vec![
                    route(prefix("/5xx"), retrying("mixed", "5xx", |_| {})),
                    route(prefix("/gateway"), retrying("mixed", "gateway-error", |_| {})),
                    route(prefix("/cf"), retrying("cf", "connect-failure", |_| {})),
                    route(
                        prefix("/codes"),
                        retrying("mixed", "retriable-status-codes", |p| p.retriable_status_codes = vec![503]),
                    ),
                    route(
                        prefix("/pertry"),
                        retrying("slowmixed", "5xx", |p| {
                            p.per_try_timeout = Some(PbDuration { seconds: 0, nanos: 300_000_000 })
                        }),
                    ),
                    route(prefix("/exhaust"), retrying("flakyonly", "5xx", |_| {})),
                    route(prefix("/not-retriable"), retrying("flakyonly", "connect-failure", |_| {})),
                ],
            )],
            checks: vec![
                Check { workload: Some("a"), ..get("h", "/5xx", 200) },
                Check { workload: Some("a"), ..get("h", "/5xx", 200) },
                Check { workload: Some("a"), ..get("h", "/gateway", 200) },
                Check { workload: Some("a"), ..get("h", "/cf", 200) },
                Check { workload: Some("a"), ..get("h", "/cf", 200) },
                Check { workload: Some("a"), ..get("h", "/codes", 200) },
                Check { workload: Some("a"), ..get("h", "/pertry", 200) },
                Check { workload: Some("a"), ..get("h", "/pertry", 200) },
                Check { workload: Some("flaky"), ..get("h", "/exhaust", 503) },
                Check { workload: Some("flaky"), ..get("h", "/not-retriable", 503) },
            ],
        },
        Scenario {
            name: "fault injection: aborts, delays, header-gated, virtual host override",
            routes: vec![
                rt::VirtualHost {
                    typed_per_filter_config: fault_config(|f| {
                        f.abort = abort(fault::fault_abort::ErrorType::HttpStatus(429), 100)
                    }),
                    ..vhost("vh-fault", &["vh-fault.test"], vec![route(prefix("/"), forward(|_| {}))])
                },
                vhost(
                    "faults",
                    &["*"],
                    vec![
                        with_fault("/abort-zero", |f| f.abort = abort(fault::fault_abort::ErrorType::HttpStatus(418), 0)),
                        with_fault("/abort", |f| f.abort = abort(fault::fault_abort::ErrorType::HttpStatus(418), 100)),
                        with_fault("/gated", |f| {
                            f.abort = abort(fault::fault_abort::ErrorType::HttpStatus(503), 100);
                            f.headers = vec![header("x-fault", H::PresentMatch(true), false)];
                        }),
                        with_fault("/grpc", |f| f.abort = abort(fault::fault_abort::ErrorType::GrpcStatus(14), 100)),
                        with_fault("/delay", |f| {
                            f.delay = Some(common_fault::FaultDelay {
                                percentage: percent(100),
                                fault_delay_secifier: Some(common_fault::fault_delay::FaultDelaySecifier::FixedDelay(PbDuration {
                                    seconds: 0,
                                    nanos: 300_000_000,
                                })),
                            })
                        }),
                        route(prefix("/"), forward(|_| {})),
                    ],
                ),
            ],
            checks: vec![
                Check { workload: Some("a"), ..get("h", "/abort-zero", 200) },
                get("h", "/abort", 418),
                Check { headers: vec![("x-fault", "1")], ..get("h", "/gated", 503) },
                Check { workload: Some("a"), ..get("h", "/gated", 200) },
                Check {
                    headers: vec![("content-type", "application/grpc")],
                    response_header: Some(("grpc-status", Some("14"))),
                    ..get("h", "/grpc", 200)
                },
                Check { workload: Some("a"), min_elapsed: Some(std::time::Duration::from_millis(250)), ..get("h", "/delay", 200) },
                get("vh-fault.test", "/", 429),
                Check { workload: Some("a"), ..get("h", "/", 200) },
            ],
        },
        Scenario {
            name: "weighted clusters",
            routes: vec![vhost(
                "w",
                &["*"],
                vec![route(
                    prefix("/"),
                    rt::route::Action::Route(rt::RouteAction {
                        cluster_specifier: Some(rt::route_action::ClusterSpecifier::WeightedClusters(rt::WeightedCluster {
                            clusters: vec![
                                rt::weighted_cluster::ClusterWeight { name: "a".into(), weight: Some(UInt32Value { value: 0 }), ..Default::default() },
                                rt::weighted_cluster::ClusterWeight { name: "b".into(), weight: Some(UInt32Value { value: 100 }), ..Default::default() },
                            ],
                            ..Default::default()
                        })),
                        ..Default::default()
                    }),
                )],
            )],
            checks: vec![Check { workload: Some("b"), ..get("h", "/", 200) }, Check { workload: Some("b"), ..get("h", "/2", 200) }],
        },
    ]
}
