//! The x-request-id and trusted-client-address scenario of the differential run: listeners
//! whose connection managers differ only in `generate_request_id`,
//! `preserve_external_request_id`, `always_set_request_id_in_response`,
//! `use_remote_address`, `internal_address_config` and `xff_num_trusted_hops`. Clients connect
//! from 127.0.0.5 (Envoy counts only 127.0.0.1 as loopback, so the peer is used as is). Ids are
//! random: checks compare presence, UUID v4 format and equality, never generated values.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3 as hcm;
use envoy_types::pb::google::protobuf::{Any, BoolValue, UInt32Value};

use crate::common::*;

/// Source address of every client (127.0.0.0/8 is internal where configured).
const CLIENT_IP: &str = "127.0.0.5";

pub const LISTENERS: [&str; 7] = [
    "rid-sidecar",
    "rid-edge",
    "rid-preserve",
    "rid-internal",
    "rid-off",
    "xff-hops",
    SIDECAR_HOPS,
];

/// `xff-hops` without `use_remote_address`; `rid-sidecar` has the same internal addresses
/// and no trusted hops.
const SIDECAR_HOPS: &str = "xff-hops-sidecar";

fn cidr(prefix: &str, len: u32) -> core::CidrRange {
    core::CidrRange {
        address_prefix: prefix.into(),
        prefix_len: Some(UInt32Value { value: len }),
    }
}

fn internal(
    ranges: Vec<core::CidrRange>,
) -> Option<hcm::http_connection_manager::InternalAddressConfig> {
    Some(hcm::http_connection_manager::InternalAddressConfig {
        unix_sockets: false,
        cidr_ranges: ranges,
    })
}

/// `/direct` answers locally, `/down` fails upstream (a local 503), the rest reaches backend
/// `a`; every routed response gets `x-request-id: from-route` from the route.
fn routes() -> rt::RouteConfiguration {
    use core::header_value_option::HeaderAppendAction as A;
    let echo = rt::Route {
        response_headers_to_add: vec![super::hvo(
            "x-request-id",
            "from-route",
            A::OverwriteIfExistsOrAdd,
        )],
        ..route(prefix("/"), to_cluster("a"))
    };
    route_config(
        "rid",
        vec![vhost(
            "rid",
            &["*"],
            vec![
                route(prefix("/direct"), super::direct("direct")),
                route(prefix("/down"), to_cluster("closed")),
                echo,
            ],
        )],
    )
}

fn listener(name: &str, f: impl FnOnce(&mut hcm::HttpConnectionManager)) -> (String, Any) {
    (name.to_string(), http_listener_tweaked(name, routes(), f))
}

pub fn listeners() -> Vec<(String, Any)> {
    let on = Some(BoolValue { value: true });
    vec![
        listener("rid-sidecar", |m| {
            m.internal_address_config = internal(vec![cidr("10.0.0.0", 8)]);
        }),
        listener("rid-edge", |m| {
            m.use_remote_address = on;
            m.always_set_request_id_in_response = true;
        }),
        listener("rid-preserve", |m| {
            m.use_remote_address = on;
            m.preserve_external_request_id = true;
        }),
        listener("rid-internal", |m| {
            m.use_remote_address = on;
            m.always_set_request_id_in_response = true;
            m.internal_address_config = internal(vec![cidr("127.0.0.0", 8)]);
        }),
        listener("rid-off", |m| {
            m.use_remote_address = on;
            m.generate_request_id = Some(BoolValue { value: false });
            m.always_set_request_id_in_response = true;
        }),
        listener("xff-hops", |m| {
            m.use_remote_address = on;
            m.xff_num_trusted_hops = 1;
            m.internal_address_config = internal(vec![cidr("127.0.0.0", 8)]);
        }),
        listener(SIDECAR_HOPS, |m| {
            m.xff_num_trusted_hops = 1;
            m.internal_address_config = internal(vec![cidr("10.0.0.0", 8)]);
        }),
    ]
}

