//! The CORS filter at run time, as Envoy's: a request with an `Origin` the policy allows gets
//! `access-control-allow-origin` (and `-allow-credentials`, `-expose-headers`) on its response;
//! a preflight (`OPTIONS` with `Access-Control-Request-Method`) from an allowed origin is
//! answered 200 by the proxy with the allowed methods, headers and max age; a preflight from
//! another origin goes upstream unchanged, or with `forward_not_matching_preflights: false` is
//! answered 200 with no CORS headers.

use http::{HeaderMap, HeaderValue, Method, Response};

use crate::config::cors::Cors;
use crate::pool::Body;

/// The request's `Origin` when the policy allows it.
pub fn allowed_origin(policy: &Cors, headers: &HeaderMap) -> Option<HeaderValue> {
    let origin = headers.get(http::header::ORIGIN)?;
    let text = origin.to_str().ok().filter(|o| !o.is_empty())?;
    policy
        .allow_origin
        .iter()
        .any(|m| m.matches(text))
        .then(|| origin.clone())
}

fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key(http::header::ORIGIN)
        && headers
            .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .is_some_and(|v| !v.is_empty())
}

fn empty_ok() -> Response<Body> {
    use http_body_util::{BodyExt, Empty};
    Response::new(
        Empty::<bytes::Bytes>::new()
            .map_err(|never| match never {})
            .boxed(),
    )
}

/// A preflight from an origin the policy does not allow, when it must not go upstream.
pub fn refused_preflight(
    policy: &Cors,
    method: &Method,
    headers: &HeaderMap,
) -> Option<Response<Body>> {
    (!policy.forward_not_matching_preflights && is_preflight(method, headers)).then(empty_ok)
}

/// The proxy's answer to an allowed preflight.
pub fn preflight(
    policy: &Cors,
    method: &Method,
    headers: &HeaderMap,
    origin: &HeaderValue,
) -> Option<Response<Body>> {
    if !is_preflight(method, headers) {
        return None;
    }
    let mut resp = empty_ok();
    let h = resp.headers_mut();
    h.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    if policy.allow_credentials {
        h.insert(
            http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    for (name, value) in [
        (
            http::header::ACCESS_CONTROL_ALLOW_METHODS,
            &policy.allow_methods,
        ),
        (
            http::header::ACCESS_CONTROL_ALLOW_HEADERS,
            &policy.allow_headers,
        ),
        (http::header::ACCESS_CONTROL_MAX_AGE, &policy.max_age),
    ] {
        if let Ok(v) = HeaderValue::from_str(value)
            .map_err(drop)
            .and_then(|v| if value.is_empty() { Err(()) } else { Ok(v) })
        {
            h.insert(name, v);
        }
    }
    Some(resp)
}

/// Headers an allowed CORS request's response carries.
pub fn decorate(policy: &Cors, origin: &HeaderValue, headers: &mut HeaderMap) {
    headers.insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    if policy.allow_credentials {
        headers.insert(
            http::header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    if !policy.expose_headers.is_empty()
        && let Ok(v) = HeaderValue::from_str(&policy.expose_headers)
    {
        headers.insert(http::header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StringMatch;

    #[test]
    fn preflights_by_origin() {
        let mut p = Cors {
            allow_origin: vec![StringMatch::Exact("https://a.test".into(), false)],
            allow_methods: "GET".into(),
            allow_headers: String::new(),
            expose_headers: String::new(),
            max_age: String::new(),
            allow_credentials: false,
            forward_not_matching_preflights: true,
        };
        let mut h = HeaderMap::new();
        h.insert("origin", HeaderValue::from_static("https://b.test"));
        h.insert(
            "access-control-request-method",
            HeaderValue::from_static("GET"),
        );
        assert!(allowed_origin(&p, &h).is_none());
        assert!(refused_preflight(&p, &Method::OPTIONS, &h).is_none());
        p.forward_not_matching_preflights = false;
        let refused = refused_preflight(&p, &Method::OPTIONS, &h);
        assert!(refused.is_some_and(|r| r.status() == 200 && r.headers().is_empty()));
        assert!(refused_preflight(&p, &Method::GET, &h).is_none());
        h.insert("origin", HeaderValue::from_static("https://a.test"));
        let origin = allowed_origin(&p, &h).expect("allowed");
        let ok = preflight(&p, &Method::OPTIONS, &h, &origin).expect("preflight");
        assert_eq!(ok.headers()["access-control-allow-methods"], "GET");
        assert!(!ok.headers().contains_key("access-control-max-age"));
    }
}
