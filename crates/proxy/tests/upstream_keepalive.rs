//! Socket test of `upstream_connection_options.tcp_keepalive`: the proxy's pooled upstream
//! connection of a cluster with keepalive has the kernel's keepalive timer armed (seen in
//! `/proc/self/net/tcp`, as the proxy runs in this process); one without it does not.

mod accepted;
mod common;

use std::net::SocketAddr;

use accepted::*;
use common::*;
use envoy_types::pb::envoy::config::cluster::v3 as c;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::google::protobuf::UInt32Value;

/// `(timer kind, timer expiry in clock ticks)` of established sockets connected to `upstream`.
fn timers_to(upstream: SocketAddr) -> Vec<(u32, u64)> {
    let table = std::fs::read_to_string("/proc/self/net/tcp").expect("/proc/self/net/tcp");
    let want = format!("{:04X}", upstream.port());
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let rem_port = f.get(2)?.split(':').nth(1)?;
            if rem_port != want || *f.get(3)? != "01" {
                return None;
            }
            let (kind, when) = f.get(5)?.split_once(':')?;
            Some((
                u32::from_str_radix(kind, 16).ok()?,
                u64::from_str_radix(when, 16).ok()?,
            ))
        })
        .collect()
}

#[tokio::test]
async fn upstream_connections_get_tcp_keepalive_when_configured() {
    let with = echo_named("with").await;
    let without = echo_named("without").await;
    let mut cl = static_cluster("ka", &[with.addr]);
    cl.upstream_connection_options = Some(c::UpstreamConnectionOptions {
        tcp_keepalive: Some(core::TcpKeepalive {
            keepalive_probes: Some(UInt32Value { value: 3 }),
            keepalive_time: Some(UInt32Value { value: 7 }),
            keepalive_interval: Some(UInt32Value { value: 2 }),
        }),
        ..Default::default()
    });
    let plain = static_cluster("plain", &[without.addr]);
    let rc = route_config(
        "r",
        vec![vhost(
            "v",
            &["*"],
            vec![
                route(prefix("/ka"), to_cluster("ka")),
                route(prefix("/plain"), to_cluster("plain")),
            ],
        )],
    );
    let (_ads, proxy) = run(vec![listener("main", rc, |_| {})], vec![cl, plain]).await;
    let addr = proxy.listener_addr("main").expect("bound");
    for path in ["/ka", "/plain"] {
        let got = request(addr, false, "GET", "h", path, &[])
            .await
            .expect("request");
        assert_eq!(got.status, 200);
    }
    // Timer kind 2 is the keepalive timer; its expiry (USER_HZ ticks) is within keepalive_time.
    let ka = timers_to(with.addr);
    assert!(
        ka.iter()
            .any(|&(kind, when)| kind == 2 && when > 0 && when <= 7 * 100),
        "{ka:?}"
    );
    let plain = timers_to(without.addr);
    assert!(
        !plain.is_empty() && plain.iter().all(|&(kind, _)| kind != 2),
        "{plain:?}"
    );
}
