//! Pure routing decisions: virtual host by `:authority`, then the first route whose match
//! holds. No I/O; table-driven tests below and integration tests through real sockets.

use http::HeaderMap;

use crate::config::{
    DomainMatch, HeaderMatcher, PathMatch, QueryMatcher, Route, RouteConfig, RouteMatch,
    VirtualHost,
};

/// What route matching looks at.
pub struct RequestView<'a> {
    pub method: &'a str,
    /// Path and query as received (`:path`).
    pub path: &'a str,
    pub authority: &'a str,
    pub scheme: &'a str,
    pub headers: &'a HeaderMap,
}

/// Envoy's virtual host precedence: exact domain, longest `*suffix`, longest `prefix*`, `*`.
/// With `ignore_port_in_host_matching` the authority's port is dropped first.
pub fn select_vhost<'a>(rc: &'a RouteConfig, authority: &str) -> Option<&'a VirtualHost> {
    let authority = if rc.ignore_port {
        crate::downstream::host_without_port(authority)
    } else {
        authority
    };
    let host = authority.to_ascii_lowercase();
    let mut best_suffix: Option<(usize, &VirtualHost)> = None;
    let mut best_prefix: Option<(usize, &VirtualHost)> = None;
    let mut any = None;
    for vh in &rc.virtual_hosts {
        for d in &vh.domains {
            match d {
                DomainMatch::Exact(e) if *e == host => return Some(vh),
                DomainMatch::Suffix(s)
                    if host.len() > s.len()
                        && host.ends_with(s.as_str())
                        && best_suffix.is_none_or(|(len, _)| s.len() > len) =>
                {
                    best_suffix = Some((s.len(), vh));
                }
                DomainMatch::Prefix(p)
                    if host.len() > p.len()
                        && host.starts_with(p.as_str())
                        && best_prefix.is_none_or(|(len, _)| p.len() > len) =>
                {
                    best_prefix = Some((p.len(), vh));
                }
                DomainMatch::Any => any = any.or(Some(vh)),
                _ => {}
            }
        }
    }
    best_suffix.or(best_prefix).map(|(_, vh)| vh).or(any)
}

/// First route of the virtual host whose match holds.
pub fn find_route<'a>(vh: &'a VirtualHost, req: &RequestView<'_>) -> Option<&'a Route> {
    vh.routes.iter().find(|r| route_matches(&r.matcher, req))
}

pub fn route_matches(m: &RouteMatch, req: &RequestView<'_>) -> bool {
    // A CONNECT request has no path: only `connect_matcher` routes can match it, and those
    // match nothing else.
    let connect = req.method == "CONNECT";
    if connect || m.path == PathMatch::Connect {
        return connect
            && m.path == PathMatch::Connect
            && m.headers.iter().all(|h| header_matches(h, req))
            && m.query.iter().all(|q| query_matches(q, req.path));
    }
    path_matches(&m.path, m.case_sensitive, req.path)
        && m.headers.iter().all(|h| header_matches(h, req))
        && m.query.iter().all(|q| query_matches(q, req.path))
}

fn path_matches(p: &PathMatch, case_sensitive: bool, full: &str) -> bool {
    let path = full.split_once('?').map_or(full, |(p, _)| p);
    let eq_prefix = |value: &str, prefix: &str| {
        if case_sensitive {
            value.starts_with(prefix)
        } else {
            value.len() >= prefix.len()
                && value.is_char_boundary(prefix.len())
                && value[..prefix.len()].eq_ignore_ascii_case(prefix)
        }
    };
    match p {
        PathMatch::Prefix(prefix) => eq_prefix(full, prefix),
        PathMatch::Exact(exact) => {
            if case_sensitive {
                path == exact
            } else {
                path.eq_ignore_ascii_case(exact)
            }
        }
        PathMatch::Regex(r) => r.is_match(path),
        PathMatch::SeparatedPrefix(prefix) => {
            eq_prefix(path, prefix)
                && (path.len() == prefix.len() || path.as_bytes().get(prefix.len()) == Some(&b'/'))
        }
        PathMatch::Connect => false,
    }
}

/// Envoy joins repeated headers with `,` and treats a missing header specially: only a
/// presence test can match it (unless `treat_missing_header_as_empty`).
pub fn header_matches(h: &HeaderMatcher, req: &RequestView<'_>) -> bool {
    let value: Option<String> = match h.name.as_str() {
        ":method" => Some(req.method.to_string()),
        ":path" => Some(req.path.to_string()),
        ":authority" | "host" => Some(req.authority.to_string()),
        ":scheme" => Some(req.scheme.to_string()),
        name => {
            let values: Vec<&str> = req
                .headers
                .get_all(name)
                .iter()
                .map(|v| v.to_str().unwrap_or(""))
                .collect();
            (!values.is_empty()).then(|| values.join(","))
        }
    };
    let value = match (value, h.treat_missing_as_empty) {
        (Some(v), _) => v,
        (None, true) => String::new(),
        (None, false) => {
            let presence = h.value.is_none();
            return presence && (h.present == h.invert);
        }
    };
    let matched = match &h.value {
        Some(m) => m.matches(&value),
        None => h.present,
    };
    matched != h.invert
}

