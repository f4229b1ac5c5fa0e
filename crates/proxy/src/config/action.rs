//! RouteAction, RedirectAction, DirectResponseAction -> `Action`.

use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3 as rt;
use regex::Regex;

use super::fault::{Fraction, fraction_of};
use super::stream_timeout::{GrpcTimeout, StreamDuration, grpc_timeout, stream_duration};
use super::{FieldError, FieldResult, HeaderMutation, RetryPolicy, duration, search_regex};
use crate::deny_set;

/// Envoy's default route timeout when `timeout` is not set.
pub const DEFAULT_ROUTE_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    // Boxed: a forward action is much larger than the others.
    Forward(Box<Forward>),
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
    /// The route's retry policy; `None` falls back to the virtual host's.
    pub retry: Option<RetryPolicy>,
    /// Route-level `upgrade_configs` for `websocket`: overrides the connection manager.
    pub websocket: Option<bool>,
    /// Route-level `upgrade_configs` for `CONNECT`: overrides the connection manager.
    pub connect: Option<ConnectUpgrade>,
    /// `hash_policy`: the request's key for ring hash and maglev clusters.
    pub hash_policy: Vec<super::hash::HashPolicy>,
    /// `max_stream_duration`: when set (even empty), Envoy drops the router's `timeout` for
    /// this route and limits the whole stream instead (`crate::grpc_timeout`).
    pub stream: Option<StreamDuration>,
    /// The deprecated `max_grpc_timeout` and its `grpc_timeout_offset` (what Istio sends
    /// Envoy sidecars): gRPC requests take their router timeout from `grpc-timeout`.
    pub grpc_timeout: Option<GrpcTimeout>,
    pub mirrors: Vec<Mirror>,
    /// `idle_timeout`: `None` leaves the connection manager's `stream_idle_timeout` in force,
    /// `Some(None)` (`0s`) disables the stream idle timeout for this route.
    pub idle_timeout: Option<Option<Duration>>,
}

/// `request_mirror_policies`: a copy of the request goes to `cluster`, its answer ignored.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    pub cluster: String,
    pub fraction: Fraction,
    /// Envoy appends `-shadow` to the host unless `disable_shadow_host_suffix_append`.
    pub shadow_suffix: bool,
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
            && self.retry == o.retry
            && self.websocket == o.websocket
            && self.connect == o.connect
            && self.hash_policy == o.hash_policy
            && self.stream == o.stream
            && self.grpc_timeout == o.grpc_timeout
            && self.mirrors == o.mirrors
            && self.idle_timeout == o.idle_timeout
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
            flush_timeout,
            early_data_policy,
            retry_policy_typed_config,
            priority,
            rate_limits,
            include_vh_rate_limits,
            cors,
            internal_redirect_policy,
            internal_redirect_action,
            max_internal_redirects,
            hedge_policy
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
        let idle_timeout = match idle_timeout {
            Some(d) => Some(
                Some(duration(d).map_err(|e| e.within("idle_timeout"))?).filter(|d| !d.is_zero()),
            ),
            None => None,
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
        let retry = match retry_policy {
            Some(p) => Some(RetryPolicy::try_from(p).map_err(|e| e.within("retry_policy"))?),
            None => None,
        };
        let (websocket, connect) = route_upgrades(upgrade_configs)?;
        let hash_policy = super::hash::HashPolicy::parse_all(hash_policy)?;
        let stream = match max_stream_duration {
            Some(m) => Some(stream_duration(m).map_err(|e| e.within("max_stream_duration"))?),
            None => None,
        };
        let grpc_timeout = grpc_timeout(max_grpc_timeout.as_ref(), grpc_timeout_offset.as_ref())?;
        let mirrors = request_mirror_policies
            .iter()
            .enumerate()
            .map(|(i, m)| mirror(m).map_err(|e| e.within(&format!("request_mirror_policies[{i}]"))))
            .collect::<FieldResult<Vec<_>>>()?;
        Ok(Forward {
            mirrors,
            websocket,
            connect,
            hash_policy,
            stream,
            grpc_timeout,
            clusters,
            cluster_not_found_status,
            prefix_rewrite: Some(prefix_rewrite.clone()).filter(|p| !p.is_empty()),
            regex_rewrite,
            host_rewrite,
            timeout,
            retry,
            idle_timeout,
        })
    }
}

