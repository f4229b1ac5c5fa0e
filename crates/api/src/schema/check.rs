//! Structural validation of a value against a CRD's OpenAPI schema, keyword by keyword as
//! kube-apiserver applies it (kube-openapi's validators, pruning reported as unknown fields,
//! `x-kubernetes-list-type` invariants), each failure worded as the API server words it.

use crate::yaml::{Node, Value};

use super::fmt::{enum_value, go_value, number_bound, quote};
use super::model::Schema;
use super::path::FieldPath;

/// One problem: where (a `Node::locate` path), what (the API server's message), and whether it
/// is a type error, which stops the API server from running CEL rules.
#[derive(Clone, Debug, PartialEq)]
pub struct Issue {
    pub locator: String,
    pub message: String,
    pub blocking: bool,
}

/// Collects issues for one walk.
#[derive(Default)]
pub struct Checker {
    pub issues: Vec<Issue>,
    /// Combinator alternatives are tried without pruning: unknown fields are only reported by
    /// the main walk.
    quiet_unknown: bool,
}

impl Checker {
    fn push(&mut self, path: &FieldPath, message: String) {
        self.issues.push(Issue {
            locator: path.locator(),
            message,
            blocking: false,
        });
    }

    fn push_type(&mut self, path: &FieldPath, message: String) {
        self.issues.push(Issue {
            locator: path.locator(),
            message,
            blocking: true,
        });
    }

    /// Validate `node` against `s`.
    /// Like kube-openapi, the enum applies to any value (null included) and the combinators
    /// to any non-null value, while the keywords of a type only apply to a value of that type.
    pub fn check(&mut self, node: &Node, s: &Schema, path: &FieldPath) {
        if self.check_type(node, s, path) {
            match &node.value {
                Value::Str(v) => self.check_string(v, s, path),
                Value::Int(_) | Value::Float(_) => self.check_number(&node.value, s, path),
                Value::Seq(items) => self.check_array(items, s, path),
                Value::Map(_) => self.check_object(node, s, path),
                Value::Null | Value::Bool(_) => {}
            }
        }
        if !s.enum_values.is_empty() {
            self.check_enum(&node.value, s, path);
        }
        if !node.is_null() {
            self.check_combinators(node, s, path);
        }
    }

    /// `type`, `nullable` and `x-kubernetes-int-or-string`. False when the value is null or
    /// has the wrong type, so no keyword for the expected type applies.
    fn check_type(&mut self, node: &Node, s: &Schema, path: &FieldPath) -> bool {
        // The API server reads YAML through JSON, where `5.0` is the integer 5.
        let actual = match node.value {
            Value::Float(f) if f.fract() == 0.0 => "integer",
            ref v => v.type_name(),
        };
        let expected = if s.int_or_string {
            "integer,string"
        } else {
            s.ty.as_str()
        };
        let ok = match (&node.value, expected) {
            (_, "") => true,
            (Value::Null, _) => s.nullable,
            (Value::Int(_) | Value::Str(_), "integer,string") => true,
            (Value::Int(_), "integer" | "number") => true,
            (Value::Float(f), "integer" | "integer,string") => f.fract() == 0.0,
            (Value::Float(_), "number") => true,
            (v, t) => v.type_name() == t,
        };
        if !ok {
            self.type_error(path, expected, actual);
        }
        // An allowed null has nothing further to check.
        ok && !node.is_null()
    }

    fn type_error(&mut self, path: &FieldPath, expected: &str, actual: &str) {
        let op = path.openapi();
        self.push_type(
            path,
            format!(
                "{op}: Invalid value: \"{actual}\": {op} in body must be of type {expected}: \"{actual}\""
            ),
        );
    }

    fn check_string(&mut self, v: &str, s: &Schema, path: &FieldPath) {
        let op = path.openapi();
        if let Some(format) = s.format.as_deref()
            && !string_format_ok(format, v)
        {
            self.push_type(
                path,
                format!(
                    "{op}: Invalid value: {q}: {op} in body must be of type {format}: {q}",
                    q = quote(v)
                ),
            );
        }
        let len = v.chars().count() as u64;
        if let Some(max) = s.max_length
            && len > max
        {
            self.push(
                path,
                format!("{op}: Too long: may not be longer than {max}"),
            );
        }
        if let Some(min) = s.min_length
            && len < min
        {
            self.push(
                path,
                format!(
                    "{op}: Invalid value: {}: {op} in body should be at least {min} chars long",
                    quote(v)
                ),
            );
        }
        if let Some((p, re)) = &s.pattern
            && !re.is_match(v)
        {
            self.push(
                path,
                format!(
                    "{op}: Invalid value: {}: {op} in body should match '{p}'",
                    quote(v)
                ),
            );
        }
    }

