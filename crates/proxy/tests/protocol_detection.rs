//! Socket tests of protocol detection: the `http_inspector` listener filter choosing filter
//! chains by `application_protocols` (HTTP/1.1, h2c, opaque TCP), and
//! `listener_filters_timeout` letting server-first protocols through (or closing them).

mod accepted;
mod common;

use accepted::*;
use common::*;
use envoy_types::pb::envoy::config::listener::v3 as l;
use envoy_types::pb::envoy::extensions::filters::listener::http_inspector::v3::HttpInspector;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration};
use envoy_types::util::pack_any;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn tcp_to(cluster: &str) -> Any {
    pack_any(tcp::TcpProxy {
        stat_prefix: cluster.into(),
        cluster_specifier: Some(tcp::tcp_proxy::ClusterSpecifier::Cluster(cluster.into())),
        ..Default::default()
    })
}

/// The connection manager config of an HTTP listener routing everything to `cluster`.
fn hcm_to(cluster: &str) -> Any {
    let rc = route_config(
        cluster,
        vec![vhost(
            "v",
            &["*"],
            vec![route(prefix("/"), to_cluster(cluster))],
        )],
    );
    let (_, li) = listener(cluster, rc, |_| {});
    let li: l::Listener = prost::Message::decode(li.value.as_slice()).expect("listener");
    match li.filter_chains[0].filters[0].config_type.clone() {
        Some(l::filter::ConfigType::TypedConfig(a)) => a,
        other => panic!("typed config: {other:?}"),
    }
}

fn for_protocols(filter: Any, protocols: &[&str]) -> l::FilterChain {
    l::FilterChain {
        filter_chain_match: Some(l::FilterChainMatch {
            application_protocols: protocols.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }),
        ..chain(filter, None)
    }
}

fn inspectors() -> Vec<l::ListenerFilter> {
    let filter = |name: &str, any: Any| l::ListenerFilter {
        name: name.into(),
        config_type: Some(l::listener_filter::ConfigType::TypedConfig(any)),
        ..Default::default()
    };
    vec![
        filter(
            "envoy.filters.listener.tls_inspector",
            pack_any(TlsInspector::default()),
        ),
        filter(
            "envoy.filters.listener.http_inspector",
            pack_any(HttpInspector {}),
        ),
    ]
}

/// Like Istio's inbound listener: HTTP chains by detected protocol, TCP as the default chain.
fn sniffing(name: &str, timeout_ms: i32, continue_on_timeout: bool) -> (String, Any) {
    let li = l::Listener {
        name: name.into(),
        address: Some(socket("127.0.0.1:0".parse().expect("addr"))),
        listener_filters: inspectors(),
        listener_filters_timeout: Some(PbDuration {
            seconds: i64::from(timeout_ms / 1000),
            nanos: (timeout_ms % 1000) * 1_000_000,
        }),
        continue_on_listener_filters_timeout: continue_on_timeout,
        filter_chains: vec![
            for_protocols(hcm_to("h1"), &["http/1.0", "http/1.1"]),
            for_protocols(hcm_to("h2"), &["h2c"]),
        ],
        default_filter_chain: Some(chain(tcp_to("tcp"), None)),
        ..Default::default()
    };
    (name.to_string(), pack_any(li))
}

/// A server-first upstream (as MySQL or SMTP): it greets on accept, then echoes.
async fn greeting_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                if s.write_all(b"220 ready\r\n").await.is_err() {
                    return;
                }
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Connect, wait for the server to speak first, answer, and read the echo.
async fn server_first_exchange(addr: SocketAddr) -> Option<(Vec<u8>, Vec<u8>)> {
    let io = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let mut greeting = vec![0u8; 11];
        s.read_exact(&mut greeting).await.ok()?;
        s.write_all(b"QUIT\r\n").await.ok()?;
        let mut echo = vec![0u8; 6];
        s.read_exact(&mut echo).await.ok()?;
        Some((greeting, echo))
    };
    tokio::time::timeout(WAIT, io).await.ok().flatten()
}

#[tokio::test]
async fn http_inspector_picks_http1_h2c_and_tcp_chains_on_one_listener() {
    let (h1, h2) = (echo_named("h1").await, echo_named("h2").await);
    let tcp_echo = plexus_testkit::echo::start_tcp("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("tcp echo");
    let (_ads, proxy) = run(
        vec![sniffing("in", 10_000, true)],
        vec![
            static_cluster("h1", &[h1.addr]),
            static_cluster("h2", &[h2.addr]),
            static_cluster("tcp", &[tcp_echo.addr]),
        ],
    )
    .await;
    let addr = proxy.listener_addr("in").expect("bound");
    for (h2c, want) in [(false, "h1"), (true, "h2")] {
        let got = request(addr, h2c, "GET", "svc", "/x", &[])
            .await
            .expect("request");
        assert_eq!(
            (got.status, got.json()["workload"].as_str()),
            (200, Some(want)),
            "h2c={h2c}"
        );
    }
    // Binary client-first bytes are opaque at once: the default chain proxies them.
    let bytes = b"\x00\x01\x02binary".to_vec();
    let echoed = tokio::time::timeout(WAIT, async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(&bytes).await.ok()?;
        let mut buf = vec![0u8; bytes.len()];
        s.read_exact(&mut buf).await.ok()?;
        Some(buf)
    })
    .await
    .ok()
    .flatten();
    assert_eq!(echoed, Some(bytes));
}

#[tokio::test]
async fn server_first_protocol_reaches_tcp_chain_after_listener_filters_timeout() {
    let upstream = greeting_server().await;
    let (_ads, proxy) = run(
        vec![sniffing("in", 300, true)],
        vec![
            static_cluster("h1", &[upstream]),
            static_cluster("h2", &[upstream]),
            static_cluster("tcp", &[upstream]),
        ],
    )
    .await;
    let addr = proxy.listener_addr("in").expect("bound");
    let started = std::time::Instant::now();
    let got = server_first_exchange(addr).await;
    assert_eq!(got, Some((b"220 ready\r\n".to_vec(), b"QUIT\r\n".to_vec())));
    // The greeting can only come once detection gave up waiting for the client.
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(250),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn listener_filters_timeout_without_continue_closes_the_connection() {
    let upstream = greeting_server().await;
    let (_ads, proxy) = run(
        vec![sniffing("in", 200, false)],
        vec![
            static_cluster("h1", &[upstream]),
            static_cluster("h2", &[upstream]),
            static_cluster("tcp", &[upstream]),
        ],
    )
    .await;
    let addr = proxy.listener_addr("in").expect("bound");
    let closed = tokio::time::timeout(WAIT, async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        let mut buf = [0u8; 16];
        Some(matches!(s.read(&mut buf).await, Ok(0) | Err(_)))
    })
    .await
    .ok()
    .flatten();
    assert_eq!(closed, Some(true), "closed without a greeting");
}
