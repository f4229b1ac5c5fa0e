//! One VirtualService's HTTP routes at a site (sidecar port or gateway): match blocks → Envoy
//! routes in order, catch-all truncation, and the non-forwarding parts of a route (redirect,
//! direct response, fault, CORS, route-level headers) (istio-api.md §3.2–3.8).

use std::collections::HashMap;

use base64::Engine;
use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, RedirectAction, Route, RouteAction, redirect_action, route,
};
use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{FaultDelay, fault_delay};
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort, HttpFault, fault_abort,
};
use envoy_types::pb::google::protobuf::Any;
use plexus_api::Object;
use plexus_api::kinds::{self, HttpRoute, RedirectPortSelection, VirtualService};
use plexus_model::Config;
use plexus_model::duration;

use super::delegate::{self, Expanded};
use super::route_action::{self as action, header_ops};
use super::route_match::{self, Site};
use super::{Ctx, pb};

pub const FAULT_FILTER: &str = "envoy.filters.http.fault";
pub const CORS_FILTER: &str = "envoy.filters.http.cors";

/// The Envoy routes of `vs` at `site`, in order, stopping after the first catch-all.
pub(crate) fn routes(ctx: &Ctx<'_>, vs: &Config<VirtualService>, site: &Site) -> Vec<Route> {
    let mut out = Vec::new();
    for Expanded {
        route: r,
        object,
        field,
    } in delegate::expand(ctx, vs)
    {
        let blocks: Vec<Option<&kinds::HttpMatchRequest>> = if r.r#match.is_empty() {
            vec![None]
        } else {
            r.r#match.iter().map(Some).collect()
        };
        for (j, m) in blocks.into_iter().enumerate() {
            if let Some(m) = m
                && !route_match::applies(ctx, m, &vs.spec.gateways, vs.namespace(), site)
            {
                continue;
            }
            let mfield = format!("{field}.match[{j}]");
            let Some(rm) = route_match::route_match(ctx, &object, &mfield, m) else {
                continue;
            };
            let name = match (&r.name, m.and_then(|m| m.name.as_ref())) {
                (Some(a), Some(b)) => format!("{a}.{b}"),
                (Some(a), None) => a.clone(),
                (None, Some(b)) => b.clone(),
                (None, None) => String::new(),
            };
            let Some(mut route) = build(ctx, &object, &field, &r, site) else {
                continue;
            };
            route.name = name;
            route.r#match = Some(rm);
            if let Some(prefix) = m.and_then(|m| m.stat_prefix.clone()) {
                route.stat_prefix = prefix;
            }
            out.push(route);
            if m.is_none_or(route_match::is_catch_all) {
                return out;
            }
        }
    }
    out
}

/// The route without its match: action, headers, per-route fault and CORS.
fn build(ctx: &Ctx<'_>, obj: &Object, field: &str, r: &HttpRoute, site: &Site) -> Option<Route> {
    let mut route = Route::default();
    let action = if let Some(rd) = &r.redirect {
        route::Action::Redirect(redirect(ctx, obj, field, rd, site))
    } else if let Some(dr) = &r.direct_response {
        route::Action::DirectResponse(direct_response(ctx, obj, field, dr))
    } else if !r.route.is_empty() {
        route::Action::Route(action::forward(ctx, obj, field, r, site)?)
    } else {
        ctx.warn(
            obj,
            field,
            "route has no destination, redirect or directResponse; left out",
        );
        return None;
    };
    route.action = Some(action);
    if let Some(h) = &r.headers {
        route_headers(ctx, obj, field, h, &mut route);
    }
    let mut per_filter: HashMap<String, Any> = HashMap::new();
    if let Some(f) = &r.fault
        && let Some(fault) = fault(ctx, obj, field, f)
    {
        per_filter.insert(FAULT_FILTER.into(), pb::any(fault));
    }
    if let Some(c) = &r.cors_policy {
        per_filter.insert(CORS_FILTER.into(), pb::any(cors(c)));
    }
    route.typed_per_filter_config = per_filter;
    Some(route)
}