    fn check_number(&mut self, v: &Value, s: &Schema, path: &FieldPath) {
        let op = path.openapi();
        let (as_f64, is_int) = match v {
            Value::Int(i) => (*i as f64, true),
            Value::Float(f) => (*f, false),
            _ => return,
        };
        if s.format.as_deref() == Some("int32")
            && is_int
            && (as_f64 < i32::MIN as f64 || as_f64 > i32::MAX as f64)
        {
            let detail = format!("Checked value must be of type integer with format int32 in {op}");
            self.push_root(path, detail);
        }
        let (lo, lo_excl) = (s.minimum, s.exclusive_minimum);
        let (hi, hi_excl) = (s.maximum, s.exclusive_maximum);
        let broken = [
            lo.filter(|m| if lo_excl { as_f64 <= *m } else { as_f64 < *m })
                .map(|m| {
                    (
                        m,
                        if lo_excl {
                            "greater than"
                        } else {
                            "greater than or equal to"
                        },
                    )
                }),
            hi.filter(|m| if hi_excl { as_f64 >= *m } else { as_f64 > *m })
                .map(|m| {
                    (
                        m,
                        if hi_excl {
                            "less than"
                        } else {
                            "less than or equal to"
                        },
                    )
                }),
        ];
        for (bound, rel) in broken.into_iter().flatten() {
            self.push(
                path,
                format!(
                    "{op}: Invalid value: {}: {op} in body should be {rel} {}",
                    go_value(v),
                    number_bound(bound, is_int)
                ),
            );
        }
    }

    fn check_enum(&mut self, v: &Value, s: &Schema, path: &FieldPath) {
        let matches = |e: &Value| match (e, v) {
            (Value::Int(a), Value::Float(b)) | (Value::Float(b), Value::Int(a)) => *a as f64 == *b,
            (a, b) => a == b,
        };
        if s.enum_values.iter().any(matches) {
            return;
        }
        let supported: Vec<String> = s.enum_values.iter().map(enum_value).collect();
        self.push(
            path,
            format!(
                "{}: Unsupported value: {}: supported values: {}",
                path.openapi(),
                go_value(v),
                supported.join(", ")
            ),
        );
    }

    fn check_array(&mut self, items: &[Node], s: &Schema, path: &FieldPath) {
        let op = path.openapi();
        let n = items.len() as u64;
        if let Some(min) = s.min_items
            && n < min
        {
            self.push(
                path,
                format!("{op}: Invalid value: {n}: {op} in body should have at least {min} items"),
            );
        }
        if let Some(max) = s.max_items
            && n > max
        {
            self.push(
                path,
                format!("{op}: Too many: {n}: must have at most {max} items"),
            );
        }
        if let Some(item_schema) = &s.items {
            for (i, item) in items.iter().enumerate() {
                self.check(item, item_schema, &path.index(i));
            }
        }
        match s.list_type.as_deref() {
            Some("set") => self.check_set(items, path),
            Some("map") => self.check_list_map(items, s, path),
            _ => {}
        }
    }

    /// `x-kubernetes-list-type: set`: no two equal items.
    fn check_set(&mut self, items: &[Node], path: &FieldPath) {
        for (i, item) in items.iter().enumerate() {
            if items[..i]
                .iter()
                .any(|prev| prev.to_json() == item.to_json())
            {
                let at = path.index(i);
                let message = format!(
                    "{}: Duplicate value: {}",
                    at.field_path(),
                    go_value(&item.value)
                );
                self.push(&at, message);
            }
        }
    }

    /// `x-kubernetes-list-type: map`: no two items with the same values for the key fields.
    fn check_list_map(&mut self, items: &[Node], s: &Schema, path: &FieldPath) {
        let key_of = |item: &Node| -> Vec<(String, serde_json::Value)> {
            let mut key: Vec<(String, serde_json::Value)> = s
                .list_map_keys
                .iter()
                .filter_map(|k| item.get(k).map(|v| (k.clone(), v.to_json())))
                .collect();
            key.sort_by(|a, b| a.0.cmp(&b.0));
            key
        };
        for (i, item) in items.iter().enumerate() {
            if item.as_map().is_none() {
                continue;
            }
            let key = key_of(item);
            if items[..i]
                .iter()
                .any(|prev| prev.as_map().is_some() && key_of(prev) == key)
            {
                let at = path.index(i);
                let shown: Vec<String> = key
                    .iter()
                    .map(|(k, v)| format!("{}:{}", quote(k), v))
                    .collect();
                let message = format!(
                    "{}: Duplicate value: map[string]interface {{}}{{{}}}",
                    at.field_path(),
                    shown.join(", ")
                );
                self.push(&at, message);
            }
        }
    }