/// Envoy substitutions use `\1` for capture groups; the regex crate uses `${1}`.
pub(crate) fn envoy_substitution(s: &str) -> String {
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

fn mirror(m: &rt::route_action::RequestMirrorPolicy) -> FieldResult<Mirror> {
    let rt::route_action::RequestMirrorPolicy {
        cluster,
        cluster_header,
        runtime_fraction,
        // Only decides whether the mirror's trace span is sampled; Plexus does no tracing.
        trace_sampled: _,
        disable_shadow_host_suffix_append,
        request_headers_mutations,
        host_rewrite_literal,
    } = m;
    deny_set!(
        cluster_header,
        request_headers_mutations,
        host_rewrite_literal
    );
    if cluster.is_empty() {
        return Err(FieldError::invalid(
            "cluster",
            "a mirror cluster is required",
        ));
    }
    // Unset means every request, as in Envoy; the runtime key has no runtime layer to read.
    let fraction = match runtime_fraction
        .as_ref()
        .and_then(|r| r.default_value.as_ref())
    {
        Some(p) => fraction_of(p).map_err(|e| e.within("runtime_fraction.default_value"))?,
        None => Fraction {
            numerator: 100,
            denominator: 100,
        },
    };
    Ok(Mirror {
        cluster: cluster.clone(),
        fraction,
        shadow_suffix: !disable_shadow_host_suffix_append,
    })
}

pub(super) fn redirect(r: &rt::RedirectAction) -> FieldResult<Action> {
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

pub(super) fn direct(d: &rt::DirectResponseAction) -> FieldResult<Action> {
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

/// A route's `upgrade_configs` entry for `CONNECT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectUpgrade {
    pub enabled: bool,
    /// `connect_config` is set: the proxy answers the CONNECT itself and carries the payload
    /// over a TCP connection to the endpoint; otherwise the CONNECT is forwarded upstream.
    pub terminate: bool,
}

/// Route-level `upgrade_configs`: WebSocket (on/off) and CONNECT (on/off, terminate).
fn route_upgrades(
    configs: &[rt::route_action::UpgradeConfig],
) -> FieldResult<(Option<bool>, Option<ConnectUpgrade>)> {
    let (mut websocket, mut connect) = (None, None);
    for (i, u) in configs.iter().enumerate() {
        let rt::route_action::UpgradeConfig {
            upgrade_type,
            enabled,
            connect_config,
        } = u;
        let at = format!("upgrade_configs[{i}]");
        let enabled = enabled.as_ref().is_none_or(|b| b.value);
        if upgrade_type.eq_ignore_ascii_case("connect") {
            if let Some(c) = connect_config {
                let rt::route_action::upgrade_config::ConnectConfig {
                    proxy_protocol_config,
                    allow_post,
                } = c;
                if proxy_protocol_config.is_some() {
                    return Err(FieldError::unsupported(format!(
                        "{at}.connect_config.proxy_protocol_config"
                    )));
                }
                if *allow_post {
                    return Err(FieldError::unsupported(format!(
                        "{at}.connect_config.allow_post"
                    )));
                }
            }
            connect = Some(ConnectUpgrade {
                enabled,
                terminate: connect_config.is_some(),
            });
        } else if upgrade_type.eq_ignore_ascii_case("websocket") {
            if connect_config.is_some() {
                return Err(FieldError::unsupported(format!("{at}.connect_config")));
            }
            websocket = Some(enabled);
        } else {
            return Err(FieldError::unsupported(format!(
                "{at}.upgrade_type ({upgrade_type})"
            )));
        }
    }
    Ok((websocket, connect))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_syntax() {
        assert_eq!(envoy_substitution(r"/v2/\1/x$"), "/v2/${1}/x$$");
    }

    fn upgrade(
        kind: &str,
        cc: Option<rt::route_action::upgrade_config::ConnectConfig>,
    ) -> rt::route_action::UpgradeConfig {
        rt::route_action::UpgradeConfig {
            upgrade_type: kind.into(),
            enabled: None,
            connect_config: cc,
        }
    }

    #[test]
    fn connect_upgrades_terminate_forward_or_are_refused_by_field() {
        let cc = rt::route_action::upgrade_config::ConnectConfig::default();
        let (ws, c) = route_upgrades(&[upgrade("CONNECT", Some(cc.clone()))]).expect("accepted");
        assert_eq!(
            (ws, c),
            (
                None,
                Some(ConnectUpgrade {
                    enabled: true,
                    terminate: true
                })
            )
        );
        let (_, c) = route_upgrades(&[upgrade("connect", None)]).expect("accepted");
        assert_eq!(
            c,
            Some(ConnectUpgrade {
                enabled: true,
                terminate: false
            })
        );
        let post = rt::route_action::upgrade_config::ConnectConfig {
            allow_post: true,
            ..cc
        };
        let err = route_upgrades(&[upgrade("websocket", None), upgrade("CONNECT", Some(post))])
            .expect_err("allow_post is not supported");
        assert!(
            err.field
                .contains("upgrade_configs[1].connect_config.allow_post"),
            "{err:?}"
        );
        let err = route_upgrades(&[upgrade("h2c", None)]).expect_err("unknown upgrade");
        assert!(
            err.field.contains("upgrade_configs[0].upgrade_type (h2c)"),
            "{err:?}"
        );
    }
}
