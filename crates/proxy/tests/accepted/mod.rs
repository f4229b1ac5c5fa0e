//! Helpers of the `accepted_*` socket tests: listeners with connection manager options,
//! pushing a config and waiting for it, raw HTTP/1.1 exchanges, clusters with priorities or
//! upstream connection options, and upstreams that count connections.
#![allow(dead_code)]

use crate::common::*;
use envoy_types::pb::envoy::config::cluster::v3 as c;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as e;
use envoy_types::pb::envoy::config::listener::v3 as l;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as uh;
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration, UInt32Value};
use envoy_types::util::pack_any;
use plexus_testkit::FakeAds;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub fn ms(n: i32) -> PbDuration {
    PbDuration {
        seconds: 0,
        nanos: n * 1_000_000,
    }
}

/// An HTTP listener on 127.0.0.1:0 with an inline route config and manager options.
pub fn listener(
    name: &str,
    rc: rt::RouteConfiguration,
    tweak: impl FnOnce(&mut hcm::HttpConnectionManager),
) -> (String, Any) {
    let mut m = hcm::HttpConnectionManager {
        stat_prefix: name.into(),
        http_filters: vec![hcm::HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(hcm::http_filter::ConfigType::TypedConfig(pack_any(
                Router::default(),
            ))),
            ..Default::default()
        }],
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::RouteConfig(
            rc,
        )),
        ..Default::default()
    };
    tweak(&mut m);
    let li = l::Listener {
        name: name.into(),
        address: Some(socket("127.0.0.1:0".parse().expect("addr"))),
        filter_chains: vec![l::FilterChain {
            filters: vec![l::Filter {
                name: "hcm".into(),
                config_type: Some(l::filter::ConfigType::TypedConfig(pack_any(m))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    (name.to_string(), pack_any(li))
}

pub async fn run(
    listeners: Vec<(String, Any)>,
    clusters: Vec<c::Cluster>,
) -> (FakeAds, plexus_proxy::ProxyHandle) {
    let ads = FakeAds::start().await.expect("ads");
    let names: Vec<String> = listeners.iter().map(|(n, _)| n.clone()).collect();
    push(
        &ads,
        &Config {
            listeners,
            routes: vec![],
            clusters,
            endpoints: vec![],
        },
    );
    let proxy = start_proxy(&ads).await;
    for n in names {
        wait_listener(&proxy, &n).await;
    }
    (ads, proxy)
}

pub fn with_retries(m: rt::RouteMatch, cluster: &str, n: u32) -> rt::Route {
    route(
        m,
        rt::route::Action::Route(rt::RouteAction {
            cluster_specifier: Some(rt::route_action::ClusterSpecifier::Cluster(cluster.into())),
            retry_policy: Some(rt::RetryPolicy {
                retry_on: "5xx".into(),
                num_retries: Some(UInt32Value { value: n }),
                retry_back_off: Some(rt::retry_policy::RetryBackOff {
                    base_interval: Some(ms(1)),
                    max_interval: Some(ms(2)),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
    )
}

/// One raw HTTP/1.1 exchange (`Connection: close`), bounded by `WAIT`.
pub async fn raw(addr: SocketAddr, head: &str) -> String {
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(head.as_bytes()).await.ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        Some(String::from_utf8_lossy(&out).into_owned())
    };
    tokio::time::timeout(WAIT, io)
        .await
        .ok()
        .flatten()
        .expect("raw exchange")
}

pub fn echo_json(resp: &str) -> serde_json::Value {
    let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

pub fn hashed_route(policy: rt::route_action::hash_policy::PolicySpecifier) -> rt::Route {
    route(
        prefix("/"),
        rt::route::Action::Route(rt::RouteAction {
            cluster_specifier: Some(rt::route_action::ClusterSpecifier::Cluster("h".into())),
            hash_policy: vec![rt::route_action::HashPolicy {
                policy_specifier: Some(policy),
                terminal: false,
            }],
            ..Default::default()
        }),
    )
}

pub fn prioritized(name: &str, groups: &[(u32, SocketAddr)]) -> c::Cluster {
    let mut cl = static_cluster(name, &[]);
    if let Some(la) = cl.load_assignment.as_mut() {
        la.endpoints = groups
            .iter()
            .map(|(prio, addr)| e::LocalityLbEndpoints {
                priority: *prio,
                ..lb_endpoints(&[*addr]).remove(0)
            })
            .collect();
    }
    cl
}

/// An HTTP/1.1 upstream that counts connections opened and closed.
pub async fn counting_upstream() -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let lis = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = lis.local_addr().expect("addr");
    let (opened, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (o, cl) = (opened.clone(), closed.clone());
    tokio::spawn(async move {
        while let Ok((s, _)) = lis.accept().await {
            o.fetch_add(1, Ordering::SeqCst);
            let cl = cl.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
                cl.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, opened, closed)
}

pub fn with_pool(mut cl: c::Cluster, opts: core::HttpProtocolOptions) -> c::Cluster {
    let o = uh::HttpProtocolOptions {
        common_http_protocol_options: Some(opts),
        upstream_protocol_options: Some(uh::http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
            uh::http_protocol_options::ExplicitHttpConfig {
                protocol_config: Some(
                    uh::http_protocol_options::explicit_http_config::ProtocolConfig::HttpProtocolOptions(
                        Default::default(),
                    ),
                ),
            },
        )),
        ..Default::default()
    };
    cl.typed_extension_protocol_options.insert(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".into(),
        pack_any(o),
    );
    cl
}

pub fn chain(filter: Any, port: Option<u16>) -> l::FilterChain {
    l::FilterChain {
        filter_chain_match: port.map(|p| l::FilterChainMatch {
            destination_port: Some(UInt32Value {
                value: u32::from(p),
            }),
            ..Default::default()
        }),
        filters: vec![l::Filter {
            name: "net".into(),
            config_type: Some(l::filter::ConfigType::TypedConfig(filter)),
        }],
        ..Default::default()
    }
}

/// A free loopback port (the OS picks it; the listener binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
