//! A serde `Deserializer` over the positioned YAML tree, so typed models decode straight from
//! [`Node`] and every error carries the field path (`spec.http[0].route[0].weigth`) and the
//! line and column it refers to.
//!
//! Typed models use `#[serde(deny_unknown_fields)]`; an unknown key is reported at the key
//! itself, as `unknown field "PATH"` (the wording `kubectl`/`istioctl validate` use).

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

use crate::yaml::{Node, Pos, Value};

/// A decoding error with the field path and position it belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct DeError {
    /// Dotted field path from the root of the decoded value, e.g. `spec.hosts[0]`.
    pub path: String,
    pub pos: Pos,
    pub message: String,
    located: bool,
}

impl DeError {
    fn locate(mut self, path: &str, pos: Pos) -> Self {
        if !self.located {
            self.path = path.to_string();
            self.pos = pos;
            self.located = true;
            if let Some(rest) = self.message.strip_prefix(UNKNOWN_FIELD_MARK) {
                // The message was built without the path; now we know it.
                self.message = format!("unknown field \"{path}\"{rest}");
            }
        }
        self
    }
}

const UNKNOWN_FIELD_MARK: &str = "\u{0}unknown-field";

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.message.starts_with("unknown field") {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            path: String::new(),
            pos: Pos::default(),
            message: msg.to_string(),
            located: false,
        }
    }

    fn unknown_field(_field: &str, _expected: &'static [&'static str]) -> Self {
        DeError {
            path: String::new(),
            pos: Pos::default(),
            message: UNKNOWN_FIELD_MARK.to_string(),
            located: false,
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Self::custom(format_args!("{field}: Required value"))
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::custom(format_args!("invalid type: {unexp}, expected {exp}"))
    }
}

/// Decode a typed value from a node. `base` is the path of `node` (e.g. `spec`), used as the
/// prefix of every error path.
pub fn from_node<T: DeserializeOwned>(node: &Node, base: &str) -> Result<T, DeError> {
    T::deserialize(NodeDe {
        node,
        path: base.to_string(),
    })
}

struct NodeDe<'a> {
    node: &'a Node,
    path: String,
}

impl<'a> NodeDe<'a> {
    fn child_field(&self, node: &'a Node, key: &str) -> NodeDe<'a> {
        let path = if self.path.is_empty() {
            key.to_string()
        } else if key.contains('.') || key.contains('[') {
            format!("{}[{key:?}]", self.path)
        } else {
            format!("{}.{key}", self.path)
        };
        NodeDe { node, path }
    }

    fn child_index(&self, node: &'a Node, i: usize) -> NodeDe<'a> {
        NodeDe {
            node,
            path: format!("{}[{i}]", self.path),
        }
    }

    fn fix<T>(&self, r: Result<T, DeError>) -> Result<T, DeError> {
        r.map_err(|e| e.locate(&self.path, self.node.pos))
    }
}

macro_rules! forward_int {
    ($($method:ident $visit:ident $ty:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let r = match &self.node.value {
                Value::Int(i) => match <$ty>::try_from(*i) {
                    Ok(v) => visitor.$visit(v),
                    Err(_) => Err(de::Error::custom(format_args!(
                        "{i} is out of range for {}", stringify!($ty)
                    ))),
                },
                // Kubernetes accepts integral floats (JSON numbers) for integer fields.
                Value::Float(f) if f.fract() == 0.0 && f.is_finite() => match <$ty>::try_from(*f as i64) {
                    Ok(v) => visitor.$visit(v),
                    Err(_) => Err(de::Error::custom(format_args!(
                        "{f} is out of range for {}", stringify!($ty)
                    ))),
                },
                _ => return self.deserialize_any(visitor),
            };
            self.fix(r)
        }
    )*};
}

impl<'de, 'a> de::Deserializer<'de> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(SeqAccess {
                parent: &self,
                items: items.iter().enumerate(),
            }),
            Value::Map(entries) => visitor.visit_map(MapAccess {
                parent: &self,
                entries: entries.iter(),
                value: None,
            }),
        };
        self.fix(r)
    }

    forward_int!(
        deserialize_i8 visit_i8 i8, deserialize_i16 visit_i16 i16, deserialize_i32 visit_i32 i32,
        deserialize_i64 visit_i64 i64, deserialize_u8 visit_u8 u8, deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32, deserialize_u64 visit_u64 u64
    );

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Int(i) => visitor.visit_f64(*i as f64),
            _ => return self.deserialize_any(visitor),
        };
        self.fix(r)
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(NodeDe {
                node: self.node,
                path: self.path.clone(),
            }),
        };
        self.fix(r)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            // Unit variants are plain strings (protobuf enums in YAML).
            Value::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            Value::Map(entries) if entries.len() == 1 => visitor.visit_enum(EnumAccess {
                parent: &self,
                key: &entries[0].0.name,
                value: &entries[0].1,
            }),
            other => Err(de::Error::custom(format_args!(
                "expected a string, found {}",
                other.type_name()
            ))),
        };
        self.fix(r)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let r = visitor.visit_newtype_struct(NodeDe {
            node: self.node,
            path: self.path.clone(),
        });
        self.fix(r)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let r = match &self.node.value {
            Value::Str(s) => visitor.visit_str(s),
            other => Err(de::Error::custom(format_args!(
                "Invalid value: \"{}\": must be of type string",
                other.type_name()
            ))),
        };
        self.fix(r)
    }

    serde::forward_to_deserialize_any! {
        bool i128 u128 char bytes byte_buf unit unit_struct seq tuple
        tuple_struct map struct identifier ignored_any
    }
}

