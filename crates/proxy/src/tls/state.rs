//! The xDS handler's TLS bookkeeping: SDS secrets by name, and listeners and clusters that
//! are warming because a secret they reference has not arrived. As in Envoy, a warming
//! listener is not bound (its previous version, if any, keeps serving) and a warming cluster
//! is not used (its previous version, if any, keeps serving); both start once their secrets
//! arrive. A new version of a secret rebuilds the TLS configs that use it in place, so
//! certificates rotate without restarting listeners or dropping connection pools.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::build::{NotReady, Secrets, bind_downstream, bind_upstream};
use super::context::{Common, UpstreamTls};
use crate::config::{Cluster, Listener, UpstreamProtocol};

#[derive(Default)]
pub struct TlsState {
    pub secrets: Secrets,
    pub warming_listeners: BTreeMap<String, Listener>,
    pub warming_clusters: BTreeMap<String, Cluster>,
}

/// The ALPN an HTTP pool offers when the context names none (Envoy's fallback).
fn http_alpn(protocol: UpstreamProtocol) -> &'static str {
    match protocol {
        UpstreamProtocol::Http1 => "http/1.1",
        UpstreamProtocol::Http2 => "h2",
    }
}

/// Build every TLS config of a listener from `secrets`.
pub fn bind_listener(l: &Listener, secrets: &Secrets) -> Result<(), NotReady> {
    for chain in l.chains() {
        if let Some(tls) = chain.tls() {
            bind_downstream(tls, secrets)?;
        }
    }
    Ok(())
}

/// Build a cluster's TLS configs from `secrets`.
pub fn bind_cluster(c: &Cluster, secrets: &Secrets) -> Result<(), NotReady> {
    match &c.tls {
        Some(tls) => bind_upstream(tls, secrets, http_alpn(c.protocol)),
        None => Ok(()),
    }
}

fn listener_secrets(l: &Listener) -> impl Iterator<Item = String> + '_ {
    l.chains()
        .filter_map(|c| c.tls())
        .flat_map(|t| t.common.secret_names())
}

fn cluster_secrets(c: &Cluster) -> Vec<String> {
    c.tls
        .as_ref()
        .map(|t: &Arc<UpstreamTls>| Common::secret_names(&t.common))
        .unwrap_or_default()
}

/// What `/config_dump` shows of TLS: secret names and kinds (never their content), and what is
/// warming for which secret.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// (name, `tls_certificate` or `validation_context`).
    pub secrets: Vec<(String, &'static str)>,
    pub warming_listeners: Vec<String>,
    pub warming_clusters: Vec<String>,
}

impl Status {
    pub fn to_json(&self) -> serde_json::Value {
        let secrets: Vec<_> = self
            .secrets
            .iter()
            .map(|(name, kind)| serde_json::json!({"name": name, "type": kind}))
            .collect();
        serde_json::json!({
            "secrets": secrets,
            "warming_listeners": self.warming_listeners,
            "warming_clusters": self.warming_clusters,
        })
    }
}

impl TlsState {
    pub fn status(&self) -> Status {
        Status {
            secrets: self
                .secrets
                .iter()
                .map(|(n, s)| {
                    let kind = match **s {
                        super::Secret::Certificate(_) => "tls_certificate",
                        super::Secret::Validation(_) => "validation_context",
                    };
                    (n.clone(), kind)
                })
                .collect(),
            warming_listeners: self.warming_listeners.keys().cloned().collect(),
            warming_clusters: self.warming_clusters.keys().cloned().collect(),
        }
    }

    /// Bind a listener's TLS configs; when a secret is missing it is kept warming instead.
    pub fn admit_listener(&mut self, name: &str, l: &Listener) -> bool {
        match bind_listener(l, &self.secrets) {
            Ok(()) => {
                self.warming_listeners.remove(name);
                true
            }
            Err(NotReady(why)) => {
                tracing::info!(listener = name, %why, "listener warming");
                self.warming_listeners.insert(name.to_string(), l.clone());
                false
            }
        }
    }

    /// Bind a cluster's TLS configs; when a secret is missing it is kept warming instead.
    pub fn admit_cluster(&mut self, c: &Cluster) -> bool {
        match bind_cluster(c, &self.secrets) {
            Ok(()) => {
                self.warming_clusters.remove(&c.name);
                true
            }
            Err(NotReady(why)) => {
                tracing::info!(cluster = %c.name, %why, "cluster warming");
                self.warming_clusters.insert(c.name.clone(), c.clone());
                false
            }
        }
    }

    /// Secret names referenced by running and warming listeners and clusters.
    pub fn wanted<'a>(
        &self,
        listeners: impl Iterator<Item = Arc<Listener>>,
        clusters: impl Iterator<Item = &'a Cluster>,
    ) -> Vec<String> {
        let mut names = BTreeSet::new();
        for l in listeners {
            names.extend(listener_secrets(&l));
        }
        for l in self.warming_listeners.values() {
            names.extend(listener_secrets(l));
        }
        for c in clusters {
            names.extend(cluster_secrets(c));
        }
        for c in self.warming_clusters.values() {
            names.extend(cluster_secrets(c));
        }
        names.into_iter().collect()
    }

    /// After `changed` secrets were replaced or removed: rebuild the running configs that use
    /// them, and hand back the warming listeners and clusters that can start now.
    pub fn rebind<'a>(
        &mut self,
        changed: &BTreeSet<String>,
        listeners: impl Iterator<Item = Arc<Listener>>,
        clusters: impl Iterator<Item = &'a Cluster>,
    ) -> (Vec<(String, Listener)>, Vec<Cluster>) {
        for l in listeners {
            if listener_secrets(&l).any(|n| changed.contains(&n))
                && let Err(NotReady(why)) = bind_listener(&l, &self.secrets)
            {
                tracing::warn!(listener = %l.name, %why, "TLS handshakes will fail");
            }
        }
        for c in clusters {
            if cluster_secrets(c).iter().any(|n| changed.contains(n))
                && let Err(NotReady(why)) = bind_cluster(c, &self.secrets)
            {
                tracing::warn!(cluster = %c.name, %why, "TLS connections will fail");
            }
        }
        let ready_listeners: Vec<String> = self
            .warming_listeners
            .iter()
            .filter(|(_, l)| bind_listener(l, &self.secrets).is_ok())
            .map(|(n, _)| n.clone())
            .collect();
        let listeners = ready_listeners
            .into_iter()
            .filter_map(|n| self.warming_listeners.remove_entry(&n))
            .collect();
        let ready_clusters: Vec<String> = self
            .warming_clusters
            .values()
            .filter(|c| bind_cluster(c, &self.secrets).is_ok())
            .map(|c| c.name.clone())
            .collect();
        let clusters = ready_clusters
            .into_iter()
            .filter_map(|n| self.warming_clusters.remove(&n))
            .collect();
        (listeners, clusters)
    }
}