fn query_matches(q: &QueryMatcher, full: &str) -> bool {
    let query = full.split_once('?').map_or("", |(_, q)| q);
    let first = query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == q.name).then(|| percent_decode(v))
    });
    match (first, &q.value) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(v), Some(m)) => m.matches(&v),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Action, HeaderMutation, StringMatch};

    fn vh(name: &str, domains: &[DomainMatch]) -> VirtualHost {
        VirtualHost {
            name: name.into(),
            domains: domains.to_vec(),
            routes: vec![],
            request_headers: HeaderMutation::default(),
            response_headers: HeaderMutation::default(),
            retry: None,
            faults: vec![],
            attempt_count: false,
            require_tls: crate::config::route::TlsRequired::No,
            cors: None,
        }
    }

    #[test]
    fn virtual_host_precedence() {
        use DomainMatch::*;
        let rc = RouteConfig {
            name: "r".into(),
            virtual_hosts: vec![
                vh("any", &[Any]),
                vh("prefix", &[Prefix("api.".into())]),
                vh("suffix", &[Suffix(".example.com".into())]),
                vh("longer", &[Suffix(".b.example.com".into())]),
                vh(
                    "exact",
                    &[
                        Exact("api.example.com".into()),
                        Exact("api.example.com:8080".into()),
                    ],
                ),
            ],
            request_headers: HeaderMutation::default(),
            response_headers: HeaderMutation::default(),
            ignore_port: false,
        };
        let cases = [
            ("api.example.com", "exact"),
            ("API.example.com:8080", "exact"),
            ("a.b.example.com", "longer"),
            ("x.example.com", "suffix"),
            ("api.other", "prefix"),
            ("example.com", "any"),
            (".example.com", "any"),
            ("x.example.com:80", "any"),
        ];
        for (host, want) in cases {
            assert_eq!(
                select_vhost(&rc, host).map(|v| v.name.as_str()),
                Some(want),
                "{host}"
            );
        }
    }

    fn view<'a>(path: &'a str, headers: &'a HeaderMap) -> RequestView<'a> {
        RequestView {
            method: "GET",
            path,
            authority: "h",
            scheme: "http",
            headers,
        }
    }

    #[test]
    fn paths() {
        let h = HeaderMap::new();
        let sep = PathMatch::SeparatedPrefix("/api".into());
        let cases = [
            (PathMatch::Prefix("/a".into()), true, "/abc", true),
            (PathMatch::Prefix("/A".into()), false, "/abc", true),
            (PathMatch::Prefix("/A".into()), true, "/abc", false),
            (PathMatch::Exact("/a".into()), true, "/a?x=1", true),
            (PathMatch::Exact("/a".into()), true, "/ab", false),
            (sep.clone(), true, "/api", true),
            (sep.clone(), true, "/api/x", true),
            (sep.clone(), true, "/api?x", true),
            (sep, true, "/apis", false),
        ];
        for (p, cs, path, want) in cases {
            let m = RouteMatch {
                path: p.clone(),
                case_sensitive: cs,
                headers: vec![],
                query: vec![],
            };
            assert_eq!(route_matches(&m, &view(path, &h)), want, "{p:?} {path}");
        }
    }

    #[test]
    fn headers_follow_envoy_missing_semantics() {
        let mut h = HeaderMap::new();
        h.insert("x", http::HeaderValue::from_static("abc"));
        let m = |value: Option<StringMatch>, present, invert, name: &str| HeaderMatcher {
            name: name.into(),
            value,
            present,
            invert,
            treat_missing_as_empty: false,
        };
        let exact = || Some(StringMatch::Exact("abc".into(), false));
        let cases = [
            (m(exact(), true, false, "x"), true),
            (m(exact(), true, true, "x"), false),
            (m(exact(), true, true, "missing"), false),
            (m(None, true, false, "x"), true),
            (m(None, true, false, "missing"), false),
            (m(None, false, false, "missing"), true),
            (m(None, true, true, "missing"), true),
            (
                m(
                    Some(StringMatch::Exact("GET".into(), false)),
                    true,
                    false,
                    ":method",
                ),
                true,
            ),
        ];
        for (matcher, want) in cases {
            assert_eq!(
                header_matches(&matcher, &view("/", &h)),
                want,
                "{matcher:?}"
            );
        }
    }

    #[test]
    fn query_parameters() {
        let q = |v: Option<StringMatch>| QueryMatcher {
            name: "a b".into(),
            value: v,
        };
        assert!(query_matches(&q(None), "/p?x=1&a%20b=2"));
        assert!(query_matches(
            &q(Some(StringMatch::Exact("2".into(), false))),
            "/p?a+b=2&a+b=3"
        ));
        assert!(!query_matches(
            &q(Some(StringMatch::Exact("3".into(), false))),
            "/p?a+b=2&a+b=3"
        ));
        assert!(!query_matches(&q(None), "/p"));
        let _ = Action::Direct {
            status: 200,
            body: None,
        };
    }
}