fn redirect(
    ctx: &Ctx<'_>,
    obj: &Object,
    field: &str,
    rd: &kinds::HttpRedirect,
    site: &Site,
) -> RedirectAction {
    use redirect_action::RedirectResponseCode as C;
    let code = match rd.redirect_code.unwrap_or(301) {
        302 => C::Found,
        303 => C::SeeOther,
        307 => C::TemporaryRedirect,
        308 => C::PermanentRedirect,
        301 => C::MovedPermanently,
        other => {
            ctx.warn(
                obj,
                &format!("{field}.redirect.redirectCode"),
                format!("{other} is not a redirect code Envoy supports; 301 used"),
            );
            C::MovedPermanently
        }
    };
    let mut a = RedirectAction {
        host_redirect: rd.authority.clone().unwrap_or_default(),
        port_redirect: rd.port.unwrap_or(0),
        response_code: code as i32,
        ..Default::default()
    };
    if let Some(s) = &rd.scheme {
        a.scheme_rewrite_specifier = Some(redirect_action::SchemeRewriteSpecifier::SchemeRedirect(
            s.clone(),
        ));
    }
    if let Some(uri) = &rd.uri {
        a.path_rewrite_specifier = Some(redirect_action::PathRewriteSpecifier::PathRedirect(
            uri.clone(),
        ));
    } else if let Some(p) = &rd.prefix_rewrite {
        a.path_rewrite_specifier = Some(redirect_action::PathRewriteSpecifier::PrefixRewrite(
            p.clone(),
        ));
    }
    // FROM_REQUEST_PORT: a route configuration serves one port, so the request's port is the
    // site's. The HTTP proxy route configuration serves any port and cannot know it.
    if rd.derive_port == Some(RedirectPortSelection::FromRequestPort) && rd.port.is_none() {
        match site.port {
            Some(port) => a.port_redirect = u32::from(port),
            None => ctx.warn(
                obj,
                &format!("{field}.redirect.derivePort"),
                "FROM_REQUEST_PORT on the HTTP proxy route configuration (any port); the protocol's default port is used",
            ),
        }
    }
    a
}

