//! VirtualService `tcp[].match[].destinationSubnets` and `tls[].match[].destinationSubnets`:
//! filter chains with `prefix_ranges` (bare addresses become /32 or /128), the first route
//! claiming a CIDR keeps it, and connections outside every subnet go to the next route or to
//! the service.

mod common;

use common::rules::*;
use envoy_types::pb::envoy::config::listener::v3::{FilterChain, Listener};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use plexus_pilot::translate::Generated;
use prost::Message;

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: db2, namespace: app}
spec:
  clusterIP: 10.96.0.2
  ports: [{name: tcp-db, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: db3, namespace: app}
spec:
  clusterIP: 10.96.0.3
  ports: [{name: tcp-db, port: 5432}]
---
apiVersion: v1
kind: Service
metadata: {name: secure, namespace: app}
spec:
  ports: [{name: tls-x, port: 8443}]
"#;

fn cluster(host: &str, port: u16) -> String {
    format!("outbound|{port}||{host}.app.svc.cluster.local")
}

fn tcp_vs(routes: &str) -> String {
    format!(
        "{SERVICES}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: svc-tcp, namespace: app}}\nspec:\n  hosts: [svc]\n  tcp: {routes}\n"
    )
}

/// The outbound listener of the services without a VIP (`svc`, `secure`) on `port`, or the
/// gateway's (bound to the node's IP, 10.0.0.1).
fn listener_for(g: &Generated, port: u16) -> &Listener {
    let name = format!("0.0.0.0_{port}");
    let gateway = format!("10.0.0.1_{port}");
    g.listeners
        .iter()
        .find(|l| l.name == name || l.name == gateway)
        .unwrap_or_else(|| {
            let names: Vec<_> = g.listeners.iter().map(|l| l.name.as_str()).collect();
            panic!("listener {name} among {names:?}")
        })
}

fn tcp_target(c: &FilterChain) -> String {
    let any = match c.filters[0].config_type.as_ref() {
        Some(envoy_types::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(a)) => a,
        other => panic!("typed config {other:?}"),
    };
    let p = TcpProxy::decode(any.value.as_slice()).expect("tcp_proxy");
    match p.cluster_specifier {
        Some(tcp_proxy::ClusterSpecifier::Cluster(c)) => c,
        other => panic!("cluster {other:?}"),
    }
}

/// (CIDRs, server names, cluster) of each chain leading to a cluster of `svc`'s VS.
fn chains(
    g: &Generated,
    port: u16,
    clusters: &[String],
) -> Vec<(Vec<String>, Vec<String>, String)> {
    listener_for(g, port)
        .filter_chains
        .iter()
        .map(|c| {
            let m = c.filter_chain_match.clone().unwrap_or_default();
            let cidrs = m
                .prefix_ranges
                .iter()
                .map(|r| {
                    format!(
                        "{}/{}",
                        r.address_prefix,
                        r.prefix_len.map_or(0, |l| l.value)
                    )
                })
                .collect();
            (cidrs, m.server_names, tcp_target(c))
        })
        .filter(|(_, _, cl)| clusters.contains(cl))
        .collect()
}

fn owned(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn tcp_destination_subnets_become_prefix_ranges() {
    let all = [
        cluster("svc", 5432),
        cluster("db2", 5432),
        cluster("db3", 5432),
    ];
    type Case<'a> = (&'a str, String, Vec<(Vec<String>, String)>);
    let cases: Vec<Case<'_>> = vec![
        (
            "subnets then a catch-all route",
            tcp_vs(
                "[{match: [{destinationSubnets: [10.1.0.0/16, 192.168.1.7]}], route: [{destination: {host: db2}}]}, {route: [{destination: {host: db3}}]}]",
            ),
            vec![
                (
                    owned(&["10.1.0.0/16", "192.168.1.7/32"]),
                    cluster("db2", 5432),
                ),
                (vec![], cluster("db3", 5432)),
            ],
        ),
        (
            "only subnets: other connections go to the service",
            tcp_vs(
                "[{match: [{destinationSubnets: [10.1.2.3/8]}], route: [{destination: {host: db2}}]}]",
            ),
            vec![
                (owned(&["10.0.0.0/8"]), cluster("db2", 5432)),
                (vec![], cluster("svc", 5432)),
            ],
        ),
        (
            "a CIDR claimed by an earlier route is left out of a later one",
            tcp_vs(
                "[{match: [{destinationSubnets: [10.0.0.0/8]}], route: [{destination: {host: db2}}]}, {match: [{destinationSubnets: [10.0.0.0/8, 172.16.0.0/12]}], route: [{destination: {host: db3}}]}, {match: [{destinationSubnets: [10.0.0.0/8]}], route: [{destination: {host: db3}}]}]",
            ),
            vec![
                (owned(&["10.0.0.0/8"]), cluster("db2", 5432)),
                (owned(&["172.16.0.0/12"]), cluster("db3", 5432)),
                (vec![], cluster("svc", 5432)),
            ],
        ),
        (
            "IPv6: a bare address is /128",
            tcp_vs(
                "[{match: [{destinationSubnets: ['2001:db8::1', '2001:db8:1::/48']}], route: [{destination: {host: db2}}]}]",
            ),
            vec![
                (
                    owned(&["2001:db8::1/128", "2001:db8:1::/48"]),
                    cluster("db2", 5432),
                ),
                (vec![], cluster("svc", 5432)),
            ],
        ),
        (
            "a match without subnets in the same route ends the list",
            tcp_vs(
                "[{match: [{destinationSubnets: [10.0.0.0/8]}, {port: 5432}], route: [{destination: {host: db2}}]}, {route: [{destination: {host: db3}}]}]",
            ),
            vec![
                (owned(&["10.0.0.0/8"]), cluster("db2", 5432)),
                (vec![], cluster("db2", 5432)),
            ],
        ),
        (
            "a match for another port does not apply",
            tcp_vs(
                "[{match: [{destinationSubnets: [10.0.0.0/8], port: 5433}], route: [{destination: {host: db2}}]}]",
            ),
            vec![(vec![], cluster("svc", 5432))],
        ),
    ];
    for (what, extra, want) in cases {
        let g = translated(&extra, &client());
        assert!(g.warnings.is_empty(), "{what}: {:?}", g.warnings);
        let got: Vec<_> = chains(&g, 5432, &all)
            .into_iter()
            .map(|(cidrs, _, cl)| (cidrs, cl))
            .collect();
        assert_eq!(got, want, "{what}");
    }
}

