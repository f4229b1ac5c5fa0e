//! The IP-matching scenario of the differential run: two listeners on 127.0.0.1 whose filter
//! chains match on `prefix_ranges`, `source_prefix_ranges`, `source_ports`,
//! `direct_source_prefix_ranges` and `source_type`. Every chain is an HTTP connection manager
//! answering a direct response that names the chain; clients bind to different loopback
//! addresses (and one reserved source port) before connecting.

use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::listener::v3 as l;
use envoy_types::pb::google::protobuf::{Any, UInt32Value};
use envoy_types::util::pack_any;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::common::*;

/// A source port reserved on 127.0.0.4 for the `source_ports` chain: the socket stays bound
/// (never listening) so no one else gets the port; each check binds it again with
/// SO_REUSEADDR, one connection per proxy (each to a different listener address).
pub struct Fixture {
    reserved: TcpSocket,
    pub port: u16,
}

const RESERVED_IP: &str = "127.0.0.4";

impl Fixture {
    pub fn start() -> Fixture {
        let reserved = reusable_socket(RESERVED_IP, 0).expect("reserve a source port");
        let port = reserved.local_addr().expect("reserved port").port();
        Fixture { reserved, port }
    }
}

fn reusable_socket(ip: &str, port: u16) -> std::io::Result<TcpSocket> {
    let s = TcpSocket::new_v4()?;
    s.set_reuseaddr(true)?;
    let ip: IpAddr = ip.parse().map_err(std::io::Error::other)?;
    s.bind(SocketAddr::new(ip, port))?;
    Ok(s)
}

fn cidr(s: &str) -> CidrRange {
    let (addr, len) = s.split_once('/').expect("cidr");
    CidrRange {
        address_prefix: addr.into(),
        prefix_len: Some(UInt32Value {
            value: len.parse().expect("prefix length"),
        }),
    }
}

fn ranges(list: &[&str]) -> Vec<CidrRange> {
    list.iter().map(|c| cidr(c)).collect()
}

/// An HTTP connection manager answering 200 with `body` to every request.
fn answering(body: &str) -> Any {
    let rc = route_config(
        body,
        vec![vhost(
            "all",
            &["*"],
            vec![route(prefix("/"), super::direct(body))],
        )],
    );
    let li: l::Listener =
        prost::Message::decode(http_listener_inline(body, rc).value.as_slice()).expect("listener");
    match li.filter_chains[0].filters[0].config_type.clone() {
        Some(l::filter::ConfigType::TypedConfig(a)) => a,
        other => panic!("typed config: {other:?}"),
    }
}

fn chain(body: &str, m: l::FilterChainMatch) -> l::FilterChain {
    l::FilterChain {
        filter_chain_match: (m != l::FilterChainMatch::default()).then_some(m),
        filters: vec![l::Filter {
            name: "hcm".into(),
            config_type: Some(l::filter::ConfigType::TypedConfig(answering(body))),
        }],
        ..Default::default()
    }
}

fn listener(name: &str, chains: Vec<l::FilterChain>, default: Option<l::FilterChain>) -> Any {
    pack_any(l::Listener {
        name: name.into(),
        address: Some(socket("127.0.0.1:0".parse().expect("addr"))),
        filter_chains: chains,
        default_filter_chain: default,
        ..Default::default()
    })
}

