//! YAML (and JSON, which is YAML) to a positioned tree: every node and every mapping key keeps the
//! line and column it was read from, so any later error can name `file:line:col`.
//!
//! Built on `saphyr-parser`'s event stream. Plain scalars are resolved with the YAML 1.2 core
//! schema (`null`/`~`/empty, `true`/`false`, integers, floats); quoted and block scalars are
//! always strings. Anchors and aliases are expanded (with a budget against alias bombs).

use std::collections::HashMap;
use std::fmt;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// A 1-based line and column in the source text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// A YAML node with the position of its first character.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

/// A mapping key: always a string here (Kubernetes objects have string keys only).
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Entries in document order; duplicate keys are rejected at parse time.
    Map(Vec<(Key, Node)>),
}

impl Value {
    /// The JSON-schema type name Kubernetes uses in messages ("string", "object", ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) => "integer",
            Value::Float(_) => "number",
            Value::Str(_) => "string",
            Value::Seq(_) => "array",
            Value::Map(_) => "object",
        }
    }
}

impl Node {
    pub fn new(value: Value, pos: Pos) -> Self {
        Node { value, pos }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Key, Node)]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }

    /// The value under `key` when this node is a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.get_entry(key).map(|(_, v)| v)
    }

    /// The key and value under `key` when this node is a mapping.
    pub fn get_entry(&self, key: &str) -> Option<(&Key, &Node)> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.name == key)
            .map(|(k, v)| (k, v))
    }

    /// Position of the node at a field path such as `spec.http[0].route[1].weight` (a leading
    /// `spec` etc. is relative to this node). Falls back to the deepest ancestor that exists, so
    /// an error about a missing field points at its parent. For a mapping entry the position is
    /// the key's, which is where an editor puts the cursor.
    pub fn locate(&self, path: &str) -> Pos {
        let mut node = self;
        let mut pos = self.pos;
        for seg in parse_path(path) {
            match seg {
                PathSeg::Field(name) => match node.get_entry(&name) {
                    Some((k, v)) => {
                        pos = k.pos;
                        node = v;
                    }
                    None => return pos,
                },
                PathSeg::Index(i) => match node.as_seq().and_then(|s| s.get(i)) {
                    Some(v) => {
                        pos = v.pos;
                        node = v;
                    }
                    None => return pos,
                },
            }
        }
        pos
    }

    /// Convert to JSON (positions dropped). Floats that are not finite become null.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

enum PathSeg {
    Field(String),
    Index(usize),
}

/// Split `a.b[0].c` into segments. Map keys that contain dots may be written `a["x.y"]`.
fn parse_path(path: &str) -> Vec<PathSeg> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !cur.is_empty() {
                    out.push(PathSeg::Field(std::mem::take(&mut cur)));
                }
            }
            '[' => {
                if !cur.is_empty() {
                    out.push(PathSeg::Field(std::mem::take(&mut cur)));
                }
                let mut inner = String::new();
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    inner.push(c);
                }
                let quoted = inner.trim_matches('"');
                match inner.parse::<usize>() {
                    Ok(i) => out.push(PathSeg::Index(i)),
                    Err(_) => out.push(PathSeg::Field(quoted.to_string())),
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(PathSeg::Field(cur));
    }
    out
}

/// One document of a stream: its root node (None for an empty document) and the line where the
/// document starts.
#[derive(Clone, Debug)]
pub struct Document {
    pub root: Option<Node>,
    pub start: Pos,
}

/// A syntax error: where, and what.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct SyntaxError {
    pub pos: Pos,
    pub message: String,
}

/// Alias expansion budget: the total number of nodes an input may expand to.
const MAX_EXPANDED_NODES: usize = 1_000_000;
/// Maximum nesting depth, against stack exhaustion on hostile input.
const MAX_DEPTH: usize = 256;

