//! Readable summaries of the xDS a proxy was sent, for `/debug/config_dump` and
//! `plexus proxy-config` — the columns `istioctl proxy-config` shows (listener addresses and
//! what their filter chains route to, virtual hosts and route actions, cluster types, endpoint
//! addresses). Anything that does not decode is reported as such, never skipped.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::core::v3::{Address, address};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::{Filter, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteConfiguration, VirtualHost, route, route_action, route_match,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use envoy_types::pb::google::protobuf::Any;
use plexus_xds::{CLUSTER_TYPE, ENDPOINT_TYPE, LISTENER_TYPE, ROUTE_TYPE, SECRET_TYPE, unpack};
use serde_json::{Value, json};

/// One resource of `type_url` as JSON: a summary, or `{"name", "error"}` if it does not decode.
pub fn resource(type_url: &str, name: &str, any: &Any) -> Value {
    let summary = match type_url {
        LISTENER_TYPE => unpack::<Listener>(any).map(|l| listener(&l)),
        ROUTE_TYPE => unpack::<RouteConfiguration>(any).map(|r| route_config(&r)),
        CLUSTER_TYPE => unpack::<Cluster>(any).map(|c| cluster(&c)),
        ENDPOINT_TYPE => unpack::<ClusterLoadAssignment>(any).map(|c| endpoints(&c)),
        SECRET_TYPE => return crate::secrets::summary(name, any),
        other => return json!({"name": name, "type": other}),
    };
    summary.unwrap_or_else(|e| json!({"name": name, "error": e.to_string()}))
}

