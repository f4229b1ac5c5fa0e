//! Protobuf/Go duration strings as Istio's YAML writes them (`1h`, `1m`, `1s`, `1ms`, `0.5s`,
//! `1m30s`), parsed into [`std::time::Duration`].

use std::time::Duration;

/// Parse a non-negative duration; `None` when it is not one.
pub fn parse(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..end].parse().ok()?;
        rest = &rest[end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "h" => 3.6e12,
            "m" => 6e10,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            _ => return None,
        };
        rest = &rest[unit_end..];
        nanos += number * scale;
    }
    if !nanos.is_finite() || nanos > u64::MAX as f64 {
        return None;
    }
    Some(Duration::from_nanos(nanos.round() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases = [
            ("1h", Some(3_600_000)),
            ("1m30s", Some(90_000)),
            ("0.5s", Some(500)),
            ("250ms", Some(250)),
            ("0", Some(0)),
            ("0s", Some(0)),
            ("", None),
            ("5", None),
            ("1d", None),
            ("-1s", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).map(|d| d.as_millis() as u64), want, "{text:?}");
        }
    }
}
