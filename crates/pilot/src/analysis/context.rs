//! The immutable analysis context: every object indexed by group, kind, namespace and name,
//! plus the mesh config and mesh networks the analysis runs with.

use std::collections::BTreeMap;

use plexus_api::Object;
use plexus_api::yaml::Node;
use serde::de::DeserializeOwned;

use crate::mesh::{MeshConfig, MeshNetworks};

/// API groups analyzers look up.
pub mod group {
    pub const CORE: &str = "";
    pub const APPS: &str = "apps";
    pub const NETWORKING: &str = "networking.istio.io";
    pub const SECURITY: &str = "security.istio.io";
    pub const TELEMETRY: &str = "telemetry.istio.io";
    pub const EXTENSIONS: &str = "extensions.istio.io";
    pub const GATEWAY_API: &str = "gateway.networking.k8s.io";
}

/// One object as the analysis sees it: the object and its effective namespace.
#[derive(Clone, Debug)]
pub struct Entry<'a> {
    pub obj: &'a Object,
    /// The namespace as written, or the run's default namespace, or empty.
    pub ns: String,
}

impl<'a> Entry<'a> {
    pub fn name(&self) -> &'a str {
        &self.obj.name
    }

    /// `Kind ns/name`, or `Kind name` when the object has no namespace (Istio's rendering of a
    /// resource's full name).
    pub fn resource_name(&self) -> String {
        if self.ns.is_empty() {
            format!("{} {}", self.obj.kind, self.obj.name)
        } else {
            format!("{} {}/{}", self.obj.kind, self.ns, self.obj.name)
        }
    }

    /// `ns/name` (or `name` without namespace), as Istio prints a full name in messages.
    pub fn full_name(&self) -> String {
        if self.ns.is_empty() {
            self.obj.name.clone()
        } else {
            format!("{}/{}", self.ns, self.obj.name)
        }
    }

    pub fn spec_node(&self) -> Option<&'a Node> {
        self.obj.root.get("spec")
    }

    /// Decode the object's `spec` leniently into `T`; `None` when absent or undecodable
    /// (single-object validation reports undecodable objects before analysis runs).
    pub fn spec<T: DeserializeOwned + Default>(&self) -> Option<T> {
        match self.spec_node() {
            Some(n) if n.is_null() => Some(T::default()),
            Some(n) => plexus_api::de::from_node(n, "spec").ok(),
            None => Some(T::default()),
        }
    }

    /// Decode the whole document leniently (for kinds whose data lives outside `spec`).
    pub fn root<T: DeserializeOwned>(&self) -> Option<T> {
        plexus_api::de::from_node(&self.obj.root, "").ok()
    }

    pub fn labels(&self) -> &'a BTreeMap<String, String> {
        &self.obj.labels
    }

    pub fn annotations(&self) -> &'a BTreeMap<String, String> {
        &self.obj.annotations
    }
}

type Key = (String, String);

/// Kinds without a namespace; they never get the default namespace.
const CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "CustomResourceDefinition",
    "GatewayClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "MeshPolicy",
    "ClusterRbacConfig",
];

/// Everything an analyzer may read. Immutable once built.
pub struct Context<'a> {
    by_kind: BTreeMap<Key, Vec<Entry<'a>>>,
    pub mesh: &'a MeshConfig,
    pub networks: Option<&'a MeshNetworks>,
}

impl<'a> Context<'a> {
    pub fn new(
        objects: &'a [Object],
        mesh: &'a MeshConfig,
        networks: Option<&'a MeshNetworks>,
        default_namespace: Option<&str>,
    ) -> Context<'a> {
        let mut by_kind: BTreeMap<Key, Vec<Entry<'a>>> = BTreeMap::new();
        for obj in objects {
            let ns = match obj.namespace.as_deref() {
                _ if CLUSTER_SCOPED.contains(&obj.kind.as_str()) => String::new(),
                Some(ns) if !ns.is_empty() => ns.to_string(),
                _ => default_namespace.unwrap_or_default().to_string(),
            };
            by_kind
                .entry((obj.group.clone(), obj.kind.clone()))
                .or_default()
                .push(Entry { obj, ns });
        }
        Context {
            by_kind,
            mesh,
            networks,
        }
    }

    /// Every object of a group and kind, in input order.
    pub fn of(&self, group: &str, kind: &str) -> &[Entry<'a>] {
        self.by_kind
            .get(&(group.to_string(), kind.to_string()))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// The object of a group and kind with this namespace and name.
    pub fn find(&self, group: &str, kind: &str, ns: &str, name: &str) -> Option<&Entry<'a>> {
        self.of(group, kind)
            .iter()
            .find(|e| e.ns == ns && e.obj.name == name)
    }

    /// Whether an object exists.
    pub fn exists(&self, group: &str, kind: &str, ns: &str, name: &str) -> bool {
        self.find(group, kind, ns, name).is_some()
    }

    /// Every object, grouped by kind.
    pub fn all(&self) -> impl Iterator<Item = &Entry<'a>> {
        self.by_kind.values().flatten()
    }

    /// The mesh's root namespace (`istio-system` unless the mesh config says otherwise).
    pub fn root_namespace(&self) -> &str {
        &self.mesh.root_namespace
    }
}
