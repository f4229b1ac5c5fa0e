//! Cluster discovery and health-check scenarios: a LOGICAL_DNS cluster (`localhost`, IPv4 only,
//! re-resolved every 200 ms) reaching backend `a`.
#![allow(clippy::wildcard_imports)]

use super::*;

pub fn scenarios() -> Vec<Scenario> {
    vec![Scenario {
        name: "LOGICAL_DNS cluster",
        routes: vec![vhost(
            "dns",
            &["*"],
            vec![route(
                prefix("/"),
                forward(|a| {
                    a.cluster_specifier = Some(rt::route_action::ClusterSpecifier::Cluster(
                        "logical".into(),
                    ));
                }),
            )],
        )],
        checks: vec![
            Check {
                workload: Some("a"),
                upstream_path: Some("/dns"),
                ..get("d", "/dns", 200)
            },
            Check {
                workload: Some("a"),
                ..get("d", "/again", 200)
            },
        ],
    }]
}
