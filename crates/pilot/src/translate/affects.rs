//! Push scoping: whether a change can alter what a proxy receives. Conservative — `true`
//! unless the change is provably outside the proxy's view (exportTo, Sidecar namespace and
//! selector, Gateway selector, `gateways` binding). Cheap: no translation is run.

use plexus_api::Object;
use plexus_api::kinds::{self, Resource};
use plexus_model::host::exported_to;
use plexus_model::{NodeKind, ProxyNode, Snapshot, selects};

use super::scope::binds_mesh;

/// What changed.
#[derive(Clone, Copy, Debug)]
pub enum Change<'a> {
    /// A config or registry object was added, changed or removed (its old or new version).
    Object(&'a Object),
    /// Only the endpoints of this service hostname changed (EDS-only push for the proxies this
    /// returns true for). A proxy whose own addresses joined or left that service also needs a
    /// full push: its inbound listeners and clusters come from the endpoints at its addresses.
    Endpoints {
        hostname: &'a str,
        namespace: &'a str,
    },
    /// MeshConfig changed: everything may change.
    Mesh,
}

/// Whether `change` can affect what `node` receives under `snapshot`'s mesh settings.
pub fn affects(snapshot: &Snapshot, change: Change<'_>, node: &ProxyNode) -> bool {
    let mesh = &snapshot.mesh;
    match change {
        Change::Mesh => true,
        Change::Endpoints {
            hostname,
            namespace,
        } => snapshot
            .registry
            .services_named(hostname)
            .filter(|(_, s)| s.namespace == namespace)
            .any(|(_, s)| {
                exported_to(
                    &s.export_to,
                    &mesh.default_service_export_to,
                    &s.namespace,
                    &node.namespace,
                )
            }),
        Change::Object(obj) => object_affects(snapshot, obj, node),
    }
}

fn object_affects(snapshot: &Snapshot, obj: &Object, node: &ProxyNode) -> bool {
    let mesh = &snapshot.mesh;
    let Ok(r) = kinds::decode(obj) else {
        return true;
    };
    let ns = obj.namespace_or_default();
    let exported =
        |list: &[String], default: &[String]| exported_to(list, default, ns, &node.namespace);
    match r {
        Resource::VirtualService(vs) => match node.kind {
            NodeKind::Sidecar => {
                exported(&vs.export_to, &mesh.default_virtual_service_export_to) && binds_mesh(&vs)
            }
            // Gateways may sit in any namespace and VirtualServices bind them by name.
            NodeKind::Router => vs.gateways.iter().any(|g| g != "mesh"),
        },
        Resource::DestinationRule(dr) => {
            let selected = dr
                .workload_selector
                .as_ref()
                .is_none_or(|s| ns == node.namespace && selects(&s.match_labels, &node.labels));
            selected
                && (ns == node.namespace
                    || exported(&dr.export_to, &mesh.default_destination_rule_export_to))
        }
        Resource::Gateway(gw) => {
            node.kind == NodeKind::Router && selects(&gw.selector, &node.labels)
        }
        Resource::Sidecar(sc) => {
            node.kind == NodeKind::Sidecar
                && (ns == node.namespace || ns == mesh.root_namespace)
                && sc
                    .workload_selector
                    .as_ref()
                    .is_none_or(|s| selects(&s.labels, &node.labels))
        }
        Resource::ServiceEntry(se) => exported(&se.export_to, &mesh.default_service_export_to),
        Resource::Service(_) => {
            let export: Vec<String> = obj
                .annotations
                .get("networking.istio.io/exportTo")
                .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default();
            exported(&export, &mesh.default_service_export_to)
        }
        _ => true,
    }
}