/// `subnets`: destination 127.0.0.1/32 chains told apart by source range and port, beside a
/// 127.0.0.0/8 chain that the more specific destination hides (no default chain).
/// `subnets-src`: direct source, source type and a default chain.
pub fn listeners(f: &Fixture) -> Vec<(String, Any)> {
    let dst32 = |src: &[&str], ports: &[u32]| l::FilterChainMatch {
        prefix_ranges: ranges(&["127.0.0.1/32"]),
        source_prefix_ranges: ranges(src),
        source_ports: ports.to_vec(),
        ..Default::default()
    };
    let by_destination = vec![
        chain("src32", dst32(&["127.0.0.2/32"], &[])),
        chain("src24", dst32(&["127.0.0.0/24"], &[])),
        chain("src24-port", dst32(&["127.0.0.0/24"], &[u32::from(f.port)])),
        chain(
            "wide",
            l::FilterChainMatch {
                prefix_ranges: ranges(&["127.0.0.0/8"]),
                ..Default::default()
            },
        ),
    ];
    use l::filter_chain_match::ConnectionSourceType as Type;
    let by_source = vec![
        chain(
            "direct3",
            l::FilterChainMatch {
                direct_source_prefix_ranges: ranges(&["127.0.0.3/32"]),
                ..Default::default()
            },
        ),
        chain(
            "direct3-external",
            l::FilterChainMatch {
                direct_source_prefix_ranges: ranges(&["127.0.0.3/32"]),
                source_type: Type::External as i32,
                ..Default::default()
            },
        ),
        chain(
            "local",
            l::FilterChainMatch {
                source_type: Type::SameIpOrLoopback as i32,
                ..Default::default()
            },
        ),
        chain(
            "external",
            l::FilterChainMatch {
                source_type: Type::External as i32,
                source_prefix_ranges: ranges(&["127.0.0.0/16"]),
                ..Default::default()
            },
        ),
        chain(
            "other-net",
            l::FilterChainMatch {
                prefix_ranges: ranges(&["10.0.0.0/8"]),
                ..Default::default()
            },
        ),
    ];
    let default = chain("default", l::FilterChainMatch::default());
    vec![
        ("subnets".into(), listener("subnets", by_destination, None)),
        (
            "subnets-src".into(),
            listener("subnets-src", by_source, Some(default)),
        ),
    ]
}

/// GET over a connection from `source` (port 0: ephemeral); `Ok(None)` when the proxy closes
/// the connection without an answer.
async fn answer_from(source: &str, port: u16, addr: SocketAddr) -> Result<Option<String>, String> {
    let io = async {
        let mut s = reusable_socket(source, port)?.connect(addr).await?;
        s.write_all(b"GET / HTTP/1.1\r\nhost: subnets.test\r\nconnection: close\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        match s.read_to_end(&mut buf).await {
            Ok(_) => Ok(buf),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && buf.is_empty() => Ok(buf),
            Err(e) => Err(e),
        }
    };
    let raw = match tokio::time::timeout(WAIT, io).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(e)) => return Err(format!("from {source}:{port}: {e}")),
        Err(_) => return Err(format!("from {source}:{port}: no answer within the wait")),
    };
    if raw.is_empty() {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&raw);
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(Some(body.to_string())),
        _ => Err(format!("from {source}:{port}: unexpected reply {text:?}")),
    }
}

/// Which chain answers each client of `subnets` (at `by_destination`) and `subnets-src`.
pub async fn check(
    f: &Fixture,
    by_destination: SocketAddr,
    by_source: SocketAddr,
) -> Vec<Result<(), String>> {
    let cases_dst: [(&str, u16, Option<&str>); 4] = [
        ("127.0.0.2", 0, Some("src32")),
        ("127.0.0.9", 0, Some("src24")),
        (RESERVED_IP, f.port, Some("src24-port")),
        // The /32 destination chains win over `wide`, and none takes 127.0.1.5: closed.
        ("127.0.1.5", 0, None),
    ];
    // Envoy counts only 127.0.0.1 (and ::1) as loopback: other 127/8 peers are EXTERNAL.
    let cases_src: [(&str, u16, Option<&str>); 4] = [
        ("127.0.0.3", 0, Some("direct3-external")),
        ("127.0.0.1", 0, Some("local")),
        ("127.0.0.4", 0, Some("external")),
        // EXTERNAL wins the source type step, then fails the range: the default chain.
        ("127.1.0.1", 0, Some("default")),
    ];
    let mut out = Vec::new();
    for (addr, cases) in [
        (by_destination, &cases_dst[..]),
        (by_source, &cases_src[..]),
    ] {
        let mut result = Ok(());
        for (source, port, want) in cases {
            let got = answer_from(source, *port, addr).await;
            let outcome = match got {
                Ok(got) if got.as_deref() == *want => Ok(()),
                Ok(got) => Err(format!("from {source}:{port}: {got:?}, want {want:?}")),
                Err(e) => Err(e),
            };
            if let Err(e) = outcome {
                result = Err(e);
                break;
            }
        }
        out.push(result);
    }
    out
}
