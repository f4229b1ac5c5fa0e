//! Forwarding actions of HTTP routes: destinations and weights → clusters, timeouts, Istio's
//! retry policy and its default, mirrors, consistent-hash `hash_policy` from the
//! destination's DestinationRule, rewrites and per-destination headers (istio-api.md §3.2–3.6).

use envoy_types::pb::envoy::config::core::v3::{
    HeaderValue, HeaderValueOption, RuntimeFractionalPercent,
    header_value_option::HeaderAppendAction,
};
use envoy_types::pb::envoy::config::route::v3::{
    RetryPolicy, RouteAction, WeightedCluster, retry_policy, route_action, weighted_cluster,
};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatchAndSubstitute;
use plexus_api::Object;
use plexus_api::kinds::{self, Destination, HttpRetry, HttpRoute};
use plexus_model::duration;
use plexus_model::host::{DEFAULT_DOMAIN_SUFFIX, fqdn};

use super::route_match::Site;
use super::{Ctx, destination_rule, outbound_cluster_name, pb, policy};

/// Istio's default `retryOn`.
pub const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
/// Istio's default number of retries.
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 2;
/// Host selection attempts with the previous_hosts predicate.
const HOST_SELECTION_ATTEMPTS: i64 = 5;

/// A destination resolved to its cluster.
pub(crate) struct Target {
    pub cluster: String,
    pub consistent_hash: Option<kinds::ConsistentHashLb>,
    /// DestinationRule `connectionPool.tcp.idleTimeout` of the destination's cluster.
    pub tcp_idle_timeout: Option<std::time::Duration>,
}

/// The cluster of a VirtualService destination (`host` expanded in the VS namespace). The
/// port is the destination's, else the service's only port, else the site's port. An unknown
/// host still names a cluster (which does not exist, so traffic fails as in Istio) and warns.
pub(crate) fn target(
    ctx: &Ctx<'_>,
    obj: &Object,
    field: &str,
    d: &Destination,
    site: &Site,
) -> Option<Target> {
    let host = fqdn(
        d.host.as_deref().unwrap_or_default(),
        obj.namespace_or_default(),
        DEFAULT_DOMAIN_SUFFIX,
    );
    let svc = ctx
        .scope
        .services
        .iter()
        .map(|&i| &ctx.snap.registry.services[i])
        .find(|s| s.hostname.eq_ignore_ascii_case(&host));
    let port = d
        .port
        .as_ref()
        .and_then(|p| p.number)
        .and_then(|n| u16::try_from(n).ok())
        .or_else(|| {
            svc.filter(|s| s.ports.len() == 1)
                .map(|s| s.ports[0].number)
        })
        .or(site.port);
    let Some(port) = port else {
        ctx.warn(obj, &format!("{field}.destination.port"), format!("destination {host} needs a port: the service has several and this route is not tied to one; route left out"));
        return None;
    };
    let subset = d.subset.clone().unwrap_or_default();
    let mut policy = None;
    match svc {
        None => ctx.warn(
            obj,
            &format!("{field}.destination.host"),
            format!("no visible service {host}: traffic to it fails (no cluster)"),
        ),
        Some(s) => {
            if s.port(port).is_none() {
                ctx.warn(obj, &format!("{field}.destination.port"), format!("{host} has no port {port} (the route does not name a port and the service has several): traffic to it fails"));
            }
            let rule = destination_rule::lookup(ctx, &s.hostname, &s.namespace);
            let sub = rule.as_ref().and_then(|r| r.subset(&subset));
            if !subset.is_empty() && sub.is_none() {
                ctx.warn(obj, &format!("{field}.destination.subset"), format!("subset {subset:?} of {host} is not defined by any DestinationRule: traffic to it fails"));
            }
            policy = rule.as_ref().map(|r| r.policy(port, sub));
        }
    }
    let policy = policy.unwrap_or_default();
    Some(Target {
        cluster: outbound_cluster_name(port, &subset, &host),
        consistent_hash: policy.load_balancer.and_then(|lb| lb.consistent_hash),
        tcp_idle_timeout: policy
            .connection_pool
            .and_then(|c| c.tcp)
            .and_then(|t| t.idle_timeout)
            .and_then(|t| duration::parse(&t)),
    })
}

