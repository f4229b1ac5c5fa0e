//! Shared by the proxy's integration and differential tests: xDS builders, a proxy or Envoy
//! fed by the testkit's fake ADS server, and an HTTP client.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use envoy_types::pb::envoy::config::cluster::v3 as c;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as e;
use envoy_types::pb::envoy::config::listener::v3 as l;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3 as tcp;
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration};
use envoy_types::util::pack_any;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use plexus_proxy::{ProxyConfig, ProxyHandle};
use plexus_testkit::FakeAds;
use plexus_testkit::echo::{self, EchoConfig, EchoHandle};
use plexus_xds::node::{InterceptionMode, NodeIdentity, ProxyType};
use plexus_xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};

pub const WAIT: Duration = Duration::from_secs(10);
/// How long a proxy may take to start and bind a pushed listener. Envoy needs well under a
/// second on an idle machine, but the suite runs test binaries in parallel on two cores.
pub const STARTUP_WAIT: Duration = Duration::from_secs(30);

pub fn socket(addr: SocketAddr) -> core::Address {
    core::Address {
        address: Some(core::address::Address::SocketAddress(core::SocketAddress {
            address: addr.ip().to_string(),
            port_specifier: Some(core::socket_address::PortSpecifier::PortValue(u32::from(
                addr.port(),
            ))),
            ..Default::default()
        })),
    }
}

fn ads_source() -> core::ConfigSource {
    core::ConfigSource {
        resource_api_version: core::ApiVersion::V3 as i32,
        config_source_specifier: Some(core::config_source::ConfigSourceSpecifier::Ads(
            Default::default(),
        )),
        ..Default::default()
    }
}

fn router_filter() -> hcm::HttpFilter {
    hcm::HttpFilter {
        name: "envoy.filters.http.router".into(),
        config_type: Some(hcm::http_filter::ConfigType::TypedConfig(pack_any(
            Router::default(),
        ))),
        ..Default::default()
    }
}

