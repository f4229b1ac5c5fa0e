//! Delegate VirtualServices (istio-api.md §3.9): a root `http[]` entry with `delegate` is
//! replaced by the delegate's routes, each match narrowed to the root's match (conflicts drop
//! the route) and unset fields inherited from the root. One level only.

use std::sync::Arc;

use plexus_api::Object;
use plexus_api::kinds::{HttpMatchRequest, HttpRoute, StringMatch, VirtualService};
use plexus_model::Config;
use plexus_model::host::exported_to;

use super::Ctx;

/// One HTTP route ready for translation, with the object and field path it came from.
pub(crate) struct Expanded {
    pub route: HttpRoute,
    pub object: Arc<Object>,
    pub field: String,
}

pub(crate) fn expand(ctx: &Ctx<'_>, vs: &Config<VirtualService>) -> Vec<Expanded> {
    let mut out = Vec::new();
    for (i, r) in vs.spec.http.iter().enumerate() {
        let field = format!("spec.http[{i}]");
        let Some(d) = &r.delegate else {
            out.push(Expanded {
                route: r.clone(),
                object: vs.object.clone(),
                field,
            });
            continue;
        };
        let name = d.name.as_deref().unwrap_or_default();
        let ns = d.namespace.as_deref().unwrap_or(vs.namespace());
        let default = &ctx.snap.mesh.default_virtual_service_export_to;
        let found = ctx.snap.config.virtual_services.iter().find(|c| {
            c.name() == name
                && c.namespace() == ns
                && exported_to(&c.spec.export_to, default, ns, vs.namespace())
        });
        let Some(delegate) = found else {
            ctx.warn(&vs.object, &format!("{field}.delegate"), format!("delegate VirtualService {ns}/{name} not found or not exported to {}; its routes are missing", vs.namespace()));
            continue;
        };
        for (j, dr) in delegate.spec.http.iter().enumerate() {
            let dfield = format!("spec.http[{j}]");
            if dr.delegate.is_some() {
                ctx.warn(
                    &delegate.object,
                    &format!("{dfield}.delegate"),
                    "a delegate VirtualService cannot delegate again; route left out",
                );
                continue;
            }
            match merge(r, dr) {
                Some(route) => out.push(Expanded { route, object: delegate.object.clone(), field: dfield }),
                None => ctx.warn(&delegate.object, &format!("{dfield}.match"), format!("does not fit inside the matches of root VirtualService {}/{}; route dropped", vs.namespace(), vs.name())),
            }
        }
    }
    out
}

/// The delegate route with matches merged into the root's and inherited fields filled.
fn merge(root: &HttpRoute, d: &HttpRoute) -> Option<HttpRoute> {
    let mut out = d.clone();
    out.r#match = match (root.r#match.is_empty(), d.r#match.is_empty()) {
        (true, _) => d.r#match.clone(),
        (false, true) => root.r#match.clone(),
        (false, false) => {
            let merged: Vec<HttpMatchRequest> = root
                .r#match
                .iter()
                .flat_map(|rm| d.r#match.iter().filter_map(move |dm| merge_match(rm, dm)))
                .collect();
            if merged.is_empty() {
                return None;
            }
            merged
        }
    };
    macro_rules! inherit {
        ($($f:ident),*) => { $( if out.$f.is_none() { out.$f = root.$f.clone(); } )* };
    }
    inherit!(
        rewrite,
        direct_response,
        timeout,
        retries,
        fault,
        mirror,
        mirror_percentage,
        cors_policy,
        headers
    );
    if out.mirrors.is_empty() {
        out.mirrors = root.mirrors.clone();
    }
    out.name = match (&root.name, &d.name) {
        (Some(a), Some(b)) => Some(format!("{a}-{b}")),
        (a, b) => a.clone().or_else(|| b.clone()),
    };
    Some(out)
}

fn merge_match(root: &HttpMatchRequest, d: &HttpMatchRequest) -> Option<HttpMatchRequest> {
    let mut m = d.clone();
    m.uri = merge_uri(root.uri.as_ref(), d.uri.as_ref())?;
    for (a, b) in [(&root.ignore_uri_case, &d.ignore_uri_case)] {
        if a.is_some() && b.is_some() && a != b {
            return None;
        }
    }
    if root.port.is_some() && d.port.is_some() && root.port != d.port {
        return None;
    }
    if root.source_namespace.is_some()
        && d.source_namespace.is_some()
        && root.source_namespace != d.source_namespace
    {
        return None;
    }
    m.port = d.port.or(root.port);
    m.ignore_uri_case = d.ignore_uri_case.or(root.ignore_uri_case);
    m.source_namespace = d
        .source_namespace
        .clone()
        .or_else(|| root.source_namespace.clone());
    for (field, dst) in [
        (&root.headers, &mut m.headers),
        (&root.without_headers, &mut m.without_headers),
        (&root.query_params, &mut m.query_params),
    ] {
        for (k, v) in field {
            match dst.get(k) {
                Some(existing) if existing != v => return None,
                _ => {
                    dst.insert(k.clone(), v.clone());
                }
            }
        }
    }
    for (k, v) in &root.source_labels {
        match m.source_labels.get(k) {
            Some(existing) if existing != v => return None,
            _ => {
                m.source_labels.insert(k.clone(), v.clone());
            }
        }
    }
    for (a, b) in [
        (&root.method, &mut m.method),
        (&root.authority, &mut m.authority),
        (&root.scheme, &mut m.scheme),
    ] {
        match (a, &b) {
            (Some(x), Some(y)) if x != y => return None,
            (Some(x), None) => *b = Some(x.clone()),
            _ => {}
        }
    }
    Some(m)
}

/// The delegate's uri must be within the root's: same or longer prefix, an exact path under
/// the root's prefix or equal to its exact; a root regex forbids a delegate uri.
fn merge_uri(root: Option<&StringMatch>, d: Option<&StringMatch>) -> Option<Option<StringMatch>> {
    let (Some(r), Some(d)) = (root, d) else {
        return Some(d.or(root).cloned());
    };
    if r.regex.is_some() {
        return None;
    }
    let d_path = d.exact.as_ref().or(d.prefix.as_ref())?;
    let ok = match (&r.exact, &r.prefix) {
        (Some(e), _) => d.exact.as_ref() == Some(e),
        (_, Some(p)) => d_path.starts_with(p.as_str()),
        _ => true,
    };
    ok.then(|| Some(d.clone()))
}