/// Route action for `route[]` (one destination or weighted), with timeout, retries, mirrors
/// and rewrite. `None` when no destination can be resolved.
pub(crate) fn forward(
    ctx: &Ctx<'_>,
    obj: &Object,
    field: &str,
    r: &HttpRoute,
    site: &Site,
) -> Option<RouteAction> {
    let mut targets = Vec::new();
    let total: i64 = r
        .route
        .iter()
        .map(|d| i64::from(d.weight.unwrap_or(0).max(0)))
        .sum();
    for (i, d) in r.route.iter().enumerate() {
        let f = format!("{field}.route[{i}]");
        let weight = d.weight.unwrap_or(0).max(0) as u32;
        // A zero-weight destination receives nothing; with a single destination weight is 100%.
        if r.route.len() > 1 && weight == 0 && total > 0 {
            continue;
        }
        let dest = d.destination.as_ref()?;
        let t = target(ctx, obj, &f, dest, site)?;
        targets.push((t, weight, d.headers.as_ref()));
    }
    let first = targets.first()?;
    let hashing = first.0.consistent_hash.clone();
    let mut action = RouteAction::default();
    if targets.len() == 1 {
        action.cluster_specifier = Some(route_action::ClusterSpecifier::Cluster(
            first.0.cluster.clone(),
        ));
    } else {
        let clusters = targets
            .iter()
            .map(|(t, w, h)| {
                let mut cw = weighted_cluster::ClusterWeight {
                    name: t.cluster.clone(),
                    weight: Some(pb::u32v(*w)),
                    ..Default::default()
                };
                if let Some(h) = h {
                    let ops = header_ops(h.request.as_ref());
                    cw.request_headers_to_add = ops.0;
                    cw.request_headers_to_remove = ops.1;
                    let ops = header_ops(h.response.as_ref());
                    cw.response_headers_to_add = ops.0;
                    cw.response_headers_to_remove = ops.1;
                }
                cw
            })
            .collect();
        action.cluster_specifier = Some(route_action::ClusterSpecifier::WeightedClusters(
            WeightedCluster {
                clusters,
                ..Default::default()
            },
        ));
    }
    if let Some(ch) = &hashing {
        action.hash_policy = policy::hash_policy(ch);
    }
    timeout_and_retries(ctx, obj, field, r, hashing.is_some(), &mut action);
    mirrors(ctx, obj, field, r, site, &mut action);
    rewrite(r, &mut action);
    Some(action)
}

fn timeout_and_retries(
    ctx: &Ctx<'_>,
    obj: &Object,
    field: &str,
    r: &HttpRoute,
    hashing: bool,
    action: &mut RouteAction,
) {
    // Istio: no timeout unless the VirtualService sets one (Envoy's default is 15s).
    let timeout = r
        .timeout
        .as_deref()
        .and_then(duration::parse)
        .unwrap_or_default();
    action.timeout = Some(pb::duration(timeout));
    // Istio's shape: with a timeout, the deprecated `max_grpc_timeout` caps a client's
    // `grpc-timeout`; `max_stream_duration` only for "no timeout", because a route with
    // `max_stream_duration` makes Envoy ignore its `timeout` (checked on Envoy 1.40).
    if timeout.is_zero() {
        action.max_stream_duration = Some(no_stream_limit());
    } else {
        #[allow(deprecated)] // what Istio sends; the replacement would drop `timeout`
        {
            action.max_grpc_timeout = Some(pb::duration(timeout));
        }
    }
    if r.retries
        .as_ref()
        .and_then(|x| x.backoff.as_deref())
        .is_some_and(|b| duration::parse(b).is_none())
    {
        ctx.warn(
            obj,
            &format!("{field}.retries.backoff"),
            "invalid duration; Envoy's default backoff is used",
        );
    }
    action.retry_policy = retry_policy(r.retries.as_ref(), hashing);
}

/// An Istio `retries` block with Istio's defaults filled in.
struct RetrySettings {
    attempts: u32,
    retry_on: String,
    per_try: Option<std::time::Duration>,
    ignore_previous: bool,
    remote: bool,
    backoff: Option<std::time::Duration>,
}

impl RetrySettings {
    /// `None`: retries disabled (`attempts: 0`).
    fn of(retries: Option<&HttpRetry>) -> Option<RetrySettings> {
        let Some(r) = retries else {
            return Some(RetrySettings {
                attempts: DEFAULT_RETRY_ATTEMPTS,
                retry_on: DEFAULT_RETRY_ON.to_string(),
                per_try: None,
                ignore_previous: true,
                remote: false,
                backoff: None,
            });
        };
        let attempts = r.attempts.unwrap_or(DEFAULT_RETRY_ATTEMPTS as i32);
        if attempts <= 0 {
            return None;
        }
        Some(RetrySettings {
            attempts: attempts as u32,
            retry_on: r
                .retry_on
                .clone()
                .unwrap_or_else(|| DEFAULT_RETRY_ON.to_string()),
            per_try: r.per_try_timeout.as_deref().and_then(duration::parse),
            ignore_previous: r.retry_ignore_previous_hosts.unwrap_or(true),
            remote: r.retry_remote_localities == Some(true),
            backoff: r.backoff.as_deref().and_then(duration::parse),
        })
    }
}