/// Parse a multi-document YAML (or JSON) stream. Returns every document up to the first syntax
/// error, and that error if there was one: documents before a broken one are still usable.
pub fn parse_stream(text: &str) -> (Vec<Document>, Option<SyntaxError>) {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        text,
        pending: Vec::new(),
        anchors: HashMap::new(),
        expanded: 0,
    };
    let mut docs = Vec::new();
    loop {
        match builder.next_document() {
            Ok(Some(doc)) => docs.push(doc),
            Ok(None) => return (docs, None),
            Err(e) => return (docs, Some(e)),
        }
    }
}

struct Builder<'a> {
    parser: Parser<'a, saphyr_parser::StrInput<'a>>,
    text: &'a str,
    /// Events read ahead and given back (a stack: the last pushed is read first).
    pending: Vec<(Event<'a>, Span)>,
    anchors: HashMap<usize, Node>,
    expanded: usize,
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

impl<'a> Builder<'a> {
    fn next_event(&mut self) -> Result<(Event<'a>, Span), SyntaxError> {
        if let Some(ev) = self.pending.pop() {
            return Ok(ev);
        }
        match self.parser.next_event() {
            Some(Ok(ev)) => Ok(ev),
            Some(Err(e)) => Err(SyntaxError {
                pos: Pos {
                    line: e.marker().line(),
                    col: e.marker().col() + 1,
                },
                message: e.info().to_string(),
            }),
            None => Ok((Event::StreamEnd, Span::default())),
        }
    }

    fn next_document(&mut self) -> Result<Option<Document>, SyntaxError> {
        loop {
            let (ev, span) = self.next_event()?;
            match ev {
                Event::StreamStart | Event::Nothing | Event::DocumentEnd => continue,
                Event::StreamEnd => return Ok(None),
                Event::DocumentStart(_) => {
                    self.anchors.clear();
                    let start = pos_of(&span);
                    let (ev, span) = self.next_event()?;
                    if matches!(ev, Event::DocumentEnd) {
                        return Ok(Some(Document { root: None, start }));
                    }
                    let root = self.node(ev, span, 0)?;
                    let root = if root.is_null() { None } else { Some(root) };
                    return Ok(Some(Document { root, start }));
                }
                _ => {
                    return Err(SyntaxError {
                        pos: pos_of(&span),
                        message: "unexpected event outside a document".into(),
                    });
                }
            }
        }
    }

    fn count(&mut self, n: usize, pos: Pos) -> Result<(), SyntaxError> {
        self.expanded += n;
        if self.expanded > MAX_EXPANDED_NODES {
            return Err(SyntaxError {
                pos,
                message: format!(
                    "document expands to more than {MAX_EXPANDED_NODES} nodes (alias bomb?)"
                ),
            });
        }
        Ok(())
    }

    fn node(&mut self, ev: Event<'a>, span: Span, depth: usize) -> Result<Node, SyntaxError> {
        let pos = pos_of(&span);
        if depth > MAX_DEPTH {
            return Err(SyntaxError {
                pos,
                message: format!("nesting deeper than {MAX_DEPTH} levels"),
            });
        }
        self.count(1, pos)?;
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let value = resolve_scalar(&text, style, tag.as_deref().map(|t| t.suffix.as_str()));
                let node = Node::new(value, pos);
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().ok_or_else(|| SyntaxError {
                    pos,
                    message: "alias to an unknown anchor".into(),
                })?;
                let size = node_size(&node);
                self.count(size, pos)?;
                Ok(Node::new(node.value, pos))
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (ev, span) = self.next_event()?;
                    match ev {
                        Event::SequenceEnd => break,
                        Event::StreamEnd => return Err(eof(pos)),
                        ev => items.push(self.sequence_item(ev, span, depth + 1)?),
                    }
                }
                let node = Node::new(Value::Seq(items), pos);
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::MappingStart(anchor, _) => {
                let mut entries: Vec<(Key, Node)> = Vec::new();
                // Keys that came from a `<<` merge; an explicit key replaces them.
                let mut merged: Vec<String> = Vec::new();
                loop {
                    let (ev, span) = self.next_event()?;
                    let key_node = match ev {
                        Event::MappingEnd => break,
                        Event::StreamEnd => return Err(eof(pos)),
                        ev => self.node(ev, span, depth + 1)?,
                    };
                    let name = key_string(&key_node)?;
                    let (ev, span) = self.next_event()?;
                    let value = self.node(ev, span, depth + 1)?;
                    if name == "<<" {
                        merge_keys(&mut entries, &mut merged, value)?;
                        continue;
                    }
                    if let Some(i) = merged.iter().position(|m| *m == name) {
                        merged.remove(i);
                        entries.retain(|(k, _)| k.name != name);
                    }
                    if entries.iter().any(|(k, _)| k.name == name) {
                        return Err(SyntaxError {
                            pos: key_node.pos,
                            message: format!("duplicate key \"{name}\""),
                        });
                    }
                    entries.push((
                        Key {
                            name,
                            pos: key_node.pos,
                        },
                        value,
                    ));
                }
                let node = Node::new(Value::Map(entries), pos);
                self.remember(anchor, &node);
                Ok(node)
            }
            other => Err(SyntaxError {
                pos,
                message: format!("unexpected YAML event {other:?}"),
            }),
        }
    }

    fn sequence_item(
        &mut self,
        ev: Event<'a>,
        span: Span,
        depth: usize,
    ) -> Result<Node, SyntaxError> {
        // A zero-width mapping start inside a sequence is an implicit one-pair mapping.
        if matches!(ev, Event::MappingStart(..))
            && span.start.index() == span.end.index()
            && let Some(node) = self.colon_ended_scalar()?
        {
            self.count(1, node.pos)?;
            return Ok(node);
        }
        self.node(ev, span, depth)
    }

    /// go-yaml, which Kubernetes reads YAML with, ends a plain scalar at `:` only before a
    /// blank, so it reads `[001:db8::]` as the string `001:db8::`, where YAML 1.2 (and
    /// saphyr) read a one-pair mapping `{"001:db8:": null}`. Config written for Kubernetes
    /// means the former. Called after such a pair's mapping start; gives the events back when
    /// the pair is not that case.
    fn colon_ended_scalar(&mut self) -> Result<Option<Node>, SyntaxError> {
        let key = self.next_event()?;
        let value = self.next_event()?;
        if let (
            (Event::Scalar(text, ScalarStyle::Plain, 0, None), key_span),
            (Event::Scalar(empty, ScalarStyle::Plain, 0, None), value_span),
        ) = (&key, &value)
            && empty.is_empty()
            && value_span.start.index() == value_span.end.index()
            && key_span.end.index() == value_span.start.index()
            && self.colon_before_flow_indicator(key_span.end.index())
        {
            let end = self.next_event()?;
            if matches!(end.0, Event::MappingEnd) {
                let node = Node::new(resolve_plain(&format!("{text}:")), pos_of(key_span));
                return Ok(Some(node));
            }
            self.pending.push(end);
        }
        self.pending.push(value);
        self.pending.push(key);
        Ok(None)
    }

    /// Whether the character at `index` (in characters) is `:` followed by a flow indicator.
    fn colon_before_flow_indicator(&self, index: usize) -> bool {
        let mut chars = self.text.chars().skip(index);
        chars.next() == Some(':') && chars.next().is_some_and(|c| ",]}[{".contains(c))
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }
}

