//! RouteConfiguration -> `RouteConfig`: virtual hosts, route matches and actions.

use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3 as rt;
use regex::Regex;

use super::{
    FieldError, FieldResult, HeaderMutation, StringMatch, duration, full_regex, search_regex,
};
use crate::deny_set;

/// Envoy's default route timeout when `timeout` is not set.
pub const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
    /// Applied after the virtual host's and route's (least specific last, Envoy's default).
    pub request_headers: HeaderMutation,
    pub response_headers: HeaderMutation,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<DomainMatch>,
    pub routes: Vec<Route>,
    pub request_headers: HeaderMutation,
    pub response_headers: HeaderMutation,
}

/// One entry of `domains`, lower-cased. Envoy's precedence: exact, then longest suffix
/// wildcard, then longest prefix wildcard, then `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DomainMatch {
    Exact(String),
    /// `*.example.com` stored as `.example.com`: the host must be longer than the suffix.
    Suffix(String),
    /// `example.*` stored as `example.`.
    Prefix(String),
    Any,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    pub matcher: RouteMatch,
    pub action: Action,
    pub request_headers: HeaderMutation,
    pub response_headers: HeaderMutation,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch {
    pub path: PathMatch,
    pub case_sensitive: bool,
    pub headers: Vec<HeaderMatcher>,
    pub query: Vec<QueryMatcher>,
}

#[derive(Debug, Clone)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
    /// Matches the path without its query, anchored at both ends.
    Regex(Regex),
    /// `/api` matches `/api` and `/api/...` but not `/apis`.
    SeparatedPrefix(String),
}

