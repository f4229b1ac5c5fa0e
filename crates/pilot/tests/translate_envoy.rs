//! Every golden case's translation is accepted by real Envoy: the resources are put in a
//! static bootstrap (RDS replaced by the generated route configs inline, EDS clusters made
//! STATIC with the generated load assignments), written as binary proto and checked with
//! `envoy --mode validate`. Envoy comes from `ENVOY_BIN` or `.venv` at the workspace root
//! (`scripts/test.sh` installs it); without it the test says so and passes, unless `CI=true`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use envoy_types::pb::envoy::config::bootstrap::v3::{Bootstrap, bootstrap};
use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster};
use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::util::pack_any;
use plexus_pilot::translate::Generated;
use prost::{Message, Name};

fn envoy() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("ENVOY_BIN") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv");
    let lib = venv.join("lib");
    for entry in std::fs::read_dir(&lib).ok()?.flatten() {
        let p = entry.path().join("site-packages/envoy/_bin/envoy");
        if p.exists() {
            return Some(p);
        }
    }
    let wrapper = venv.join("bin/envoy");
    wrapper.exists().then_some(wrapper)
}

#[test]
fn golden_translations_pass_envoy_validation() {
    let Some(bin) = envoy() else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "Envoy is required under CI"
        );
        println!("envoy not installed (run scripts/test.sh): skipping validation");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR")).join("envoy-validate");
    std::fs::create_dir_all(&tmp).expect("tmp dir");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("golden dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("node.yaml").exists())
        .collect();
    dirs.sort();
    let mut failed = Vec::new();
    for dir in &dirs {
        let case = common::load_case(dir);
        let g = common::translate(&case);
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("case")
            .to_string();
        let file = tmp.join(format!("{name}.pb"));
        std::fs::write(&file, bootstrap(&case.node.id, &g).encode_to_vec())
            .expect("write bootstrap");
        let out = Command::new(&bin)
            .args(["--mode", "validate", "--log-level", "error", "-c"])
            .arg(&file)
            .output()
            .expect("run envoy");
        if !out.status.success() {
            failed.push(format!(
                "{name}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    println!(
        "envoy validate scenario cases: {} of {} accepted",
        dirs.len() - failed.len(),
        dirs.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// The harness itself can fail: a cluster Envoy rejects makes validation fail.
#[test]
fn envoy_validation_rejects_a_broken_cluster() {
    let Some(bin) = envoy() else {
        println!("envoy not installed: skipping");
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/bookinfo-all-v1");
    let case = common::load_case(&dir);
    let mut g = common::translate(&case);
    let c = g
        .clusters
        .iter_mut()
        .find(|c| c.name == "BlackHoleCluster")
        .expect("blackhole");
    c.lb_policy = cluster::LbPolicy::ClusterProvided as i32;
    let file = Path::new(env!("CARGO_TARGET_TMPDIR")).join("envoy-validate-broken.pb");
    std::fs::write(&file, bootstrap(&case.node.id, &g).encode_to_vec()).expect("write");
    let out = Command::new(&bin)
        .args(["--mode", "validate", "-c"])
        .arg(&file)
        .output()
        .expect("run envoy");
    assert!(
        !out.status.success(),
        "Envoy accepted a cluster-provided LB on a STATIC cluster"
    );
}

fn bootstrap(node_id: &str, g: &Generated) -> Bootstrap {
    let listeners = g
        .listeners
        .iter()
        .map(|l| inline_routes(l, &g.routes))
        .collect();
    let mut clusters: Vec<Cluster> = g.clusters.iter().map(|c| static_cluster(c, g)).collect();
    clusters.push(xds_cluster());
    Bootstrap {
        node: Some(core::Node {
            id: node_id.into(),
            cluster: "validate".into(),
            ..Default::default()
        }),
        static_resources: Some(bootstrap::StaticResources {
            listeners,
            clusters,
            ..Default::default()
        }),
        dynamic_resources: Some(bootstrap::DynamicResources {
            ads_config: Some(core::ApiConfigSource {
                api_type: core::api_config_source::ApiType::Grpc as i32,
                transport_api_version: core::ApiVersion::V3 as i32,
                grpc_services: vec![core::GrpcService {
                    target_specifier: Some(core::grpc_service::TargetSpecifier::EnvoyGrpc(
                        core::grpc_service::EnvoyGrpc {
                            cluster_name: "xds-grpc".into(),
                            ..Default::default()
                        },
                    )),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn inline_routes(l: &Listener, routes: &[RouteConfiguration]) -> Listener {
    let mut l = l.clone();
    for chain in l
        .filter_chains
        .iter_mut()
        .chain(l.default_filter_chain.iter_mut())
    {
        inline_chain(chain, routes);
    }
    l
}

fn inline_chain(chain: &mut FilterChain, routes: &[RouteConfiguration]) {
    for f in &mut chain.filters {
        let Some(filter::ConfigType::TypedConfig(any)) = &mut f.config_type else {
            continue;
        };
        if any.type_url != HttpConnectionManager::type_url() {
            continue;
        }
        let mut hcm = HttpConnectionManager::decode(any.value.as_slice()).expect("hcm");
        if let Some(RouteSpecifier::Rds(rds)) = &hcm.route_specifier {
            let rc = routes
                .iter()
                .find(|r| r.name == rds.route_config_name)
                .cloned()
                .unwrap_or_else(|| {
                    panic!(
                        "route config {} is referenced but not generated",
                        rds.route_config_name
                    )
                });
            hcm.route_specifier = Some(RouteSpecifier::RouteConfig(rc));
        }
        *any = pack_any(hcm);
    }
}

fn static_cluster(c: &Cluster, g: &Generated) -> Cluster {
    let mut c = c.clone();
    if c.cluster_discovery_type
        == Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Eds as i32,
        ))
    {
        c.cluster_discovery_type = Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        ));
        c.eds_cluster_config = None;
        let cla = g
            .endpoints
            .iter()
            .find(|e| e.cluster_name == c.name)
            .cloned();
        assert!(
            cla.is_some(),
            "EDS cluster {} has no load assignment",
            c.name
        );
        c.load_assignment = cla;
    }
    c
}

fn xds_cluster() -> Cluster {
    let mut c = Cluster {
        name: "xds-grpc".into(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        ..Default::default()
    };
    c.load_assignment = Some(
        envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment {
            cluster_name: "xds-grpc".into(),
            ..Default::default()
        },
    );
    let h2 = HttpProtocolOptions {
        upstream_protocol_options: Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
            http_protocol_options::ExplicitHttpConfig {
                protocol_config: Some(http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(Default::default())),
            },
        )),
        ..Default::default()
    };
    c.typed_extension_protocol_options.insert(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".into(),
        pack_any(h2),
    );
    c
}
