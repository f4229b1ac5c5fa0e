//! The Kubernetes CEL library functions Istio's rules call that the `cel` crate does not provide:
//! `duration(string)`, `isURL(string)`, `url(string)` and `<URL>.getScheme()`, with the
//! semantics of Go's `time.ParseDuration` and `net/url.ParseRequestURI` that the API server
//! uses, and Go's wording for their failures.
//!
//! `duration()` yields the length in nanoseconds as an `int`: the only use in Istio's CRDs is
//! comparing two durations (`duration(self) >= duration('1ms')`), which that keeps exact
//! without pulling in the `cel` crate's chrono-based duration type.

use std::sync::Arc;

use cel::objects::Opaque;
use cel::{Context, ExecutionError, Value};

/// Register the functions on a context.
pub fn register(ctx: &mut Context<'_, '_>) -> Result<(), cel::DeclarationError> {
    ctx.add_function("duration", duration)?;
    ctx.add_function("isURL", is_url)?;
    ctx.add_function("url", url)?;
    ctx.add_function("getScheme", get_scheme)?;
    Ok(())
}

fn duration(s: Arc<String>) -> Result<i64, ExecutionError> {
    parse_go_duration(&s).ok_or_else(|| conversion_error("string", "google.protobuf.Duration"))
}

/// cel-go's wording for a failed conversion, which the API server passes through.
pub fn conversion_error(from: &str, to: &str) -> ExecutionError {
    ExecutionError::function_error(
        "conversion",
        format!("type conversion error from '{from}' to '{to}'"),
    )
}

fn is_url(s: Arc<String>) -> bool {
    parse_request_uri(&s).is_ok()
}

/// A URL as the Kubernetes `url()` function returns it; only the scheme is read by Istio's rules.
#[derive(Debug, PartialEq, Eq)]
pub struct KubeUrl {
    pub scheme: String,
}

impl Opaque for KubeUrl {
    fn runtime_type_name(&self) -> &str {
        "kubernetes.URL"
    }
}

fn url(s: Arc<String>) -> Result<Value, ExecutionError> {
    match parse_request_uri(&s) {
        Ok(scheme) => Ok(Value::Opaque(Arc::new(KubeUrl { scheme }))),
        Err(e) => Err(ExecutionError::function_error(
            "url",
            format!(
                "URL parse error during conversion from string: parse {}: {e}",
                go_quote(&s)
            ),
        )),
    }
}

fn get_scheme(this: cel::extractors::This<Value>) -> Result<Arc<String>, ExecutionError> {
    match &this.0 {
        Value::Opaque(o) => match o.downcast_ref::<KubeUrl>() {
            Some(u) => Ok(Arc::new(u.scheme.clone())),
            None => Err(no_overload("getScheme")),
        },
        _ => Err(no_overload("getScheme")),
    }
}

fn no_overload(name: &str) -> ExecutionError {
    ExecutionError::function_error(name, format!("no such overload: {name}"))
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` or `0`, in nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..num_end];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += value * scale;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    let n = total.round() as i64;
    Some(if neg { -n } else { n })
}

/// Go's `url.ParseRequestURI`, reduced to what decides success and the scheme.
pub fn parse_request_uri(raw: &str) -> Result<String, String> {
    if raw.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err("net/url: invalid control character in URL".into());
    }
    let (scheme, rest) = split_scheme(raw)?;
    let rest = match rest.split_once('?') {
        Some((before, _)) => before,
        None => rest,
    };
    if !rest.starts_with('/') {
        if !scheme.is_empty() {
            // An opaque URL such as `mailto:x`.
            return Ok(scheme.to_ascii_lowercase());
        }
        return Err("invalid URI for request".into());
    }
    if !scheme.is_empty()
        && let Some(after) = rest.strip_prefix("//")
    {
        let (authority, path) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        check_authority(authority)?;
        check_escapes(path)?;
    } else {
        check_escapes(rest)?;
    }
    Ok(scheme.to_ascii_lowercase())
}

fn split_scheme(raw: &str) -> Result<(&str, &str), String> {
    for (i, c) in raw.char_indices() {
        match c {
            'a'..='z' | 'A'..='Z' => {}
            '0'..='9' | '+' | '-' | '.' if i > 0 => {}
            ':' if i == 0 => return Err("missing protocol scheme".into()),
            ':' => return Ok((&raw[..i], &raw[i + 1..])),
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

fn check_authority(authority: &str) -> Result<(), String> {
    let (userinfo, host) = match authority.rfind('@') {
        Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
        None => (None, authority),
    };
    if let Some(u) = userinfo
        && !u
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:~!$&'()*+,;=%@".contains(c))
    {
        return Err("net/url: invalid userinfo".into());
    }
    check_host(host)
}

fn check_host(host: &str) -> Result<(), String> {
    let port = if let Some(rest) = host.strip_prefix('[') {
        let Some(end) = rest.find(']') else {
            return Err("missing ']' in host".into());
        };
        &rest[end + 1..]
    } else {
        match host.rfind(':') {
            Some(i) => &host[i..],
            None => "",
        }
    };
    if !port.is_empty()
        && (!port.starts_with(':') || !port[1..].bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("invalid port {} after host", go_quote(port)));
    }
    check_escapes(host)
}

fn check_escapes(s: &str) -> Result<(), String> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let ok = b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit);
            if !ok {
                let end = (i + 3).min(b.len());
                return Err(format!(
                    "invalid URL escape {}",
                    go_quote(&String::from_utf8_lossy(&b[i..end]))
                ));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// Go's `strconv.Quote`, which the API server's messages use for values.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1ms"), Some(1_000_000));
        assert_eq!(parse_go_duration("300s"), Some(300_000_000_000));
        assert_eq!(parse_go_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("-2us"), Some(-2_000));
        for bad in ["", "apple", "1", "s", "1.2.3s", "1d", "."] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn request_uris() {
        assert_eq!(
            parse_request_uri("https://example.com/jwks").as_deref(),
            Ok("https")
        );
        assert_eq!(
            parse_request_uri("oci://private-registry:5000/openid:latest").as_deref(),
            Ok("oci")
        );
        assert_eq!(
            parse_request_uri("file:///opt/f.wasm").as_deref(),
            Ok("file")
        );
        assert_eq!(parse_request_uri("/abs/path").as_deref(), Ok(""));
        assert!(parse_request_uri("test").is_err());
        assert!(parse_request_uri("#%blah$#@").is_err());
        assert!(parse_request_uri("http://#%blah$#@").is_err());
        assert!(parse_request_uri("hTPp\\\u{8}lah").is_err());
        assert!(parse_request_uri("http://a%zz/").is_err());
        assert!(parse_request_uri("http://host:port/").is_err());
    }

    #[test]
    fn quoting_matches_go() {
        assert_eq!(go_quote("hTPp\\\u{8}lah"), "\"hTPp\\\\\\blah\"");
        assert_eq!(go_quote("a\"b"), "\"a\\\"b\"");
    }
}
