//! `x-kubernetes-validations`: compiling each CEL rule once and evaluating it with `self` bound
//! to the value at its schema node, the way kube-apiserver does for CRDs, with the API server's
//! wording for failures (`Invalid value: "object": <message>`) and for evaluation errors
//! (`<error> evaluating rule: <message>`).

use std::collections::HashMap;
use std::sync::Arc;

use cel::common::value::Val;
use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, Program, Value as CelValue};

use crate::yaml::{Node, Value};

use super::kubelib;
use super::model::{Schema, SchemaError};

/// One rule as written in the CRD, with its compiled program.
#[derive(Debug)]
pub struct Rule {
    pub source: String,
    pub message: Option<String>,
    pub message_expression: Option<String>,
    /// `reason`: `FieldValueInvalid` (default), `FieldValueForbidden`, `FieldValueRequired`,
    /// `FieldValueDuplicate`.
    pub reason: Option<String>,
    /// `fieldPath`: where a failure is reported, relative to the rule's node (`.a.b`).
    pub field_path: Option<String>,
    pub program: Result<Arc<Program>, String>,
    pub message_program: Option<Result<Arc<Program>, String>>,
}

/// Compiles rules, sharing one program among identical sources (Istio repeats a few rules
/// hundreds of times across kinds and versions).
pub struct CelRules {
    env: Arc<Env>,
    cache: HashMap<String, Result<Arc<Program>, String>>,
}

impl Default for CelRules {
    fn default() -> Self {
        let mut env = Env::stdlib();
        // `substring` and friends: part of the Kubernetes CEL environment (cel-go's strings
        // extension). Registration only fails on duplicate names, which a fresh Env cannot have.
        let strings = env.add_extension(cel::extensions::strings);
        debug_assert!(strings.is_ok(), "{strings:?}");
        CelRules {
            env: Arc::new(env),
            cache: HashMap::new(),
        }
    }
}

impl CelRules {
    pub fn env(&self) -> Arc<Env> {
        self.env.clone()
    }

    /// Read one `x-kubernetes-validations` entry. A rule that fails to compile is kept with
    /// its error: evaluating it reports that error, so it can never pass silently.
    pub fn rule(&mut self, node: &Node, at: &str) -> Result<Arc<Rule>, SchemaError> {
        let field = |name: &str| -> Result<Option<String>, SchemaError> {
            match node.get(name) {
                None => Ok(None),
                Some(v) => v.as_str().map(|s| Some(s.to_string())).ok_or(SchemaError {
                    path: format!("{at}.{name}"),
                    message: "must be a string".into(),
                }),
            }
        };
        let source = field("rule")?.ok_or(SchemaError {
            path: at.to_string(),
            message: "a validation rule needs `rule`".into(),
        })?;
        if let Some(entries) = node.as_map() {
            for (k, _) in entries {
                let known = [
                    "rule",
                    "message",
                    "messageExpression",
                    "reason",
                    "fieldPath",
                    "optionalOldSelf",
                ];
                if !known.contains(&k.name.as_str()) {
                    return Err(SchemaError {
                        path: format!("{at}.{}", k.name),
                        message: "unsupported validation rule field".into(),
                    });
                }
            }
        }
        let message_expression = field("messageExpression")?;
        let program = self.compile(&source);
        let message_program = message_expression.as_deref().map(|m| self.compile(m));
        Ok(Arc::new(Rule {
            message: field("message")?,
            reason: field("reason")?,
            field_path: field("fieldPath")?,
            source,
            message_expression,
            program,
            message_program,
        }))
    }

    fn compile(&mut self, source: &str) -> Result<Arc<Program>, String> {
        if let Some(p) = self.cache.get(source) {
            return p.clone();
        }
        let compiled = self
            .env
            .compile(source)
            .map(Arc::new)
            .map_err(|e| e.to_string());
        self.cache.insert(source.to_string(), compiled.clone());
        compiled
    }

    /// Every distinct rule source read so far, with its compile result.
    pub fn compiled(&self) -> impl Iterator<Item = (&String, &Result<Arc<Program>, String>)> {
        self.cache.iter()
    }
}

/// What evaluating a rule gave.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    Pass,
    /// The rule was false; the detail is its message (or messageExpression, or default).
    Fail(String),
    /// The rule could not be evaluated; the full detail as the API server words it.
    Error(String),
}

