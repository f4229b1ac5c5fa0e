//! An analysis message (code, level, rendered text, the resource it is about and where that
//! resource was read from) and the rendering of catalogue templates.

use std::fmt;

use serde::Serialize;

use super::catalogue::MessageType;
use super::context::Entry;

/// Message level, spelled as `istioctl analyze` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Level {
    Error,
    Warning,
    Info,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "Error",
            Level::Warning => "Warning",
            Level::Info => "Info",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Message {
    /// `ISTxxxx`.
    pub code: &'static str,
    pub level: Level,
    /// The catalogue template rendered with this finding's parameters.
    pub message: String,
    /// `<Kind> <namespace>/<name>` (`<Kind> <name>` for an object without namespace).
    pub resource: String,
    /// The file the resource was read from (empty for synthesized resources such as MeshNetworks).
    pub path: String,
    /// The line of the offending field, or of the resource when no field applies.
    pub line: usize,
    /// Istio's name of the analyzer that reported it (`schema.ValidationAnalyzer` for
    /// single-object validation).
    pub analyzer: &'static str,
}

impl Message {
    /// A message of type `mt` about `entry`, located at `field` (a path such as
    /// `spec.http[0].route[1].destination.host`; empty for the whole object).
    pub fn new(mt: &MessageType, entry: &Entry<'_>, field: &str, args: &[Arg]) -> Message {
        let obj = entry.obj;
        let pos = if field.is_empty() {
            obj.origin.pos
        } else {
            obj.locate(field)
        };
        Message {
            code: mt.code,
            level: mt.level,
            message: render(mt.template, args),
            resource: entry.resource_name(),
            path: obj.origin.path.to_string(),
            line: pos.line,
            analyzer: "",
        }
    }

    /// A message about something that is not a loaded object (mesh config, mesh networks).
    pub fn synthetic(mt: &MessageType, resource: String, path: &str, args: &[Arg]) -> Message {
        Message {
            code: mt.code,
            level: mt.level,
            message: render(mt.template, args),
            resource,
            path: path.to_string(),
            line: 0,
            analyzer: "",
        }
    }
}

/// A template parameter. Lists print as Go prints a slice (`[a b]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Arg {
    Str(String),
    Int(i64),
    List(Vec<String>),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Arg {
        Arg::Str(s.to_string())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Arg {
        Arg::Str(s)
    }
}

impl From<&String> for Arg {
    fn from(s: &String) -> Arg {
        Arg::Str(s.clone())
    }
}

impl From<i64> for Arg {
    fn from(i: i64) -> Arg {
        Arg::Int(i)
    }
}

impl From<Vec<String>> for Arg {
    fn from(v: Vec<String>) -> Arg {
        Arg::List(v)
    }
}

/// Render a Go-`fmt` style template: `%s`/`%v` print the value, `%q` a double-quoted string,
/// `%d` an integer, `%%` a percent sign. A missing argument prints `%!v(MISSING)` as Go does.
pub fn render(template: &str, args: &[Arg]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut args = args.iter();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let Some(verb) = chars.next() else {
            out.push('%');
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.next() {
            Some(arg) => format_arg(&mut out, verb, arg),
            None => {
                out.push_str("%!");
                out.push(verb);
                out.push_str("(MISSING)");
            }
        }
    }
    out
}

fn format_arg(out: &mut String, verb: char, arg: &Arg) {
    match (verb, arg) {
        ('q', Arg::Str(s)) => out.push_str(&quote(s)),
        ('q', Arg::List(items)) => {
            let quoted: Vec<String> = items.iter().map(|s| quote(s)).collect();
            out.push('[');
            out.push_str(&quoted.join(" "));
            out.push(']');
        }
        (_, Arg::Str(s)) => out.push_str(s),
        (_, Arg::Int(i)) => out.push_str(&i.to_string()),
        (_, Arg::List(items)) => {
            out.push('[');
            out.push_str(&items.join(" "));
            out.push(']');
        }
    }
}

/// Go's `%q` for a string: double quotes, with `"` and `\` and control characters escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::catalogue;

    #[test]
    fn renders_go_verbs() {
        let text = render(
            catalogue::REFERENCED_RESOURCE_NOT_FOUND.template,
            &["host".into(), "reviews.\"x\"".into()],
        );
        assert_eq!(text, "Referenced host not found: \"reviews.\\\"x\\\"\"");
        let text = render(
            catalogue::CONFLICTING_SIDECAR_WORKLOAD_SELECTORS.template,
            &[
                Arg::List(vec!["a".into(), "b".into()]),
                "default".into(),
                "pod-1".into(),
            ],
        );
        assert_eq!(
            text,
            "The Sidecars [a b] in namespace \"default\" select the same workload pod \"pod-1\", which can lead to undefined behavior."
        );
        let text = render(
            catalogue::GATEWAY_PORT_NOT_DEFINED_ON_SERVICE.template,
            &[Arg::Int(8004), "istio=ingressgateway".into()],
        );
        assert!(text.starts_with("The gateway is listening on a target port (port 8004) "));
    }

    #[test]
    fn json_shape() {
        let m = Message {
            code: "IST0132",
            level: Level::Warning,
            message: "text".into(),
            resource: "VirtualService ns/vs".into(),
            path: "a.yaml".into(),
            line: 3,
            analyzer: "virtualservice.GatewayAnalyzer",
        };
        let v = serde_json::to_value(&m).expect("serializes");
        assert_eq!(
            v,
            serde_json::json!({
                "code": "IST0132",
                "level": "Warning",
                "message": "text",
                "resource": "VirtualService ns/vs",
                "path": "a.yaml",
                "line": 3,
                "analyzer": "virtualservice.GatewayAnalyzer",
            })
        );
    }

    #[test]
    fn missing_arguments_and_percent_signs() {
        assert_eq!(
            render("a %s b %% c %d", &["x".into()]),
            "a x b % c %!d(MISSING)"
        );
        assert_eq!(
            render("%q", &[Arg::List(vec!["a".into(), "b".into()])]),
            "[\"a\" \"b\"]"
        );
    }
}
