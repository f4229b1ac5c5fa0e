//! Validation of Istio objects against Istio's own CustomResourceDefinitions
//! (`crates/api/schema/crd-all.gen.yaml`, embedded): the OpenAPI v3 schema and the CEL
//! `x-kubernetes-validations` rules, applied as kube-apiserver applies them, so `plexus
//! validate` rejects what `kubectl apply` would, with the API server's own words.
//!
//! The CRD file is parsed once, on first use, with the crate's own YAML reader; schemas are
//! indexed by (group, kind, version).

mod cel;
mod check;
mod fmt;
mod kubelib;
mod model;
mod path;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use ::cel::Env;

use crate::yaml::{Node, Value, parse_stream};

use check::Checker;
pub use check::Issue;
use model::{Schema, SchemaError};
use path::FieldPath;

/// Istio's CRD file, as shipped in istio/istio `manifests/charts/base/files/crd-all.gen.yaml`.
const CRD_FILE: &str = include_str!("../../schema/crd-all.gen.yaml");

/// What the API server adds when type errors stop it from running CEL rules.
const RULES_SKIPPED: &str = "Invalid value: \"null\": some validation rules were not checked because the object was invalid; correct the existing errors to complete validation";

/// Every schema in the CRD file.
pub struct Registry {
    schemas: HashMap<(String, String, String), Schema>,
    metadata: Schema,
    env: Arc<Env>,
    /// Each distinct rule source and whether it compiled.
    rules: BTreeMap<String, Result<(), String>>,
}

static REGISTRY: OnceLock<Result<Registry, SchemaError>> = OnceLock::new();

/// The registry, parsed on first use. An error here is a defect in the embedded CRD file.
pub fn registry() -> Result<&'static Registry, &'static SchemaError> {
    REGISTRY.get_or_init(|| Registry::parse(CRD_FILE)).as_ref()
}

impl Registry {
    /// Parse a CRD stream.
    pub fn parse(text: &str) -> Result<Registry, SchemaError> {
        let (docs, syntax) = parse_stream(text);
        if let Some(e) = syntax {
            return Err(crd_error(&e.pos.to_string(), &e.message));
        }
        let mut cel = cel::CelRules::default();
        let mut schemas = HashMap::new();
        for doc in docs.iter().filter_map(|d| d.root.as_ref()) {
            let spec = doc.get("spec").ok_or_else(|| crd_error("CRD", "no spec"))?;
            let text_at = |path: &str| -> Result<String, SchemaError> {
                let n = lookup(spec, path).and_then(Node::as_str);
                n.map(str::to_string)
                    .ok_or_else(|| crd_error(path, "missing"))
            };
            let group = text_at("group")?;
            let kind = text_at("names.kind")?;
            let versions = lookup(spec, "versions")
                .and_then(Node::as_seq)
                .unwrap_or_default();
            for v in versions {
                let name = v.get("name").and_then(Node::as_str).unwrap_or_default();
                let at = format!("{kind}.{group}/{name}");
                let node = lookup(v, "schema.openAPIV3Schema")
                    .ok_or_else(|| crd_error(&at, "no openAPIV3Schema"))?;
                let schema = Schema::from_node(node, &at, &mut cel)?;
                schemas.insert((group.clone(), kind.clone(), name.to_string()), schema);
            }
        }
        let rules = cel
            .compiled()
            .map(|(src, r)| (src.clone(), r.as_ref().map(|_| ()).map_err(Clone::clone)))
            .collect();
        Ok(Registry {
            schemas,
            metadata: metadata_schema(),
            env: cel.env(),
            rules,
        })
    }

    pub fn schema(&self, group: &str, kind: &str, version: &str) -> Option<&Schema> {
        self.schemas
            .get(&(group.to_string(), kind.to_string(), version.to_string()))
    }

    /// Every distinct CEL rule in the file and its compile result.
    pub fn rules(&self) -> &BTreeMap<String, Result<(), String>> {
        &self.rules
    }

    /// (group, kind, version) of every schema.
    pub fn kinds(&self) -> impl Iterator<Item = &(String, String, String)> {
        self.schemas.keys()
    }

    /// Validate a whole object (`apiVersion`, `kind`, `metadata`, `spec`, `status`). `None` when
    /// the file has no schema for that kind and version.
    pub fn validate(
        &self,
        group: &str,
        kind: &str,
        version: &str,
        root: &Node,
    ) -> Option<Vec<Issue>> {
        let schema = self.schema(group, kind, version)?;
        let mut issues = self.structural(schema, root);
        if issues.iter().any(|i| i.blocking) {
            if has_rules(schema) {
                issues.push(Issue {
                    locator: String::new(),
                    message: RULES_SKIPPED.to_string(),
                    blocking: false,
                });
            }
        } else {
            let top = FieldPath::root();
            for (key, value) in root.as_map().unwrap_or_default() {
                if let Some(prop) = schema.properties.get(&key.name) {
                    self.cel_walk(value, prop, &top.field(&key.name), &mut issues);
                }
            }
        }
        Some(issues)
    }

