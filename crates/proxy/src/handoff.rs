//! Which listener and filter chain an accepted connection runs on. A listener with
//! `use_original_dst` hands a redirected connection (SO_ORIGINAL_DST differs from the socket's
//! own address) to the listener configured for that destination — bound or `bind_to_port:
//! false`, exact address first, then the wildcard address with the same port — and keeps it
//! on its own chains when there is none, as Envoy does.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use crate::config::Listener;
use crate::downstream::Downstream;
use crate::store::{ListenerView, Store};

/// The listener config to run and the connection's addresses.
pub fn route_connection(
    own: &Arc<Listener>,
    stream: &TcpStream,
    peer: SocketAddr,
    store: &Store,
) -> (Arc<Listener>, Downstream) {
    let local = stream.local_addr().unwrap_or(peer);
    let redirected = if own.capture.use_original_dst || own.capture.original_dst_filter {
        crate::redirect::original_dst(stream)
    } else {
        None
    };
    let conn = Downstream {
        peer,
        local,
        original_dst: redirected.unwrap_or(local),
        tls: false,
    };
    if own.capture.use_original_dst
        && conn.original_dst != local
        && let Some(target) = find_listener(&store.listeners.load(), conn.original_dst)
    {
        return (target, conn);
    }
    (own.clone(), conn)
}

/// The listener whose address is `dst`, else one on the wildcard address with its port.
pub fn find_listener(
    views: &BTreeMap<String, ListenerView>,
    dst: SocketAddr,
) -> Option<Arc<Listener>> {
    let exact = views.values().find(|v| v.config.address == dst);
    let wildcard = || {
        views.values().find(|v| {
            v.config.address.port() == dst.port()
                && v.config.address.ip().is_unspecified()
                && v.config.address.is_ipv4() == dst.is_ipv4()
        })
    };
    exact.or_else(wildcard).map(|v| v.config.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ListenerKind, TcpProxy};

    fn view(name: &str, addr: &str) -> (String, ListenerView) {
        let config = Arc::new(Listener {
            name: name.into(),
            address: addr.parse().expect("addr"),
            kind: ListenerKind::Tcp(TcpProxy {
                clusters: vec![(name.into(), 1)],
                idle_timeout: None,
                tls: None,
            }),
            capture: Default::default(),
        });
        let bound = config.address;
        (name.to_string(), ListenerView { config, bound })
    }

    #[test]
    fn exact_address_then_wildcard_port() {
        let views: BTreeMap<_, _> = [
            view("0.0.0.0_9080", "0.0.0.0:9080"),
            view("10.96.0.20_3306", "10.96.0.20:3306"),
            view("virtualOutbound", "0.0.0.0:15001"),
        ]
        .into_iter()
        .collect();
        let name =
            |dst: &str| find_listener(&views, dst.parse().expect("addr")).map(|l| l.name.clone());
        assert_eq!(name("10.96.0.7:9080").as_deref(), Some("0.0.0.0_9080"));
        assert_eq!(name("10.96.0.20:3306").as_deref(), Some("10.96.0.20_3306"));
        assert_eq!(name("10.96.0.21:3306"), None);
        assert_eq!(name("[::1]:9080"), None);
    }
}