fn direct_response(
    ctx: &Ctx<'_>,
    obj: &Object,
    field: &str,
    dr: &kinds::HttpDirectResponse,
) -> DirectResponseAction {
    let body = dr.body.as_ref().and_then(|b| {
        if let Some(s) = &b.string {
            return Some(data_source::Specifier::InlineString(s.clone()));
        }
        let bytes = b.bytes.as_ref()?;
        match base64::engine::general_purpose::STANDARD.decode(bytes) {
            Ok(v) => Some(data_source::Specifier::InlineBytes(v)),
            Err(e) => {
                ctx.warn(
                    obj,
                    &format!("{field}.directResponse.body.bytes"),
                    format!("not base64 ({e}); body left out"),
                );
                None
            }
        }
    });
    DirectResponseAction {
        status: dr.status.unwrap_or(200),
        body: body.map(|s| DataSource {
            specifier: Some(s),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Route-level header operations; `:authority`/`host` in request set/add rewrite the Host
/// (`set` wins), other pseudo-headers are dropped with a warning.
fn route_headers(ctx: &Ctx<'_>, obj: &Object, field: &str, h: &kinds::Headers, route: &mut Route) {
    let mut request = h.request.clone().unwrap_or_default();
    let mut authority = None;
    for map in [&mut request.add, &mut request.set] {
        for key in [":authority", "host", "Host"] {
            if let Some(v) = map.remove(key) {
                authority = Some(v);
            }
        }
        let pseudo: Vec<String> = map.keys().filter(|k| k.starts_with(':')).cloned().collect();
        for k in pseudo {
            map.remove(&k);
            ctx.warn(
                obj,
                &format!("{field}.headers.request"),
                format!("pseudo-header {k} cannot be set; dropped"),
            );
        }
    }
    let (add, remove) = header_ops(Some(&request));
    route.request_headers_to_add = add;
    route.request_headers_to_remove = remove;
    let (add, remove) = header_ops(h.response.as_ref());
    route.response_headers_to_add = add;
    route.response_headers_to_remove = remove;
    if let (Some(a), Some(route::Action::Route(ra))) = (authority, route.action.as_mut()) {
        set_authority(ra, a);
    }
}

fn set_authority(ra: &mut RouteAction, a: String) {
    if ra.host_rewrite_specifier.is_none() {
        ra.host_rewrite_specifier = Some(envoy_types::pb::envoy::config::route::v3::route_action::HostRewriteSpecifier::HostRewriteLiteral(a));
    }
}

/// Istio's per-route fault: absent percentages mean 0% (no fault).
fn fault(
    ctx: &Ctx<'_>,
    obj: &Object,
    field: &str,
    f: &kinds::HttpFaultInjection,
) -> Option<HttpFault> {
    let mut out = HttpFault::default();
    if let Some(d) = &f.delay {
        if d.exponential_delay.is_some() {
            ctx.warn(
                obj,
                &format!("{field}.fault.delay.exponentialDelay"),
                "not supported (Istio rejects it too); delay left out",
            );
        } else if let Some(fixed) = d.fixed_delay.as_deref().and_then(duration::parse) {
            let pct = d
                .percentage
                .as_ref()
                .and_then(|p| p.value)
                .or(d.percent.map(f64::from))
                .unwrap_or(0.0);
            out.delay = Some(FaultDelay {
                percentage: Some(pb::percent(pct)),
                fault_delay_secifier: Some(fault_delay::FaultDelaySecifier::FixedDelay(
                    pb::duration(fixed),
                )),
            });
        }
    }
    if let Some(a) = &f.abort {
        let error = if let Some(code) = a.http_status {
            Some(fault_abort::ErrorType::HttpStatus(code.max(0) as u32))
        } else if let Some(name) = &a.grpc_status {
            match grpc_code(name) {
                Some(c) => Some(fault_abort::ErrorType::GrpcStatus(c)),
                None => {
                    ctx.warn(
                        obj,
                        &format!("{field}.fault.abort.grpcStatus"),
                        format!("{name:?} is not a gRPC status name; abort left out"),
                    );
                    None
                }
            }
        } else {
            if a.http2_error.is_some() {
                ctx.warn(
                    obj,
                    &format!("{field}.fault.abort.http2Error"),
                    "not supported; abort left out",
                );
            }
            None
        };
        if let Some(error) = error {
            let pct = a.percentage.as_ref().and_then(|p| p.value).unwrap_or(0.0);
            out.abort = Some(FaultAbort {
                percentage: Some(pb::percent(pct)),
                error_type: Some(error),
                ..Default::default()
            });
        }
    }
    (out.delay.is_some() || out.abort.is_some()).then_some(out)
}

/// gRPC status names (google.rpc.Code) → numbers.
pub fn grpc_code(name: &str) -> Option<u32> {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

fn cors(c: &kinds::CorsPolicy) -> CorsPolicy {
    let mut origins: Vec<_> = c
        .allow_origins
        .iter()
        .filter_map(|o| {
            pb::string_match(o.exact.as_deref(), o.prefix.as_deref(), o.regex.as_deref())
        })
        .collect();
    for o in &c.allow_origin {
        let m = if o == "*" {
            pb::string_match(None, None, Some(".*"))
        } else {
            pb::string_match(Some(o), None, None)
        };
        origins.extend(m);
    }
    CorsPolicy {
        allow_origin_string_match: origins,
        allow_methods: c.allow_methods.join(","),
        allow_headers: c.allow_headers.join(","),
        expose_headers: c.expose_headers.join(","),
        max_age: c
            .max_age
            .as_deref()
            .and_then(duration::parse)
            .map(|d| d.as_secs().to_string())
            .unwrap_or_default(),
        allow_credentials: c.allow_credentials.map(pb::boolv),
        forward_not_matching_preflights: Some(pb::boolv(!matches!(
            c.unmatched_preflights,
            Some(kinds::UnmatchedPreflights::Ignore)
        ))),
        ..Default::default()
    }
}
