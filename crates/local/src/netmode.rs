//! `plexus up --netns` networking (root): a hub namespace with a bridge, one namespace per
//! replica plugged into it with a veth, Istio-style capture and a hosts file inside each, and a
//! veth from the host to the hub so the ingress gateway (on the host, serving 127.0.0.1) reaches
//! the pods and the control plane.
//!
//! ```text
//!  host ── plxBg 10.251.B.1/30 ══ plxBgh 10.251.B.2/30 ─┐ hub ns: bridge plxBbr 10.250.B.254/24
//!                                                        ├─ plxBhN ══ plxBeN 10.250.B.N/24 (pod N)
//! ```
//!
//! The only host-side changes are the link `plxBg` and its route to `10.250.B.0/24` (gone with
//! the link); every iptables rule lives inside a pod namespace. Everything is recorded in the
//! run state *before* it is created, so `plexus down` can undo a half-finished setup.

use std::net::Ipv4Addr;

use crate::LocalError;
use crate::capture;
use crate::generate::Vips;
use crate::netns::{self, Veth, run};
use crate::plan::{HUB_HOST, Plan, pod_subnet_ip};
use crate::spec::MeshSpec;
use crate::state::RunState;

/// VIPs for every Service: the k-th gets `127.255.x.y` (`VIP_RANGE`).
pub fn vips(spec: &MeshSpec) -> Vips {
    spec.services
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let vip = Ipv4Addr::new(127, 255, (k / 250) as u8, (k % 250 + 1) as u8);
            ((s.namespace.clone(), s.name.clone()), vip.to_string())
        })
        .collect()
}

fn names(b: u8) -> (String, String, String, String) {
    (
        crate::plan::hub_name(b),
        format!("plx{b}br"),
        format!("plx{b}g"),
        format!("plx{b}gh"),
    )
}

/// Create the hub, the host link and every pod namespace, recording each in `state` first.
pub fn setup(
    plan: &Plan,
    vips: &Vips,
    state: &mut RunState,
    run_dir: &std::path::Path,
) -> Result<(), LocalError> {
    let b = plan.block;
    let (hub, bridge, host_link, hub_link) = names(b);
    let hub_ip = pod_subnet_ip(b, HUB_HOST);
    state.namespaces.push(hub.clone());
    state.veths.push(host_link.clone());
    state.write(run_dir)?;
    netns::create_namespace(&hub)?;
    run(&["ip", "-n", &hub, "link", "add", &bridge, "type", "bridge"])?;
    run(&[
        "ip",
        "-n",
        &hub,
        "addr",
        "add",
        &format!("{hub_ip}/24"),
        "dev",
        &bridge,
    ])?;
    run(&["ip", "-n", &hub, "link", "set", &bridge, "up"])?;
    // The hub routes between the host link and the bridge (its own sysctl, not the host's).
    run(&[
        "ip",
        "netns",
        "exec",
        &hub,
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.ip_forward=1",
    ])?;
    run(&[
        "ip", "link", "add", &host_link, "type", "veth", "peer", "name", &hub_link,
    ])?;
    run(&["ip", "link", "set", &hub_link, "netns", &hub])?;
    run(&[
        "ip",
        "addr",
        "add",
        &format!("10.251.{b}.1/30"),
        "dev",
        &host_link,
    ])?;
    run(&["ip", "link", "set", &host_link, "up"])?;
    run(&[
        "ip",
        "-n",
        &hub,
        "addr",
        "add",
        &format!("10.251.{b}.2/30"),
        "dev",
        &hub_link,
    ])?;
    run(&["ip", "-n", &hub, "link", "set", &hub_link, "up"])?;
    run(&[
        "ip",
        "route",
        "add",
        &format!("10.250.{b}.0/24"),
        "via",
        &format!("10.251.{b}.2"),
    ])?;
    let hosts = capture::hosts_file(
        &vips
            .iter()
            .map(|((ns, name), vip)| (name.clone(), ns.clone(), vip.clone()))
            .collect::<Vec<_>>(),
    );
    for (i, r) in plan.replicas.iter().enumerate() {
        let Some(ns) = &r.netns else { continue };
        state.namespaces.push(ns.clone());
        state.write(run_dir)?;
        netns::create_namespace(ns)?;
        let n = i + 1;
        let (hub_end, pod_end) = (format!("plx{b}h{n}"), format!("plx{b}e{n}"));
        netns::create_veth(&Veth {
            host: &hub_end,
            host_ns: Some(&hub),
            host_cidr: None,
            peer: &pod_end,
            ns,
            peer_cidr: &format!("{}/24", r.pod_ip),
            gateway: &hub_ip.to_string(),
        })?;
        run(&["ip", "-n", &hub, "link", "set", &hub_end, "master", &bridge])?;
        capture::install(ns)?;
        capture::write_hosts(ns, &hosts)?;
    }
    Ok(())
}

/// Remove everything [`setup`] made (pods, hub — which takes the bridge and every veth with it —
/// and the host link with its route). Missing pieces are fine.
pub fn teardown(state: &mut RunState) {
    for ns in state.namespaces.drain(..).rev() {
        netns::delete_namespace(&ns);
    }
    for link in state.veths.drain(..) {
        netns::delete_link(&link);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::ServiceSpec;

    #[test]
    fn every_service_gets_its_own_vip_in_the_mesh_range() {
        let svc = |n: &str| ServiceSpec {
            name: n.into(),
            namespace: "default".into(),
            selector: Default::default(),
        };
        let spec = MeshSpec {
            services: (0..300).map(|i| svc(&format!("s{i}"))).collect(),
            ..Default::default()
        };
        let v = vips(&spec);
        assert_eq!(v.len(), 300);
        assert_eq!(v[&("default".to_string(), "s0".to_string())], "127.255.0.1");
        assert_eq!(
            v[&("default".to_string(), "s251".to_string())],
            "127.255.1.2"
        );
        let unique: std::collections::BTreeSet<&String> = v.values().collect();
        assert_eq!(unique.len(), 300);
    }
}
