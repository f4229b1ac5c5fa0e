//! HTTPMatchRequest → Envoy `RouteMatch` (istio-api.md §3.3), and the match-block selectors
//! (`port`, `sourceLabels`, `sourceNamespace`, `gateways`) that decide whether a block is
//! generated for this proxy and port at all.

use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, QueryParameterMatcher, RouteMatch, header_matcher, query_parameter_matcher,
    route_match,
};
use plexus_api::Object;
use plexus_api::kinds::{HttpMatchRequest, StringMatch};
use plexus_model::selects;

use super::{Ctx, pb};

/// Where routes are being generated: a sidecar (`mesh`) or a gateway (`ns/name`), on a port.
#[derive(Clone, Debug)]
pub(crate) struct Site {
    /// Listener / service port; `None` for the HTTP_PROXY route config (any port).
    pub port: Option<u16>,
    /// `None` for sidecars; the gateway's `ns/name` for gateways.
    pub gateway: Option<String>,
}

/// Whether the VirtualService (with top-level `gateways`, in `vs_ns`) has this match block
/// apply at `site` for this proxy.
pub(crate) fn applies(
    ctx: &Ctx<'_>,
    m: &HttpMatchRequest,
    vs_gateways: &[String],
    vs_ns: &str,
    site: &Site,
) -> bool {
    if let (Some(want), Some(port)) = (m.port, site.port)
        && want != u32::from(port)
    {
        return false;
    }
    let gateways = if m.gateways.is_empty() {
        vs_gateways
    } else {
        &m.gateways
    };
    if !bound_to(gateways, vs_ns, site) {
        return false;
    }
    // sourceLabels/sourceNamespace select client sidecars; not checked when the block names
    // its own gateways.
    if site.gateway.is_none() && m.gateways.is_empty() {
        if !selects(&m.source_labels, &ctx.node.labels) {
            return false;
        }
        if m.source_namespace
            .as_deref()
            .is_some_and(|ns| ns != ctx.node.namespace)
        {
            return false;
        }
    }
    true
}

/// Whether a `gateways` list (empty means `mesh`) includes the site.
pub(crate) fn bound_to(gateways: &[String], vs_ns: &str, site: &Site) -> bool {
    match &site.gateway {
        None => gateways.is_empty() || gateways.iter().any(|g| g == "mesh"),
        Some(gw) => gateways.iter().any(|g| &resolve_gateway(g, vs_ns) == gw),
    }
}

/// `name` → `<vs namespace>/name`; `ns/name` stays.
pub(crate) fn resolve_gateway(g: &str, vs_ns: &str) -> String {
    if g.contains('/') {
        g.to_string()
    } else {
        format!("{vs_ns}/{g}")
    }
}

/// A block that matches every request: no uri other than prefix `/`, no header, query,
/// method, authority, scheme or withoutHeaders conditions.
pub(crate) fn is_catch_all(m: &HttpMatchRequest) -> bool {
    let uri_all = match &m.uri {
        None => true,
        Some(u) => u.prefix.as_deref() == Some("/") && u.exact.is_none() && u.regex.is_none(),
    };
    uri_all
        && m.headers.is_empty()
        && m.without_headers.is_empty()
        && m.query_params.is_empty()
        && m.method.is_none()
        && m.authority.is_none()
        && m.scheme.is_none()
}

/// The Envoy match of one block (`None` block: everything). Returns `None` (with a warning)
/// when the block needs something Plexus cannot express, so the route is left out rather
/// than matching too much.
pub(crate) fn route_match(
    ctx: &Ctx<'_>,
    obj: &Object,
    field: &str,
    m: Option<&HttpMatchRequest>,
) -> Option<RouteMatch> {
    let mut out = RouteMatch {
        path_specifier: Some(route_match::PathSpecifier::Prefix("/".into())),
        ..Default::default()
    };
    let Some(m) = m else {
        return Some(out);
    };
    if let Some(u) = &m.uri {
        out.path_specifier = Some(if let Some(e) = &u.exact {
            route_match::PathSpecifier::Path(e.clone())
        } else if let Some(p) = &u.prefix {
            route_match::PathSpecifier::Prefix(p.clone())
        } else if let Some(r) = &u.regex {
            route_match::PathSpecifier::SafeRegex(pb::regex(r))
        } else {
            route_match::PathSpecifier::Prefix("/".into())
        });
        if m.ignore_uri_case == Some(true) && u.regex.is_none() {
            out.case_sensitive = Some(pb::boolv(false));
        }
    }
    for (name, sm) in &m.headers {
        if name.starts_with("@request.auth.claims") {
            ctx.warn(obj, &format!("{field}.headers"), format!("{name}: JWT claim matching needs RequestAuthentication, which is not translated yet; route left out"));
            return None;
        }
        if matches!(name.as_str(), "uri" | "scheme" | "method" | "authority") {
            continue;
        }
        out.headers.push(header(name, sm, false));
    }
    for (name, sm) in &m.without_headers {
        out.headers.push(header(name, sm, true));
    }
    for (pseudo, sm) in [
        (":method", &m.method),
        (":authority", &m.authority),
        (":scheme", &m.scheme),
    ] {
        if let Some(sm) = sm {
            out.headers.push(header(pseudo, sm, false));
        }
    }
    for (name, sm) in &m.query_params {
        use query_parameter_matcher::QueryParameterMatchSpecifier as Q;
        let spec = match string_matcher(sm) {
            Some(s) => Q::StringMatch(s),
            None => Q::PresentMatch(true),
        };
        out.query_parameters.push(QueryParameterMatcher {
            name: name.clone(),
            query_parameter_match_specifier: Some(spec),
        });
    }
    Some(out)
}

fn string_matcher(
    sm: &StringMatch,
) -> Option<envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher> {
    // Regex `*` is Istio's spelling of "present".
    if sm.regex.as_deref() == Some("*") {
        return None;
    }
    pb::string_match(
        sm.exact.as_deref(),
        sm.prefix.as_deref(),
        sm.regex.as_deref(),
    )
}

fn header(name: &str, sm: &StringMatch, invert: bool) -> HeaderMatcher {
    use header_matcher::HeaderMatchSpecifier as H;
    let (spec, presence) = match string_matcher(sm) {
        Some(s) => (H::StringMatch(s), false),
        None => (H::PresentMatch(true), true),
    };
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(spec),
        invert_match: invert,
        // Istio: a missing header counts as empty for withoutHeaders value matchers.
        treat_missing_header_as_empty: invert && !presence,
    }
}