fn eof(pos: Pos) -> SyntaxError {
    SyntaxError {
        pos,
        message: "unexpected end of input inside a collection".into(),
    }
}

fn node_size(node: &Node) -> usize {
    match &node.value {
        Value::Seq(items) => 1 + items.iter().map(node_size).sum::<usize>(),
        Value::Map(entries) => 1 + entries.iter().map(|(_, v)| 1 + node_size(v)).sum::<usize>(),
        _ => 1,
    }
}

/// YAML merge key (`<<: *base`): entries not already present are added.
fn merge_keys(
    entries: &mut Vec<(Key, Node)>,
    merged: &mut Vec<String>,
    value: Node,
) -> Result<(), SyntaxError> {
    let sources = match value.value {
        Value::Map(_) => vec![value],
        Value::Seq(items) => items,
        _ => {
            return Err(SyntaxError {
                pos: value.pos,
                message: "merge key '<<' needs a mapping or a list of mappings".into(),
            });
        }
    };
    for src in sources {
        let Value::Map(src_entries) = src.value else {
            return Err(SyntaxError {
                pos: src.pos,
                message: "merge key '<<' needs a mapping or a list of mappings".into(),
            });
        };
        for (k, v) in src_entries {
            if !entries.iter().any(|(e, _)| e.name == k.name) {
                merged.push(k.name.clone());
                entries.push((k, v));
            }
        }
    }
    Ok(())
}

