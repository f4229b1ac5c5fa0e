//! `virtualservice.ConflictingMeshGatewayHostsAnalyzer`: two VirtualServices bound to the mesh
//! gateway, visible in a common namespace, whose hosts overlap give sidecars two competing
//! route tables for one host; which one wins is undefined.

use super::super::Analyzer;
use super::super::catalogue::CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS;
use super::super::context::{Context, Entry};
use super::super::message::Message;
use super::super::util::{self, EXPORT_TO_ALL, MESH_GATEWAY};
use super::virtual_services;

pub struct ConflictingMeshGatewayHostsAnalyzer;

struct MeshVs<'c, 'a> {
    entry: &'c Entry<'a>,
    scopes: Vec<String>,
    /// Hosts as FQDNs.
    hosts: Vec<String>,
}

fn scopes_overlap(a: &[String], b: &[String]) -> bool {
    a.iter().any(|x| x == EXPORT_TO_ALL || b.contains(x)) || b.iter().any(|y| y == EXPORT_TO_ALL)
}

impl Analyzer for ConflictingMeshGatewayHostsAnalyzer {
    fn name(&self) -> &'static str {
        "virtualservice.ConflictingMeshGatewayHostsAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let mesh: Vec<MeshVs<'_, '_>> = virtual_services(ctx)
            .filter(|(_, vs)| {
                vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == MESH_GATEWAY)
            })
            .map(|(entry, vs)| MeshVs {
                entry,
                scopes: util::export_scopes(&vs.export_to, &entry.ns),
                hosts: vs
                    .hosts
                    .iter()
                    .map(|h| util::to_fqdn(&entry.ns, h))
                    .collect(),
            })
            .collect();
        for (i, a) in mesh.iter().enumerate() {
            let mut names = vec![a.entry.full_name()];
            let mut host = None;
            for (j, b) in mesh.iter().enumerate() {
                if i == j || !scopes_overlap(&a.scopes, &b.scopes) {
                    continue;
                }
                let shared = a
                    .hosts
                    .iter()
                    .find(|ha| b.hosts.iter().any(|hb| util::host_matches(ha, hb)));
                if let Some(h) = shared {
                    names.push(b.entry.full_name());
                    host.get_or_insert_with(|| h.clone());
                }
            }
            if let Some(host) = host {
                out.push(Message::new(
                    &CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS,
                    a.entry,
                    "metadata.name",
                    &[names.join(",").into(), host.into()],
                ));
            }
        }
    }
}
