//! Field paths as the Kubernetes API server prints them, plus the form `Node::locate` reads.
//!
//! The API server uses two spellings: kube-openapi's (`spec.selector.matchLabels.app`, map keys
//! joined with dots) inside "in body" messages and structural errors, and `field.Path`'s
//! (`spec.selector.matchLabels[app]`) for CEL errors. Plexus prints whichever the API server
//! would, and locates with a third form whose map keys are quoted (`["app"]`), so keys that look
//! like numbers or contain dots still find their line.

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    /// A property declared by the schema (or an unknown field).
    Field(String),
    /// A key of a map whose values share one schema (`additionalProperties`).
    Key(String),
    Index(usize),
}

/// A path from the object root.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(Vec<Seg>);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    pub fn field(&self, name: &str) -> Self {
        self.push(Seg::Field(name.to_string()))
    }

    pub fn key(&self, key: &str) -> Self {
        self.push(Seg::Key(key.to_string()))
    }

    pub fn index(&self, i: usize) -> Self {
        self.push(Seg::Index(i))
    }

    fn push(&self, seg: Seg) -> Self {
        let mut segs = self.0.clone();
        segs.push(seg);
        FieldPath(segs)
    }

    /// kube-openapi's spelling: `spec.ports[0].labels.app`.
    pub fn openapi(&self) -> String {
        let mut out = String::new();
        for seg in &self.0 {
            match seg {
                Seg::Field(n) | Seg::Key(n) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(n);
                }
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }

    /// `field.Path`'s spelling: `spec.ports[0].labels[app]`.
    pub fn field_path(&self) -> String {
        let mut out = String::new();
        for seg in &self.0 {
            match seg {
                Seg::Field(n) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(n);
                }
                Seg::Key(k) => out.push_str(&format!("[{k}]")),
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }

    /// The form `Node::locate` reads: map keys quoted so `"8080"` is a key, not an index.
    pub fn locator(&self) -> String {
        let mut out = String::new();
        for seg in &self.0 {
            match seg {
                Seg::Field(n) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(n);
                }
                Seg::Key(k) => out.push_str(&format!("[\"{k}\"]")),
                Seg::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_spellings() {
        let p = FieldPath::root()
            .field("spec")
            .field("portLevelMtls")
            .key("8080")
            .field("mode");
        assert_eq!(p.openapi(), "spec.portLevelMtls.8080.mode");
        assert_eq!(p.field_path(), "spec.portLevelMtls[8080].mode");
        assert_eq!(p.locator(), "spec.portLevelMtls[\"8080\"].mode");
        let q = FieldPath::root().field("spec").field("http").index(0);
        assert_eq!(q.openapi(), "spec.http[0]");
        assert_eq!(q.field_path(), "spec.http[0]");
    }
}
