//! What the HTTP connection manager does to a downstream request before routing, as Envoy
//! does: the connection's addresses (`Downstream`, put in request extensions by the accept
//! loop), RFC 3986 path normalization (`normalize_path`), absolute-form request targets
//! (`allow_absolute_url`), and `x-forwarded-for` / `x-forwarded-proto` /
//! `x-envoy-external-address` (`use_remote_address`).

use std::net::{IpAddr, SocketAddr};

use http::{HeaderMap, HeaderValue};

/// The downstream connection a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Downstream {
    pub peer: SocketAddr,
    /// The local address the client connected to.
    pub local: SocketAddr,
    /// Where the client meant to connect: SO_ORIGINAL_DST when the connection was redirected
    /// by iptables and handed over by a `use_original_dst` listener, else `local`.
    pub original_dst: SocketAddr,
    /// The connection arrived over TLS the proxy terminated (`x-forwarded-proto: https`).
    pub tls: bool,
}

impl Downstream {
    /// Addresses of an accepted connection that was not redirected.
    pub fn of(stream: &tokio::net::TcpStream, peer: SocketAddr) -> Self {
        let local = stream.local_addr().unwrap_or(peer);
        Downstream {
            peer,
            local,
            original_dst: local,
            tls: false,
        }
    }
}

/// `authority` without a trailing `:port` (IPv6 literals keep their brackets).
pub fn host_without_port(authority: &str) -> &str {
    match authority.rsplit_once(':') {
        Some((host, port))
            if port.bytes().all(|b| b.is_ascii_digit())
                && (!host.contains(':') || host.ends_with(']')) =>
        {
            host
        }
        _ => authority,
    }
}

/// The `:path` Envoy routes on. With `allow_absolute_url` (Envoy's default) an absolute-form
/// target (`GET http://reviews:9080/x`) is split: its authority becomes the host and only the
/// path is routed; without it the whole URL stays the path, as Envoy's codec leaves it.
pub fn request_path(uri: &http::Uri, allow_absolute_url: bool) -> String {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    match (allow_absolute_url, uri.scheme_str(), uri.authority()) {
        (false, Some(scheme), Some(auth)) => format!("{scheme}://{auth}{path}"),
        _ => path.to_string(),
    }
}

/// Envoy's `normalize_path`: RFC 3986 §6.2.2 normalization of the path (the query is left
/// alone): `\` becomes `/`, percent-encoded unreserved characters are decoded, other escapes
/// get upper-case hex, and `.`/`..` segments are removed (§5.2.4). `None` when the path is not
/// origin-form (Envoy answers 400).
pub fn normalize_path(path_and_query: &str) -> Option<String> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    if !path.starts_with('/') && !path.starts_with('\\') {
        return None;
    }
    let decoded = decode_unreserved(&path.replace('\\', "/"));
    let mut out = remove_dot_segments(&decoded);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Some(out)
}

fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = String::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: Option<&u8>| b.and_then(|b| char::from(*b).to_digit(16));
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (hex(bytes.get(i + 1)), hex(bytes.get(i + 2)))
        {
            let c = char::from(u8::try_from(h * 16 + l).unwrap_or(0));
            if c.is_ascii_alphanumeric() || "-._~".contains(c) {
                out.push(c);
            } else {
                out.push_str(&format!("%{:02X}", h * 16 + l));
            }
            i += 3;
            continue;
        }
        out.push(char::from(bytes[i]));
        i += 1;
    }
    out
}

