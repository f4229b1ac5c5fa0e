//! The xDS handler's TLS bookkeeping: SDS secrets by name, and listeners and clusters that
//! are warming because a secret they reference has not arrived. As in Envoy, a warming
//! listener is not bound (its previous version, if any, keeps serving) and a warming cluster
//! is not used (its previous version, if any, keeps serving); both start once their secrets
//! arrive, or once the `initial_fetch_timeout` of every missing secret has run out, counted
//! from when the secret was first asked for (Envoy's timer starts with the subscription).
//! Started that way, the TLS contexts lacking a secret have no config: their handshakes
//! fail, the rest serve. A new version of a secret rebuilds the TLS configs that use it in
//! place, so certificates rotate without restarting listeners or dropping connection pools.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use tokio::time::Instant;

use super::build::{NotReady, Secrets, bind_downstream, bind_upstream};
use super::context::{Common, SdsSecret};
use crate::config::{Cluster, Listener, UpstreamProtocol};

#[derive(Default)]
pub struct TlsState {
    pub secrets: Secrets,
    pub warming_listeners: BTreeMap<String, Listener>,
    pub warming_clusters: BTreeMap<String, Cluster>,
    /// When each wanted secret was first asked for: its `initial_fetch_timeout` runs from here.
    requested: BTreeMap<String, Instant>,
}

/// The ALPN an HTTP pool offers when the context names none (Envoy's fallback).
fn http_alpn(protocol: UpstreamProtocol) -> &'static str {
    match protocol {
        UpstreamProtocol::Http1 => "http/1.1",
        UpstreamProtocol::Http2 => "h2",
    }
}

/// Build every TLS config of a listener from `secrets` (all chains, so one chain's missing
/// secret does not keep another from rotating); the first reason a chain has none.
pub fn bind_listener(l: &Listener, secrets: &Secrets) -> Result<(), NotReady> {
    let mut first = Ok(());
    for chain in l.chains() {
        if let Some(tls) = chain.tls()
            && let Err(e) = bind_downstream(tls, secrets)
            && first.is_ok()
        {
            first = Err(e);
        }
    }
    first
}

/// Build a cluster's TLS configs from `secrets`.
pub fn bind_cluster(c: &Cluster, secrets: &Secrets) -> Result<(), NotReady> {
    match &c.tls {
        Some(tls) => bind_upstream(tls, secrets, http_alpn(c.protocol)),
        None => Ok(()),
    }
}

fn listener_sds(l: &Listener) -> Vec<SdsSecret> {
    l.chains()
        .filter_map(|c| c.tls())
        .flat_map(|t| t.common.sds_secrets().into_iter().cloned())
        .collect()
}

fn cluster_sds(c: &Cluster) -> Vec<SdsSecret> {
    c.tls
        .as_ref()
        .map(|t| {
            Common::sds_secrets(&t.common)
                .into_iter()
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn names(refs: Vec<SdsSecret>) -> impl Iterator<Item = String> {
    refs.into_iter().map(|s| s.name)
}

/// What `/config_dump` shows of TLS: secret names and kinds (never their content), what is
/// warming for which secret, and what runs without a secret it references (started by
/// `initial_fetch_timeout`, or the secret was removed): those handshakes fail.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// (name, `tls_certificate` or `validation_context`).
    pub secrets: Vec<(String, &'static str)>,
    pub warming_listeners: Vec<String>,
    pub warming_clusters: Vec<String>,
    /// Running listener -> secrets it references that are not held.
    pub listeners_missing_secrets: BTreeMap<String, Vec<String>>,
    /// Running cluster -> secrets it references that are not held.
    pub clusters_missing_secrets: BTreeMap<String, Vec<String>>,
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
            "listeners_missing_secrets": self.listeners_missing_secrets,
            "clusters_missing_secrets": self.clusters_missing_secrets,
        })
    }
}

