//! The protocol-detection scenario of the differential run: one listener with the
//! `tls_inspector` and `http_inspector` listener filters, an HTTP chain chosen by
//! `application_protocols` (http/1.1 and h2c) and a TCP default chain to a server-first
//! upstream, with a 300 ms `listener_filters_timeout` that continues on timeout.

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::listener::v3 as l;
use envoy_types::pb::envoy::extensions::filters::listener::http_inspector::v3::HttpInspector;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration};
use envoy_types::util::pack_any;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

pub const GREETING: &[u8] = b"220 ready\r\n";

fn filter_chain(filter: Any, protocols: &[&str]) -> l::FilterChain {
    l::FilterChain {
        filter_chain_match: (!protocols.is_empty()).then(|| l::FilterChainMatch {
            application_protocols: protocols.iter().map(|p| p.to_string()).collect(),
            ..Default::default()
        }),
        filters: vec![l::Filter {
            name: "net".into(),
            config_type: Some(l::filter::ConfigType::TypedConfig(filter)),
        }],
        ..Default::default()
    }
}

/// The sniffing listener: HTTP/1.1 and h2c to `http_cluster`, anything else (or nothing
/// within 300 ms) to `tcp_cluster`.
pub fn sniffing_listener(name: &str, http_cluster: &str, tcp_cluster: &str) -> Any {
    let rc = route_config(
        name,
        vec![vhost(
            "all",
            &["*"],
            vec![route(prefix("/"), to_cluster(http_cluster))],
        )],
    );
    let http_li: l::Listener =
        prost::Message::decode(http_listener_inline(name, rc).value.as_slice()).expect("listener");
    let hcm = match http_li.filter_chains[0].filters[0].config_type.clone() {
        Some(l::filter::ConfigType::TypedConfig(a)) => a,
        other => panic!("typed config: {other:?}"),
    };
    let tcp = pack_any(tcp::TcpProxy {
        stat_prefix: name.into(),
        cluster_specifier: Some(tcp::tcp_proxy::ClusterSpecifier::Cluster(
            tcp_cluster.into(),
        )),
        ..Default::default()
    });
    let inspector = |name: &str, any: Any| l::ListenerFilter {
        name: name.into(),
        config_type: Some(l::listener_filter::ConfigType::TypedConfig(any)),
        ..Default::default()
    };
    pack_any(l::Listener {
        name: name.into(),
        address: Some(socket("127.0.0.1:0".parse().expect("addr"))),
        listener_filters: vec![
            inspector(
                "envoy.filters.listener.tls_inspector",
                pack_any(TlsInspector::default()),
            ),
            inspector(
                "envoy.filters.listener.http_inspector",
                pack_any(HttpInspector {}),
            ),
        ],
        listener_filters_timeout: Some(PbDuration {
            seconds: 0,
            nanos: 300_000_000,
        }),
        continue_on_listener_filters_timeout: true,
        filter_chains: vec![filter_chain(hcm, &["http/1.1", "h2c"])],
        default_filter_chain: Some(filter_chain(tcp, &[])),
        ..Default::default()
    })
}

/// A server-first upstream (as MySQL or SMTP): greets on accept, then echoes.
pub async fn greeting_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                if s.write_all(GREETING).await.is_err() {
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

/// HTTP/1.1 and h2c reach the HTTP chain (backend `a`); a client that waits for the server
/// gets the greeting through the TCP chain once detection times out, then an echo.
pub async fn check(addr: SocketAddr) -> Result<(), String> {
    for h2 in [false, true] {
        let got = request(addr, h2, "GET", "sniffed.test", "/", &[]).await?;
        let workload = got.json()["workload"].as_str().map(str::to_string);
        if (got.status, workload.as_deref()) != (200, Some("a")) {
            return Err(format!("h2={h2}: {} from {workload:?}", got.status));
        }
    }
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let mut greeting = vec![0u8; GREETING.len()];
        s.read_exact(&mut greeting).await?;
        s.write_all(b"QUIT\r\n").await?;
        let mut echo = [0u8; 6];
        s.read_exact(&mut echo).await?;
        Ok::<_, std::io::Error>((greeting, echo))
    };
    match tokio::time::timeout(WAIT, io).await {
        Ok(Ok((g, e))) if g == GREETING && &e == b"QUIT\r\n" => Ok(()),
        Ok(Ok((g, e))) => Err(format!(
            "server-first: got {:?} then {:?}",
            String::from_utf8_lossy(&g),
            String::from_utf8_lossy(&e)
        )),
        Ok(Err(e)) => Err(format!("server-first: {e}")),
        Err(_) => Err("server-first: no greeting within the wait".into()),
    }
}