fn key_string(node: &Node) -> Result<String, SyntaxError> {
    match &node.value {
        Value::Str(s) => Ok(s.clone()),
        Value::Int(i) => Ok(i.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok("null".to_string()),
        Value::Seq(_) | Value::Map(_) => Err(SyntaxError {
            pos: node.pos,
            message: "mapping keys must be scalars".into(),
        }),
    }
}

/// Resolve a scalar with the YAML 1.2 core schema. An explicit `!!str`/`!!int`/... tag wins.
fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&str>) -> Value {
    match tag {
        Some("str") => return Value::Str(text.to_string()),
        Some("null") => return Value::Null,
        Some("bool") | Some("int") | Some("float") => return resolve_plain(text),
        _ => {}
    }
    if style != ScalarStyle::Plain {
        return Value::Str(text.to_string());
    }
    resolve_plain(text)
}

fn resolve_plain(text: &str) -> Value {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(v) = parse_int(text) {
        return Value::Int(v);
    }
    if looks_like_float(text)
        && let Ok(f) = text.parse::<f64>()
    {
        return Value::Float(f);
    }
    Value::Str(text.to_string())
}

fn parse_int(text: &str) -> Option<i64> {
    if let Some(hex) = text.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok();
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok();
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse::<i64>().ok()
}

