//! TCP proxy: connect to an endpoint of the cluster and copy bytes both ways.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use tokio::net::TcpStream;

use crate::flags::ResponseFlag;
use crate::store::Store;

pub async fn proxy(mut downstream: TcpStream, peer: SocketAddr, cluster_name: &str, store: &Store) {
    let runtime = store.runtime.load_full();
    let Some(cluster) = runtime.clusters.get(cluster_name).cloned() else {
        store.stats.flag(ResponseFlag::NoCluster);
        tracing::debug!(%peer, cluster = cluster_name, "tcp: cluster not found");
        return;
    };
    let Some(endpoint) = cluster.pick() else {
        store.stats.flag(ResponseFlag::NoHealthyUpstream);
        tracing::debug!(%peer, cluster = cluster_name, "tcp: no healthy upstream");
        return;
    };
    cluster.stats.rq_total.fetch_add(1, Ordering::Relaxed);
    let timeout = cluster.config.connect_timeout;
    let mut upstream = match tokio::time::timeout(timeout, TcpStream::connect(endpoint.addr)).await
    {
        Ok(Ok(s)) => s,
        _ => {
            cluster
                .stats
                .cx_connect_fail
                .fetch_add(1, Ordering::Relaxed);
            store.stats.flag(ResponseFlag::UpstreamConnectFailure);
            tracing::debug!(%peer, upstream = %endpoint.addr, "tcp: upstream connect failed");
            return;
        }
    };
    cluster.stats.cx_total.fetch_add(1, Ordering::Relaxed);
    let _ = upstream.set_nodelay(true);
    if let Err(e) = tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await {
        tracing::debug!(%peer, error = %e, "tcp: connection ended with error");
    }
}