fn socket(a: Option<&Address>) -> String {
    match a.and_then(|a| a.address.as_ref()) {
        Some(address::Address::SocketAddress(s)) => {
            let port = match &s.port_specifier {
                Some(envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::PortValue(p)) => p.to_string(),
                Some(envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier::NamedPort(p)) => p.clone(),
                None => String::new(),
            };
            format!("{}:{port}", s.address)
        }
        Some(address::Address::Pipe(p)) => format!("unix:{}", p.path),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn listener(l: &Listener) -> Value {
    let chains: Vec<Value> = l
        .filter_chains
        .iter()
        .map(|fc| {
            let filters: Vec<Value> = fc.filters.iter().map(network_filter).collect();
            json!({
                "name": fc.name,
                "match": fc.filter_chain_match.as_ref().map(|m| format!("{m:?}")),
                "filters": filters,
            })
        })
        .collect();
    json!({
        "name": l.name,
        "address": socket(l.address.as_ref()),
        "use_original_dst": l.use_original_dst.as_ref().map(|b| b.value),
        "filter_chains": chains,
    })
}

fn network_filter(f: &Filter) -> Value {
    let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
        return json!({"name": f.name});
    };
    if let Ok(hcm) = unpack::<HttpConnectionManager>(any) {
        let routes = match &hcm.route_specifier {
            Some(http_connection_manager::RouteSpecifier::Rds(rds)) => {
                json!({"rds": rds.route_config_name})
            }
            Some(http_connection_manager::RouteSpecifier::RouteConfig(rc)) => {
                json!({"inline": route_config(rc)})
            }
            other => json!(format!("{other:?}")),
        };
        let http_filters: Vec<&str> = hcm.http_filters.iter().map(|h| h.name.as_str()).collect();
        return json!({"name": f.name, "stat_prefix": hcm.stat_prefix, "routes": routes, "http_filters": http_filters});
    }
    if let Ok(tcp) = unpack::<TcpProxy>(any) {
        let target = match &tcp.cluster_specifier {
            Some(tcp_proxy::ClusterSpecifier::Cluster(c)) => json!(c),
            Some(tcp_proxy::ClusterSpecifier::WeightedClusters(w)) => json!(
                w.clusters
                    .iter()
                    .map(|c| json!({"cluster": c.name, "weight": c.weight}))
                    .collect::<Vec<_>>()
            ),
            None => Value::Null,
        };
        return json!({"name": f.name, "cluster": target});
    }
    json!({"name": f.name, "type": any.type_url})
}

fn route_config(r: &RouteConfiguration) -> Value {
    let hosts: Vec<Value> = r.virtual_hosts.iter().map(virtual_host).collect();
    json!({"name": r.name, "virtual_hosts": hosts})
}

fn virtual_host(vh: &VirtualHost) -> Value {
    let routes: Vec<Value> = vh.routes.iter().map(route_entry).collect();
    json!({"name": vh.name, "domains": vh.domains, "routes": routes})
}

fn route_entry(r: &Route) -> Value {
    let m = r.r#match.as_ref();
    let path = match m.and_then(|m| m.path_specifier.as_ref()) {
        Some(route_match::PathSpecifier::Prefix(p)) => format!("prefix {p}"),
        Some(route_match::PathSpecifier::Path(p)) => format!("exact {p}"),
        Some(route_match::PathSpecifier::SafeRegex(re)) => format!("regex {}", re.regex),
        Some(route_match::PathSpecifier::PathSeparatedPrefix(p)) => format!("path-prefix {p}"),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    let headers: Vec<String> = m
        .map(|m| {
            m.headers
                .iter()
                .map(|h| format!("{}: {:?}", h.name, h.header_match_specifier))
                .collect()
        })
        .unwrap_or_default();
    let action = match &r.action {
        Some(route::Action::Route(ra)) => match &ra.cluster_specifier {
            Some(route_action::ClusterSpecifier::Cluster(c)) => json!({"cluster": c}),
            Some(route_action::ClusterSpecifier::WeightedClusters(w)) => json!({"weighted": w
                .clusters
                .iter()
                .map(|c| json!({"cluster": c.name, "weight": c.weight.as_ref().map(|w| w.value)}))
                .collect::<Vec<_>>()}),
            other => json!(format!("{other:?}")),
        },
        Some(route::Action::Redirect(rd)) => json!({"redirect": format!("{rd:?}")}),
        Some(route::Action::DirectResponse(d)) => json!({"direct_response": d.status}),
        other => json!(format!("{other:?}")),
    };
    let per_filter: Vec<&String> = r.typed_per_filter_config.keys().collect();
    json!({"name": r.name, "match": path, "headers": headers, "action": action, "per_filter_config": per_filter})
}

fn cluster(c: &Cluster) -> Value {
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{
        ClusterDiscoveryType, DiscoveryType, LbPolicy,
    };
    let kind = match &c.cluster_discovery_type {
        Some(ClusterDiscoveryType::Type(t)) => DiscoveryType::try_from(*t)
            .map(|t| t.as_str_name().to_string())
            .unwrap_or_else(|_| t.to_string()),
        Some(ClusterDiscoveryType::ClusterType(ct)) => ct.name.clone(),
        None => "STATIC".into(),
    };
    let lb = LbPolicy::try_from(c.lb_policy)
        .map(|p| p.as_str_name().to_string())
        .unwrap_or_else(|_| c.lb_policy.to_string());
    json!({
        "name": c.name,
        "type": kind,
        "eds_service_name": c.eds_cluster_config.as_ref().map(|e| e.service_name.clone()),
        "lb_policy": lb,
        "connect_timeout": c.connect_timeout.as_ref().map(|d| format!("{}.{:03}s", d.seconds, d.nanos / 1_000_000)),
    })
}

fn endpoints(c: &ClusterLoadAssignment) -> Value {
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    for locality in &c.endpoints {
        for lb in &locality.lb_endpoints {
            let addr = match &lb.host_identifier {
                Some(envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier::Endpoint(e)) => socket(e.address.as_ref()),
                other => format!("{other:?}"),
            };
            out.insert(
                addr,
                json!({
                    "priority": locality.priority,
                    "weight": lb.load_balancing_weight.as_ref().map(|w| w.value),
                    "health": lb.health_status,
                }),
            );
        }
    }
    let endpoints: Vec<Value> = out
        .into_iter()
        .map(|(addr, mut v)| {
            v["address"] = json!(addr);
            v
        })
        .collect();
    json!({"name": c.cluster_name, "endpoints": endpoints})
}
