//! The envelope every config object shares (`apiVersion`, `kind`, `metadata`), the place it was
//! read from, and the diagnostics that name that place.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::registry::{self, KindInfo};
use crate::yaml::{Node, Pos, Value};

/// Where an object came from: the file (or `-` for stdin) and its first line and column.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin {
    pub path: Arc<str>,
    pub pos: Pos,
}

/// One config object as read from YAML, before kind-specific decoding.
#[derive(Clone, Debug)]
pub struct Object {
    pub api_version: String,
    /// API group (`networking.istio.io`; empty for the Kubernetes core group).
    pub group: String,
    pub version: String,
    pub kind: String,
    pub name: String,
    /// The namespace as written; `None` when absent.
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `metadata.creationTimestamp` as written (RFC 3339), used for Istio's "oldest wins" rules.
    pub creation_timestamp: Option<String>,
    /// The whole document, with positions.
    pub root: Node,
    pub origin: Origin,
}

impl Object {
    /// The namespace, `default` when absent (as `kubectl apply` would place it).
    pub fn namespace_or_default(&self) -> &str {
        match self.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns,
            _ => "default",
        }
    }

    /// `Kind namespace/name`, the way Istio's analyzers name a resource.
    pub fn resource_name(&self) -> String {
        format!(
            "{} {}/{}",
            self.kind,
            self.namespace_or_default(),
            self.name
        )
    }

    /// The `spec` node, if any.
    pub fn spec(&self) -> Option<&Node> {
        self.root.get("spec")
    }

    /// What the registry knows about this object's group and kind.
    pub fn kind_info(&self) -> Option<&'static KindInfo> {
        registry::lookup(&self.group, &self.kind)
    }

    /// Position of a field path (`spec.http[0].route`), falling back to the nearest ancestor.
    pub fn locate(&self, path: &str) -> Pos {
        self.root.locate(path)
    }

    /// A diagnostic about this object at a field path.
    pub fn diag(&self, level: Level, field_path: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            path: self.origin.path.clone(),
            pos: if field_path.is_empty() {
                self.origin.pos
            } else {
                self.locate(field_path)
            },
            level,
            subject: Some(self.subject()),
            message: message.into(),
        }
    }

    /// An error about this object at a field path.
    pub fn error(&self, field_path: &str, message: impl Into<String>) -> Diagnostic {
        self.diag(Level::Error, field_path, message)
    }

    pub fn subject(&self) -> Subject {
        Subject {
            kind: self.kind.clone(),
            namespace: self.namespace_or_default().to_string(),
            name: self.name.clone(),
        }
    }

    /// Build the envelope from a document root. Errors name the missing or malformed field.
    pub fn from_node(root: Node, path: Arc<str>) -> Result<Object, Box<Diagnostic>> {
        let origin = Origin {
            path: path.clone(),
            pos: root.pos,
        };
        let fail = |pos: Pos, message: String, subject: Option<Subject>| {
            Box::new(Diagnostic {
                path: path.clone(),
                pos,
                level: Level::Error,
                subject,
                message,
            })
        };
        if root.as_map().is_none() {
            return Err(fail(
                root.pos,
                format!(
                    "a config object must be a mapping, found {}",
                    root.value.type_name()
                ),
                None,
            ));
        }
        let kind = match root.get("kind") {
            Some(Node {
                value: Value::Str(s),
                ..
            }) if !s.is_empty() => s.clone(),
            Some(n) => return Err(fail(n.pos, "kind: must be a non-empty string".into(), None)),
            None => return Err(fail(root.pos, "kind: Required value".into(), None)),
        };
        let metadata = root.get("metadata");
        let meta_str = |field: &str| -> Option<String> {
            metadata
                .and_then(|m| m.get(field))
                .and_then(Node::as_str)
                .map(str::to_string)
        };
        let name = meta_str("name").unwrap_or_default();
        let namespace = meta_str("namespace");
        let subject = Subject {
            kind: kind.clone(),
            namespace: namespace
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".into()),
            name: name.clone(),
        };
        let api_version = match root.get("apiVersion") {
            Some(Node {
                value: Value::Str(s),
                ..
            }) if !s.is_empty() => s.clone(),
            Some(n) => {
                return Err(fail(
                    n.pos,
                    "apiVersion: must be a non-empty string".into(),
                    Some(subject),
                ));
            }
            None => {
                return Err(fail(
                    root.pos,
                    "apiVersion: Required value".into(),
                    Some(subject),
                ));
            }
        };
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_string(), v.to_string()),
            None => (String::new(), api_version.clone()),
        };
        let string_map = |field: &str| -> BTreeMap<String, String> {
            metadata
                .and_then(|m| m.get(field))
                .and_then(Node::as_map)
                .map(|entries| {
                    entries
                        .iter()
                        .filter_map(|(k, v)| {
                            let value = match &v.value {
                                Value::Str(s) => s.clone(),
                                Value::Null => String::new(),
                                Value::Bool(b) => b.to_string(),
                                Value::Int(i) => i.to_string(),
                                Value::Float(f) => f.to_string(),
                                _ => return None,
                            };
                            Some((k.name.clone(), value))
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(Object {
            api_version,
            group,
            version,
            kind,
            name,
            namespace,
            labels: string_map("labels"),
            annotations: string_map("annotations"),
            creation_timestamp: meta_str("creationTimestamp"),
            root,
            origin,
        })
    }
}

/// The object a diagnostic is about.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subject {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Error,
    Warning,
    Info,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "info",
        }
    }
}

/// One problem, printed as `PATH:LINE:COL: LEVEL: KIND NAMESPACE/NAME: MESSAGE` (or without the
/// object part when the problem is not inside an object, e.g. a YAML syntax error).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Diagnostic {
    pub path: Arc<str>,
    pub pos: Pos,
    pub level: Level,
    pub subject: Option<Subject>,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: ",
            self.path,
            self.pos.line,
            self.pos.col,
            self.level.as_str()
        )?;
        if let Some(s) = &self.subject {
            write!(f, "{} {}/{}: ", s.kind, s.namespace, s.name)?;
        }
        f.write_str(&self.message)
    }
}
