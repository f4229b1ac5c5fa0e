//! Health flags in `/clusters` on Plexus and Envoy: a gRPC-checked cluster (`grpc.health.v1`,
//! service `reviews`, authority `reviews.default`) whose second host flips NOT_SERVING and back,
//! and an HTTP/2-checked cluster whose `flaky` host answers 503. Plexus lists
//! `health_flags` per endpoint; Envoy's `/clusters?format=json` has
//! `health_status.failed_active_health_check`. Also HTTP checks on a TLS cluster: they run over
//! the cluster's TLS context, so a host behind a certificate of the wrong CA fails them.

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::health_check as hc;
use plexus_testkit::echo::{self, EchoConfig, EchoHandle};
use plexus_testkit::eventually;
use plexus_testkit::grpc_health::{NOT_SERVING, SERVING};

use super::Backends;
use crate::common::WAIT;

/// Two echoes whose gRPC health service says `reviews` is SERVING.
pub async fn grpc_echoes() -> (EchoHandle, EchoHandle) {
    let start = |name: &str| {
        let cfg = EchoConfig {
            workload: name.into(),
            ..Default::default()
        };
        echo::start_http(cfg, "127.0.0.1:0".parse().expect("addr"))
    };
    let one = start("grpc-one").await.expect("echo grpc-one");
    let two = start("grpc-two").await.expect("echo grpc-two");
    for e in [&one, &two] {
        e.set_health("reviews", SERVING);
    }
    (one, two)
}

pub fn grpc_checker() -> hc::HealthChecker {
    hc::HealthChecker::GrpcHealthCheck(hc::GrpcHealthCheck {
        service_name: "reviews".into(),
        authority: "reviews.default".into(),
        ..Default::default()
    })
}

pub fn http2_checker() -> hc::HealthChecker {
    hc::HealthChecker::HttpHealthCheck(hc::HttpHealthCheck {
        path: "/healthz".into(),
        codec_client_type: envoy_types::pb::envoy::r#type::v3::CodecClientType::Http2 as i32,
        ..Default::default()
    })
}

/// Whether `addr` of `cluster` is failed by active health checking, per the proxy's admin.
async fn failed(proxy: &str, admin: SocketAddr, cluster: &str, addr: SocketAddr) -> Option<bool> {
    let path = if proxy == "envoy" {
        "/clusters?format=json"
    } else {
        "/clusters"
    };
    let (_, body) = plexus_testkit::envoy::http_get(&format!("http://{admin}{path}")).await?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    if proxy == "envoy" {
        let c = v["cluster_statuses"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == cluster)?;
        let h = c["host_statuses"].as_array()?.iter().find(|h| {
            let sa = &h["address"]["socket_address"];
            sa["address"] == addr.ip().to_string() && sa["port_value"] == addr.port()
        })?;
        Some(h["health_status"]["failed_active_health_check"] == true)
    } else {
        let c = v["clusters"]
            .as_array()?
            .iter()
            .find(|c| c["name"] == cluster)?;
        let e = c["endpoints"]
            .as_array()?
            .iter()
            .find(|e| e["address"] == addr.to_string())?;
        Some(e["health_flags"].as_str()?.contains("/failed_active_hc"))
    }
}

/// Wait until every proxy shows `want` for each (cluster, host, failed) expectation.
async fn all_show(
    admins: &[(String, &'static str, SocketAddr)],
    want: &[(&str, SocketAddr, bool)],
    step: &str,
    results: &mut [Result<(), String>],
) {
    for (i, (label, proxy, admin)) in admins.iter().enumerate() {
        if results[i].is_err() {
            continue;
        }
        for &(cluster, addr, failed_now) in want {
            let what = format!("{label}: {step}: {cluster} {addr} failed={failed_now}");
            let seen = eventually(WAIT, &what, || async {
                (failed(proxy, *admin, cluster, addr).await? == failed_now).then_some(())
            })
            .await;
            if let Err(e) = seen {
                results[i] = Err(e);
                break;
            }
        }
    }
}

/// Run the flag transitions on every proxy; one result per proxy.
pub async fn flags_follow_checks(
    admins: &[(String, &'static str, SocketAddr)],
    b: &Backends,
    set_two: impl Fn(u64),
) -> Vec<Result<(), String>> {
    let mut results = vec![Ok(()); admins.len()];
    let start = [
        ("hc_grpc", b.grpc_one, false),
        ("hc_grpc", b.grpc_two, false),
        ("hc_h2", b.a, false),
        ("hc_h2", b.flaky, true),
    ];
    all_show(admins, &start, "at start", &mut results).await;
    set_two(NOT_SERVING);
    let down = [
        ("hc_grpc", b.grpc_one, false),
        ("hc_grpc", b.grpc_two, true),
    ];
    all_show(admins, &down, "NOT_SERVING", &mut results).await;
    set_two(SERVING);
    let up = [("hc_grpc", b.grpc_two, false)];
    all_show(admins, &up, "SERVING again", &mut results).await;
    results
}

/// Clusters (added by the TLS scenarios) checked over TLS: the right CA, and a wrong one.
pub const TLS_OK: &str = "hc_tls_ok";
pub const TLS_WRONG_CA: &str = "hc_tls_wrong_ca";

/// An HTTP/1.1 check of `/healthz` with short intervals, for the TLS clusters.
pub fn tls_check() -> envoy_types::pb::envoy::config::core::v3::HealthCheck {
    let ms = |n: i32| {
        Some(envoy_types::pb::google::protobuf::Duration {
            seconds: 0,
            nanos: n * 1_000_000,
        })
    };
    let one = Some(envoy_types::pb::google::protobuf::UInt32Value { value: 1 });
    envoy_types::pb::envoy::config::core::v3::HealthCheck {
        timeout: ms(500),
        interval: ms(100),
        no_traffic_interval: ms(100),
        unhealthy_threshold: one,
        healthy_threshold: one,
        health_checker: Some(hc::HealthChecker::HttpHealthCheck(hc::HttpHealthCheck {
            path: "/healthz".into(),
            ..Default::default()
        })),
        ..Default::default()
    }
}

/// The TLS-checked host (`front`, TLS in front of backend `a`) passes with the right CA and
/// fails with the wrong one, on every proxy.
pub async fn tls_flags(
    admins: &[(String, &'static str, SocketAddr)],
    front: SocketAddr,
) -> Vec<Result<(), String>> {
    let mut results = vec![Ok(()); admins.len()];
    let want = [(TLS_OK, front, false), (TLS_WRONG_CA, front, true)];
    all_show(admins, &want, "checks over TLS", &mut results).await;
    results
}
