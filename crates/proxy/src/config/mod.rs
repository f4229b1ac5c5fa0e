//! Envoy protobuf -> Plexus domain types. Every conversion is a `TryFrom` that either yields a
//! type the data plane can run as written, or a `ConfigError` naming the field it cannot honour;
//! nothing is silently dropped. Fields that only feed observability Plexus does not have yet
//! (stat prefixes, metadata, decorators) are accepted and noted where they are destructured.

// Deprecated fields are still on the wire; they are matched so that setting one is an error
// or is honoured, never ignored.
#![allow(deprecated)]

pub mod action;
pub mod capture;
pub mod chain_match;
pub mod circuit;
pub mod cluster;
pub mod cluster_ext;
pub mod cors;
pub mod dns;
pub mod fault;
pub mod hash;
pub mod hcm_options;
pub mod health;
pub mod keepalive;
pub mod listener;
pub mod outlier;
pub mod retry;
pub mod route;
pub mod route_match;
pub mod stream_timeout;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::r#type::matcher::v3 as matcher;
use envoy_types::pb::google::protobuf;
use http::{HeaderName, HeaderValue};

pub use action::{
    Action, ClusterChoice, ConnectUpgrade, Forward, Mirror, Redirect, WeightedTarget,
};
pub use circuit::Limits;
pub use cluster::{Cluster, Discovery, Endpoint, LbPolicy, LoadAssignment, UpstreamProtocol};
pub use fault::{Abort, FAULT_FILTER, Fault, Fraction};
pub use listener::{
    FaultFilter, HttpManager, Listener, ListenerKind, RouteSource, TCP_DEFAULT_IDLE_TIMEOUT,
    TcpProxy,
};
pub use outlier::OutlierDetection;
pub use retry::{RetryOn, RetryPolicy};
pub use route::{DomainMatch, Route, RouteConfig, VirtualHost};
pub use route_match::{HeaderMatcher, PathMatch, QueryMatcher, RouteMatch};
pub use stream_timeout::{GrpcTimeout, StreamDuration};

/// A resource Plexus cannot run, naming the resource and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {name:?}: {field}: {reason}")]
pub struct ConfigError {
    pub kind: &'static str,
    pub name: String,
    pub field: String,
    pub reason: String,
}

/// A field-level failure before the resource is known; `ConfigError` adds kind and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

pub const UNSUPPORTED: &str = "not supported by Plexus yet";

impl FieldError {
    pub fn unsupported(field: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: UNSUPPORTED.to_string(),
        }
    }
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            reason: reason.into(),
        }
    }
    /// Prefix the field path with the enclosing field.
    pub fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() {
            parent.to_string()
        } else {
            format!("{parent}.{}", self.field)
        };
        self
    }
    pub fn into_config(self, kind: &'static str, name: &str) -> ConfigError {
        ConfigError {
            kind,
            name: name.to_string(),
            field: self.field,
            reason: self.reason,
        }
    }
}

pub type FieldResult<T> = Result<T, FieldError>;

/// Whether a protobuf field holds a non-default value (the field was set by the sender).
pub trait IsSet {
    fn is_set(&self) -> bool;
}
impl<T: IsSet + ?Sized> IsSet for &T {
    fn is_set(&self) -> bool {
        (**self).is_set()
    }
}
impl IsSet for String {
    fn is_set(&self) -> bool {
        !self.is_empty()
    }
}
impl<T> IsSet for Vec<T> {
    fn is_set(&self) -> bool {
        !self.is_empty()
    }
}
impl<T> IsSet for Option<T> {
    fn is_set(&self) -> bool {
        self.is_some()
    }
}
impl<K, V> IsSet for HashMap<K, V> {
    fn is_set(&self) -> bool {
        !self.is_empty()
    }
}
impl IsSet for bool {
    fn is_set(&self) -> bool {
        *self
    }
}
impl IsSet for i32 {
    fn is_set(&self) -> bool {
        *self != 0
    }
}
impl IsSet for u32 {
    fn is_set(&self) -> bool {
        *self != 0
    }
}

/// Reject every listed field that is set: `deny_set!(health_checks, outlier_detection)`.
#[macro_export]
macro_rules! deny_set {
    ($($field:ident),+ $(,)?) => {
        $(
            if $crate::config::IsSet::is_set(&$field) {
                return Err($crate::config::FieldError::unsupported(
                    stringify!($field).trim_start_matches("r#"),
                ));
            }
        )+
    };
}