struct SeqAccess<'p, 'a> {
    parent: &'p NodeDe<'a>,
    items: std::iter::Enumerate<std::slice::Iter<'a, Node>>,
}

impl<'de> de::SeqAccess<'de> for SeqAccess<'_, '_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            Some((i, node)) => seed.deserialize(self.parent.child_index(node, i)).map(Some),
            None => Ok(None),
        }
    }
}

struct MapAccess<'p, 'a> {
    parent: &'p NodeDe<'a>,
    entries: std::slice::Iter<'a, (crate::yaml::Key, Node)>,
    value: Option<(&'a str, &'a Node)>,
}

impl<'de> de::MapAccess<'de> for MapAccess<'_, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        match self.entries.next() {
            Some((key, node)) => {
                self.value = Some((key.name.as_str(), node));
                let field = self.parent.child_field(node, &key.name);
                seed.deserialize(key.name.as_str().into_deserializer())
                    .map(Some)
                    .map_err(|e: DeError| e.locate(&field.path, key.pos))
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (key, node) = self
            .value
            .take()
            .ok_or_else(|| <DeError as de::Error>::custom("value requested before key"))?;
        seed.deserialize(self.parent.child_field(node, key))
    }
}

struct EnumAccess<'p, 'a> {
    parent: &'p NodeDe<'a>,
    key: &'a str,
    value: &'a Node,
}

impl<'de, 'p, 'a> de::EnumAccess<'de> for EnumAccess<'p, 'a> {
    type Error = DeError;
    type Variant = NodeDe<'a>;

    fn variant_seed<V: DeserializeSeed<'de>>(
        self,
        seed: V,
    ) -> Result<(V::Value, NodeDe<'a>), DeError> {
        let v = seed.deserialize(self.key.into_deserializer())?;
        Ok((v, self.parent.child_field(self.value, self.key)))
    }
}

impl<'de> de::VariantAccess<'de> for NodeDe<'_> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_any(self, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_any(self, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Dest {
        host: String,
        #[serde(default)]
        weight: Option<i32>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Route {
        #[serde(default)]
        route: Vec<Dest>,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default)]
        mode: Option<Mode>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    enum Mode {
        Strict,
        Permissive,
    }

    fn node(text: &str) -> Node {
        crate::yaml::parse_stream(text)
            .0
            .remove(0)
            .root
            .expect("doc")
    }

    #[test]
    fn unknown_field_names_path_and_line() {
        let n = node("route:\n- host: a\n  weigth: 5\n");
        let err = from_node::<Route>(&n, "spec").expect_err("unknown field");
        assert_eq!(err.path, "spec.route[0].weigth");
        assert_eq!(err.pos, Pos { line: 3, col: 3 });
        assert_eq!(err.to_string(), "unknown field \"spec.route[0].weigth\"");
    }

    #[test]
    fn type_errors_point_at_the_value() {
        let n = node("route:\n- host: a\n  weight: x\n");
        let err = from_node::<Route>(&n, "spec").expect_err("type");
        assert_eq!(err.path, "spec.route[0].weight");
        assert_eq!(err.pos.line, 3);
        let n = node("mode: LOOSE\n");
        let err = from_node::<Route>(&n, "spec").expect_err("enum");
        assert_eq!(err.path, "spec.mode");
        assert!(err.message.contains("LOOSE"), "{err}");
    }

    #[test]
    fn decodes_maps_options_and_enums() {
        let n = node("route:\n- host: a\n  weight: 10\nheaders: {x: y}\nmode: STRICT\n");
        let r = from_node::<Route>(&n, "spec").expect("ok");
        assert_eq!(r.route[0].weight, Some(10));
        assert_eq!(r.route[0].host, "a");
        assert_eq!(r.headers.get("x").map(String::as_str), Some("y"));
        assert_eq!(r.mode, Some(Mode::Strict));
        let _ = Mode::Permissive;
    }
}