impl PartialEq for PathMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PathMatch::Prefix(a), PathMatch::Prefix(b))
            | (PathMatch::Exact(a), PathMatch::Exact(b))
            | (PathMatch::SeparatedPrefix(a), PathMatch::SeparatedPrefix(b)) => a == b,
            (PathMatch::Regex(a), PathMatch::Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeaderMatcher {
    /// Lower-cased; pseudo-headers (`:method`, `:path`, `:authority`, `:scheme`) allowed.
    pub name: String,
    /// `None` is a presence test whose expected value is `present`.
    pub value: Option<StringMatch>,
    pub present: bool,
    pub invert: bool,
    pub treat_missing_as_empty: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryMatcher {
    pub name: String,
    /// `None` matches when the parameter is present.
    pub value: Option<StringMatch>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Forward(Forward),
    Redirect(Redirect),
    Direct {
        status: u16,
        body: Option<bytes::Bytes>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClusterChoice {
    Single(String),
    /// (cluster, weight, request headers, response headers); weights are summed, not normalised.
    Weighted(Vec<WeightedTarget>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct WeightedTarget {
    pub cluster: String,
    pub weight: u32,
    pub request_headers: HeaderMutation,
    pub response_headers: HeaderMutation,
}

#[derive(Debug, Clone)]
pub struct Forward {
    pub clusters: ClusterChoice,
    /// Status when the chosen cluster does not exist (Envoy: 503 by default).
    pub cluster_not_found_status: u16,
    pub prefix_rewrite: Option<String>,
    pub regex_rewrite: Option<(Regex, String)>,
    pub host_rewrite: Option<String>,
    /// `None` disables the timeout (`0s` in xDS).
    pub timeout: Option<Duration>,
}

impl PartialEq for Forward {
    fn eq(&self, o: &Self) -> bool {
        self.clusters == o.clusters
            && self.cluster_not_found_status == o.cluster_not_found_status
            && self.prefix_rewrite == o.prefix_rewrite
            && self.regex_rewrite.as_ref().map(|(r, s)| (r.as_str(), s))
                == o.regex_rewrite.as_ref().map(|(r, s)| (r.as_str(), s))
            && self.host_rewrite == o.host_rewrite
            && self.timeout == o.timeout
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Redirect {
    pub scheme: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub path: Option<String>,
    pub prefix_rewrite: Option<String>,
    pub status: u16,
    pub strip_query: bool,
}

impl TryFrom<&rt::RouteConfiguration> for RouteConfig {
    type Error = FieldError;
    fn try_from(rc: &rt::RouteConfiguration) -> FieldResult<Self> {
        let rt::RouteConfiguration {
            name,
            virtual_hosts,
            vhds,
            internal_only_headers,
            response_headers_to_add,
            response_headers_to_remove,
            request_headers_to_add,
            request_headers_to_remove,
            most_specific_header_mutations_wins,
            // Cluster validation only changes when Envoy rejects config; Plexus answers 503 NC.
            validate_clusters: _,
            max_direct_response_body_size_bytes,
            cluster_specifier_plugins,
            request_mirror_policies,
            ignore_port_in_host_matching,
            vhost_header,
            ignore_path_parameters_in_path_matching,
            typed_per_filter_config,
            metadata: _,
            route_specifiers,
        } = rc;
        deny_set!(
            vhds,
            internal_only_headers,
            most_specific_header_mutations_wins,
            max_direct_response_body_size_bytes,
            cluster_specifier_plugins,
            request_mirror_policies,
            ignore_port_in_host_matching,
            vhost_header,
            ignore_path_parameters_in_path_matching,
            typed_per_filter_config,
            route_specifiers
        );
        let mut seen = std::collections::HashSet::new();
        let mut vhosts = Vec::with_capacity(virtual_hosts.len());
        for (i, vh) in virtual_hosts.iter().enumerate() {
            let at = format!("virtual_hosts[{i}]");
            let vh = VirtualHost::try_from(vh).map_err(|e| e.within(&at))?;
            for d in &vh.domains {
                if !seen.insert(d.clone()) {
                    return Err(FieldError::invalid(
                        format!("{at}.domains"),
                        format!(
                            "duplicate domain {d:?}: domains must be unique across virtual hosts"
                        ),
                    ));
                }
            }
            vhosts.push(vh);
        }
        Ok(RouteConfig {
            name: name.clone(),
            virtual_hosts: vhosts,
            request_headers: HeaderMutation::parse(
                request_headers_to_add,
                request_headers_to_remove,
            )
            .map_err(|e| e.within("request"))?,
            response_headers: HeaderMutation::parse(
                response_headers_to_add,
                response_headers_to_remove,
            )
            .map_err(|e| e.within("response"))?,
        })
    }
}

impl TryFrom<&rt::VirtualHost> for VirtualHost {
    type Error = FieldError;
    fn try_from(vh: &rt::VirtualHost) -> FieldResult<Self> {
        let rt::VirtualHost {
            name,
            domains,
            routes,
            matcher,
            require_tls,
            virtual_clusters,
            rate_limits,
            request_headers_to_add,
            request_headers_to_remove,
            response_headers_to_add,
            response_headers_to_remove,
            cors,
            typed_per_filter_config,
            include_request_attempt_count,
            include_attempt_count_in_response,
            retry_policy,
            retry_policy_typed_config,
            hedge_policy,
            include_is_timeout_retry_header,
            per_request_buffer_limit_bytes,
            request_body_buffer_limit,
            request_mirror_policies,
            metadata: _,
            route_specifiers,
        } = vh;
        deny_set!(
            matcher,
            require_tls,
            virtual_clusters,
            rate_limits,
            cors,
            typed_per_filter_config,
            include_request_attempt_count,
            include_attempt_count_in_response,
            retry_policy,
            retry_policy_typed_config,
            hedge_policy,
            include_is_timeout_retry_header,
            per_request_buffer_limit_bytes,
            request_body_buffer_limit,
            request_mirror_policies,
            route_specifiers
        );
        if domains.is_empty() {
            return Err(FieldError::invalid(
                "domains",
                "at least one domain is required",
            ));
        }
        let domains = domains
            .iter()
            .enumerate()
            .map(|(i, d)| domain(d).map_err(|e| e.within(&format!("domains[{i}]"))))
            .collect::<FieldResult<Vec<_>>>()?;
        let routes = routes
            .iter()
            .enumerate()
            .map(|(i, r)| Route::try_from(r).map_err(|e| e.within(&format!("routes[{i}]"))))
            .collect::<FieldResult<Vec<_>>>()?;
        Ok(VirtualHost {
            name: name.clone(),
            domains,
            routes,
            request_headers: HeaderMutation::parse(
                request_headers_to_add,
                request_headers_to_remove,
            )
            .map_err(|e| e.within("request"))?,
            response_headers: HeaderMutation::parse(
                response_headers_to_add,
                response_headers_to_remove,
            )
            .map_err(|e| e.within("response"))?,
        })
    }
}

fn domain(d: &str) -> FieldResult<DomainMatch> {
    let d = d.to_ascii_lowercase();
    if d == "*" {
        return Ok(DomainMatch::Any);
    }
    let stars = d.matches('*').count();
    if stars == 0 {
        return Ok(DomainMatch::Exact(d));
    }
    if stars == 1 {
        if let Some(suffix) = d.strip_prefix('*') {
            return Ok(DomainMatch::Suffix(suffix.to_string()));
        }
        if let Some(prefix) = d.strip_suffix('*') {
            return Ok(DomainMatch::Prefix(prefix.to_string()));
        }
    }
    Err(FieldError::invalid(
        "",
        format!("{d:?}: a wildcard may only be the first or last character"),
    ))
}

impl TryFrom<&rt::Route> for Route {
    type Error = FieldError;
    fn try_from(r: &rt::Route) -> FieldResult<Self> {
        let rt::Route {
            name,
            r#match,
            metadata: _,
            decorator: _,
            typed_per_filter_config,
            request_headers_to_add,
            request_headers_to_remove,
            response_headers_to_add,
            response_headers_to_remove,
            tracing: _,
            per_request_buffer_limit_bytes,
            stat_prefix: _,
            request_body_buffer_limit,
            route_specifiers,
            action,
        } = r;
        deny_set!(
            typed_per_filter_config,
            per_request_buffer_limit_bytes,
            request_body_buffer_limit,
            route_specifiers
        );
        let matcher = match r#match {
            Some(m) => RouteMatch::try_from(m).map_err(|e| e.within("match"))?,
            None => return Err(FieldError::invalid("match", "a route needs a match")),
        };
        let action = match action {
            Some(rt::route::Action::Route(a)) => {
                Action::Forward(Forward::try_from(a).map_err(|e| e.within("route"))?)
            }
            Some(rt::route::Action::Redirect(a)) => {
                redirect(a).map_err(|e| e.within("redirect"))?
            }
            Some(rt::route::Action::DirectResponse(a)) => {
                direct(a).map_err(|e| e.within("direct_response"))?
            }
            Some(rt::route::Action::FilterAction(_)) => {
                return Err(FieldError::unsupported("filter_action"));
            }
            Some(rt::route::Action::NonForwardingAction(_)) => {
                return Err(FieldError::unsupported("non_forwarding_action"));
            }
            None => return Err(FieldError::invalid("action", "a route needs an action")),
        };
        Ok(Route {
            name: name.clone(),
            matcher,
            action,
            request_headers: HeaderMutation::parse(
                request_headers_to_add,
                request_headers_to_remove,
            )
            .map_err(|e| e.within("request"))?,
            response_headers: HeaderMutation::parse(
                response_headers_to_add,
                response_headers_to_remove,
            )
            .map_err(|e| e.within("response"))?,
        })
    }
}

impl TryFrom<&rt::RouteMatch> for RouteMatch {
    type Error = FieldError;
    fn try_from(m: &rt::RouteMatch) -> FieldResult<Self> {
        use rt::route_match::PathSpecifier as P;
        let rt::RouteMatch {
            case_sensitive,
            runtime_fraction,
            headers,
            query_parameters,
            cookies,
            grpc,
            tls_context,
            dynamic_metadata,
            filter_state,
            path_specifier,
        } = m;
        deny_set!(
            runtime_fraction,
            cookies,
            grpc,
            tls_context,
            dynamic_metadata,
            filter_state
        );
        let path = match path_specifier {
            Some(P::Prefix(p)) => PathMatch::Prefix(p.clone()),
            Some(P::Path(p)) => PathMatch::Exact(p.clone()),
            Some(P::SafeRegex(r)) => {
                PathMatch::Regex(full_regex(r).map_err(|e| e.within("safe_regex"))?)
            }
            Some(P::PathSeparatedPrefix(p)) => {
                if p.contains(['?', '#']) || (p.ends_with('/') && p.len() > 1) {
                    return Err(FieldError::invalid(
                        "path_separated_prefix",
                        "must not contain ? or # nor end with /",
                    ));
                }
                PathMatch::SeparatedPrefix(p.clone())
            }
            Some(P::ConnectMatcher(_)) => return Err(FieldError::unsupported("connect_matcher")),
            Some(P::PathMatchPolicy(_)) => {
                return Err(FieldError::unsupported("path_match_policy"));
            }
            None => {
                return Err(FieldError::invalid(
                    "path_specifier",
                    "a path match is required",
                ));
            }
        };
        let headers = headers
            .iter()
            .enumerate()
            .map(|(i, h)| header_matcher(h).map_err(|e| e.within(&format!("headers[{i}]"))))
            .collect::<FieldResult<Vec<_>>>()?;
        let query = query_parameters
            .iter()
            .enumerate()
            .map(|(i, q)| query_matcher(q).map_err(|e| e.within(&format!("query_parameters[{i}]"))))
            .collect::<FieldResult<Vec<_>>>()?;
        Ok(RouteMatch {
            path,
            case_sensitive: case_sensitive.as_ref().is_none_or(|b| b.value),
            headers,
            query,
        })
    }
}

fn header_matcher(h: &rt::HeaderMatcher) -> FieldResult<HeaderMatcher> {
    use rt::header_matcher::HeaderMatchSpecifier as S;
    let rt::HeaderMatcher {
        name,
        invert_match,
        treat_missing_header_as_empty,
        header_match_specifier,
    } = h;
    let (value, present) = match header_match_specifier {
        Some(S::ExactMatch(s)) => (Some(StringMatch::Exact(s.clone(), false)), true),
        Some(S::PrefixMatch(s)) => (Some(StringMatch::Prefix(s.clone(), false)), true),
        Some(S::SuffixMatch(s)) => (Some(StringMatch::Suffix(s.clone(), false)), true),
        Some(S::ContainsMatch(s)) => (Some(StringMatch::Contains(s.clone(), false)), true),
        Some(S::SafeRegexMatch(r)) => (
            Some(StringMatch::Regex(
                full_regex(r).map_err(|e| e.within("safe_regex_match"))?,
            )),
            true,
        ),
        Some(S::StringMatch(m)) => (
            Some(StringMatch::try_from(m).map_err(|e| e.within("string_match"))?),
            true,
        ),
        Some(S::PresentMatch(p)) => (None, *p),
        Some(S::RangeMatch(_)) => return Err(FieldError::unsupported("range_match")),
        // No specifier: Envoy treats the matcher as "header is present".
        None => (None, true),
    };
    if name.is_empty() {
        return Err(FieldError::invalid("name", "header name is required"));
    }
    Ok(HeaderMatcher {
        name: name.to_ascii_lowercase(),
        value,
        present,
        invert: *invert_match,
        treat_missing_as_empty: *treat_missing_header_as_empty,
    })
}

fn query_matcher(q: &rt::QueryParameterMatcher) -> FieldResult<QueryMatcher> {
    use rt::query_parameter_matcher::QueryParameterMatchSpecifier as S;
    let rt::QueryParameterMatcher {
        name,
        query_parameter_match_specifier,
    } = q;
    let value = match query_parameter_match_specifier {
        Some(S::StringMatch(m)) => {
            Some(StringMatch::try_from(m).map_err(|e| e.within("string_match"))?)
        }
        Some(S::PresentMatch(true)) | None => None,
        Some(S::PresentMatch(false)) => {
            return Err(FieldError::invalid(
                "present_match",
                "false is not a valid query matcher",
            ));
        }
    };
    Ok(QueryMatcher {
        name: name.clone(),
        value,
    })
}

impl TryFrom<&rt::RouteAction> for Forward {
    type Error = FieldError;
    fn try_from(a: &rt::RouteAction) -> FieldResult<Self> {
        use rt::route_action::{ClusterSpecifier as C, HostRewriteSpecifier as H};
        let rt::RouteAction {
            cluster_not_found_response_code,
            metadata_match,
            prefix_rewrite,
            regex_rewrite,
            path_rewrite_policy,
            path_rewrite,
            append_x_forwarded_host,
            timeout,
            idle_timeout,
            flush_timeout,
            early_data_policy,
            retry_policy,
            retry_policy_typed_config,
            request_mirror_policies,
            priority,
            rate_limits,
            include_vh_rate_limits,
            hash_policy,
            cors,
            max_grpc_timeout,
            grpc_timeout_offset,
            upgrade_configs,
            internal_redirect_policy,
            internal_redirect_action,
            max_internal_redirects,
            hedge_policy,
            max_stream_duration,
            cluster_specifier,
            host_rewrite_specifier,
        } = a;
        deny_set!(
            metadata_match,
            path_rewrite_policy,
            path_rewrite,
            append_x_forwarded_host,
            idle_timeout,
            flush_timeout,
            early_data_policy,
            retry_policy,
            retry_policy_typed_config,
            request_mirror_policies,
            priority,
            rate_limits,
            include_vh_rate_limits,
            hash_policy,
            cors,
            max_grpc_timeout,
            grpc_timeout_offset,
            upgrade_configs,
            internal_redirect_policy,
            internal_redirect_action,
            max_internal_redirects,
            hedge_policy,
            max_stream_duration
        );
        let clusters = match cluster_specifier {
            Some(C::Cluster(c)) => ClusterChoice::Single(c.clone()),
            Some(C::WeightedClusters(w)) => {
                weighted(w).map_err(|e| e.within("weighted_clusters"))?
            }
            Some(C::ClusterHeader(_)) => return Err(FieldError::unsupported("cluster_header")),
            Some(C::ClusterSpecifierPlugin(_)) => {
                return Err(FieldError::unsupported("cluster_specifier_plugin"));
            }
            Some(C::InlineClusterSpecifierPlugin(_)) => {
                return Err(FieldError::unsupported("inline_cluster_specifier_plugin"));
            }
            None => {
                return Err(FieldError::invalid(
                    "cluster_specifier",
                    "a cluster is required",
                ));
            }
        };
        let host_rewrite = match host_rewrite_specifier {
            Some(H::HostRewriteLiteral(h)) => Some(h.clone()),
            Some(H::AutoHostRewrite(_)) => {
                return Err(FieldError::unsupported("auto_host_rewrite"));
            }
            Some(H::HostRewriteHeader(_)) => {
                return Err(FieldError::unsupported("host_rewrite_header"));
            }
            Some(H::HostRewritePathRegex(_)) => {
                return Err(FieldError::unsupported("host_rewrite_path_regex"));
            }
            Some(H::HostRewrite(_)) => return Err(FieldError::unsupported("host_rewrite")),
            None => None,
        };
        if !prefix_rewrite.is_empty() && regex_rewrite.is_some() {
            return Err(FieldError::invalid(
                "regex_rewrite",
                "cannot be combined with prefix_rewrite",
            ));
        }
        let regex_rewrite = match regex_rewrite {
            Some(r) => {
                let pattern = r
                    .pattern
                    .as_ref()
                    .ok_or_else(|| FieldError::invalid("regex_rewrite.pattern", "required"))?;
                Some((
                    search_regex(pattern).map_err(|e| e.within("regex_rewrite.pattern"))?,
                    envoy_substitution(&r.substitution),
                ))
            }
            None => None,
        };
        let timeout = match timeout {
            Some(d) => Some(duration(d).map_err(|e| e.within("timeout"))?).filter(|d| !d.is_zero()),
            None => Some(DEFAULT_ROUTE_TIMEOUT),
        };
        let cluster_not_found_status = match cluster_not_found_response_code {
            0 => 503,
            1 => 404,
            2 => 500,
            n => {
                return Err(FieldError::invalid(
                    "cluster_not_found_response_code",
                    format!("unknown value {n}"),
                ));
            }
        };
        Ok(Forward {
            clusters,
            cluster_not_found_status,
            prefix_rewrite: Some(prefix_rewrite.clone()).filter(|p| !p.is_empty()),
            regex_rewrite,
            host_rewrite,
            timeout,
        })
    }
}

/// Envoy substitutions use `\1` for capture groups; the regex crate uses `${1}`.
fn envoy_substitution(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(d)) if d.is_ascii_digit() => {
                out.push_str(&format!("${{{d}}}"));
                chars.next();
            }
            ('$', _) => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out
}

fn weighted(w: &rt::WeightedCluster) -> FieldResult<ClusterChoice> {
    let rt::WeightedCluster {
        clusters,
        total_weight,
        runtime_key_prefix,
        random_value_specifier,
    } = w;
    deny_set!(total_weight, runtime_key_prefix, random_value_specifier);
    let mut targets = Vec::with_capacity(clusters.len());
    for (i, c) in clusters.iter().enumerate() {
        let rt::weighted_cluster::ClusterWeight {
            name,
            cluster_header,
            weight,
            metadata_match,
            request_headers_to_add,
            request_headers_to_remove,
            response_headers_to_add,
            response_headers_to_remove,
            typed_per_filter_config,
            host_rewrite_specifier,
        } = c;
        let at = format!("clusters[{i}]");
        (|| {
            deny_set!(
                cluster_header,
                metadata_match,
                typed_per_filter_config,
                host_rewrite_specifier
            );
            Ok(())
        })()
        .map_err(|e: FieldError| e.within(&at))?;
        targets.push(WeightedTarget {
            cluster: name.clone(),
            weight: weight.as_ref().map_or(0, |w| w.value),
            request_headers: HeaderMutation::parse(
                request_headers_to_add,
                request_headers_to_remove,
            )
            .map_err(|e| e.within(&format!("{at}.request")))?,
            response_headers: HeaderMutation::parse(
                response_headers_to_add,
                response_headers_to_remove,
            )
            .map_err(|e| e.within(&format!("{at}.response")))?,
        });
    }
    if targets.iter().map(|t| u64::from(t.weight)).sum::<u64>() == 0 {
        return Err(FieldError::invalid(
            "clusters",
            "the sum of weights must be greater than 0",
        ));
    }
    Ok(ClusterChoice::Weighted(targets))
}

fn redirect(r: &rt::RedirectAction) -> FieldResult<Action> {
    use rt::redirect_action::{PathRewriteSpecifier as P, SchemeRewriteSpecifier as S};
    let rt::RedirectAction {
        host_redirect,
        port_redirect,
        response_code,
        strip_query,
        scheme_rewrite_specifier,
        path_rewrite_specifier,
    } = r;
    let status = match response_code {
        0 => 301,
        1 => 302,
        2 => 303,
        3 => 307,
        4 => 308,
        n => {
            return Err(FieldError::invalid(
                "response_code",
                format!("unknown value {n}"),
            ));
        }
    };
    let scheme = match scheme_rewrite_specifier {
        Some(S::HttpsRedirect(true)) => Some("https".to_string()),
        Some(S::HttpsRedirect(false)) | None => None,
        Some(S::SchemeRedirect(s)) => Some(s.to_ascii_lowercase()),
    };
    let (path, prefix_rewrite) = match path_rewrite_specifier {
        Some(P::PathRedirect(p)) => (Some(p.clone()), None),
        Some(P::PrefixRewrite(p)) => (None, Some(p.clone())),
        Some(P::RegexRewrite(_)) => return Err(FieldError::unsupported("regex_rewrite")),
        Some(P::PathRewrite(_)) => return Err(FieldError::unsupported("path_rewrite")),
        None => (None, None),
    };
    let port = match port_redirect {
        0 => None,
        p => Some(
            u16::try_from(*p).map_err(|_| FieldError::invalid("port_redirect", "not a port"))?,
        ),
    };
    Ok(Action::Redirect(Redirect {
        scheme,
        host: Some(host_redirect.clone()).filter(|h| !h.is_empty()),
        port,
        path,
        prefix_rewrite,
        status,
        strip_query: *strip_query,
    }))
}

fn direct(d: &rt::DirectResponseAction) -> FieldResult<Action> {
    use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
    let rt::DirectResponseAction {
        status,
        body,
        body_format,
    } = d;
    deny_set!(body_format);
    let status = u16::try_from(*status)
        .ok()
        .filter(|s| (200..600).contains(s))
        .ok_or_else(|| FieldError::invalid("status", format!("{status} is not an HTTP status")))?;
    let body = match body.as_ref().and_then(|b| b.specifier.as_ref()) {
        Some(Specifier::InlineString(s)) => Some(bytes::Bytes::from(s.clone())),
        Some(Specifier::InlineBytes(b)) => Some(bytes::Bytes::from(b.clone())),
        Some(Specifier::Filename(_)) => return Err(FieldError::unsupported("body.filename")),
        Some(Specifier::EnvironmentVariable(_)) => {
            return Err(FieldError::unsupported("body.environment_variable"));
        }
        None => None,
    };
    Ok(Action::Direct { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_parse() {
        assert_eq!(domain("*"), Ok(DomainMatch::Any));
        assert_eq!(
            domain("*.Example.com"),
            Ok(DomainMatch::Suffix(".example.com".into()))
        );
        assert_eq!(domain("foo.*"), Ok(DomainMatch::Prefix("foo.".into())));
        assert_eq!(domain("a.b:80"), Ok(DomainMatch::Exact("a.b:80".into())));
        assert!(domain("a.*.b").is_err());
    }

    #[test]
    fn substitution_syntax() {
        assert_eq!(envoy_substitution(r"/v2/\1/x$"), "/v2/${1}/x$$");
    }

    #[test]
    fn unsupported_fields_are_named() {
        let rc = rt::RouteConfiguration {
            virtual_hosts: vec![rt::VirtualHost {
                domains: vec!["*".into()],
                cors: Some(Default::default()),
                ..Default::default()
            }],
            ..Default::default()
        };
        let err = RouteConfig::try_from(&rc)
            .err()
            .map(|e| (e.field, e.reason));
        assert_eq!(
            err,
            Some((
                "virtual_hosts[0].cors".to_string(),
                super::super::UNSUPPORTED.to_string()
            ))
        );
    }

    #[test]
    fn duplicate_domains_rejected() {
        let vh = |d: &str| rt::VirtualHost {
            domains: vec![d.into()],
            ..Default::default()
        };
        let rc = rt::RouteConfiguration {
            virtual_hosts: vec![vh("a"), vh("A")],
            ..Default::default()
        };
        assert!(RouteConfig::try_from(&rc).is_err_and(|e| e.field == "virtual_hosts[1].domains"));
    }
}