pub fn duration(d: &protobuf::Duration) -> FieldResult<Duration> {
    let secs =
        u64::try_from(d.seconds).map_err(|_| FieldError::invalid("", "negative duration"))?;
    let nanos = u32::try_from(d.nanos).map_err(|_| FieldError::invalid("", "negative duration"))?;
    Ok(Duration::new(secs, nanos))
}

/// A socket address with a numeric port and an IP literal (no DNS names yet).
pub fn socket_address(addr: &Option<core::Address>) -> FieldResult<SocketAddr> {
    use core::address::Address as A;
    let Some(core::Address {
        address: Some(inner),
    }) = addr
    else {
        return Err(FieldError::invalid("", "address is required"));
    };
    let A::SocketAddress(sa) = inner else {
        return Err(FieldError::unsupported("pipe/internal address"));
    };
    let core::SocketAddress {
        protocol,
        address,
        resolver_name,
        ipv4_compat: _,
        network_namespace_filepath,
        port_specifier,
    } = sa;
    deny_set!(protocol, resolver_name, network_namespace_filepath);
    let port = match port_specifier {
        Some(core::socket_address::PortSpecifier::PortValue(p)) => {
            u16::try_from(*p).map_err(|_| {
                FieldError::invalid("socket_address.port_value", format!("{p} is not a port"))
            })?
        }
        Some(core::socket_address::PortSpecifier::NamedPort(_)) => {
            return Err(FieldError::unsupported("socket_address.named_port"));
        }
        None => 0,
    };
    let ip: std::net::IpAddr = address.parse().map_err(|_| {
        FieldError::invalid(
            "socket_address.address",
            format!(
                "{address:?} is not an IP address (DNS names need STRICT_DNS, not supported yet)"
            ),
        )
    })?;
    Ok(SocketAddr::new(ip, port))
}

/// How a header mutation combines with existing values (Envoy's `HeaderAppendAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendAction {
    AppendIfExistsOrAdd,
    AddIfAbsent,
    OverwriteIfExistsOrAdd,
    OverwriteIfExists,
}

/// Headers to add and remove at one level (route config, virtual host, route, cluster weight).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeaderMutation {
    pub add: Vec<(HeaderName, HeaderValue, AppendAction)>,
    pub remove: Vec<HeaderName>,
}

impl HeaderMutation {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }

    pub fn parse(add: &[core::HeaderValueOption], remove: &[String]) -> FieldResult<Self> {
        let mut out = HeaderMutation::default();
        for (i, opt) in add.iter().enumerate() {
            out.add
                .push(header_option(opt).map_err(|e| e.within(&format!("headers_to_add[{i}]")))?);
        }
        for (i, name) in remove.iter().enumerate() {
            let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                FieldError::invalid(format!("headers_to_remove[{i}]"), "invalid header name")
            })?;
            out.remove.push(n);
        }
        Ok(out)
    }

    /// Apply to a header map: removals first, then additions (Envoy's order).
    pub fn apply(&self, headers: &mut http::HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value, action) in &self.add {
            match action {
                AppendAction::AppendIfExistsOrAdd => {
                    headers.append(name.clone(), value.clone());
                }
                AppendAction::AddIfAbsent => {
                    if !headers.contains_key(name) {
                        headers.insert(name.clone(), value.clone());
                    }
                }
                AppendAction::OverwriteIfExistsOrAdd => {
                    headers.insert(name.clone(), value.clone());
                }
                AppendAction::OverwriteIfExists => {
                    if headers.contains_key(name) {
                        headers.insert(name.clone(), value.clone());
                    }
                }
            }
        }
    }
}