    /// The OpenAPI checks of the whole object; `metadata` against loose ObjectMeta.
    fn structural(&self, schema: &Schema, root: &Node) -> Vec<Issue> {
        let mut checker = Checker::default();
        let top = FieldPath::root();
        for (key, value) in root.as_map().unwrap_or_default() {
            let here = top.field(&key.name);
            match key.name.as_str() {
                // The envelope checks own these.
                "apiVersion" | "kind" => {}
                "metadata" => checker.check(value, &self.metadata, &here),
                name => match schema.properties.get(name) {
                    Some(prop) => checker.check(value, prop, &here),
                    None => checker.issues.push(Issue {
                        locator: here.locator(),
                        message: format!("unknown field \"{}\"", here.field_path()),
                        blocking: false,
                    }),
                },
            }
        }
        for req in &schema.required {
            if root.get(req).is_none() {
                let here = top.field(req);
                checker.issues.push(Issue {
                    locator: here.locator(),
                    message: format!("{}: Required value", here.openapi()),
                    blocking: false,
                });
            }
        }
        checker.issues
    }

    /// Evaluate every rule on the way down, as the API server's CEL validator walks
    /// properties, additionalProperties and items.
    fn cel_walk(&self, node: &Node, s: &Schema, path: &FieldPath, out: &mut Vec<Issue>) {
        if node.is_null() {
            return;
        }
        if !s.rules.is_empty() {
            let this = cel::to_cel(node, Some(s));
            for rule in &s.rules {
                if let Some(issue) = rule_issue(rule, &self.env, &this, &s.ty, path) {
                    out.push(issue);
                }
            }
        }
        match &node.value {
            Value::Map(entries) => {
                for (k, v) in entries {
                    if let Some(p) = s.properties.get(&k.name) {
                        self.cel_walk(v, p, &path.field(&k.name), out);
                    } else if let Some(extra) = &s.additional {
                        self.cel_walk(v, extra, &path.key(&k.name), out);
                    }
                }
            }
            Value::Seq(items) => {
                if let Some(item_schema) = &s.items {
                    for (i, item) in items.iter().enumerate() {
                        self.cel_walk(item, item_schema, &path.index(i), out);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The issue a rule raises on a value, worded by its `reason`.
fn rule_issue(
    rule: &cel::Rule,
    env: &Arc<Env>,
    this: &::cel::Value,
    ty: &str,
    path: &FieldPath,
) -> Option<Issue> {
    let (at, message) = match rule.evaluate(env, this) {
        cel::Verdict::Pass => return None,
        cel::Verdict::Error(detail) => {
            let fp = path.field_path();
            (
                path.clone(),
                format!("{fp}: Invalid value: \"{ty}\": {detail}"),
            )
        }
        cel::Verdict::Fail(detail) => {
            let mut at = path.clone();
            for seg in rule.field_path.as_deref().unwrap_or("").split('.') {
                if !seg.is_empty() {
                    at = at.field(seg);
                }
            }
            let fp = at.field_path();
            let message = match rule.reason.as_deref() {
                Some("FieldValueForbidden") => format!("{fp}: Forbidden: {detail}"),
                Some("FieldValueRequired") => format!("{fp}: Required value: {detail}"),
                Some("FieldValueDuplicate") => format!("{fp}: Duplicate value: \"{ty}\""),
                _ => format!("{fp}: Invalid value: \"{ty}\": {detail}"),
            };
            (at, message)
        }
    };
    Some(Issue {
        locator: at.locator(),
        message,
        blocking: false,
    })
}

fn has_rules(s: &Schema) -> bool {
    !s.rules.is_empty()
        || s.properties.values().any(has_rules)
        || s.additional.as_deref().is_some_and(has_rules)
        || s.items.as_deref().is_some_and(has_rules)
}

fn lookup<'a>(node: &'a Node, dotted: &str) -> Option<&'a Node> {
    dotted.split('.').try_fold(node, |n, k| n.get(k))
}

fn crd_error(path: &str, message: &str) -> SchemaError {
    SchemaError {
        path: path.to_string(),
        message: message.to_string(),
    }
}

/// ObjectMeta, checked loosely: the fields a config file sets are typed, anything else
/// (`managedFields`, `ownerReferences`, ...) passes, as it would through `kubectl apply`.
fn metadata_schema() -> Schema {
    let string = || Schema {
        ty: "string".into(),
        nullable: true,
        ..Schema::default()
    };
    let string_map = || Schema {
        ty: "object".into(),
        nullable: true,
        additional: Some(Box::new(string())),
        ..Schema::default()
    };
    let mut props = BTreeMap::new();
    for name in [
        "name",
        "namespace",
        "generateName",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        props.insert(name.to_string(), string());
    }
    props.insert("labels".into(), string_map());
    props.insert("annotations".into(), string_map());
    props.insert(
        "generation".into(),
        Schema {
            ty: "integer".into(),
            ..Schema::default()
        },
    );
    props.insert(
        "finalizers".into(),
        Schema {
            ty: "array".into(),
            nullable: true,
            items: Some(Box::new(string())),
            ..Schema::default()
        },
    );
    Schema {
        ty: "object".into(),
        properties: props,
        preserve_unknown: true,
        ..Schema::default()
    }
}

#[cfg(test)]
mod tests;
