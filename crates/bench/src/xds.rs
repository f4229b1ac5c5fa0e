//! The one xDS shape every proxy in the benchmark gets, served by the testkit's fake ADS server:
//! per protocol one listener (HTTP connection manager, codec AUTO, router only) whose routes
//! come over RDS (one virtual host `*`, prefix `/`) and point at one EDS cluster with one
//! endpoint. The gRPC cluster speaks HTTP/2 upstream.
//!
//! Each proxy gets its own fake ADS instance because listeners are wildcard resources: the
//! client sidecar of a pair must see different listeners and endpoints than the server sidecar.

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::cluster::v3 as c;
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::endpoint::v3 as e;
use envoy_types::pb::envoy::config::listener::v3 as l;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::upstreams::http::v3 as uh;
use envoy_types::pb::google::protobuf::{Any, Duration as PbDuration};
use envoy_types::util::pack_any;
use plexus_testkit::FakeAds;
use plexus_xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE};

/// One proxied protocol: the port the proxy listens on and where it forwards.
pub struct Leg {
    /// `http1` or `grpc`; names the listener, route and cluster.
    pub name: &'static str,
    pub listen_port: u16,
    pub endpoint: SocketAddr,
    /// Speak HTTP/2 (h2c) to the endpoint.
    pub upstream_h2: bool,
}

fn socket(ip: &str, port: u16) -> core::Address {
    core::Address {
        address: Some(core::address::Address::SocketAddress(core::SocketAddress {
            address: ip.into(),
            port_specifier: Some(core::socket_address::PortSpecifier::PortValue(u32::from(
                port,
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

fn listener(leg: &Leg) -> l::Listener {
    let manager = hcm::HttpConnectionManager {
        stat_prefix: leg.name.into(),
        http_filters: vec![hcm::HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(hcm::http_filter::ConfigType::TypedConfig(pack_any(
                Router::default(),
            ))),
            ..Default::default()
        }],
        route_specifier: Some(hcm::http_connection_manager::RouteSpecifier::Rds(
            hcm::Rds {
                config_source: Some(ads_source()),
                route_config_name: format!("route-{}", leg.name),
            },
        )),
        ..Default::default()
    };
    l::Listener {
        name: format!("listener-{}", leg.name),
        address: Some(socket("127.0.0.1", leg.listen_port)),
        filter_chains: vec![l::FilterChain {
            filters: vec![l::Filter {
                name: "envoy.filters.network.http_connection_manager".into(),
                config_type: Some(l::filter::ConfigType::TypedConfig(pack_any(manager))),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn route_config(leg: &Leg) -> rt::RouteConfiguration {
    let route = rt::Route {
        r#match: Some(rt::RouteMatch {
            path_specifier: Some(rt::route_match::PathSpecifier::Prefix("/".into())),
            ..Default::default()
        }),
        action: Some(rt::route::Action::Route(rt::RouteAction {
            cluster_specifier: Some(rt::route_action::ClusterSpecifier::Cluster(format!(
                "cluster-{}",
                leg.name
            ))),
            ..Default::default()
        })),
        ..Default::default()
    };
    rt::RouteConfiguration {
        name: format!("route-{}", leg.name),
        virtual_hosts: vec![rt::VirtualHost {
            name: "bench".into(),
            domains: vec!["*".into()],
            routes: vec![route],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn cluster(leg: &Leg) -> c::Cluster {
    let mut cl = c::Cluster {
        name: format!("cluster-{}", leg.name),
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
    };
    if leg.upstream_h2 {
        use uh::http_protocol_options::explicit_http_config::ProtocolConfig;
        use uh::http_protocol_options::{ExplicitHttpConfig, UpstreamProtocolOptions};
        let opts = uh::HttpProtocolOptions {
            upstream_protocol_options: Some(UpstreamProtocolOptions::ExplicitHttpConfig(
                ExplicitHttpConfig {
                    protocol_config: Some(ProtocolConfig::Http2ProtocolOptions(Default::default())),
                },
            )),
            ..Default::default()
        };
        cl.typed_extension_protocol_options.insert(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".into(),
            pack_any(opts),
        );
    }
    cl
}

fn assignment(leg: &Leg) -> Any {
    let endpoint = e::LbEndpoint {
        host_identifier: Some(e::lb_endpoint::HostIdentifier::Endpoint(e::Endpoint {
            address: Some(socket(&leg.endpoint.ip().to_string(), leg.endpoint.port())),
            ..Default::default()
        })),
        ..Default::default()
    };
    pack_any(e::ClusterLoadAssignment {
        cluster_name: format!("cluster-{}", leg.name),
        endpoints: vec![e::LocalityLbEndpoints {
            lb_endpoints: vec![endpoint],
            ..Default::default()
        }],
        ..Default::default()
    })
}

/// Start a fake ADS server holding the config for `legs`.
pub async fn serve(legs: &[Leg]) -> anyhow::Result<FakeAds> {
    let ads = FakeAds::start().await?;
    let named = |name: String, any: Any| (name, any);
    ads.push(
        CLUSTER_TYPE,
        legs.iter()
            .map(|g| named(format!("cluster-{}", g.name), pack_any(cluster(g))))
            .collect(),
    );
    ads.push(
        ENDPOINT_TYPE,
        legs.iter()
            .map(|g| named(format!("cluster-{}", g.name), assignment(g)))
            .collect(),
    );
    ads.push(
        ROUTE_TYPE,
        legs.iter()
            .map(|g| named(format!("route-{}", g.name), pack_any(route_config(g))))
            .collect(),
    );
    ads.push(
        LISTENER_TYPE,
        legs.iter()
            .map(|g| named(format!("listener-{}", g.name), pack_any(listener(g))))
            .collect(),
    );
    Ok(ads)
}