fn header_option(
    opt: &core::HeaderValueOption,
) -> FieldResult<(HeaderName, HeaderValue, AppendAction)> {
    let core::HeaderValueOption {
        header,
        append,
        append_action,
        keep_empty_value,
    } = opt;
    deny_set!(keep_empty_value);
    let Some(core::HeaderValue {
        key,
        value,
        raw_value,
    }) = header
    else {
        return Err(FieldError::invalid("header", "header is required"));
    };
    let name = HeaderName::from_bytes(key.as_bytes())
        .map_err(|_| FieldError::invalid("header.key", format!("{key:?} is not a header name")))?;
    let bytes = if raw_value.is_empty() {
        value.as_bytes()
    } else {
        raw_value.as_slice()
    };
    let value = HeaderValue::from_bytes(bytes)
        .map_err(|_| FieldError::invalid("header.value", "not a valid header value"))?;
    let action = match (append, append_action) {
        // The deprecated `append` wins when present, as in Envoy.
        (Some(protobuf::BoolValue { value: true }), _) => AppendAction::AppendIfExistsOrAdd,
        (Some(protobuf::BoolValue { value: false }), _) => AppendAction::OverwriteIfExistsOrAdd,
        (None, 0) => AppendAction::AppendIfExistsOrAdd,
        (None, 1) => AppendAction::AddIfAbsent,
        (None, 2) => AppendAction::OverwriteIfExistsOrAdd,
        (None, 3) => AppendAction::OverwriteIfExists,
        (None, n) => {
            return Err(FieldError::invalid(
                "append_action",
                format!("unknown value {n}"),
            ));
        }
    };
    Ok((name, value, action))
}

/// Envoy's `StringMatcher`, compiled.
#[derive(Debug, Clone)]
pub enum StringMatch {
    Exact(String, bool),
    Prefix(String, bool),
    Suffix(String, bool),
    Contains(String, bool),
    Regex(regex::Regex),
}

