//! `Cluster.upstream_connection_options` -> `Keepalive`: TCP keepalive on upstream connections
//! (`tcp_keepalive`); unset probe/time/interval keep the OS defaults, as in Envoy.

use std::time::Duration;

use envoy_types::pb::envoy::config::cluster::v3 as c;
use envoy_types::pb::envoy::config::core::v3 as core;
use socket2::{SockRef, TcpKeepalive};

use super::FieldResult;
use crate::deny_set;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Keepalive {
    pub probes: Option<u32>,
    pub time: Option<Duration>,
    pub interval: Option<Duration>,
}

/// The keepalive settings of `upstream_connection_options`, if TCP keepalive is asked for.
pub fn from_options(o: Option<&c::UpstreamConnectionOptions>) -> FieldResult<Option<Keepalive>> {
    let Some(c::UpstreamConnectionOptions {
        tcp_keepalive,
        set_local_interface_name_on_upstream_connections,
        happy_eyeballs_config,
    }) = o
    else {
        return Ok(None);
    };
    deny_set!(
        set_local_interface_name_on_upstream_connections,
        happy_eyeballs_config
    );
    Ok(tcp_keepalive.as_ref().map(|k| {
        let core::TcpKeepalive {
            keepalive_probes,
            keepalive_time,
            keepalive_interval,
        } = k;
        let secs = |v: &Option<envoy_types::pb::google::protobuf::UInt32Value>| {
            v.as_ref().map(|v| Duration::from_secs(u64::from(v.value)))
        };
        Keepalive {
            probes: keepalive_probes.as_ref().map(|v| v.value),
            time: secs(keepalive_time),
            interval: secs(keepalive_interval),
        }
    }))
}

impl Keepalive {
    /// Turn keepalive on for `stream` with the configured parameters. A refused option is
    /// logged, not fatal: the connection still works without it.
    pub fn apply(&self, stream: &tokio::net::TcpStream) {
        let mut params = TcpKeepalive::new();
        if let Some(t) = self.time {
            params = params.with_time(t);
        }
        if let Some(i) = self.interval {
            params = params.with_interval(i);
        }
        if let Some(p) = self.probes {
            params = params.with_retries(p);
        }
        if let Err(e) = SockRef::from(stream).set_tcp_keepalive(&params) {
            tracing::warn!(error = %e, "could not set TCP keepalive on an upstream connection");
        }
    }
}

/// Apply the cluster's keepalive (if any) to a new upstream connection.
pub fn apply(k: Option<&Keepalive>, stream: &tokio::net::TcpStream) {
    if let Some(k) = k {
        k.apply(stream);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::UInt32Value;

    #[test]
    fn keepalive_fields_and_rejections() {
        let o = c::UpstreamConnectionOptions {
            tcp_keepalive: Some(core::TcpKeepalive {
                keepalive_probes: Some(UInt32Value { value: 3 }),
                keepalive_time: Some(UInt32Value { value: 30 }),
                keepalive_interval: None,
            }),
            ..Default::default()
        };
        let k = from_options(Some(&o)).unwrap().unwrap();
        assert_eq!(k.probes, Some(3));
        assert_eq!(k.time, Some(Duration::from_secs(30)));
        assert_eq!(k.interval, None);
        let o = c::UpstreamConnectionOptions {
            set_local_interface_name_on_upstream_connections: true,
            ..Default::default()
        };
        assert_eq!(
            from_options(Some(&o)).unwrap_err().field,
            "set_local_interface_name_on_upstream_connections"
        );
    }
}
