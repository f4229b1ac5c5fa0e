//! Fuzz the xDS-to-domain conversion: arbitrary bytes decoded as each resource type the proxy
//! accepts, then converted. Decoding may fail; conversion must never panic.
#![no_main]

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use libfuzzer_sys::fuzz_target;
use plexus_proxy::config;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    if let Ok(l) = Listener::decode(data) {
        let _ = config::Listener::try_from(&l);
    }
    if let Ok(r) = RouteConfiguration::decode(data) {
        let _ = config::RouteConfig::try_from(&r);
    }
    if let Ok(c) = Cluster::decode(data) {
        let _ = config::Cluster::try_from(&c);
    }
    if let Ok(a) = ClusterLoadAssignment::decode(data) {
        let _ = config::LoadAssignment::try_from(&a);
    }
});
