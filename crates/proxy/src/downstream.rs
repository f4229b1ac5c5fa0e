//! What the HTTP connection manager does to a downstream request before routing, as Envoy
//! does: the connection's addresses (`Downstream`, put in request extensions by the accept
//! loop), RFC 3986 path normalization (`normalize_path`), absolute-form request targets
//! (`allow_absolute_url`), and `x-forwarded-for` / `x-forwarded-proto` /
//! `x-envoy-external-address` / `x-envoy-internal` (`use_remote_address`,
//! `xff_num_trusted_hops`, `internal_address_config`).

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
/// internal (`edge` is then `!internal && use_remote_address`). A client's own
/// `x-envoy-internal` is never trusted.
///
/// With `use_remote_address` the trusted client address is the connection's peer, or, with
/// `xff_num_trusted_hops` N > 0, the Nth address from the right of the received
/// `x-forwarded-for` (the peer when there are too few); the peer is then appended to
/// `x-forwarded-for` (a peer of exactly 127.0.0.1 or ::1 is replaced by the listener's local
/// address, as Envoy substitutes its own), `x-forwarded-proto` is overwritten unless trusted
/// hops are configured and it is present, and an edge request carries the client address in
/// `x-envoy-external-address`. Internal-address checks only apply when the request arrived
/// without `x-forwarded-for`.
///
/// Without it `x-forwarded-for` is left as received, `x-forwarded-proto` is only filled in
/// when absent, and the client address is the (N+1)th address from the right of
/// `x-forwarded-for`; internal-address checks apply only when that header holds exactly one
/// address and N is 0. A request is internal when checks apply and the client address is in
/// `internal_address_config` (unset: nothing is internal, as in Envoy 1.40); it then carries
/// `x-envoy-internal: true`.
pub fn forwarded_headers(
    headers: &mut HeaderMap,
    conn: &Downstream,
    opts: &crate::config::hcm_options::ManagerOptions,
) -> bool {
    // `forward_client_cert_details` SANITIZE (Envoy's default, the only value accepted):
    // a client certificate header from the client is never passed on.
    headers.remove("x-forwarded-client-cert");
    headers.remove("x-envoy-internal");
    let prior = received_xff(headers);
    let hops = opts.xff_num_trusted_hops;
    let (client, checks_apply) = if opts.use_remote_address {
        let trusted = (hops > 0)
            .then(|| prior.as_deref().and_then(|p| client_from_xff(p, hops - 1)))
            .flatten()
            .map(|(ip, _)| ip);
        let hop = if is_envoy_loopback(conn.peer.ip()) {
            conn.local.ip()
        } else {
            conn.peer.ip()
        };
        let joined = match &prior {
            Some(prior) if !prior.is_empty() => format!("{prior},{hop}"),
            _ => hop.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&joined) {
            headers.insert(XFF, v);
        }
        if hops == 0 || !headers.contains_key(XFP) {
            headers.insert(XFP, scheme(conn));
        }
        (Some(trusted.unwrap_or(conn.peer.ip())), prior.is_none())
    } else {
        if !headers.contains_key(XFP) {
            headers.insert(XFP, scheme(conn));
        }
        match prior.as_deref().and_then(|p| client_from_xff(p, hops)) {
            Some((ip, single)) => (Some(ip), single),
            None => (None, false),
        }
    };
    let internal = checks_apply && client.is_some_and(|ip| opts.is_internal(ip));
    if internal {
        headers.insert("x-envoy-internal", HeaderValue::from_static("true"));
    } else if opts.use_remote_address
        && let Some(ip) = client
        && let Ok(v) = HeaderValue::from_str(&ip.to_string())
    {
        headers.insert("x-envoy-external-address", v);
    }
    internal
}

const XFF: &str = "x-forwarded-for";
const XFP: &str = "x-forwarded-proto";

/// The received `x-forwarded-for`, its field lines joined with `,` as Envoy's header map does.
fn received_xff(headers: &HeaderMap) -> Option<String> {
    let mut lines = headers.get_all(XFF).iter();
    let first = lines.next()?;
    let mut out = String::from_utf8_lossy(first.as_bytes()).trim().to_string();
    for more in lines {
        out.push(',');
        out.push_str(String::from_utf8_lossy(more.as_bytes()).trim());
    }
    Some(out)
}

/// Envoy's reading of `x-forwarded-for`: skip the last `skip` entries, take the one before
/// them (whitespace trimmed) as an IP address. Also says whether it was the header's only
/// entry and nothing was skipped (the only case where internal-address checks apply).
fn client_from_xff(xff: &str, skip: u32) -> Option<(IpAddr, bool)> {
    let mut rest = xff;
    for _ in 0..skip {
        rest = &rest[..rest.rfind(',')?];
    }
    let (entry, single) = match rest.rfind(',') {
        // A trailing comma leaves the whole remainder, which does not parse, as in Envoy.
        Some(at) if at + 1 < rest.len() => (&rest[at + 1..], false),
        Some(_) => (rest, false),
        None => (rest, skip == 0),
    };
    let ip = entry.trim().parse::<IpAddr>().ok()?;
    Some((ip, single))
}

