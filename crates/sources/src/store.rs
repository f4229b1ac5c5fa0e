//! The file config store's decision: given what a directory holds now and what was accepted
//! before, which objects are served. Pure (no I/O): the watcher reads, this decides.
//!
//! Rules (DESIGN §3 "a bad object fails itself, never its neighbours"):
//! - every object runs the single-object pipeline `plexus validate` runs (envelope, schema, CEL,
//!   typed decode); one with an error is rejected, and if an earlier version of the same object
//!   (group, kind, namespace, name) was accepted, that version keeps being served;
//! - a file that cannot be read or parsed keeps serving whatever it served before;
//! - the same object defined twice: the first (by file order) wins, the second is rejected;
//! - the accepted set is then analysed with every analyzer `plexus analyze` runs; analysis
//!   messages are reported, never a reason to reject (Istio's analyzers are advice too).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use plexus_api::{Diagnostic, Level, Loaded, Object, registry};
use plexus_pilot::analysis::expand_lists;
use plexus_pilot::{MeshConfig, Message};

/// Identity of an object across reloads.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn of(obj: &Object) -> ObjectKey {
        ObjectKey {
            group: obj.group.clone(),
            kind: obj.kind.clone(),
            namespace: obj.namespace_or_default().to_string(),
            name: obj.name.clone(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// An object (or a file) the store refused, with the error that says why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// `Kind namespace/name`, empty when the problem is not about one object (unparsable file).
    pub resource: String,
    pub path: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
    /// Whether an earlier accepted version of this object (or file) is still served.
    pub serving_previous: bool,
}

impl Rejection {
    fn from_diag(d: &Diagnostic, serving_previous: bool) -> Rejection {
        Rejection {
            resource: d
                .subject
                .as_ref()
                .map(|s| format!("{} {}/{}", s.kind, s.namespace, s.name))
                .unwrap_or_default(),
            path: d.path.to_string(),
            line: d.pos.line,
            col: d.pos.col,
            message: d.message.clone(),
            serving_previous,
        }
    }
}

impl std::fmt::Display for Rejection {
    /// `PATH:LINE:COL: error: Kind ns/name: MESSAGE`, the shape `plexus validate` prints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}: error: ", self.path, self.line, self.col)?;
        if !self.resource.is_empty() {
            write!(f, "{}: ", self.resource)?;
        }
        f.write_str(&self.message)?;
        if self.serving_previous {
            f.write_str(" (the last accepted version is still served)")?;
        }
        Ok(())
    }
}

/// What the store serves after one reload.
#[derive(Clone, Debug, Default)]
pub struct ConfigState {
    /// Increases on every reload.
    pub generation: u64,
    /// Served objects, by key.
    pub accepted: BTreeMap<ObjectKey, Arc<Object>>,
    pub rejected: Vec<Rejection>,
    /// Messages from the analyzers over the accepted objects.
    pub analysis: Vec<Message>,
}

impl ConfigState {
    /// The served objects, in key order.
    pub fn objects(&self) -> Vec<Object> {
        self.accepted.values().map(|o| (**o).clone()).collect()
    }
}

/// Decide what to serve from `loaded` (the directory as read now), given `prev`.
pub fn reconcile(prev: &ConfigState, loaded: &Loaded, mesh: &MeshConfig) -> ConfigState {
    let mut accepted: BTreeMap<ObjectKey, Arc<Object>> = BTreeMap::new();
    let mut rejected = Vec::new();
    let mut broken_files = BTreeSet::new();
    for d in loaded
        .diagnostics
        .iter()
        .filter(|d| d.level == Level::Error)
    {
        broken_files.insert(d.path.to_string());
        let previous = prev.accepted.values().any(|o| *o.origin.path == *d.path);
        rejected.push(Rejection::from_diag(d, previous));
    }
    let mut refused: Vec<(ObjectKey, Diagnostic)> = Vec::new();
    for obj in expand_lists(&loaded.objects) {
        let key = ObjectKey::of(&obj);
        if let Some(first) = accepted.get(&key) {
            let d = obj.error(
                "metadata.name",
                format!(
                    "defined again; the definition at {}:{} is served",
                    first.origin.path, first.origin.pos.line
                ),
            );
            refused.push((key, d));
            continue;
        }
        match object_error(&obj) {
            Some(d) => refused.push((key, d)),
            None => {
                accepted.insert(key, Arc::new(obj));
            }
        }
    }
    for (key, d) in refused {
        let previous = match prev.accepted.get(&key) {
            Some(old) if !accepted.contains_key(&key) => {
                accepted.insert(key, old.clone());
                true
            }
            _ => false,
        };
        rejected.push(Rejection::from_diag(&d, previous));
    }
    // A file that did not parse may still hold objects we cannot see now: keep what it served.
    for (key, old) in &prev.accepted {
        if broken_files.contains(&*old.origin.path) && !accepted.contains_key(key) {
            accepted.insert(key.clone(), old.clone());
        }
    }
    let objects: Vec<Object> = accepted.values().map(|o| (**o).clone()).collect();
    let analysis = plexus_pilot::analyze(&objects, mesh);
    ConfigState {
        generation: prev.generation + 1,
        accepted,
        rejected,
        analysis,
    }
}

