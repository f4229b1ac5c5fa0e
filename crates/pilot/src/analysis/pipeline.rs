//! The whole check `plexus analyze` (and the control plane before it accepts config) runs:
//! problems reading the input, then single-object validation — an invalid object is reported
//! as IST0106 `SchemaValidationError` and left out — then every analyzer over the rest.

use plexus_api::{Diagnostic, Level as DiagLevel, Loaded, Object, registry};

use super::catalogue::SCHEMA_VALIDATION_ERROR;
use super::message::{Message, render};
use super::{Options, all_analyzers, expand_lists, run};

/// The analyzer name single-object validation reports under (Istio's prefix for it).
pub const VALIDATION_ANALYZER: &str = "schema.ValidationAnalyzer";

/// Validate, then analyze. Messages come back sorted by file and line.
pub fn validate_and_analyze(loaded: &Loaded, opts: &Options) -> Vec<Message> {
    let mut out: Vec<Message> = loaded.diagnostics.iter().map(schema_error).collect();
    let mut valid: Vec<Object> = Vec::new();
    for obj in expand_lists(&loaded.objects) {
        let errors = object_errors(&obj);
        if errors.is_empty() {
            valid.push(obj);
        } else {
            out.extend(errors.iter().map(schema_error));
        }
    }
    out.extend(run(&valid, opts, &all_analyzers()));
    out.sort_by(|a, b| (&a.path, a.line, a.code).cmp(&(&b.path, b.line, b.code)));
    out
}

/// Error-level problems of one object: the validation pipeline's, and for kinds Plexus models,
/// a typed decode (so no object an analyzer cannot read is skipped silently). Kinds Plexus does
/// not know (Deployment, Pod...) are still analyzed; they are not validated.
fn object_errors(obj: &Object) -> Vec<Diagnostic> {
    let options = plexus_api::Options { strict: false };
    let mut errors: Vec<Diagnostic> = plexus_api::validate_object(obj, options)
        .into_iter()
        .filter(|d| d.level == DiagLevel::Error)
        .collect();
    if errors.is_empty()
        && registry::lookup(&obj.group, &obj.kind).is_some()
        && let Err(d) = plexus_api::kinds::decode(obj)
    {
        errors.push(*d);
    }
    errors
}

/// A validation or loading problem as IST0106.
fn schema_error(d: &Diagnostic) -> Message {
    let resource = d
        .subject
        .as_ref()
        .map(|s| format!("{} {}/{}", s.kind, s.namespace, s.name))
        .unwrap_or_default();
    Message {
        code: SCHEMA_VALIDATION_ERROR.code,
        level: SCHEMA_VALIDATION_ERROR.level,
        message: render(
            SCHEMA_VALIDATION_ERROR.template,
            &[d.message.clone().into()],
        ),
        resource,
        path: d.path.to_string(),
        line: d.pos.line,
        analyzer: VALIDATION_ANALYZER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::Level;

    #[test]
    fn invalid_objects_are_reported_and_left_out() {
        let text = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bad, namespace: ns}\nspec:\n  hosts: [a]\n  htp: []\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: good, namespace: ns}\nspec:\n  hosts: [a]\n  http:\n  - route:\n    - destination: {host: nowhere}\n";
        let loaded = plexus_api::load_str(text, "vs.yaml");
        let opts = Options {
            default_namespace: Some("default".into()),
            ..Options::default()
        };
        let msgs = validate_and_analyze(&loaded, &opts);
        let bad: Vec<_> = msgs
            .iter()
            .filter(|m| m.resource == "VirtualService ns/bad")
            .collect();
        assert_eq!(bad.len(), 1, "{msgs:?}");
        assert_eq!(bad[0].code, "IST0106");
        assert_eq!(bad[0].level, Level::Error);
        assert_eq!(bad[0].line, 6);
        assert!(bad[0].message.contains("htp"), "{}", bad[0].message);
        let good: Vec<_> = msgs
            .iter()
            .filter(|m| m.resource == "VirtualService ns/good")
            .collect();
        assert!(
            good.iter().any(|m| m.code == "IST0101" && m.line == 15),
            "{msgs:?}"
        );
    }
}