    fn check_object(&mut self, node: &Node, s: &Schema, path: &FieldPath) {
        let entries = node.as_map().unwrap_or_default();
        let op = path.openapi();
        let n = entries.len() as u64;
        if let Some(min) = s.min_properties
            && n < min
        {
            self.push(
                path,
                format!(
                    "{op}: Invalid value: {min}: {op} in body should have at least {min} properties"
                ),
            );
        }
        if let Some(max) = s.max_properties
            && n > max
        {
            self.push(
                path,
                format!("{op}: Too many: {max}: must have at most {max} items"),
            );
        }
        for req in &s.required {
            if node.get(req).is_none() {
                let at = path.field(req);
                self.push(&at, format!("{}: Required value", at.openapi()));
            }
        }
        for (key, value) in entries {
            if let Some(prop) = s.properties.get(&key.name) {
                self.check(value, prop, &path.field(&key.name));
            } else if let Some(extra) = &s.additional {
                self.check(value, extra, &path.key(&key.name));
            } else if !s.preserve_unknown && !self.quiet_unknown {
                let at = path.field(&key.name);
                self.push(&at, format!("unknown field \"{}\"", at.field_path()));
            }
        }
    }

    /// Whether `node` satisfies `sub` (a combinator branch), and the errors it gives.
    fn branch(node: &Node, sub: &Schema, path: &FieldPath) -> Vec<Issue> {
        let mut c = Checker {
            issues: Vec::new(),
            quiet_unknown: true,
        };
        c.check(node, sub, path);
        c.issues
    }

    fn check_combinators(&mut self, node: &Node, s: &Schema, path: &FieldPath) {
        let valid = |sub: &Schema| Self::branch(node, sub, path).is_empty();
        let p = quote(&path.openapi());
        if !s.one_of.is_empty() {
            let n = s.one_of.iter().filter(|sub| valid(sub)).count();
            if n != 1 {
                let found = match n {
                    0 => "Found none valid".to_string(),
                    n => format!("Found {n} valid alternatives"),
                };
                let msg = format!("{p} must validate one and only one schema (oneOf). {found}");
                self.push_root(path, msg);
            }
        }
        if !s.any_of.is_empty() && !s.any_of.iter().any(valid) {
            self.push_root(
                path,
                format!("{p} must validate at least one schema (anyOf)"),
            );
        }
        if !s.all_of.is_empty() {
            // Unlike the other combinators, the API server also reports each failing
            // branch's own errors.
            let mut failed = 0;
            for sub in &s.all_of {
                let issues = Self::branch(node, sub, path);
                failed += usize::from(!issues.is_empty());
                self.issues.extend(issues);
            }
            if failed > 0 {
                let none = if failed == s.all_of.len() {
                    ". None validated"
                } else {
                    ""
                };
                self.push_root(
                    path,
                    format!("{p} must validate all the schemas (allOf){none}"),
                );
            }
        }
        if let Some(not) = &s.not
            && valid(not)
        {
            self.push_root(path, format!("{p} must not validate the schema (not)"));
        }
    }

    /// An error the API server attaches to no field (`<nil>: Invalid value: "": ...`); Plexus
    /// drops the `<nil>: ` and locates it at the field it names.
    fn push_root(&mut self, path: &FieldPath, detail: String) {
        self.push(path, format!("Invalid value: \"\": {detail}"));
    }
}

/// The string formats the API server checks (`byte`, `date-time`); others are not checked.
fn string_format_ok(format: &str, v: &str) -> bool {
    match format {
        "byte" => is_base64(v),
        "date-time" => is_rfc3339(v),
        _ => true,
    }
}

fn is_base64(v: &str) -> bool {
    let b = v.as_bytes();
    if !b.len().is_multiple_of(4) {
        return false;
    }
    let pad = b.iter().rev().take_while(|c| **c == b'=').count();
    pad <= 2
        && b[..b.len() - pad]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/')
}

/// RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`, `t`/`z`/space accepted as Go's
/// strfmt does.
fn is_rfc3339(v: &str) -> bool {
    let b = v.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !(digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10))
        || !matches!(b[10], b'T' | b't' | b' ')
        || !(digits(11..13) && b[13] == b':' && digits(14..16) && b[16] == b':' && digits(17..19))
    {
        return false;
    }
    let mut i = 19;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match &b[i..] {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}
