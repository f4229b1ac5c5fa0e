//! Single-object validation: the envelope (kind, served version, name), then the kind's rules.
//! The control plane runs exactly this before it accepts an object, so "valid" means "will load".

use crate::load::Loaded;
use crate::object::{Diagnostic, Level, Object};
use crate::registry;

/// Validation switches.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Kinds Plexus does not know are errors instead of warnings.
    pub strict: bool,
}

/// Validate every loaded object; the loader's own problems come first. Sorted by file and line.
pub fn validate_all(loaded: &Loaded, opts: Options) -> Vec<Diagnostic> {
    let mut out = loaded.diagnostics.clone();
    for obj in &loaded.objects {
        out.extend(validate_object(obj, opts));
    }
    out.sort_by(|a, b| (&a.path, a.pos).cmp(&(&b.path, b.pos)));
    out
}

/// Validate one object.
pub fn validate_object(obj: &Object, opts: Options) -> Vec<Diagnostic> {
    let Some(info) = registry::lookup(&obj.group, &obj.kind) else {
        let level = if opts.strict {
            Level::Error
        } else {
            Level::Warning
        };
        return vec![obj.diag(
            level,
            "kind",
            format!(
                "unknown kind {}/{}: not validated",
                obj.api_version, obj.kind
            ),
        )];
    };
    let mut out = Vec::new();
    if !info.versions.contains(&obj.version.as_str()) {
        let supported: Vec<String> = info
            .versions
            .iter()
            .map(|v| format!("\"{}\"", qualified(info.group, v)))
            .collect();
        out.push(obj.error(
            "apiVersion",
            format!(
                "apiVersion: Unsupported value: \"{}\": supported values: {}",
                obj.api_version,
                supported.join(", ")
            ),
        ));
        return out;
    }
    out.extend(check_metadata(obj, info.cluster_scoped));
    if info.crd_schema {
        out.extend(check_crd_schema(obj));
    }
    out
}

/// Istio's CRD schema and CEL rules for the object's version (see `crate::schema`), each
/// problem located at its own field.
fn check_crd_schema(obj: &Object) -> Vec<Diagnostic> {
    let registry = match crate::schema::registry() {
        Ok(r) => r,
        Err(e) => return vec![obj.error("", format!("internal error: embedded CRD schema: {e}"))],
    };
    match registry.validate(&obj.group, &obj.kind, &obj.version, &obj.root) {
        Some(issues) => issues
            .into_iter()
            .map(|i| obj.error(&i.locator, i.message))
            .collect(),
        None => vec![obj.error(
            "apiVersion",
            format!(
                "internal error: no CRD schema for {}/{} {}",
                obj.group, obj.version, obj.kind
            ),
        )],
    }
}

fn qualified(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    }
}

/// `metadata.name` is required and must be a DNS-1123 subdomain; a namespace must be a
/// DNS-1123 label (Kubernetes' own object rules).
fn check_metadata(obj: &Object, cluster_scoped: bool) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    match obj.root.get("metadata") {
        None => out.push(obj.error("", "metadata.name: Required value: name is required")),
        Some(_) if obj.name.is_empty() => out.push(obj.error(
            "metadata",
            "metadata.name: Required value: name is required",
        )),
        Some(_) if !is_dns1123_subdomain(&obj.name) => out.push(obj.error(
            "metadata.name",
            format!(
                "metadata.name: Invalid value: \"{}\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
                obj.name
            ),
        )),
        Some(_) => {}
    }
    if let Some(ns) = obj.namespace.as_deref()
        && !cluster_scoped
        && !is_dns1123_label(ns)
    {
        out.push(obj.error(
            "metadata.namespace",
            format!(
                "metadata.namespace: Invalid value: \"{ns}\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
            ),
        ));
    }
    out
}

/// RFC 1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1123 subdomain: dot-separated labels, at most 253 characters.
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load_str;

    fn check(text: &str, strict: bool) -> Vec<String> {
        let loaded = load_str(text, "t.yaml");
        validate_all(&loaded, Options { strict })
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn unknown_kind_is_warning_unless_strict() {
        let doc = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n";
        let lax = check(doc, false);
        assert_eq!(lax.len(), 1);
        assert!(
            lax[0].starts_with("t.yaml:2:1: warning: Deployment default/x: unknown kind"),
            "{lax:?}"
        );
        assert!(check(doc, true)[0].contains(": error: "));
    }

    #[test]
    fn unserved_version_and_bad_names() {
        let out = check(
            "apiVersion: networking.istio.io/v2\nkind: Gateway\nmetadata: {name: x}\n",
            false,
        );
        assert!(
            out[0].contains("Unsupported value: \"networking.istio.io/v2\""),
            "{out:?}"
        );
        let out = check(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: Bad_Name\n  namespace: ns\n",
            false,
        );
        assert_eq!(out.len(), 1);
        assert!(
            out[0].starts_with(
                "t.yaml:4:3: error: Service ns/Bad_Name: metadata.name: Invalid value"
            ),
            "{out:?}"
        );
    }
}