fn listener_with(name: &str, filter: Any) -> Any {
    pack_any(l::Listener {
        name: name.into(),
        address: Some(socket("127.0.0.1:0".parse().expect("addr"))),
        filter_chains: vec![l::FilterChain {
            filters: vec![l::Filter {
                name: "net".into(),
                config_type: Some(l::filter::ConfigType::TypedConfig(filter)),
            }],
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// An HTTP listener on 127.0.0.1:0 whose routes come over RDS as `route_name`.
pub fn http_listener_rds(name: &str, route_name: &str) -> Any {
    listener_with(
        name,
        pack_any(hcm::HttpConnectionManager {
            stat_prefix: name.into(),
            http_filters: vec![router_filter()],
            route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(
                hcm::Rds {
                    config_source: Some(ads_source()),
                    route_config_name: route_name.into(),
                },
            )),
            ..Default::default()
        }),
    )
}

/// Like `http_listener_rds`, with an empty fault filter before the router (Istio's shape:
/// faults come from `typed_per_filter_config` on routes).
pub fn http_listener_rds_with_fault(name: &str, route_name: &str) -> Any {
    use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
    let fault = hcm::HttpFilter {
        name: "envoy.filters.http.fault".into(),
        config_type: Some(hcm::http_filter::ConfigType::TypedConfig(pack_any(
            HttpFault::default(),
        ))),
        ..Default::default()
    };
    listener_with(
        name,
        pack_any(hcm::HttpConnectionManager {
            stat_prefix: name.into(),
            http_filters: vec![fault, router_filter()],
            upgrade_configs: vec![hcm::http_connection_manager::UpgradeConfig {
                upgrade_type: "websocket".into(),
                ..Default::default()
            }],
            route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(
                hcm::Rds {
                    config_source: Some(ads_source()),
                    route_config_name: route_name.into(),
                },
            )),
            ..Default::default()
        }),
    )
}

/// An HTTP listener with an inline route configuration.
pub fn http_listener_inline(name: &str, rc: rt::RouteConfiguration) -> Any {
    http_listener_tweaked(name, rc, |_| {})
}

/// `http_listener_inline` with connection manager options set by `tweak`.
pub fn http_listener_tweaked(
    name: &str,
    rc: rt::RouteConfiguration,
    tweak: impl FnOnce(&mut hcm::HttpConnectionManager),
) -> Any {
    let mut m = hcm::HttpConnectionManager {
        stat_prefix: name.into(),
        http_filters: vec![router_filter()],
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::RouteConfig(
            rc,
        )),
        ..Default::default()
    };
    tweak(&mut m);
    listener_with(name, pack_any(m))
}

pub fn tcp_listener(name: &str, cluster: &str) -> Any {
    listener_with(
        name,
        pack_any(tcp::TcpProxy {
            stat_prefix: name.into(),
            cluster_specifier: Some(tcp::tcp_proxy::ClusterSpecifier::Cluster(cluster.into())),
            ..Default::default()
        }),
    )
}

/// A TCP proxy listener that closes connections idle for `idle_ms`.
pub fn tcp_listener_idle(name: &str, cluster: &str, idle_ms: u32) -> Any {
    listener_with(
        name,
        pack_any(tcp::TcpProxy {
            stat_prefix: name.into(),
            cluster_specifier: Some(tcp::tcp_proxy::ClusterSpecifier::Cluster(cluster.into())),
            idle_timeout: Some(PbDuration {
                seconds: 0,
                nanos: i32::try_from(idle_ms * 1_000_000).unwrap_or(0),
            }),
            ..Default::default()
        }),
    )
}

pub fn lb_endpoints(addrs: &[SocketAddr]) -> Vec<e::LocalityLbEndpoints> {
    vec![e::LocalityLbEndpoints {
        lb_endpoints: addrs
            .iter()
            .map(|a| e::LbEndpoint {
                host_identifier: Some(e::lb_endpoint::HostIdentifier::Endpoint(e::Endpoint {
                    address: Some(socket(*a)),
                    ..Default::default()
                })),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }]
}

pub fn static_cluster(name: &str, addrs: &[SocketAddr]) -> c::Cluster {
    c::Cluster {
        name: name.into(),
        connect_timeout: Some(PbDuration {
            seconds: 1,
            nanos: 0,
        }),
        cluster_discovery_type: Some(c::cluster::ClusterDiscoveryType::Type(
            c::cluster::DiscoveryType::Static as i32,
        )),
        load_assignment: Some(e::ClusterLoadAssignment {
            cluster_name: name.into(),
            endpoints: lb_endpoints(addrs),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A STRICT_DNS or LOGICAL_DNS cluster of one host, IPv4 only, re-resolved every
/// `refresh_ms`. Use `localhost` (resolved from /etc/hosts: no traffic leaves the machine).
// `dns_refresh_rate` is deprecated in the API but is what translation sends Envoy 1.40.
#[allow(deprecated, dead_code)]
pub fn dns_cluster(
    name: &str,
    kind: c::cluster::DiscoveryType,
    host: &str,
    port: u16,
    refresh_ms: i32,
) -> c::Cluster {
    let mut cl = static_cluster(name, &["127.0.0.1:1".parse().expect("addr")]);
    cl.cluster_discovery_type = Some(c::cluster::ClusterDiscoveryType::Type(kind as i32));
    cl.dns_lookup_family = c::cluster::DnsLookupFamily::V4Only as i32;
    cl.dns_refresh_rate = Some(PbDuration {
        seconds: 0,
        nanos: refresh_ms * 1_000_000,
    });
    for group in cl
        .load_assignment
        .iter_mut()
        .flat_map(|la| la.endpoints.iter_mut())
    {
        for lbe in &mut group.lb_endpoints {
            if let Some(e::lb_endpoint::HostIdentifier::Endpoint(ep)) = lbe.host_identifier.as_mut()
            {
                ep.address = Some(core::Address {
                    address: Some(core::address::Address::SocketAddress(core::SocketAddress {
                        address: host.into(),
                        port_specifier: Some(core::socket_address::PortSpecifier::PortValue(
                            u32::from(port),
                        )),
                        ..Default::default()
                    })),
                });
            }
        }
    }
    cl
}

pub fn eds_cluster(name: &str) -> c::Cluster {
    c::Cluster {
        name: name.into(),
        connect_timeout: Some(PbDuration {
            seconds: 1,
            nanos: 0,
        }),
        cluster_discovery_type: Some(c::cluster::ClusterDiscoveryType::Type(
            c::cluster::DiscoveryType::Eds as i32,
        )),
        eds_cluster_config: Some(c::cluster::EdsClusterConfig {
            eds_config: Some(ads_source()),
            service_name: String::new(),
        }),
        ..Default::default()
    }
}

pub fn assignment(name: &str, addrs: &[SocketAddr]) -> Any {
    pack_any(e::ClusterLoadAssignment {
        cluster_name: name.into(),
        endpoints: lb_endpoints(addrs),
        ..Default::default()
    })
}

pub fn route_config(name: &str, vhosts: Vec<rt::VirtualHost>) -> rt::RouteConfiguration {
    rt::RouteConfiguration {
        name: name.into(),
        virtual_hosts: vhosts,
        ..Default::default()
    }
}

pub fn vhost(name: &str, domains: &[&str], routes: Vec<rt::Route>) -> rt::VirtualHost {
    rt::VirtualHost {
        name: name.into(),
        domains: domains.iter().map(|d| d.to_string()).collect(),
        routes,
        ..Default::default()
    }
}

pub fn prefix(p: &str) -> rt::RouteMatch {
    rt::RouteMatch {
        path_specifier: Some(rt::route_match::PathSpecifier::Prefix(p.into())),
        ..Default::default()
    }
}

pub fn to_cluster(cluster: &str) -> rt::route::Action {
    rt::route::Action::Route(rt::RouteAction {
        cluster_specifier: Some(rt::route_action::ClusterSpecifier::Cluster(cluster.into())),
        ..Default::default()
    })
}

pub fn route(m: rt::RouteMatch, action: rt::route::Action) -> rt::Route {
    rt::Route {
        r#match: Some(m),
        action: Some(action),
        ..Default::default()
    }
}

pub fn named(resources: Vec<Any>, name_of: impl Fn(&Any) -> String) -> Vec<(String, Any)> {
    resources.into_iter().map(|a| (name_of(&a), a)).collect()
}

/// Push a whole config: listeners, route configs, clusters, assignments (each with its name).
pub struct Config {
    pub listeners: Vec<(String, Any)>,
    pub routes: Vec<rt::RouteConfiguration>,
    pub clusters: Vec<c::Cluster>,
    pub endpoints: Vec<(String, Any)>,
}

pub fn push(ads: &FakeAds, cfg: &Config) -> (String, String) {
    let clusters = cfg
        .clusters
        .iter()
        .map(|c| (c.name.clone(), pack_any(c.clone())))
        .collect();
    let routes = cfg
        .routes
        .iter()
        .map(|r| (r.name.clone(), pack_any(r.clone())))
        .collect();
    ads.push(CLUSTER_TYPE, clusters);
    ads.push(ENDPOINT_TYPE, cfg.endpoints.clone());
    ads.push(ROUTE_TYPE, routes);
    let lds = ads.push(LISTENER_TYPE, cfg.listeners.clone());
    (lds, String::new())
}

pub fn identity() -> NodeIdentity {
    NodeIdentity {
        extra_metadata: Default::default(),
        proxy_type: ProxyType::Sidecar,
        ip: "127.0.0.1".into(),
        pod: "test-0".into(),
        namespace: "default".into(),
        labels: BTreeMap::new(),
        service_account: "default".into(),
        interception_mode: InterceptionMode::None,
        cluster_id: "Kubernetes".into(),
        workload_name: "test".into(),
    }
}

pub async fn start_proxy(ads: &FakeAds) -> ProxyHandle {
    start_proxy_with(ads, false).await
}

/// A proxy on the fake ADS server, speaking delta xDS when `delta`.
pub async fn start_proxy_with(ads: &FakeAds, delta: bool) -> ProxyHandle {
    let cfg = ProxyConfig {
        delta,
        log_control: None,
        xds_address: ads.url(),
        node: identity(),
        admin_address: "127.0.0.1:0".parse().expect("addr"),
        drain: Duration::from_secs(2),
        backoff: plexus_xds::client::Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_millis(500),
        },
    };
    plexus_proxy::start(cfg).await.expect("proxy starts")
}

pub async fn wait_listener(p: &ProxyHandle, name: &str) -> SocketAddr {
    plexus_testkit::eventually(STARTUP_WAIT, &format!("listener {name}"), || async {
        p.listener_addr(name)
    })
    .await
    .expect("listener bound")
}

/// A response as tests see it.
#[derive(Debug, Clone)]
pub struct Got {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub trailers: Option<http::HeaderMap>,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
    /// A request header as an echoing backend reports it (`{"headers": {...}}` in the body).
    pub fn echoed_header(&self, name: &str) -> Option<String> {
        self.json()
            .get("headers")
            .and_then(|h| h.get(name))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    /// `grpc-status` from the trailers, or from the headers of a trailers-only response.
    pub fn grpc_status(&self) -> Option<String> {
        let in_trailers = self.trailers.as_ref().and_then(|t| t.get("grpc-status"));
        in_trailers
            .or_else(|| self.headers.get("grpc-status"))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

pub async fn request(
    addr: SocketAddr,
    h2: bool,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Got, String> {
    collect(send(addr, h2, method, host, path, headers).await?).await
}

/// One HTTP/1.1 `GET` over a connection whose source address is `source` (a loopback address
/// other than 127.0.0.1, for scenarios where the client address matters).
pub async fn request_from(
    source: &str,
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Got, String> {
    let ip: std::net::IpAddr = source.parse().map_err(|e| format!("{source}: {e}"))?;
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::new(ip, 0))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let stream = socket.connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = http::Request::builder().uri(path).header("host", host);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::<Bytes>::default())
        .map_err(|e| e.to_string())?;
    collect(sender.send_request(req).await.map_err(|e| e.to_string())?).await
}

/// `request_from`, answered within `WAIT` with status `status` (else an error saying which).
pub async fn answer_from(
    source: &str,
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    status: u16,
) -> Result<Got, String> {
    let got = tokio::time::timeout(WAIT, request_from(source, addr, host, path, headers))
        .await
        .map_err(|_| "no answer within the wait".to_string())??;
    if got.status != status {
        return Err(format!("status {} (want {status})", got.status));
    }
    Ok(got)
}

/// Like `request`, but a body that fails part-way (connection closed short of its length, stream
/// reset) is reported instead of failing: the response head, and the body's error if any.
pub async fn request_partial(
    addr: SocketAddr,
    h2: bool,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(Got, Option<String>), String> {
    let resp = send(addr, h2, method, host, path, headers).await?;
    let head = Got {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: Bytes::new(),
        trailers: None,
    };
    match collect(resp).await {
        Ok(got) => Ok((got, None)),
        Err(e) => Ok((head, Some(e))),
    }
}

/// Send a request and return the response head with its body still to read.
async fn send(
    addr: SocketAddr,
    h2: bool,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<http::Response<hyper::body::Incoming>, String> {
    let client = Client::builder(TokioExecutor::new())
        .http2_only(h2)
        .build_http::<Full<Bytes>>();
    let uri = format!("http://{addr}{path}");
    let mut req = http::Request::builder().method(method).uri(uri);
    req = if h2 {
        req.version(http::Version::HTTP_2)
    } else {
        req.header("host", host)
    };
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(Full::default()).map_err(|e| e.to_string())?;
    if h2 {
        // hyper sets :authority from the URI; point it at the wanted virtual host.
        let uri = format!("http://{host}{path}")
            .parse::<http::Uri>()
            .map_err(|e| e.to_string())?;
        *req.uri_mut() = uri;
        let conn = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let (mut send, conn) = hyper::client::conn::http2::handshake(
            TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(conn),
        )
        .await
        .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        return send.send_request(req).await.map_err(|e| e.to_string());
    }
    client.request(req).await.map_err(|e| e.to_string())
}

async fn collect(resp: http::Response<hyper::body::Incoming>) -> Result<Got, String> {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let collected = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    let trailers = collected.trailers().cloned();
    Ok(Got {
        status,
        headers,
        body: collected.to_bytes(),
        trailers,
    })
}

/// What an HTTP/1.1 upgrade attempt showed: the status, the response head, and whether bytes
/// written afterwards came back.
pub struct Upgraded {
    pub status: u16,
    pub head: String,
    pub echoed: bool,
}

/// Send an upgrade request for `protocol` on a raw connection; after a 101, write bytes and
/// expect them echoed through the tunnel.
pub async fn upgrade_request(
    addr: SocketAddr,
    host: &str,
    path: &str,
    protocol: &str,
) -> Result<Upgraded, String> {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    raw_tunnel(addr, head, 101).await
}

/// As `upgrade_request`, keeping the connection for further traffic through the tunnel.
pub async fn upgrade_stream(
    addr: SocketAddr,
    host: &str,
    path: &str,
    protocol: &str,
) -> Result<(Upgraded, tokio::net::TcpStream), String> {
    let head = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    raw_tunnel_stream(addr, head, 101).await
}

/// Send `CONNECT authority` with extra headers on a raw connection; after a 200, write bytes
/// and expect them echoed through the tunnel.
pub async fn connect_request(
    addr: SocketAddr,
    authority: &str,
    headers: &[(&str, &str)],
) -> Result<Upgraded, String> {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let head = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{extra}\r\n");
    raw_tunnel(addr, head, 200).await
}

/// Write `head`; read the response head; when its status is `tunnel_status`, check that bytes
/// written next come back.
async fn raw_tunnel(
    addr: SocketAddr,
    head: String,
    tunnel_status: u16,
) -> Result<Upgraded, String> {
    raw_tunnel_stream(addr, head, tunnel_status)
        .await
        .map(|(got, _)| got)
}

/// As `raw_tunnel`, also returning the connection.
async fn raw_tunnel_stream(
    addr: SocketAddr,
    head: String,
    tunnel_status: u16,
) -> Result<(Upgraded, tokio::net::TcpStream), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let io = async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        s.write_all(head.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        while !got.ends_with(b"\r\n\r\n") {
            let n = s.read(&mut byte).await.map_err(|e| e.to_string())?;
            if n == 0 {
                return Err(format!("closed after {:?}", String::from_utf8_lossy(&got)));
            }
            got.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&got).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut echoed = false;
        if status == tunnel_status {
            s.write_all(b"through the tunnel")
                .await
                .map_err(|e| e.to_string())?;
            let mut buf = [0u8; 18];
            s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
            echoed = &buf == b"through the tunnel";
        }
        Ok((
            Upgraded {
                status,
                head,
                echoed,
            },
            s,
        ))
    };
    tokio::time::timeout(WAIT, io)
        .await
        .map_err(|_| "upgrade timed out".to_string())?
}

/// A unary gRPC call over h2c (prior knowledge) with a small message and extra headers.
pub async fn grpc_request(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Got, String> {
    let uri = format!("http://{host}{path}")
        .parse::<http::Uri>()
        .map_err(|e| e.to_string())?;
    let message = Bytes::from_static(&[0, 0, 0, 0, 4, b'p', b'i', b'n', b'g']);
    let mut req = http::Request::post(uri)
        .version(http::Version::HTTP_2)
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(message)).map_err(|e| e.to_string())?;
    let conn = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(conn),
    )
    .await
    .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    collect(resp).await
}

/// GET with the `host` header, polling until `ok` holds (config arrives asynchronously).
pub async fn get_until(addr: SocketAddr, host: &str, path: &str, ok: impl Fn(&Got) -> bool) -> Got {
    let what = format!("GET {host}{path} to reach the wanted state");
    plexus_testkit::eventually(WAIT, &what, || async {
        let got = request(addr, false, "GET", host, path, &[]).await.ok()?;
        ok(&got).then_some(got)
    })
    .await
    .expect("condition reached")
}

/// Upstream HTTP/2 through `typed_extension_protocol_options` (the non-deprecated way).
pub fn h2_cluster(mut cl: c::Cluster) -> c::Cluster {
    use envoy_types::pb::envoy::extensions::upstreams::http::v3 as uh;
    let opts = uh::HttpProtocolOptions {
        upstream_protocol_options: Some(uh::http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
            uh::http_protocol_options::ExplicitHttpConfig {
                protocol_config: Some(uh::http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                    Default::default(),
                )),
            },
        )),
        ..Default::default()
    };
    cl.typed_extension_protocol_options.insert(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".into(),
        pack_any(opts),
    );
    cl
}

pub async fn echo_named(name: &str) -> EchoHandle {
    echo_with(EchoConfig {
        workload: name.into(),
        ..Default::default()
    })
    .await
}

/// An HTTP echo server configured by `cfg`, on a free loopback port.
pub async fn echo_with(cfg: EchoConfig) -> EchoHandle {
    echo::start_http(cfg, "127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("echo")
}

/// A proxy with listener `main` (RDS `r1`) routing everything to static cluster `a`.
pub async fn basic(a: SocketAddr) -> (FakeAds, plexus_proxy::ProxyHandle, SocketAddr) {
    let ads = FakeAds::start().await.expect("ads");
    push(
        &ads,
        &Config {
            listeners: vec![("main".into(), http_listener_rds("main", "r1"))],
            routes: vec![route_config(
                "r1",
                vec![vhost(
                    "all",
                    &["*"],
                    vec![route(prefix("/"), to_cluster("a"))],
                )],
            )],
            clusters: vec![static_cluster("a", &[a])],
            endpoints: vec![],
        },
    );
    let proxy = start_proxy(&ads).await;
    let addr = wait_listener(&proxy, "main").await;
    (ads, proxy, addr)
}

/// The `health_flags` of `addr` in cluster `name` of the Plexus admin `/clusters` output.
pub async fn health_flags(admin: SocketAddr, name: &str, addr: SocketAddr) -> Option<String> {
    let (_, body) = plexus_testkit::envoy::http_get(&format!("http://{admin}/clusters")).await?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let cluster = v["clusters"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == name)?
        .clone();
    let ep = cluster["endpoints"]
        .as_array()?
        .iter()
        .find(|e| e["address"] == addr.to_string())?
        .clone();
    ep["health_flags"].as_str().map(str::to_string)
}

/// Wait until `health_flags` of `addr` in cluster `name` reads `want`.
pub async fn wait_flags(admin: SocketAddr, name: &str, addr: SocketAddr, want: &str) {
    plexus_testkit::eventually(WAIT, &format!("{name} {addr} flags {want:?}"), || async {
        (health_flags(admin, name, addr).await? == want).then_some(())
    })
    .await
    .expect("health flags");
}