/// Core-schema float: `[-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn looks_like_float(text: &str) -> bool {
    let t = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], Some(&t[i + 1..])),
        None => (t, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some((a, b)) => {
            (!a.is_empty() || !b.is_empty())
                && a.bytes().all(|c| c.is_ascii_digit())
                && b.bytes().all(|c| c.is_ascii_digit())
        }
        None => !mantissa.is_empty() && mantissa.bytes().all(|c| c.is_ascii_digit()),
    };
    let exp_ok = match exp {
        None => true,
        Some(e) => {
            let e = e.strip_prefix(['-', '+']).unwrap_or(e);
            !e.is_empty() && e.bytes().all(|c| c.is_ascii_digit())
        }
    };
    mantissa_ok && exp_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Node {
        let (docs, err) = parse_stream(text);
        assert!(err.is_none(), "{err:?}");
        docs.into_iter()
            .next()
            .and_then(|d| d.root)
            .expect("a document")
    }

    #[test]
    fn scalars_resolve_with_core_schema() {
        let n = one("a: 1\nb: '1'\nc: true\nd: ~\ne: 1.5\nf: yes\ng: 0x1F\nh: 1e3\ni: 1.2.3\n");
        assert_eq!(n.get("a").map(|v| &v.value), Some(&Value::Int(1)));
        assert_eq!(n.get("b").map(|v| &v.value), Some(&Value::Str("1".into())));
        assert_eq!(n.get("c").map(|v| &v.value), Some(&Value::Bool(true)));
        assert_eq!(n.get("d").map(|v| &v.value), Some(&Value::Null));
        assert_eq!(n.get("e").map(|v| &v.value), Some(&Value::Float(1.5)));
        assert_eq!(
            n.get("f").map(|v| &v.value),
            Some(&Value::Str("yes".into()))
        );
        assert_eq!(n.get("g").map(|v| &v.value), Some(&Value::Int(31)));
        assert_eq!(n.get("h").map(|v| &v.value), Some(&Value::Float(1000.0)));
        assert_eq!(
            n.get("i").map(|v| &v.value),
            Some(&Value::Str("1.2.3".into()))
        );
    }

    #[test]
    fn positions_and_locate() {
        let text = "kind: X\nspec:\n  http:\n  - route:\n    - weigth: 5\n";
        let n = one(text);
        assert_eq!(
            n.locate("spec.http[0].route[0].weigth"),
            Pos { line: 5, col: 7 }
        );
        // Missing leaf falls back to the parent.
        assert_eq!(
            n.locate("spec.http[0].route[0].nope"),
            Pos { line: 5, col: 7 }
        );
        assert_eq!(n.locate("spec"), Pos { line: 2, col: 1 });
    }

    #[test]
    fn multi_document_with_start_lines() {
        let (docs, err) = parse_stream("a: 1\n---\nb: 2\n---\n---\nc: 3\n");
        assert!(err.is_none());
        assert_eq!(docs.len(), 4);
        assert_eq!(docs[1].start.line, 2);
        assert!(docs[2].root.is_none());
        assert_eq!(docs[3].root.as_ref().map(|r| r.pos.line), Some(6));
    }

    #[test]
    fn json_is_yaml() {
        let n = one(r#"{"kind": "X", "spec": {"a": [1, 2, {"b": null}]}}"#);
        assert_eq!(n.get("kind").and_then(Node::as_str), Some("X"));
        assert_eq!(n.to_json()["spec"]["a"][1], serde_json::json!(2));
    }

    #[test]
    fn syntax_error_keeps_earlier_documents() {
        let (docs, err) = parse_stream("a: 1\n---\nb: [1, 2\n");
        assert_eq!(docs.len(), 1);
        let err = err.expect("syntax error");
        assert!(err.pos.line >= 3, "{err}");
    }

    #[test]
    fn duplicate_keys_and_alias_bombs_are_errors() {
        let (_, err) = parse_stream("a: 1\na: 2\n");
        assert!(err.expect("dup").message.contains("duplicate key"));
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            bomb.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let (_, err) = parse_stream(&bomb);
        assert!(err.expect("bomb").message.contains("expands"));
    }

    #[test]
    fn colon_ended_plain_scalars_in_flow_sequences_read_as_go_yaml_does() {
        let n = one("a: [1.2.3.4, 001:db8::]\nb: [x:, y]\nc: [k: v]\nd: [k:]\ne:\n- f:\n");
        let seq = |k: &str| n.get(k).and_then(Node::as_seq).map(<[Node]>::to_vec);
        let a = seq("a").expect("a");
        assert_eq!(a[1].value, Value::Str("001:db8::".into()));
        assert_eq!(a[1].pos, Pos { line: 1, col: 14 });
        let b = seq("b").expect("b");
        assert_eq!(b[0].value, Value::Str("x:".into()));
        assert_eq!(b[1].value, Value::Str("y".into()));
        // A real pair (`: ` with a blank, or a value) stays a mapping.
        assert!(seq("c").expect("c")[0].get("k").is_some());
        assert_eq!(seq("d").expect("d")[0].value, Value::Str("k:".into()));
        assert!(seq("e").expect("e")[0].get("f").is_some_and(Node::is_null));
    }

    #[test]
    fn anchors_and_merge_keys() {
        let n = one("base: &b {x: 1, y: 2}\nderived:\n  <<: *b\n  y: 3\n");
        let d = n.get("derived").expect("derived");
        assert_eq!(d.get("x").map(|v| &v.value), Some(&Value::Int(1)));
        assert_eq!(d.get("y").map(|v| &v.value), Some(&Value::Int(3)));
    }
}
