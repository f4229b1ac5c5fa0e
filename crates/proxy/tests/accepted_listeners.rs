//! Socket tests of REDIRECT-mode listener fields: filter chains by destination port and SNI,
//! `default_filter_chain`, `bind_to_port: false`, the TLS inspector.

mod accepted;
mod common;

use accepted::*;
use common::*;
use envoy_types::pb::envoy::config::listener::v3 as l;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn capture_listeners_pick_chains_by_destination_port_and_register_unbound() {
    use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
    let a = echo_named("a").await;
    let tcp_echo = plexus_testkit::echo::start_tcp("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("tcp echo");
    let rc = route_config(
        "in",
        vec![vhost(
            "v",
            &["*"],
            vec![route(prefix("/"), to_cluster("a"))],
        )],
    );
    let (_, hcm_any) = listener("x", rc, |_| {});
    let hcm_filter = {
        let li: l::Listener = prost::Message::decode(hcm_any.value.as_slice()).expect("listener");
        li.filter_chains[0].filters[0].clone()
    };
    let hcm_cfg = match hcm_filter.config_type {
        Some(l::filter::ConfigType::TypedConfig(a)) => a,
        _ => panic!("typed config"),
    };
    let tcp_cfg = pack_any(tcp::TcpProxy {
        stat_prefix: "t".into(),
        cluster_specifier: Some(tcp::tcp_proxy::ClusterSpecifier::Cluster("tcp".into())),
        ..Default::default()
    });
    let capture = |name: &str, port: u16, match_port: u16| l::Listener {
        name: name.into(),
        address: Some(socket(SocketAddr::from(([127, 0, 0, 1], port)))),
        filter_chains: vec![chain(hcm_cfg.clone(), Some(match_port))],
        default_filter_chain: Some(chain(tcp_cfg.clone(), None)),
        listener_filters: vec![l::ListenerFilter {
            name: "envoy.filters.listener.original_dst".into(),
            config_type: Some(l::listener_filter::ConfigType::TypedConfig(pack_any(
                OriginalDst {},
            ))),
            ..Default::default()
        }],
        ..Default::default()
    };
    let (p1, p2) = (free_port(), free_port());
    // The unbound listener's port is held by the test: binding it would fail the push.
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let held_port = held.local_addr().expect("addr").port();
    let unbound = l::Listener {
        bind_to_port: Some(BoolValue { value: false }),
        ..capture("unbound", held_port, 1)
    };
    let listeners = vec![
        ("matched".to_string(), pack_any(capture("matched", p1, p1))),
        ("default".to_string(), pack_any(capture("default", p2, 1))),
        ("unbound".to_string(), pack_any(unbound)),
    ];
    let (_ads, proxy) = run(
        listeners,
        vec![
            static_cluster("a", &[a.addr]),
            static_cluster("tcp", &[tcp_echo.addr]),
        ],
    )
    .await;
    // Destination port matches the chain: HTTP to `a`.
    let matched = proxy.listener_addr("matched").expect("bound");
    let got = request(matched, false, "GET", "h", "/in", &[])
        .await
        .expect("request");
    assert_eq!(
        (got.status, got.json()["workload"].as_str()),
        (200, Some("a"))
    );
    // No chain matches: the default chain proxies TCP to the byte echo.
    let default = proxy.listener_addr("default").expect("bound");
    let echoed = tokio::time::timeout(WAIT, async {
        let mut s = tokio::net::TcpStream::connect(default).await.ok()?;
        s.write_all(b"ping").await.ok()?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.ok()?;
        Some(buf)
    })
    .await
    .ok()
    .flatten();
    assert_eq!(echoed, Some(*b"ping"));
    // bind_to_port: false is registered at its configured address without taking the port.
    let unbound = proxy.listener_addr("unbound").expect("registered");
    assert_eq!(unbound.port(), held_port);
    drop(held);
}

#[tokio::test]
async fn tls_inspector_matches_chains_by_sni_without_terminating_tls() {
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
    let api = plexus_testkit::echo::start_tcp("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("tcp echo");
    let to = |cluster: &str| {
        pack_any(tcp::TcpProxy {
            stat_prefix: cluster.into(),
            cluster_specifier: Some(tcp::tcp_proxy::ClusterSpecifier::Cluster(cluster.into())),
            ..Default::default()
        })
    };
    let sni_chain = l::FilterChain {
        filter_chain_match: Some(l::FilterChainMatch {
            server_names: vec!["*.payments.test".into()],
            transport_protocol: "tls".into(),
            ..Default::default()
        }),
        ..chain(to("api"), None)
    };
    let li = l::Listener {
        name: "tls".into(),
        address: Some(socket("127.0.0.1:0".parse().expect("addr"))),
        filter_chains: vec![sni_chain],
        ..Default::default()
    };
    let (_ads, proxy) = run(
        vec![("tls".into(), pack_any(li))],
        vec![static_cluster("api", &[api.addr])],
    )
    .await;
    let addr = proxy.listener_addr("tls").expect("bound");
    let exchange = |bytes: Vec<u8>| async move {
        let io = async {
            let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
            s.write_all(&bytes).await.ok()?;
            let mut buf = vec![0u8; bytes.len()];
            s.read_exact(&mut buf).await.ok()?;
            Some(buf)
        };
        tokio::time::timeout(WAIT, io).await.ok().flatten()
    };
    // The ClientHello goes through untouched to the chain chosen by its SNI.
    let hello = plexus_proxy::tls_inspect::client_hello("api.payments.test");
    assert_eq!(exchange(hello.clone()).await, Some(hello));
    // Another name, or plaintext, matches no chain: the connection is closed.
    let other = plexus_proxy::tls_inspect::client_hello("api.other.test");
    assert_eq!(exchange(other).await, None);
    assert_eq!(exchange(b"GET / HTTP/1.1\r\n\r\n".to_vec()).await, None);
}