impl PartialEq for StringMatch {
    fn eq(&self, other: &Self) -> bool {
        use StringMatch::*;
        match (self, other) {
            (Exact(a, x), Exact(b, y))
            | (Prefix(a, x), Prefix(b, y))
            | (Suffix(a, x), Suffix(b, y))
            | (Contains(a, x), Contains(b, y)) => a == b && x == y,
            (Regex(a), Regex(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}

impl StringMatch {
    pub fn matches(&self, value: &str) -> bool {
        fn fold(s: &str, ignore_case: bool) -> std::borrow::Cow<'_, str> {
            if ignore_case {
                s.to_ascii_lowercase().into()
            } else {
                s.into()
            }
        }
        match self {
            StringMatch::Exact(p, ic) => fold(value, *ic) == fold(p, *ic),
            StringMatch::Prefix(p, ic) => fold(value, *ic).starts_with(&*fold(p, *ic)),
            StringMatch::Suffix(p, ic) => fold(value, *ic).ends_with(&*fold(p, *ic)),
            StringMatch::Contains(p, ic) => fold(value, *ic).contains(&*fold(p, *ic)),
            StringMatch::Regex(r) => r.is_match(value),
        }
    }
}

impl TryFrom<&matcher::StringMatcher> for StringMatch {
    type Error = FieldError;
    fn try_from(m: &matcher::StringMatcher) -> FieldResult<Self> {
        use matcher::string_matcher::MatchPattern as P;
        let matcher::StringMatcher {
            ignore_case,
            match_pattern,
        } = m;
        let ic = *ignore_case;
        Ok(match match_pattern {
            Some(P::Exact(s)) => StringMatch::Exact(s.clone(), ic),
            Some(P::Prefix(s)) => StringMatch::Prefix(s.clone(), ic),
            Some(P::Suffix(s)) => StringMatch::Suffix(s.clone(), ic),
            Some(P::Contains(s)) => StringMatch::Contains(s.clone(), ic),
            Some(P::SafeRegex(r)) => {
                if ic {
                    return Err(FieldError::invalid(
                        "ignore_case",
                        "cannot be combined with safe_regex",
                    ));
                }
                StringMatch::Regex(full_regex(r).map_err(|e| e.within("safe_regex"))?)
            }
            Some(P::Custom(_)) => return Err(FieldError::unsupported("custom")),
            None => {
                return Err(FieldError::invalid(
                    "match_pattern",
                    "a match pattern is required",
                ));
            }
        })
    }
}

/// Compile a `RegexMatcher` anchored at both ends: Envoy's safe_regex must match the whole value.
pub fn full_regex(r: &matcher::RegexMatcher) -> FieldResult<regex::Regex> {
    compile_regex(r, true)
}

/// Compile a `RegexMatcher` as written (for substitutions, which search).
pub fn search_regex(r: &matcher::RegexMatcher) -> FieldResult<regex::Regex> {
    compile_regex(r, false)
}

fn compile_regex(r: &matcher::RegexMatcher, anchored: bool) -> FieldResult<regex::Regex> {
    let matcher::RegexMatcher {
        regex,
        engine_type: _,
    } = r;
    let pattern = if anchored {
        format!("^(?:{regex})$")
    } else {
        regex.clone()
    };
    regex::RegexBuilder::new(&pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| FieldError::invalid("regex", format!("invalid regex {regex:?}: {e}")))
}

/// `typed_per_filter_config`: only fault filter overrides are understood; the result is keyed
/// by filter name.
pub fn per_filter_faults(
    map: &HashMap<String, protobuf::Any>,
) -> FieldResult<Vec<(String, fault::Fault)>> {
    use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
    use prost::Name;
    let mut names: Vec<&String> = map.keys().collect();
    names.sort();
    let mut out = Vec::new();
    for name in names {
        let Some(any) = map.get(name) else { continue };
        let at = format!("typed_per_filter_config[{name:?}]");
        // CORS policies are read by `cors::policy`.
        if cors::is_policy(any) {
            continue;
        }
        if any.type_url != HttpFault::type_url() {
            return Err(FieldError::unsupported(format!("{at} ({})", any.type_url)));
        }
        let cfg: HttpFault = unpack_field(any, &at)?;
        out.push((
            name.clone(),
            fault::Fault::try_from(&cfg).map_err(|e| e.within(&at))?,
        ));
    }
    Ok(out)
}

/// Decode a typed `Any` payload, naming the field on failure.
pub fn unpack_field<T: prost::Message + prost::Name + Default>(
    any: &protobuf::Any,
    field: &str,
) -> FieldResult<T> {
    plexus_xds::unpack::<T>(any).map_err(|e| FieldError::invalid(field, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_matchers() {
        let cases = [
            (StringMatch::Exact("Foo".into(), true), "foo", true),
            (StringMatch::Exact("Foo".into(), false), "foo", false),
            (StringMatch::Prefix("ab".into(), false), "abc", true),
            (StringMatch::Suffix("bc".into(), false), "abc", true),
            (StringMatch::Contains("b".into(), false), "abc", true),
            (StringMatch::Contains("x".into(), false), "abc", false),
        ];
        for (m, v, want) in cases {
            assert_eq!(m.matches(v), want, "{m:?} on {v}");
        }
        let r = full_regex(&matcher::RegexMatcher {
            regex: "a+".into(),
            engine_type: None,
        });
        let r = r.map(StringMatch::Regex);
        assert!(
            r.as_ref()
                .is_ok_and(|m| m.matches("aaa") && !m.matches("aab"))
        );
    }

    #[test]
    fn header_mutation_actions() {
        let opt = |k: &str, v: &str, action: i32| core::HeaderValueOption {
            header: Some(core::HeaderValue {
                key: k.into(),
                value: v.into(),
                raw_value: vec![],
            }),
            append_action: action,
            ..Default::default()
        };
        let m = HeaderMutation::parse(
            &[
                opt("a", "1", 0),
                opt("b", "2", 1),
                opt("c", "3", 2),
                opt("d", "4", 3),
            ],
            &["x".to_string()],
        );
        let Ok(m) = m else {
            panic!("parse failed: {m:?}")
        };
        let mut h = http::HeaderMap::new();
        h.insert("a", HeaderValue::from_static("0"));
        h.insert("b", HeaderValue::from_static("0"));
        h.insert("c", HeaderValue::from_static("0"));
        h.insert("x", HeaderValue::from_static("0"));
        m.apply(&mut h);
        assert_eq!(h.get_all("a").iter().count(), 2);
        assert_eq!(h["b"], "0");
        assert_eq!(h["c"], "3");
        assert!(!h.contains_key("d") && !h.contains_key("x"));
    }

    #[test]
    fn rejects_unsupported_socket_fields() {
        let addr = core::Address {
            address: Some(core::address::Address::SocketAddress(core::SocketAddress {
                address: "127.0.0.1".into(),
                resolver_name: "dns".into(),
                port_specifier: Some(core::socket_address::PortSpecifier::PortValue(80)),
                ..Default::default()
            })),
        };
        assert_eq!(
            socket_address(&Some(addr)).map_err(|e| e.field),
            Err("resolver_name".to_string())
        );
    }
}