impl TlsState {
    /// The admin view, given the running listeners and clusters.
    pub fn status<'a>(
        &self,
        listeners: impl Iterator<Item = Arc<Listener>>,
        clusters: impl Iterator<Item = &'a Cluster>,
    ) -> Status {
        let missing = |refs: Vec<SdsSecret>| -> Vec<String> {
            let mut out: Vec<String> = names(refs)
                .filter(|n| !self.secrets.contains_key(n))
                .collect();
            out.sort();
            out.dedup();
            out
        };
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
            listeners_missing_secrets: listeners
                .map(|l| (l.name.clone(), missing(listener_sds(&l))))
                .filter(|(_, m)| !m.is_empty())
                .collect(),
            clusters_missing_secrets: clusters
                .map(|c| (c.name.clone(), missing(cluster_sds(c))))
                .filter(|(_, m)| !m.is_empty())
                .collect(),
        }
    }

    /// Start the `initial_fetch_timeout` clock of secrets asked for the first time.
    fn request(&mut self, refs: &[SdsSecret], now: Instant) {
        for r in refs {
            self.requested.entry(r.name.clone()).or_insert(now);
        }
    }

    /// When a resource waiting for `refs` starts anyway: once every missing secret's
    /// timeout has run out; never if one of them waits for ever (`0s`) or none is missing
    /// (it waits for a secret of the right kind).
    fn deadline(&self, refs: &[SdsSecret]) -> Option<Instant> {
        let mut latest: Option<Instant> = None;
        for r in refs.iter().filter(|r| !self.secrets.contains_key(&r.name)) {
            let since = self.requested.get(&r.name)?;
            let due = *since + r.initial_fetch_timeout?;
            latest = Some(latest.map_or(due, |l| l.max(due)));
        }
        latest
    }

    /// Bind a listener's TLS configs; when a secret is missing it is kept warming instead,
    /// unless the missing secrets' `initial_fetch_timeout`s have already run out.
    pub fn admit_listener(&mut self, name: &str, l: &Listener, now: Instant) -> bool {
        let refs = listener_sds(l);
        self.request(&refs, now);
        match bind_listener(l, &self.secrets) {
            Ok(()) => {
                self.warming_listeners.remove(name);
                true
            }
            Err(_) if self.deadline(&refs).is_some_and(|d| d <= now) => {
                tracing::warn!(
                    listener = name,
                    "initial_fetch_timeout passed: starting without its missing secrets"
                );
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

    /// Bind a cluster's TLS configs; when a secret is missing it is kept warming instead,
    /// unless the missing secrets' `initial_fetch_timeout`s have already run out.
    pub fn admit_cluster(&mut self, c: &Cluster, now: Instant) -> bool {
        let refs = cluster_sds(c);
        self.request(&refs, now);
        match bind_cluster(c, &self.secrets) {
            Ok(()) => {
                self.warming_clusters.remove(&c.name);
                true
            }
            Err(_) if self.deadline(&refs).is_some_and(|d| d <= now) => {
                tracing::warn!(cluster = %c.name, "initial_fetch_timeout passed: starting without its missing secrets");
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

    /// The earliest moment a warming listener or cluster starts without its secrets.
    pub fn next_deadline(&self) -> Option<Instant> {
        let listeners = self
            .warming_listeners
            .values()
            .filter_map(|l| self.deadline(&listener_sds(l)));
        let clusters = self
            .warming_clusters
            .values()
            .filter_map(|c| self.deadline(&cluster_sds(c)));
        listeners.chain(clusters).min()
    }

    /// Hand back the warming listeners and clusters whose missing secrets' timeouts have run
    /// out by `now`: they start, their contexts without secrets failing handshakes.
    pub fn expire(&mut self, now: Instant) -> (Vec<(String, Listener)>, Vec<Cluster>) {
        let due = |d: Option<Instant>| d.is_some_and(|d| d <= now);
        let listeners: Vec<String> = self
            .warming_listeners
            .iter()
            .filter(|(_, l)| due(self.deadline(&listener_sds(l))))
            .map(|(n, _)| n.clone())
            .collect();
        let clusters: Vec<String> = self
            .warming_clusters
            .values()
            .filter(|c| due(self.deadline(&cluster_sds(c))))
            .map(|c| c.name.clone())
            .collect();
        for n in &listeners {
            tracing::warn!(listener = %n, "initial_fetch_timeout passed: starting without its missing secrets");
        }
        for n in &clusters {
            tracing::warn!(cluster = %n, "initial_fetch_timeout passed: starting without its missing secrets");
        }
        let listeners = listeners
            .into_iter()
            .filter_map(|n| self.warming_listeners.remove_entry(&n))
            .collect();
        let clusters = clusters
            .into_iter()
            .filter_map(|n| self.warming_clusters.remove(&n))
            .collect();
        (listeners, clusters)
    }

    /// Secret names referenced by running and warming listeners and clusters.
    pub fn wanted<'a>(
        &self,
        listeners: impl Iterator<Item = Arc<Listener>>,
        clusters: impl Iterator<Item = &'a Cluster>,
    ) -> Vec<String> {
        let mut out = BTreeSet::new();
        for l in listeners {
            out.extend(names(listener_sds(&l)));
        }
        for l in self.warming_listeners.values() {
            out.extend(names(listener_sds(l)));
        }
        for c in clusters {
            out.extend(names(cluster_sds(c)));
        }
        for c in self.warming_clusters.values() {
            out.extend(names(cluster_sds(c)));
        }
        out.into_iter().collect()
    }

    /// Forget the request time of secrets nothing references any more: asked for again
    /// later, their timeout starts afresh (a new subscription in Envoy).
    pub fn forget_unwanted(&mut self, wanted: &[String]) {
        self.requested
            .retain(|n, _| wanted.binary_search(n).is_ok());
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
            if names(listener_sds(&l)).any(|n| changed.contains(&n))
                && let Err(NotReady(why)) = bind_listener(&l, &self.secrets)
            {
                tracing::warn!(listener = %l.name, %why, "TLS handshakes will fail");
            }
        }
        for c in clusters {
            if names(cluster_sds(c)).any(|n| changed.contains(&n))
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
