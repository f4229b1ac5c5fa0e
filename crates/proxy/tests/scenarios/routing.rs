//! Routing scenarios: virtual hosts, matching, forwarding, redirects, local failures, gRPC,
//! WebSocket, CONNECT, sanitized headers, weighted clusters.
#![allow(clippy::wildcard_imports)]

use super::*;

pub fn scenarios() -> Vec<Scenario> {
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
            name: "gRPC: unary through HTTP/2 upstream with trailers; local replies carry grpc-status",
            routes: vec![
                vhost(
                    "grpc",
                    &["grpc.test"],
                    vec![
                        route(prefix("/echo.Echo/"), forward(|a| a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::Cluster("a2".into())))),
                        route(prefix("/empty.Svc/"), forward(|a| a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::Cluster("empty".into())))),
                    ],
                ),
            ],
            checks: vec![
                Check { grpc: true, backend: Some("a"), grpc_status: Some("0"), ..get("grpc.test", "/echo.Echo/Say", 200) },
                Check { grpc: true, grpc_status: Some("12"), ..get("grpc.test", "/no.Such/Method", 200) },
                Check { grpc: true, grpc_status: Some("12"), ..get("other.test", "/echo.Echo/Say", 200) },
                Check { grpc: true, grpc_status: Some("14"), ..get("grpc.test", "/empty.Svc/Call", 200) },
            ],
        },
        Scenario {
            name: "WebSocket upgrades: tunnel after 101, refused when the route disables it or for other protocols",
            routes: vec![vhost(
                "ws",
                &["*"],
                vec![
                    route(
                        prefix("/ws-off"),
                        forward(|a| {
                            a.upgrade_configs = vec![rt::route_action::UpgradeConfig {
                                upgrade_type: "websocket".into(),
                                enabled: Some(BoolValue { value: false }),
                                connect_config: None,
                            }]
                        }),
                    ),
                    route(prefix("/"), forward(|_| {})),
                ],
            )],
            checks: vec![
                Check { upgrade: Some("websocket"), backend: Some("a"), ..get("h", "/ws", 101) },
                Check { upgrade: Some("WebSocket"), backend: Some("a"), ..get("h", "/ws", 101) },
                Check { upgrade: Some("websocket"), ..get("h", "/ws-off", 403) },
                Check { upgrade: Some("foo"), ..get("h", "/ws", 403) },
                Check { workload: Some("a"), ..get("h", "/plain", 200) },
            ],
        },
        Scenario {
            name: "CONNECT: terminated to a TCP endpoint, forwarded upstream, refused unless allowed",
            routes: vec![
                vhost(
                    "connect",
                    &["*"],
                    vec![
                        route(connect_match("x-off"), forward(|a| a.upgrade_configs = vec![connect_upgrade(Some(false), false)])),
                        route(connect_match("x-plain"), forward(|_| {})),
                        route(connect_match("x-fwd"), forward(|a| a.upgrade_configs = vec![connect_upgrade(None, false)])),
                        route(
                            connect_match("x-closed"),
                            forward(|a| {
                                a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::Cluster("closed".into()));
                                a.upgrade_configs = vec![connect_upgrade(None, true)];
                            }),
                        ),
                        route(
                            path_match(PS::ConnectMatcher(rt::route_match::ConnectMatcher {})),
                            forward(|a| {
                                a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::Cluster("tcpecho".into()));
                                a.upgrade_configs = vec![connect_upgrade(None, true)];
                            }),
                        ),
                        route(prefix("/"), forward(|_| {})),
                    ],
                ),
                vhost("no-connect-route", &["plain.test:443"], vec![route(prefix("/"), forward(|_| {}))]),
            ],
            checks: vec![
                // connect_config: the proxy answers 200 and carries bytes to the TCP echo.
                connect("example.test:443", vec![], 200),
                // Upgrade allowed without connect_config: the CONNECT goes to the upstream.
                Check { backend: Some("a"), ..connect("example.test:443", vec![("x-fwd", "1")], 200) },
                connect("example.test:443", vec![("x-closed", "1")], 503),
                connect("example.test:443", vec![("x-off", "1")], 403),
                // Neither the connection manager nor the route allows CONNECT.
                connect("example.test:443", vec![("x-plain", "1")], 403),
                // Only connect_matcher routes match CONNECT; they never match other methods.
                connect("plain.test:443", vec![], 404),
                Check { workload: Some("a"), ..get("h", "/not-connect", 200) },
            ],
        },
        Scenario {
            name: "x-envoy-* request headers from external clients are ignored and removed",
            routes: vec![vhost("ovr", &["*"], vec![route(prefix("/"), forward(|_| {}))])],
            checks: vec![
                // Envoy 1.40 treats every client as external without internal_address_config,
                // so the timeout override does not apply...
                Check {
                    headers: vec![("x-echo-delay-ms", "300"), ("x-envoy-upstream-rq-timeout-ms", "50")],
                    workload: Some("a"),
                    upstream_header: Some(("x-envoy-upstream-rq-timeout-ms", None)),
                    ..get("h", "/timeout", 200)
                },
                // ...even from a loopback or private address in x-forwarded-for...
                Check {
                    headers: vec![("x-forwarded-for", "10.0.0.1"), ("x-echo-delay-ms", "300"), ("x-envoy-upstream-rq-timeout-ms", "50")],
                    workload: Some("a"),
                    ..get("h", "/timeout-xff", 200)
                },
                // ...and none of these reach the upstream.
                Check { headers: vec![("x-envoy-retry-on", "5xx")], upstream_header: Some(("x-envoy-retry-on", None)), ..get("h", "/r", 200) },
                Check { headers: vec![("x-envoy-max-retries", "3")], upstream_header: Some(("x-envoy-max-retries", None)), ..get("h", "/m", 200) },
                Check {
                    headers: vec![("x-envoy-upstream-rq-per-try-timeout-ms", "10")],
                    upstream_header: Some(("x-envoy-upstream-rq-per-try-timeout-ms", None)),
                    ..get("h", "/p", 200)
                },
                Check { headers: vec![("x-envoy-retry-grpc-on", "unavailable")], upstream_header: Some(("x-envoy-retry-grpc-on", None)), ..get("h", "/g", 200) },
            ],
        },
        Scenario {
            name: "request mirroring to a shadow host",
            routes: vec![vhost(
                "mirror",
                &["*"],
                vec![route(
                    prefix("/"),
                    forward(|a| {
                        a.request_mirror_policies = vec![rt::route_action::RequestMirrorPolicy {
                            cluster: "mirror".into(),
                            ..Default::default()
                        }]
                    }),
                )],
            )],
            checks: vec![
                Check { workload: Some("a"), mirrored: Some("h-shadow"), ..get("h", "/m1", 200) },
                Check { workload: Some("a"), mirrored: Some("h-shadow:8080"), ..get("h:8080", "/m2", 200) },
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

fn connect_match(header_name: &str) -> rt::RouteMatch {
    rt::RouteMatch {
        path_specifier: Some(rt::route_match::PathSpecifier::ConnectMatcher(
            rt::route_match::ConnectMatcher {},
        )),
        headers: vec![rt::HeaderMatcher {
            name: header_name.into(),
            header_match_specifier: Some(rt::header_matcher::HeaderMatchSpecifier::PresentMatch(
                true,
            )),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn connect_upgrade(enabled: Option<bool>, terminate: bool) -> rt::route_action::UpgradeConfig {
    rt::route_action::UpgradeConfig {
        upgrade_type: "CONNECT".into(),
        enabled: enabled.map(|value| BoolValue { value }),
        connect_config: terminate.then(Default::default),
    }
}