#[test]
fn source_subnet_still_warns_and_never_applies() {
    let extra =
        tcp_vs("[{match: [{sourceSubnet: 10.0.0.0/8}], route: [{destination: {host: db2}}]}]");
    let g = translated(&extra, &client());
    let all = [cluster("svc", 5432), cluster("db2", 5432)];
    assert_eq!(
        chains(&g, 5432, &all),
        [(vec![], vec![], cluster("svc", 5432))]
    );
    assert!(
        g.warnings.iter().any(|w| w
            .to_string()
            .contains("svc-tcp: not translated (removed from Istio)")),
        "{:?}",
        g.warnings
    );
}

#[test]
fn tls_destination_subnets_join_the_sni_match() {
    let extra = format!(
        "{SERVICES}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: secure, namespace: app}}\nspec:\n  hosts: [secure]\n  tls:\n  - match: [{{sniHosts: [secure, a.example.com], destinationSubnets: [10.1.0.0/16]}}]\n    route: [{{destination: {{host: db2, port: {{number: 5432}}}}}}]\n  - match: [{{sniHosts: [secure, b.example.com], destinationSubnets: [10.1.0.0/16, 10.2.0.0/16]}}]\n    route: [{{destination: {{host: db3, port: {{number: 5432}}}}}}]\n  - match: [{{sniHosts: [secure]}}]\n    route: [{{destination: {{host: secure}}}}]\n"
    );
    let g = translated(&extra, &client());
    assert!(g.warnings.is_empty(), "{:?}", g.warnings);
    let all = [
        cluster("secure", 8443),
        cluster("db2", 5432),
        cluster("db3", 5432),
    ];
    let got = chains(&g, 8443, &all);
    let want = vec![
        (
            owned(&["10.1.0.0/16"]),
            owned(&["secure", "a.example.com"]),
            cluster("db2", 5432),
        ),
        (
            owned(&["10.1.0.0/16", "10.2.0.0/16"]),
            owned(&["b.example.com"]),
            cluster("db3", 5432),
        ),
        (
            owned(&["10.2.0.0/16"]),
            owned(&["secure"]),
            cluster("db3", 5432),
        ),
        (vec![], owned(&["secure"]), cluster("secure", 8443)),
    ];
    assert_eq!(got, want);
}

#[test]
fn gateway_passthrough_keeps_a_name_per_subnet() {
    let extra = format!(
        "{SERVICES}---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: app}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers: [{{port: {{number: 443, name: tls, protocol: TLS}}, hosts: [\"*\"], tls: {{mode: PASSTHROUGH}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: pass, namespace: app}}\nspec:\n  hosts: [a.example.com]\n  gateways: [gw]\n  tls:\n  - match: [{{sniHosts: [a.example.com], destinationSubnets: [10.0.0.0/8]}}]\n    route: [{{destination: {{host: db2, port: {{number: 5432}}}}}}]\n  - match: [{{sniHosts: [a.example.com]}}]\n    route: [{{destination: {{host: db3, port: {{number: 5432}}}}}}]\n"
    );
    let gw = node(
        "router",
        "app",
        serde_json::json!({"istio": "ingressgateway"}),
        "REDIRECT",
    );
    let g = translated(&extra, &gw);
    assert!(g.warnings.is_empty(), "{:?}", g.warnings);
    let all = [cluster("db2", 5432), cluster("db3", 5432)];
    assert_eq!(
        chains(&g, 443, &all),
        [
            (
                owned(&["10.0.0.0/8"]),
                owned(&["a.example.com"]),
                cluster("db2", 5432)
            ),
            (vec![], owned(&["a.example.com"]), cluster("db3", 5432)),
        ]
    );
}
