//! An OpenAPI v3 schema node as a CustomResourceDefinition carries it, read from the positioned
//! YAML tree: the subset of keywords kube-apiserver honours for CRDs (types, bounds, patterns,
//! enums, combinators, the `x-kubernetes-*` extensions and CEL rules).
//!
//! A keyword this reader does not understand is an error when the CRD file is read, so a schema
//! feature is never silently dropped.

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::Regex;

use crate::yaml::{Node, Value};

use super::cel::{CelRules, Rule};

/// One schema node.
#[derive(Debug, Default)]
pub struct Schema {
    /// `type`, empty when absent (as for `x-kubernetes-int-or-string`).
    pub ty: String,
    pub nullable: bool,
    pub format: Option<String>,
    pub properties: BTreeMap<String, Schema>,
    pub required: Vec<String>,
    /// `additionalProperties` as a schema; `true` is an empty schema.
    pub additional: Option<Box<Schema>>,
    pub items: Option<Box<Schema>>,
    pub enum_values: Vec<Value>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub pattern: Option<(String, Regex)>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub exclusive_minimum: bool,
    pub exclusive_maximum: bool,
    pub min_items: Option<u64>,
    pub max_items: Option<u64>,
    pub min_properties: Option<u64>,
    pub max_properties: Option<u64>,
    pub one_of: Vec<Schema>,
    pub any_of: Vec<Schema>,
    pub all_of: Vec<Schema>,
    pub not: Option<Box<Schema>>,
    pub preserve_unknown: bool,
    pub int_or_string: bool,
    /// `x-kubernetes-list-type`: `atomic` (default), `set` or `map`.
    pub list_type: Option<String>,
    pub list_map_keys: Vec<String>,
    pub rules: Vec<Arc<Rule>>,
}

/// A problem in the CRD file itself (never in user input).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct SchemaError {
    pub path: String,
    pub message: String,
}

/// Keywords that only document and never validate.
const DOC_ONLY: &[&str] = &[
    "description",
    "title",
    "example",
    "default",
    "x-kubernetes-map-type",
];

impl Schema {
    /// Read a schema node. `at` names it in errors about the CRD file.
    pub fn from_node(node: &Node, at: &str, cel: &mut CelRules) -> Result<Schema, SchemaError> {
        let entries = node
            .as_map()
            .ok_or_else(|| err(at, "a schema must be a mapping"))?;
        let mut s = Schema::default();
        for (key, value) in entries {
            let here = format!("{at}.{}", key.name);
            s.read_keyword(&key.name, value, &here, cel)?;
        }
        Ok(s)
    }

    fn read_keyword(
        &mut self,
        key: &str,
        v: &Node,
        here: &str,
        cel: &mut CelRules,
    ) -> Result<(), SchemaError> {
        match key {
            "type" => self.ty = string(v, here)?,
            "nullable" => self.nullable = boolean(v, here)?,
            "format" => self.format = Some(string(v, here)?),
            "properties" => {
                for (k, sub) in v.as_map().ok_or_else(|| err(here, "must be a mapping"))? {
                    let sub = Schema::from_node(sub, &format!("{here}.{}", k.name), cel)?;
                    self.properties.insert(k.name.clone(), sub);
                }
            }
            "required" => self.required = strings(v, here)?,
            "additionalProperties" => {
                self.additional = match &v.value {
                    Value::Bool(true) => Some(Box::default()),
                    Value::Bool(false) => None,
                    _ => Some(Box::new(Schema::from_node(v, here, cel)?)),
                }
            }
            "items" => self.items = Some(Box::new(Schema::from_node(v, here, cel)?)),
            "enum" => {
                let seq = v.as_seq().ok_or_else(|| err(here, "must be a list"))?;
                self.enum_values = seq.iter().map(|n| n.value.clone()).collect();
            }
            "minLength" => self.min_length = Some(count(v, here)?),
            "maxLength" => self.max_length = Some(count(v, here)?),
            "pattern" => {
                let p = string(v, here)?;
                let re = Regex::new(&p).map_err(|e| err(here, &format!("bad pattern: {e}")))?;
                self.pattern = Some((p, re));
            }
            "minimum" => self.minimum = Some(number(v, here)?),
            "maximum" => self.maximum = Some(number(v, here)?),
            "exclusiveMinimum" => self.exclusive_minimum = boolean(v, here)?,
            "exclusiveMaximum" => self.exclusive_maximum = boolean(v, here)?,
            "minItems" => self.min_items = Some(count(v, here)?),
            "maxItems" => self.max_items = Some(count(v, here)?),
            "minProperties" => self.min_properties = Some(count(v, here)?),
            "maxProperties" => self.max_properties = Some(count(v, here)?),
            "oneOf" => self.one_of = list(v, here, cel)?,
            "anyOf" => self.any_of = list(v, here, cel)?,
            "allOf" => self.all_of = list(v, here, cel)?,
            "not" => self.not = Some(Box::new(Schema::from_node(v, here, cel)?)),
            "x-kubernetes-preserve-unknown-fields" => self.preserve_unknown = boolean(v, here)?,
            "x-kubernetes-int-or-string" => self.int_or_string = boolean(v, here)?,
            "x-kubernetes-list-type" => self.list_type = Some(string(v, here)?),
            "x-kubernetes-list-map-keys" => self.list_map_keys = strings(v, here)?,
            "x-kubernetes-validations" => {
                let seq = v.as_seq().ok_or_else(|| err(here, "must be a list"))?;
                for (i, rule) in seq.iter().enumerate() {
                    self.rules.push(cel.rule(rule, &format!("{here}[{i}]"))?);
                }
            }
            k if DOC_ONLY.contains(&k) => {}
            other => return Err(err(here, &format!("unsupported schema keyword {other:?}"))),
        }
        Ok(())
    }
}

fn err(path: &str, message: &str) -> SchemaError {
    SchemaError {
        path: path.to_string(),
        message: message.to_string(),
    }
}

fn string(v: &Node, at: &str) -> Result<String, SchemaError> {
    v.as_str()
        .map(str::to_string)
        .ok_or_else(|| err(at, "must be a string"))
}

fn boolean(v: &Node, at: &str) -> Result<bool, SchemaError> {
    match v.value {
        Value::Bool(b) => Ok(b),
        _ => Err(err(at, "must be a boolean")),
    }
}

fn count(v: &Node, at: &str) -> Result<u64, SchemaError> {
    match v.value {
        Value::Int(i) if i >= 0 => Ok(i as u64),
        _ => Err(err(at, "must be a non-negative integer")),
    }
}

fn number(v: &Node, at: &str) -> Result<f64, SchemaError> {
    match v.value {
        Value::Int(i) => Ok(i as f64),
        Value::Float(f) => Ok(f),
        _ => Err(err(at, "must be a number")),
    }
}

fn strings(v: &Node, at: &str) -> Result<Vec<String>, SchemaError> {
    v.as_seq()
        .ok_or_else(|| err(at, "must be a list of strings"))?
        .iter()
        .map(|n| string(n, at))
        .collect()
}

fn list(v: &Node, at: &str, cel: &mut CelRules) -> Result<Vec<Schema>, SchemaError> {
    v.as_seq()
        .ok_or_else(|| err(at, "must be a list of schemas"))?
        .iter()
        .enumerate()
        .map(|(i, n)| Schema::from_node(n, &format!("{at}[{i}]"), cel))
        .collect()
}
