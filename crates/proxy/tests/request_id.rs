//! Socket tests of `x-request-id` beyond what the differential scenarios compare: ids differ
//! per request on HTTP/1.1 and h2, `always_set_request_id_in_response` reaches local replies
//! (no route, gRPC trailers-only, stream idle timeout), and a non-default request-id extension
//! is NACKed naming the field.

mod accepted;
mod common;

use std::collections::BTreeSet;

use accepted::*;
use common::*;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::envoy::extensions::request_id::uuid::v3::UuidRequestIdConfig;
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::util::pack_any;
use plexus_proxy::request_id::is_uuid_v4;
use plexus_xds::LISTENER_TYPE;

fn routes() -> rt::RouteConfiguration {
    route_config(
        "rid",
        vec![vhost(
            "rid",
            &["rid.test"],
            vec![
                route(prefix("/down"), to_cluster("closed")),
                route(prefix("/"), to_cluster("a")),
            ],
        )],
    )
}

fn upstream_id(got: &Got) -> Option<String> {
    got.json()["headers"]["x-request-id"]
        .as_str()
        .map(str::to_string)
}

#[tokio::test]
async fn every_request_gets_its_own_id_on_both_protocols() {
    let a = echo_named("a").await;
    let closed_port = plexus_testkit::ClosedPort::new().expect("closed port");
    let closed = closed_port.addr;
    let (_ads, proxy) = run(
        vec![
            listener("plain", routes(), |_| {}),
            listener("echoing", routes(), |m| {
                m.always_set_request_id_in_response = true;
            }),
        ],
        vec![
            static_cluster("a", &[a.addr]),
            static_cluster("closed", &[closed]),
        ],
    )
    .await;
    let plain = proxy.listener_addr("plain").expect("bound");
    let echoing = proxy.listener_addr("echoing").expect("bound");
    let mut seen = BTreeSet::new();
    for (i, h2) in [false, true].into_iter().cycle().take(20).enumerate() {
        let got = request(plain, h2, "GET", "rid.test", "/", &[])
            .await
            .expect("request");
        let id = upstream_id(&got).unwrap_or_default();
        assert!(is_uuid_v4(&id), "request {i} (h2: {h2}): {id:?}");
        assert!(
            got.header("x-request-id").is_none(),
            "not echoed by default"
        );
        assert!(seen.insert(id), "request {i} reused an id");
    }
    let got = request(
        echoing,
        true,
        "GET",
        "rid.test",
        "/",
        &[("x-request-id", "mine")],
    )
    .await
    .expect("request");
    assert_eq!(upstream_id(&got).as_deref(), Some("mine"), "not edge: kept");
    assert_eq!(got.header("x-request-id").as_deref(), Some("mine"));
    let no_route = request(echoing, false, "GET", "nowhere.test", "/", &[])
        .await
        .expect("request");
    assert_eq!(no_route.status, 404);
    let id = no_route.header("x-request-id").unwrap_or_default();
    assert!(is_uuid_v4(&id), "404 local reply: {id:?}");
    let grpc = grpc_request(echoing, "rid.test", "/down", &[("x-request-id", "g-1")])
        .await
        .expect("grpc");
    assert_eq!(grpc.grpc_status().as_deref(), Some("14"));
    assert_eq!(grpc.header("x-request-id").as_deref(), Some("g-1"));
}

#[tokio::test]
async fn an_idle_timeout_reply_carries_the_id() {
    let slow = echo_with(plexus_testkit::echo::EchoConfig {
        workload: "slow".into(),
        delay: std::time::Duration::from_secs(5),
        ..Default::default()
    })
    .await;
    let (_ads, proxy) = run(
        vec![listener("idle", routes(), |m| {
            m.always_set_request_id_in_response = true;
            m.stream_idle_timeout = Some(ms(200));
        })],
        vec![static_cluster("a", &[slow.addr])],
    )
    .await;
    let addr = proxy.listener_addr("idle").expect("bound");
    let got = request(
        addr,
        false,
        "GET",
        "rid.test",
        "/",
        &[("x-request-id", "idle-1")],
    )
    .await
    .expect("request");
    assert_eq!(got.status, 504);
    assert_eq!(got.header("x-request-id").as_deref(), Some("idle-1"));
}

#[tokio::test]
async fn only_the_default_uuid_extension_is_accepted() {
    let a = echo_named("a").await;
    let with_ext = |cfg: UuidRequestIdConfig| {
        listener("ext", routes(), move |m| {
            m.request_id_extension = Some(hcm::RequestIdExtension {
                typed_config: Some(pack_any(cfg)),
            });
        })
    };
    let defaults = UuidRequestIdConfig {
        pack_trace_reason: Some(BoolValue { value: true }),
        use_request_id_for_trace_sampling: None,
    };
    let (ads, proxy) = run(
        vec![with_ext(defaults)],
        vec![static_cluster("a", &[a.addr])],
    )
    .await;
    let addr = proxy.listener_addr("ext").expect("bound");
    let got = request(addr, false, "GET", "rid.test", "/", &[])
        .await
        .expect("request");
    assert!(is_uuid_v4(&upstream_id(&got).unwrap_or_default()));
    let before = ads.acks().len();
    let no_sampling = UuidRequestIdConfig {
        pack_trace_reason: None,
        use_request_id_for_trace_sampling: Some(BoolValue { value: false }),
    };
    ads.push(LISTENER_TYPE, vec![with_ext(no_sampling)]);
    let nack = ads
        .wait_nack(LISTENER_TYPE, before, WAIT)
        .await
        .expect("NACK");
    let msg = nack.error.unwrap_or_default();
    assert!(
        msg.contains("request_id_extension.typed_config.use_request_id_for_trace_sampling"),
        "{msg}"
    );
}
