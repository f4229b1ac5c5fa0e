//! `multicluster.MeshNetworksAnalyzer`: every `fromRegistry` in MeshNetworks must name a
//! cluster the control plane knows: its own (`Kubernetes`, Istio's default cluster id) or one
//! added by a remote secret (a Secret labelled `istio/multiCluster: "true"`, one key per
//! cluster).

use std::collections::BTreeSet;

use super::Analyzer;
use super::catalogue::UNKNOWN_MESH_NETWORKS_SERVICE_REGISTRY;
use super::context::{Context, group};
use super::k8s::Secret;
use super::message::Message;

pub static ANALYZERS: &[&dyn Analyzer] = &[&MeshNetworksAnalyzer];

/// Istio's default id for the cluster the control plane runs in.
const LOCAL_CLUSTER: &str = "Kubernetes";
const MULTICLUSTER_LABEL: &str = "istio/multiCluster";

pub struct MeshNetworksAnalyzer;

impl Analyzer for MeshNetworksAnalyzer {
    fn name(&self) -> &'static str {
        "multicluster.MeshNetworksAnalyzer"
    }

    fn analyze(&self, ctx: &Context<'_>, out: &mut Vec<Message>) {
        let Some(networks) = ctx.networks else { return };
        let mut clusters: BTreeSet<String> = BTreeSet::from([LOCAL_CLUSTER.to_string()]);
        for e in ctx.of(group::CORE, "Secret") {
            if e.labels().get(MULTICLUSTER_LABEL).map(String::as_str) != Some("true") {
                continue;
            }
            if let Some(secret) = e.root::<Secret>() {
                clusters.extend(secret.data.keys().cloned());
                clusters.extend(secret.string_data.keys().cloned());
            }
        }
        let resource = format!("MeshNetworks {}/meshnetworks", ctx.root_namespace());
        for (name, network) in &networks.networks {
            for ep in &network.endpoints {
                let Some(registry) = ep.from_registry.as_deref() else {
                    continue;
                };
                if !clusters.contains(registry) {
                    out.push(Message::synthetic(
                        &UNKNOWN_MESH_NETWORKS_SERVICE_REGISTRY,
                        resource.clone(),
                        "",
                        &[registry.into(), name.into()],
                    ));
                }
            }
        }
    }
}