/// The first error of `plexus validate`'s single-object pipeline, plus a typed decode for kinds
/// Plexus models (what translation will read), as `plexus analyze` runs it.
fn object_error(obj: &Object) -> Option<Diagnostic> {
    let options = plexus_api::Options { strict: false };
    let first = plexus_api::validate_object(obj, options)
        .into_iter()
        .find(|d| d.level == Level::Error);
    if first.is_some() {
        return first;
    }
    if registry::lookup(&obj.group, &obj.kind).is_some() {
        return plexus_api::kinds::decode(obj).err().map(|d| *d);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: default}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n";
    const BAD: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: default}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v2}\n      weigth: 5\n";
    const OTHER: &str = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: default}\nspec:\n  host: reviews\n  subsets:\n  - name: v1\n    labels: {version: v1}\n";

    fn load(files: &[(&str, &str)]) -> Loaded {
        let mut out = Loaded::default();
        for (path, text) in files {
            out.extend(plexus_api::load_str(text, path));
        }
        out
    }

    fn subset_of(state: &ConfigState) -> String {
        let obj = state
            .accepted
            .values()
            .find(|o| o.kind == "VirtualService")
            .expect("virtual service served");
        obj.root
            .to_json()
            .pointer("/spec/http/0/route/0/destination/subset")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn invalid_edit_keeps_last_good_version_and_neighbours() {
        let mesh = MeshConfig::default();
        let first = reconcile(
            &ConfigState::default(),
            &load(&[("vs.yaml", GOOD), ("dr.yaml", OTHER)]),
            &mesh,
        );
        assert!(first.rejected.is_empty(), "{:?}", first.rejected);
        assert_eq!(first.accepted.len(), 2);
        let second = reconcile(
            &first,
            &load(&[("vs.yaml", BAD), ("dr.yaml", OTHER)]),
            &mesh,
        );
        assert_eq!(second.accepted.len(), 2);
        assert_eq!(subset_of(&second), "v1");
        assert_eq!(second.rejected.len(), 1, "{:?}", second.rejected);
        let r = &second.rejected[0];
        assert_eq!(r.path, "vs.yaml");
        assert_eq!(r.line, 9, "{r}");
        assert!(r.serving_previous);
        assert!(
            r.to_string().contains("VirtualService default/reviews"),
            "{r}"
        );
        assert!(r.message.contains("weigth"), "{r}");
        let fixed = reconcile(
            &second,
            &load(&[("vs.yaml", GOOD), ("dr.yaml", OTHER)]),
            &mesh,
        );
        assert!(fixed.rejected.is_empty());
        assert_eq!(fixed.generation, 3);
    }

    #[test]
    fn new_invalid_object_is_not_served() {
        let state = reconcile(
            &ConfigState::default(),
            &load(&[("vs.yaml", BAD)]),
            &MeshConfig::default(),
        );
        assert!(state.accepted.is_empty());
        assert!(!state.rejected[0].serving_previous);
    }

    #[test]
    fn unparsable_file_keeps_serving_its_objects() {
        let mesh = MeshConfig::default();
        let first = reconcile(&ConfigState::default(), &load(&[("vs.yaml", GOOD)]), &mesh);
        let broken = reconcile(&first, &load(&[("vs.yaml", "spec: [unclosed\n")]), &mesh);
        assert_eq!(broken.accepted.len(), 1);
        assert_eq!(broken.rejected.len(), 1, "{:?}", broken.rejected);
        assert!(broken.rejected[0].serving_previous);
        let deleted = reconcile(&broken, &load(&[]), &mesh);
        assert!(deleted.accepted.is_empty());
    }

    #[test]
    fn duplicate_definition_is_rejected() {
        let state = reconcile(
            &ConfigState::default(),
            &load(&[("a.yaml", GOOD), ("b.yaml", GOOD)]),
            &MeshConfig::default(),
        );
        assert_eq!(state.accepted.len(), 1);
        assert_eq!(state.rejected.len(), 1);
        assert_eq!(state.rejected[0].path, "b.yaml");
        assert!(
            state.rejected[0].message.contains("a.yaml:1"),
            "{:?}",
            state.rejected
        );
    }
}