/// RFC 3986 §5.2.4 on an absolute path.
fn remove_dot_segments(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in segments.iter().enumerate() {
        match *seg {
            "." => trailing_slash = i == last,
            ".." => {
                out.pop();
                trailing_slash = i == last;
            }
            s => {
                out.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut joined = format!("/{}", out.join("/"));
    if trailing_slash && !joined.ends_with('/') {
        joined.push('/');
    }
    joined
}

/// A virtual host with `require_tls` answers a plaintext request with a 301 to the same
/// host and path over https.
pub fn tls_redirect(authority: &str, uri: &http::Uri) -> http::Response<crate::pool::Body> {
    use http_body_util::{BodyExt, Empty};
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let mut resp = http::Response::new(
        Empty::<bytes::Bytes>::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = http::StatusCode::MOVED_PERMANENTLY;
    if let Ok(v) = HeaderValue::from_str(&format!("https://{authority}{path}")) {
        resp.headers_mut().insert(http::header::LOCATION, v);
    }
    resp
}

/// Envoy's forwarded headers and its rule for internal requests; returns whether this one is
/// internal. A client's own `x-envoy-internal` is never trusted. With `use_remote_address` the
/// connection's peer is appended to `x-forwarded-for` (a loopback peer is replaced by the
/// listener's local address, as Envoy substitutes its own), `x-forwarded-proto` is overwritten
/// and `x-envoy-external-address` carries a peer that is not internal; without it
/// `x-forwarded-for` is left as received and `x-forwarded-proto` is only filled in when absent.
/// The request is internal when `x-forwarded-for` (after appending) holds a single address
/// and that address (the peer, or the header's address without `use_remote_address`) is in
/// `internal_address_config`; it then carries `x-envoy-internal: true`. Unset, nothing is
/// internal (Envoy 1.40).
pub fn forwarded_headers(
    headers: &mut HeaderMap,
    conn: &Downstream,
    opts: &crate::config::hcm_options::ManagerOptions,
) -> bool {
    const XFF: &str = "x-forwarded-for";
    const XFP: &str = "x-forwarded-proto";
    // `forward_client_cert_details` SANITIZE (Envoy's default, the only value accepted):
    // a client certificate header from the client is never passed on.
    headers.remove("x-forwarded-client-cert");
    headers.remove("x-envoy-internal");
    let prior = headers
        .get(XFF)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    let (remote, single) = if opts.use_remote_address {
        let hop: IpAddr = if conn.peer.ip().is_loopback() {
            conn.local.ip()
        } else {
            conn.peer.ip()
        };
        let joined = match &prior {
            Some(prior) => format!("{prior},{hop}"),
            None => hop.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&joined) {
            headers.insert(XFF, v);
        }
        headers.insert(XFP, scheme(conn));
        if !opts.is_internal(conn.peer.ip())
            && let Ok(v) = HeaderValue::from_str(&conn.peer.ip().to_string())
        {
            headers.insert("x-envoy-external-address", v);
        }
        (Some(conn.peer.ip()), prior.is_none())
    } else {
        if !headers.contains_key(XFP) {
            headers.insert(XFP, scheme(conn));
        }
        let entries: Vec<&str> = prior
            .as_deref()
            .map_or(Vec::new(), |p| p.split(',').collect());
        let last = entries.last().and_then(|e| e.trim().parse::<IpAddr>().ok());
        (last, entries.len() == 1)
    };
    let internal = single && remote.is_some_and(|ip| opts.is_internal(ip));
    if internal {
        headers.insert("x-envoy-internal", HeaderValue::from_static("true"));
    }
    internal
}

fn scheme(conn: &Downstream) -> HeaderValue {
    HeaderValue::from_static(if conn.tls { "https" } else { "http" })
}

/// Envoy's test for `require_tls`: the request's `x-forwarded-proto` (set from the connection
/// by `forwarded_headers`) says https.
pub fn is_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_paths_like_rfc_3986() {
        let cases = [
            ("/a/b/../c", Some("/a/c")),
            ("/a/./b/.", Some("/a/b/")),
            ("/../../x", Some("/x")),
            ("/a/%2e%2E/b", Some("/b")),
            ("/%7euser/%41%2f", Some("/~user/A%2F")),
            ("/a%2fb", Some("/a%2Fb")),
            ("\\a\\..\\b?x=/../", Some("/b?x=/../")),
            ("/a/..", Some("/")),
            ("/", Some("/")),
            ("/a//b", Some("/a//b")),
            ("http://h/x", None),
            ("*", None),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_path(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn strips_ports() {
        for (a, want) in [
            ("a.b:80", "a.b"),
            ("a.b", "a.b"),
            ("[::1]:80", "[::1]"),
            ("[::1]", "[::1]"),
            ("a:b", "a:b"),
        ] {
            assert_eq!(host_without_port(a), want, "{a}");
        }
    }

    #[test]
    fn absolute_form_targets() {
        let uri: http::Uri = "http://reviews:9080/r?x=1".parse().expect("uri");
        assert_eq!(request_path(&uri, true), "/r?x=1");
        assert_eq!(request_path(&uri, false), "http://reviews:9080/r?x=1");
        let origin: http::Uri = "/r".parse().expect("uri");
        assert_eq!(request_path(&origin, false), "/r");
    }

    use crate::config::hcm_options::{InternalAddresses, ManagerOptions};

    #[test]
    fn internal_requests_follow_envoy() {
        let conn = Downstream {
            peer: "10.1.2.3:5000".parse().expect("addr"),
            local: "10.0.0.1:80".parse().expect("addr"),
            original_dst: "10.0.0.1:80".parse().expect("addr"),
            tls: false,
        };
        let internal = Some(std::sync::Arc::new(InternalAddresses {
            unix_sockets: false,
            cidrs: vec![("10.0.0.0".parse().expect("ip"), 8)],
        }));
        let edge = ManagerOptions {
            use_remote_address: true,
            internal: internal.clone(),
            ..ManagerOptions::default()
        };
        let mut h = HeaderMap::new();
        assert!(forwarded_headers(&mut h, &conn, &edge));
        assert_eq!(h["x-envoy-internal"], "true");
        assert!(!h.contains_key("x-envoy-external-address"));
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.9.9.9"));
        assert!(!forwarded_headers(&mut h, &conn, &edge), "two hops");
        assert!(!h.contains_key("x-envoy-internal"));
        let sidecar = ManagerOptions {
            internal,
            ..ManagerOptions::default()
        };
        let mut h = HeaderMap::new();
        assert!(!forwarded_headers(&mut h, &conn, &sidecar), "no XFF");
        h.insert("x-forwarded-for", HeaderValue::from_static("10.9.9.9"));
        assert!(forwarded_headers(&mut h, &conn, &sidecar));
        h.insert("x-forwarded-for", HeaderValue::from_static("11.9.9.9"));
        assert!(!forwarded_headers(&mut h, &conn, &sidecar));
        assert!(!forwarded_headers(
            &mut h,
            &conn,
            &ManagerOptions::default()
        ));
    }

    #[test]
    fn forwarded_for_follows_use_remote_address() {
        let conn = Downstream {
            peer: "10.1.2.3:5000".parse().expect("addr"),
            local: "10.0.0.1:80".parse().expect("addr"),
            original_dst: "10.0.0.1:80".parse().expect("addr"),
            tls: false,
        };
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("x-envoy-internal", HeaderValue::from_static("true"));
        let edge_opts = ManagerOptions {
            use_remote_address: true,
            ..ManagerOptions::default()
        };
        let sidecar_opts = ManagerOptions::default();
        let mut edge = h.clone();
        assert!(!forwarded_headers(&mut edge, &conn, &edge_opts));
        assert_eq!(edge["x-forwarded-for"], "1.1.1.1,10.1.2.3");
        assert_eq!(edge["x-forwarded-proto"], "http");
        assert_eq!(edge["x-envoy-external-address"], "10.1.2.3");
        assert!(!edge.contains_key("x-envoy-internal"));
        let mut sidecar = h.clone();
        assert!(!forwarded_headers(&mut sidecar, &conn, &sidecar_opts));
        assert_eq!(sidecar["x-forwarded-for"], "1.1.1.1");
        assert_eq!(sidecar["x-forwarded-proto"], "https");
        let mut bare = HeaderMap::new();
        forwarded_headers(&mut bare, &conn, &sidecar_opts);
        assert_eq!(bare["x-forwarded-proto"], "http");
        assert!(!bare.contains_key("x-forwarded-for"));
        let tls = Downstream { tls: true, ..conn };
        let mut over_tls = h.clone();
        forwarded_headers(&mut over_tls, &tls, &edge_opts);
        assert_eq!(over_tls["x-forwarded-proto"], "https");
        assert!(is_https(&over_tls) && !is_https(&edge));
    }
}
