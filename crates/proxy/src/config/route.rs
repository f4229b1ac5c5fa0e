//! RouteConfiguration -> `RouteConfig`: virtual hosts and routes. Matches are converted in
//! `route_match`, actions in `action`.

use envoy_types::pb::envoy::config::route::v3 as rt;

use super::action::{Action, Forward, direct, redirect};
use super::fault::Fault;
use super::route_match::RouteMatch;
use super::{FieldError, FieldResult, HeaderMutation, RetryPolicy, per_filter_faults};
use crate::deny_set;

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub name: String,
    pub virtual_hosts: Vec<VirtualHost>,
    /// Applied after the virtual host's and route's (least specific last, Envoy's default).
    pub request_headers: HeaderMutation,
    pub response_headers: HeaderMutation,
    /// `ignore_port_in_host_matching`: the port of `:authority` is dropped before domain
    /// matching.
    pub ignore_port: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VirtualHost {
    pub name: String,
    pub domains: Vec<DomainMatch>,
    pub routes: Vec<Route>,
    pub request_headers: HeaderMutation,
    pub response_headers: HeaderMutation,
    /// Used by routes that have no retry policy of their own.
    pub retry: Option<RetryPolicy>,
    /// Fault filter overrides from `typed_per_filter_config`, by filter name.
    pub faults: Vec<(String, Fault)>,
    /// `include_request_attempt_count`: send `x-envoy-attempt-count` upstream.
    pub attempt_count: bool,
    /// CORS policy from `typed_per_filter_config`.
    pub cors: Option<super::cors::Cors>,
    /// `require_tls`: the requests it covers whose `x-forwarded-proto` is not https are
    /// redirected to https (301), as in Envoy.
    pub require_tls: TlsRequired,
}

/// `require_tls` of a virtual host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsRequired {
    #[default]
    No,
    /// Only external requests (see `downstream::forwarded_headers`).
    ExternalOnly,
    All,
}

impl TlsRequired {
    /// Whether a plaintext request must be redirected.
    pub fn redirects(self, internal: bool) -> bool {
        match self {
            TlsRequired::No => false,
            TlsRequired::ExternalOnly => !internal,
            TlsRequired::All => true,
        }
    }
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
    /// Fault filter overrides from `typed_per_filter_config`, by filter name.
    pub faults: Vec<(String, Fault)>,
    pub request_headers: HeaderMutation,
    pub response_headers: HeaderMutation,
    /// CORS policy from `typed_per_filter_config` (wins over the virtual host's).
    pub cors: Option<super::cors::Cors>,
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
            ignore_port: *ignore_port_in_host_matching,
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
            virtual_clusters,
            rate_limits,
            cors,
            include_attempt_count_in_response,
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
        let retry = match retry_policy {
            Some(p) => Some(RetryPolicy::try_from(p).map_err(|e| e.within("retry_policy"))?),
            None => None,
        };
        Ok(VirtualHost {
            name: name.clone(),
            domains,
            routes,
            retry,
            faults: per_filter_faults(typed_per_filter_config)?,
            attempt_count: *include_request_attempt_count,
            cors: super::cors::policy(typed_per_filter_config)?,
            require_tls: match require_tls {
                0 => TlsRequired::No,
                1 => TlsRequired::ExternalOnly,
                2 => TlsRequired::All,
                n => {
                    return Err(FieldError::invalid(
                        "require_tls",
                        format!("unknown value {n}"),
                    ));
                }
            },
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
            per_request_buffer_limit_bytes,
            request_body_buffer_limit,
            route_specifiers
        );
        let matcher = match r#match {
            Some(m) => RouteMatch::try_from(m).map_err(|e| e.within("match"))?,
            None => return Err(FieldError::invalid("match", "a route needs a match")),
        };
        let action = match action {
            Some(rt::route::Action::Route(a)) => Action::Forward(Box::new(
                Forward::try_from(a).map_err(|e| e.within("route"))?,
            )),
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
            faults: per_filter_faults(typed_per_filter_config)?,
            cors: super::cors::policy(typed_per_filter_config)?,
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