/// What a header must look like.
#[derive(Debug, Clone, Copy)]
enum Want {
    Absent,
    Is(&'static str),
    /// A version 4 UUID (a generated id).
    Uuid,
    /// The `x-request-id` the backend received.
    AsUpstream,
}

struct Case {
    listener: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    status: u16,
    /// Request headers at the backend.
    upstream: &'static [(&'static str, Want)],
    /// Response headers at the client.
    response: &'static [(&'static str, Want)],
}

const RID: &str = "x-request-id";
const SAMPLED: &str = "01234567-89ab-9def-8123-0123456789ab";

fn cases() -> Vec<Case> {
    use Want::*;
    let case = |listener, path, headers, status| Case {
        listener,
        path,
        headers,
        status,
        upstream: &[],
        response: &[],
    };
    vec![
        // Not edge: a missing id is generated, a present one kept; the route's wins in the
        // response (no `always_set_request_id_in_response`).
        Case {
            upstream: &[(RID, Uuid)],
            response: &[(RID, Is("from-route"))],
            ..case("rid-sidecar", "/", &[], 200)
        },
        Case {
            upstream: &[(RID, Is("client-1")), ("x-envoy-internal", Is("true"))],
            ..case(
                "rid-sidecar",
                "/",
                &[(RID, "client-1"), ("x-forwarded-for", "10.0.0.1")],
                200,
            )
        },
        Case {
            response: &[(RID, Absent)],
            ..case("rid-sidecar", "/direct", &[], 200)
        },
        // Edge: the client's id is replaced, and the response carries the final one, local
        // replies included.
        Case {
            upstream: &[(RID, Uuid), ("x-envoy-external-address", Is(CLIENT_IP))],
            response: &[(RID, AsUpstream)],
            ..case("rid-edge", "/", &[(RID, "client-1")], 200)
        },
        Case {
            response: &[(RID, Uuid)],
            ..case("rid-edge", "/direct", &[(RID, "client-1")], 200)
        },
        Case {
            response: &[(RID, Uuid)],
            ..case("rid-edge", "/down", &[], 503)
        },
        // Preserved: kept, with a 36-character id's trace reason reset.
        Case {
            upstream: &[(RID, Is("client-1"))],
            response: &[(RID, Is("from-route"))],
            ..case("rid-preserve", "/", &[(RID, "client-1")], 200)
        },
        Case {
            upstream: &[(RID, Is("01234567-89ab-4def-8123-0123456789ab"))],
            ..case("rid-preserve", "/", &[(RID, SAMPLED)], 200)
        },
        Case {
            upstream: &[(RID, Uuid)],
            ..case("rid-preserve", "/", &[], 200)
        },
        // An internal client keeps its id; behind another proxy it is external again, and the
        // external address is the peer's.
        Case {
            upstream: &[
                (RID, Is(SAMPLED)),
                ("x-envoy-internal", Is("true")),
                ("x-envoy-external-address", Absent),
            ],
            response: &[(RID, Is(SAMPLED))],
            ..case("rid-internal", "/", &[(RID, SAMPLED)], 200)
        },
        Case {
            upstream: &[
                (RID, Uuid),
                ("x-envoy-internal", Absent),
                ("x-envoy-external-address", Is(CLIENT_IP)),
                ("x-forwarded-for", Is("8.8.8.8,127.0.0.5")),
            ],
            response: &[(RID, AsUpstream)],
            ..case(
                "rid-internal",
                "/",
                &[(RID, SAMPLED), ("x-forwarded-for", "8.8.8.8")],
                200,
            )
        },
        // `generate_request_id: false`: nothing generated or replaced; the response only
        // gets an id the request had.
        Case {
            upstream: &[(RID, Absent)],
            response: &[(RID, Is("from-route"))],
            ..case("rid-off", "/", &[], 200)
        },
        Case {
            upstream: &[(RID, Is("client-1"))],
            response: &[(RID, Is("client-1"))],
            ..case("rid-off", "/", &[(RID, "client-1")], 200)
        },
        Case {
            response: &[(RID, Absent)],
            ..case("rid-off", "/direct", &[], 200)
        },
        // One trusted hop: the client is the last `x-forwarded-for` entry, and the trusted
        // proxy's `x-forwarded-proto` stands.
        Case {
            upstream: &[
                ("x-envoy-external-address", Is("1.2.3.4")),
                ("x-forwarded-for", Is("9.9.9.9, 1.2.3.4,127.0.0.5")),
                ("x-forwarded-proto", Is("https")),
                ("x-envoy-internal", Absent),
                (RID, Uuid),
            ],
            ..case(
                "xff-hops",
                "/",
                &[
                    ("x-forwarded-for", "9.9.9.9, 1.2.3.4"),
                    ("x-forwarded-proto", "https"),
                    (RID, "client-1"),
                ],
                200,
            )
        },
        Case {
            upstream: &[
                ("x-envoy-external-address", Absent),
                ("x-envoy-internal", Is("true")),
                ("x-forwarded-for", Is(CLIENT_IP)),
                ("x-forwarded-proto", Is("http")),
            ],
            ..case("xff-hops", "/", &[], 200)
        },
        // Without `use_remote_address`, one trusted hop: internal checks never apply.
        Case {
            upstream: &[
                ("x-envoy-internal", Absent),
                ("x-forwarded-for", Is("10.0.0.1")),
                ("x-envoy-external-address", Absent),
                (RID, Is("client-1")),
            ],
            ..case(
                SIDECAR_HOPS,
                "/",
                &[(RID, "client-1"), ("x-forwarded-for", "10.0.0.1")],
                200,
            )
        },
        Case {
            upstream: &[("x-envoy-internal", Absent)],
            ..case(
                SIDECAR_HOPS,
                "/",
                &[("x-forwarded-for", "10.0.0.1,10.0.0.2")],
                200,
            )
        },
    ]
}