/// Envoy retry policy for an Istio `retries` block (`None`: Istio's default policy).
/// `attempts: 0` disables retries. With consistent hashing the previous-hosts predicate is
/// left out, as Istio does.
pub fn retry_policy(retries: Option<&HttpRetry>, consistent_hash: bool) -> Option<RetryPolicy> {
    let r = RetrySettings::of(retries)?;
    let RetrySettings {
        attempts,
        retry_on,
        per_try,
        ignore_previous,
        remote,
        backoff,
    } = r;
    let mut policy = RetryPolicy {
        num_retries: Some(pb::u32v(attempts)),
        per_try_timeout: per_try.map(pb::duration),
        ..Default::default()
    };
    let mut conditions = Vec::new();
    for part in retry_on.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u32>() {
            Ok(code) => policy.retriable_status_codes.push(code),
            Err(_) => conditions.push(part.to_string()),
        }
    }
    if !policy.retriable_status_codes.is_empty()
        && !conditions.iter().any(|c| c == "retriable-status-codes")
    {
        conditions.push("retriable-status-codes".into());
    }
    policy.retry_on = conditions.join(",");
    if ignore_previous && !consistent_hash {
        policy.retry_host_predicate = vec![retry_policy::RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".into(),
            config_type: Some(retry_policy::retry_host_predicate::ConfigType::TypedConfig(
                pb::any(PreviousHostsPredicate {}),
            )),
        }];
        policy.host_selection_retry_max_attempts = HOST_SELECTION_ATTEMPTS;
    }
    if remote {
        policy.retry_priority = Some(retry_policy::RetryPriority {
            name: "envoy.retry_priorities.previous_priorities".into(),
            config_type: Some(retry_policy::retry_priority::ConfigType::TypedConfig(
                pb::any(PreviousPrioritiesConfig {
                    update_frequency: 2,
                }),
            )),
        });
    }
    if let Some(b) = backoff {
        policy.retry_back_off = Some(retry_policy::RetryBackOff {
            base_interval: Some(pb::duration(b)),
            ..Default::default()
        });
    }
    Some(policy)
}

fn mirrors(
    ctx: &Ctx<'_>,
    obj: &Object,
    field: &str,
    r: &HttpRoute,
    site: &Site,
    action: &mut RouteAction,
) {
    let mut list: Vec<(&Destination, f64, String)> = Vec::new();
    if let Some(m) = &r.mirror {
        // Absent percentage means 100%; the deprecated integer forms are honoured.
        let pct = r
            .mirror_percentage
            .as_ref()
            .and_then(|p| p.value)
            .or(r.mirror_percent.or(r.mirror_percent_snake).map(f64::from))
            .unwrap_or(100.0);
        list.push((m, pct, format!("{field}.mirror")));
    }
    for (i, m) in r.mirrors.iter().enumerate() {
        if let Some(d) = &m.destination {
            let pct = m.percentage.as_ref().and_then(|p| p.value).unwrap_or(100.0);
            list.push((d, pct, format!("{field}.mirrors[{i}]")));
        }
    }
    for (d, pct, f) in list {
        if let Some(t) = target(ctx, obj, &f, d, site) {
            action
                .request_mirror_policies
                .push(route_action::RequestMirrorPolicy {
                    cluster: t.cluster,
                    runtime_fraction: Some(RuntimeFractionalPercent {
                        default_value: Some(pb::percent(pct)),
                        runtime_key: String::new(),
                    }),
                    trace_sampled: Some(pb::boolv(false)),
                    ..Default::default()
                });
        }
    }
}

fn rewrite(r: &HttpRoute, action: &mut RouteAction) {
    let Some(rw) = &r.rewrite else { return };
    if let Some(uri) = &rw.uri {
        action.prefix_rewrite = uri.clone();
    }
    if let Some(rx) = &rw.uri_regex_rewrite {
        action.regex_rewrite = Some(RegexMatchAndSubstitute {
            pattern: Some(pb::regex(rx.r#match.as_deref().unwrap_or_default())),
            substitution: rx.rewrite.clone().unwrap_or_default(),
        });
    }
    if let Some(a) = &rw.authority {
        action.host_rewrite_specifier = Some(
            route_action::HostRewriteSpecifier::HostRewriteLiteral(a.clone()),
        );
    }
}

/// `{set, add, remove}` → (headers to add, headers to remove). `set` overwrites, `add` appends.
pub(crate) fn header_ops(
    ops: Option<&kinds::HeaderOperations>,
) -> (Vec<HeaderValueOption>, Vec<String>) {
    let Some(ops) = ops else {
        return (Vec::new(), Vec::new());
    };
    let mut add = Vec::new();
    for (k, v) in &ops.set {
        add.push(header_value(
            k,
            v,
            HeaderAppendAction::OverwriteIfExistsOrAdd,
        ));
    }
    for (k, v) in &ops.add {
        add.push(header_value(k, v, HeaderAppendAction::AppendIfExistsOrAdd));
    }
    (add, ops.remove.clone())
}

pub(crate) fn header_value(k: &str, v: &str, action: HeaderAppendAction) -> HeaderValueOption {
    HeaderValueOption {
        header: Some(HeaderValue {
            key: k.to_string(),
            value: v.to_string(),
            ..Default::default()
        }),
        append_action: action as i32,
        ..Default::default()
    }
}

/// `max_stream_duration` of a route without a timeout, as Istio writes it: no stream limit and
/// a client's `grpc-timeout` honoured without a cap.
pub fn no_stream_limit() -> route_action::MaxStreamDuration {
    route_action::MaxStreamDuration {
        max_stream_duration: Some(pb::duration(std::time::Duration::ZERO)),
        grpc_timeout_header_max: Some(pb::duration(std::time::Duration::ZERO)),
        ..Default::default()
    }
}