impl Rule {
    /// `message` if set, else the rule: what the API server quotes after "evaluating rule:".
    fn error_string(&self) -> String {
        match &self.message {
            Some(m) if !m.is_empty() => m.trim().to_string(),
            _ => self.source.trim().to_string(),
        }
    }

    /// Evaluate with `self` bound to `this`.
    pub fn evaluate(&self, env: &Arc<Env>, this: &CelValue) -> Verdict {
        let program = match &self.program {
            Ok(p) => p,
            Err(e) => return Verdict::Error(format!("rule compile error: {e}")),
        };
        match run(env, program, this) {
            Ok(CelValue::Bool(true)) => Verdict::Pass,
            Ok(CelValue::Bool(false)) => Verdict::Fail(self.failure_message(env, this)),
            Ok(other) => Verdict::Error(format!(
                "rule evaluated to {:?}, not a bool, evaluating rule: {}",
                other,
                self.error_string()
            )),
            Err(e) => {
                let text = go_error_text(&e);
                if text.starts_with("no such overload") {
                    Verdict::Error(format!(
                        "'{text}': call arguments did not match a supported operator, function or macro signature for rule: {}",
                        self.error_string()
                    ))
                } else {
                    Verdict::Error(format!("{text} evaluating rule: {}", self.error_string()))
                }
            }
        }
    }

    fn failure_message(&self, env: &Arc<Env>, this: &CelValue) -> String {
        if let Some(Ok(p)) = &self.message_program
            && let Ok(CelValue::String(s)) = run(env, p, this)
            && !s.trim().is_empty()
            && !s.contains('\n')
        {
            return s.trim().to_string();
        }
        match &self.message {
            Some(m) if !m.is_empty() => m.trim().to_string(),
            _ => format!("failed rule: {}", self.source.trim()),
        }
    }
}

fn run(env: &Arc<Env>, program: &Program, this: &CelValue) -> Result<CelValue, ExecutionError> {
    let mut ctx = Context::with_env(env.clone());
    kubelib::register(&mut ctx)
        .map_err(|e| ExecutionError::function_error("register", format!("{e:?}")))?;
    let this: Box<dyn Val> = this.clone().try_into()?;
    ctx.add_variable_as_val("self", this);
    program.execute(&ctx)
}

/// cel-go's wording for the errors the API server passes through, where the `cel` crate words
/// them differently.
fn go_error_text(e: &ExecutionError) -> String {
    match e {
        ExecutionError::FunctionError { function, message } => {
            if function == "int" && message.starts_with("string parse error") {
                "type conversion error from 'string' to 'int'".into()
            } else {
                message.clone()
            }
        }
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        ExecutionError::NoSuchOverload(o) => format!("no such overload: {o}"),
        other => other.to_string(),
    }
}

/// The CEL value of a node, typed by its schema as the API server types it: an integer written
/// where the schema says `number` is a double, a whole float where it says `integer` is an int
/// (JSON carries no difference), and fields the schema would prune are left out.
pub fn to_cel(node: &Node, schema: Option<&Schema>) -> CelValue {
    let integral = schema.is_some_and(|s| s.ty == "integer" || s.int_or_string);
    match &node.value {
        Value::Null => CelValue::Null,
        Value::Bool(b) => CelValue::Bool(*b),
        Value::Int(i) if schema.is_some_and(|s| s.ty == "number") => CelValue::Float(*i as f64),
        Value::Int(i) => CelValue::Int(*i),
        Value::Float(f) if integral && f.fract() == 0.0 && f.abs() < 9.2e18 => {
            CelValue::Int(*f as i64)
        }
        Value::Float(f) => CelValue::Float(*f),
        Value::Str(s) => CelValue::String(Arc::new(s.clone())),
        Value::Seq(items) => {
            let item_schema = schema.and_then(|s| s.items.as_deref());
            CelValue::List(Arc::new(
                items.iter().map(|n| to_cel(n, item_schema)).collect(),
            ))
        }
        Value::Map(entries) => {
            let mut map = HashMap::with_capacity(entries.len());
            for (k, v) in entries {
                let sub = schema.map(|s| s.properties.get(&k.name).or(s.additional.as_deref()));
                match sub {
                    Some(None) if schema.is_some_and(|s| !s.preserve_unknown) => continue,
                    Some(sub) => map.insert(Key::from(k.name.clone()), to_cel(v, sub)),
                    None => map.insert(Key::from(k.name.clone()), to_cel(v, None)),
                };
            }
            CelValue::Map(Map::from(map))
        }
    }
}