/// Every case, one result per listener (the first problem found on it).
pub async fn check(
    target: &str,
    addrs: &BTreeMap<&'static str, SocketAddr>,
) -> Vec<Result<(), String>> {
    let mut by_listener: BTreeMap<&str, Result<(), String>> = BTreeMap::new();
    for c in cases() {
        let outcome = match addrs.get(c.listener) {
            Some(addr) => run(*addr, &c).await,
            None => Err("listener not started".to_string()),
        };
        let slot = by_listener.entry(c.listener).or_insert(Ok(()));
        if let (Ok(()), Err(e)) = (&slot, outcome) {
            *slot = Err(format!(
                "[request id] {target}: {} {} {:?}: {e}",
                c.listener, c.path, c.headers
            ));
        }
    }
    by_listener.into_values().collect()
}

async fn run(addr: SocketAddr, c: &Case) -> Result<(), String> {
    let got = answer_from(CLIENT_IP, addr, "rid.test", c.path, c.headers, c.status).await?;
    let upstream = |name: &str| got.echoed_header(name);
    let upstream_id = upstream(RID);
    let mut problems = Vec::new();
    let mut judge = |what: &str, have: Option<String>, want: Want| {
        let ok = match want {
            Want::Absent => have.is_none(),
            Want::Is(v) => have.as_deref() == Some(v),
            Want::Uuid => have
                .as_deref()
                .is_some_and(plexus_proxy::request_id::is_uuid_v4),
            Want::AsUpstream => have.is_some() && have == upstream_id,
        };
        if !ok {
            problems.push(format!("{what} {have:?} (want {want:?})"));
        }
    };
    for (name, want) in c.upstream {
        judge(&format!("upstream {name}"), upstream(name), *want);
    }
    for (name, want) in c.response {
        judge(&format!("response {name}"), got.header(name), *want);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join(", "))
    }
}