/// Envoy's loopback test, which only knows the canonical addresses (not all of 127/8).
fn is_envoy_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4 == std::net::Ipv4Addr::LOCALHOST,
        IpAddr::V6(v6) => v6 == std::net::Ipv6Addr::LOCALHOST,
    }
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

    /// A plaintext connection from 10.1.2.3 to 10.0.0.1:80, and internal addresses 10.0.0.0/8.
    fn peer_in_10_slash_8() -> (Downstream, Option<std::sync::Arc<InternalAddresses>>) {
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
        (conn, internal)
    }

    #[test]
    fn internal_requests_follow_envoy() {
        let (conn, internal) = peer_in_10_slash_8();
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

    #[test]
    fn xff_entries_are_read_from_the_right() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert_eq!(client_from_xff("1.1.1.1", 0), Some((ip("1.1.1.1"), true)));
        assert_eq!(client_from_xff("1.1.1.1", 1), None);
        assert_eq!(
            client_from_xff("1.1.1.1, 2.2.2.2", 0),
            Some((ip("2.2.2.2"), false))
        );
        assert_eq!(
            client_from_xff("1.1.1.1, 2.2.2.2", 1),
            Some((ip("1.1.1.1"), false))
        );
        assert_eq!(
            client_from_xff("fd00::1,2.2.2.2", 1),
            Some((ip("fd00::1"), false))
        );
        assert_eq!(client_from_xff("1.1.1.1,", 0), None);
        assert_eq!(client_from_xff("junk", 0), None);
        assert!(is_envoy_loopback(ip("127.0.0.1")) && is_envoy_loopback(ip("::1")));
        assert!(!is_envoy_loopback(ip("127.0.0.5")));
    }

    #[test]
    fn trusted_hops_choose_the_client_address() {
        let (conn, internal) = peer_in_10_slash_8();
        let edge = |hops| ManagerOptions {
            use_remote_address: true,
            xff_num_trusted_hops: hops,
            internal: internal.clone(),
            ..ManagerOptions::default()
        };
        let received = || {
            let mut h = HeaderMap::new();
            h.insert(
                "x-forwarded-for",
                HeaderValue::from_static("1.1.1.1, 2.2.2.2"),
            );
            h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
            h
        };
        for (hops, client) in [
            (0, "10.1.2.3"),
            (1, "2.2.2.2"),
            (2, "1.1.1.1"),
            (3, "10.1.2.3"),
        ] {
            let mut h = received();
            assert!(!forwarded_headers(&mut h, &conn, &edge(hops)), "{hops}");
            assert_eq!(h["x-envoy-external-address"], client, "{hops}");
            assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2,10.1.2.3");
            let proto = if hops == 0 { "http" } else { "https" };
            assert_eq!(h["x-forwarded-proto"], proto, "{hops}");
        }
        let mut bare = HeaderMap::new();
        assert!(
            forwarded_headers(&mut bare, &conn, &edge(1)),
            "the peer is internal"
        );
        assert_eq!(bare["x-forwarded-proto"], "http");
        let sidecar = |hops| ManagerOptions {
            xff_num_trusted_hops: hops,
            internal: internal.clone(),
            ..ManagerOptions::default()
        };
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.7"));
        assert!(forwarded_headers(&mut h.clone(), &conn, &sidecar(0)));
        assert!(!forwarded_headers(&mut h.clone(), &conn, &sidecar(1)));
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("10.0.0.7,11.0.0.1"),
        );
        assert!(
            !forwarded_headers(&mut h, &conn, &sidecar(1)),
            "only one entry counts"
        );
        assert!(!h.contains_key("x-envoy-external-address"));
        let from_loopback = Downstream {
            peer: "127.0.0.5:5000".parse().expect("addr"),
            ..conn
        };
        let mut h = HeaderMap::new();
        forwarded_headers(&mut h, &from_loopback, &edge(0));
        assert_eq!(h["x-forwarded-for"], "127.0.0.5");
        let from_localhost = Downstream {
            peer: "127.0.0.1:5000".parse().expect("addr"),
            ..conn
        };
        let mut h = HeaderMap::new();
        forwarded_headers(&mut h, &from_localhost, &edge(0));
        assert_eq!(h["x-forwarded-for"], "10.0.0.1");
        assert_eq!(h["x-envoy-external-address"], "127.0.0.1");
    }
}
