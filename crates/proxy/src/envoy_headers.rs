//! The headers Envoy adds on its own: the connection manager's `server` response header
//! (`server_name`, `server_header_transformation`) on every response, local replies included,
//! and the router's `x-envoy-upstream-service-time` (responses from an upstream) and
//! `x-envoy-expected-rq-timeout-ms` (upstream requests), which `suppress_envoy_headers` turns
//! off. The server value is built once per config; per request only one small integer is
//! formatted per router header.

use std::time::Duration;

use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use http::{HeaderMap, HeaderValue};

use crate::config::{FieldError, FieldResult};

pub const SERVER: http::header::HeaderName = http::header::SERVER;
pub const UPSTREAM_SERVICE_TIME: &str = "x-envoy-upstream-service-time";
pub const EXPECTED_RQ_TIMEOUT_MS: &str = "x-envoy-expected-rq-timeout-ms";

/// `server_header_transformation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerMode {
    Overwrite,
    AppendIfAbsent,
    PassThrough,
}

/// What the connection manager does with the `server` response header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHeader {
    pub mode: ServerMode,
    /// `server_name` (Envoy's default `envoy` when empty).
    pub value: HeaderValue,
}

impl Default for ServerHeader {
    fn default() -> Self {
        ServerHeader {
            mode: ServerMode::Overwrite,
            value: HeaderValue::from_static("envoy"),
        }
    }
}

impl ServerHeader {
    /// Reads `server_name` and `server_header_transformation`.
    pub fn parse(m: &hcm::HttpConnectionManager) -> FieldResult<Self> {
        use hcm::http_connection_manager::ServerHeaderTransformation as T;
        let mode = match T::try_from(m.server_header_transformation) {
            Ok(T::Overwrite) => ServerMode::Overwrite,
            Ok(T::AppendIfAbsent) => ServerMode::AppendIfAbsent,
            Ok(T::PassThrough) => ServerMode::PassThrough,
            Err(_) => {
                return Err(FieldError::invalid(
                    "server_header_transformation",
                    format!("unknown value {}", m.server_header_transformation),
                ));
            }
        };
        // Static values clone without touching a reference count on every response; Istio
        // always sends `istio-envoy`.
        let value = match m.server_name.as_str() {
            "" | "envoy" => HeaderValue::from_static("envoy"),
            "istio-envoy" => HeaderValue::from_static("istio-envoy"),
            name => HeaderValue::from_str(name)
                .map_err(|_| FieldError::invalid("server_name", "not a valid header value"))?,
        };
        Ok(ServerHeader { mode, value })
    }

    /// Set the response's `server` header as Envoy's connection manager does.
    pub fn apply(&self, headers: &mut HeaderMap) {
        match self.mode {
            ServerMode::Overwrite => {
                headers.insert(SERVER, self.value.clone());
            }
            ServerMode::AppendIfAbsent => {
                if !headers.contains_key(SERVER) {
                    headers.insert(SERVER, self.value.clone());
                }
            }
            ServerMode::PassThrough => {}
        }
    }
}

/// Envoy's `x-envoy-expected-rq-timeout-ms`: the per-try timeout when it is set and shorter
/// than the route timeout (or there is none), else the route timeout; nothing when neither
/// applies (checked against Envoy 1.40, see `tests/scenarios/envoy_headers.rs`).
pub fn expected_timeout(route: Option<Duration>, per_try: Option<Duration>) -> Option<HeaderValue> {
    let route = route.filter(|d| !d.is_zero());
    let per_try = per_try
        .filter(|d| !d.is_zero())
        .filter(|p| route.is_none_or(|t| *p < t));
    let ms = per_try.or(route)?.as_millis();
    Some(HeaderValue::from(u64::try_from(ms).unwrap_or(u64::MAX)))
}

/// `x-envoy-upstream-service-time`: whole milliseconds since the request went upstream.
pub fn service_time(since: tokio::time::Instant) -> HeaderValue {
    let ms = since.elapsed().as_millis();
    HeaderValue::from(u64::try_from(ms).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn expected_timeout_follows_envoy() {
        let v = |r, p| expected_timeout(r, p).map(|v| v.to_str().unwrap_or("").to_string());
        assert_eq!(v(ms(15_000), None).as_deref(), Some("15000"));
        assert_eq!(v(None, None), None);
        assert_eq!(v(ms(0), None), None);
        assert_eq!(v(ms(3_000), ms(1_000)).as_deref(), Some("1000"));
        // A per-try timeout not below the route timeout does not count.
        assert_eq!(v(ms(3_000), ms(5_000)).as_deref(), Some("3000"));
        assert_eq!(v(ms(3_000), ms(3_000)).as_deref(), Some("3000"));
        assert_eq!(v(None, ms(1_000)).as_deref(), Some("1000"));
        assert_eq!(v(ms(0), ms(0)), None);
    }

    #[test]
    fn server_header_modes() {
        let parse = |name: &str, t: i32| {
            ServerHeader::parse(&hcm::HttpConnectionManager {
                server_name: name.into(),
                server_header_transformation: t,
                ..Default::default()
            })
        };
        let upstream = || {
            let mut h = HeaderMap::new();
            h.insert(SERVER, HeaderValue::from_static("upstream"));
            h
        };
        let server = |s: &ServerHeader, mut h: HeaderMap| {
            s.apply(&mut h);
            h.get(SERVER).map(|v| v.to_str().unwrap_or("").to_string())
        };
        let default = parse("", 0).expect("default");
        assert_eq!(default, ServerHeader::default());
        assert_eq!(server(&default, upstream()).as_deref(), Some("envoy"));
        let istio = parse("istio-envoy", 0).expect("overwrite");
        assert_eq!(
            server(&istio, HeaderMap::new()).as_deref(),
            Some("istio-envoy")
        );
        let append = parse("istio-envoy", 1).expect("append");
        assert_eq!(server(&append, upstream()).as_deref(), Some("upstream"));
        assert_eq!(
            server(&append, HeaderMap::new()).as_deref(),
            Some("istio-envoy")
        );
        let pass = parse("istio-envoy", 2).expect("pass through");
        let custom = parse("mesh-gw", 0).expect("any valid value");
        assert_eq!(server(&custom, upstream()).as_deref(), Some("mesh-gw"));
        assert_eq!(server(&pass, upstream()).as_deref(), Some("upstream"));
        assert_eq!(server(&pass, HeaderMap::new()), None);
        assert_eq!(
            parse("bad\nname", 0).map_err(|e| e.field),
            Err("server_name".to_string())
        );
        assert_eq!(
            parse("", 7).map_err(|e| e.field),
            Err("server_header_transformation".to_string())
        );
    }
}
