//! Transparent capture inside a replica's network namespace, as Istio's init container sets it
//! up in a pod: iptables `nat` REDIRECT of inbound TCP to 15006 and of outbound TCP to 15001,
//! except the sidecar's own traffic (uid/gid [`PROXY_UID`]), and names resolvable through a
//! per-namespace hosts file (`/etc/netns/<ns>/hosts`, which `ip netns exec` bind-mounts over
//! `/etc/hosts`).
//!
//! Every rule lives in the namespace, so deleting the namespace deletes them: nothing is
//! installed in the host's tables.

use std::path::PathBuf;

use crate::LocalError;
use crate::netns::run;

/// Uid and gid the sidecar runs as; its traffic is never captured (Istio's 1337).
pub const PROXY_UID: u32 = 1337;
pub const OUTBOUND_CAPTURE_PORT: u16 = 15001;
pub const INBOUND_CAPTURE_PORT: u16 = 15006;
/// Inbound ports left alone: admin, agent, health, Prometheus (as Istio excludes them).
pub const INBOUND_EXCLUDED: &[u16] = &[15000, 15020, 15021, 15090];
/// Service VIPs come from this range; they are on `lo` inside the namespace, so traffic to
/// them that escapes capture reaches nothing.
pub const VIP_RANGE: &str = "127.255.0.0/16";

/// The `iptables -t nat` commands (arguments after `iptables -t nat`) for one namespace.
pub fn rules() -> Vec<Vec<String>> {
    let mut r: Vec<Vec<String>> = Vec::new();
    let mut add = |args: &str| r.push(args.split_whitespace().map(str::to_string).collect());
    for chain in [
        "PLEXUS_INBOUND",
        "PLEXUS_IN_REDIRECT",
        "PLEXUS_OUTPUT",
        "PLEXUS_REDIRECT",
    ] {
        add(&format!("-N {chain}"));
    }
    add(&format!(
        "-A PLEXUS_IN_REDIRECT -p tcp -j REDIRECT --to-ports {INBOUND_CAPTURE_PORT}"
    ));
    add(&format!(
        "-A PLEXUS_REDIRECT -p tcp -j REDIRECT --to-ports {OUTBOUND_CAPTURE_PORT}"
    ));
    add("-A PREROUTING -p tcp -j PLEXUS_INBOUND");
    for p in INBOUND_EXCLUDED {
        add(&format!("-A PLEXUS_INBOUND -p tcp --dport {p} -j RETURN"));
    }
    add("-A PLEXUS_INBOUND -p tcp -j PLEXUS_IN_REDIRECT");
    add("-A OUTPUT -p tcp -j PLEXUS_OUTPUT");
    add(&format!(
        "-A PLEXUS_OUTPUT -m owner --uid-owner {PROXY_UID} -j RETURN"
    ));
    add(&format!(
        "-A PLEXUS_OUTPUT -m owner --gid-owner {PROXY_UID} -j RETURN"
    ));
    add("-A PLEXUS_OUTPUT -d 127.0.0.1/32 -j RETURN");
    // Other loopback traffic stays local, except to service VIPs, which must be captured.
    add(&format!(
        "-A PLEXUS_OUTPUT -o lo ! -d {VIP_RANGE} -j RETURN"
    ));
    add("-A PLEXUS_OUTPUT -j PLEXUS_REDIRECT");
    r
}

/// Install [`rules`] in namespace `ns`.
pub fn install(ns: &str) -> Result<(), LocalError> {
    for rule in rules() {
        let mut argv = vec!["ip", "netns", "exec", ns, "iptables", "-w", "-t", "nat"];
        argv.extend(rule.iter().map(String::as_str));
        run(&argv)?;
    }
    Ok(())
}

/// The host's `nat` rules as `iptables -S` prints them (to check nothing was added there).
pub fn host_nat_rules() -> Result<String, LocalError> {
    run(&["iptables", "-w", "-t", "nat", "-S"])
}

/// Whether `iptables` can be used (root, binary present).
pub fn available() -> bool {
    host_nat_rules().is_ok()
}

/// The hosts file of a namespace: `localhost`, then per service its VIP and names
/// (`name`, `name.namespace`, `name.namespace.svc`, `name.namespace.svc.cluster.local`).
pub fn hosts_file(services: &[(String, String, String)]) -> String {
    let mut out = String::from("127.0.0.1 localhost\n::1 localhost\n");
    for (name, namespace, vip) in services {
        out.push_str(&format!(
            "{vip} {name}.{namespace}.svc.cluster.local {name}.{namespace}.svc {name}.{namespace}"
        ));
        // Hosts files have no search path: short names are listed for every service, and
        // with one name in two namespaces the first line wins.
        out.push_str(&format!(" {name}\n"));
    }
    out
}

/// Where `ip netns exec` looks for a namespace's hosts file.
pub fn hosts_path(ns: &str) -> PathBuf {
    PathBuf::from(format!("/etc/netns/{ns}/hosts"))
}

/// The host's `nsswitch.conf` with host lookups limited to `files`: inside a mesh namespace
/// names come from its hosts file only. A DNS fallback would send queries to the host's
/// resolver, which the namespace cannot reach, and every lookup of an IPv6 address for a
/// mesh name would stall for the resolver timeout.
pub fn nsswitch(host: &str) -> String {
    let mut out: Vec<String> = host
        .lines()
        .filter(|l| !l.trim_start().starts_with("hosts:"))
        .map(str::to_string)
        .collect();
    out.push("hosts: files".into());
    out.join("\n") + "\n"
}

/// Write the hosts file and `nsswitch.conf` of `ns`; [`crate::netns::delete_namespace`]
/// removes them.
pub fn write_hosts(ns: &str, text: &str) -> Result<(), LocalError> {
    let path = hosts_path(ns);
    let net = |e: std::io::Error| LocalError::Net(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(net)?;
        let host = std::fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
        std::fs::write(dir.join("nsswitch.conf"), nsswitch(&host)).map_err(net)?;
    }
    std::fs::write(&path, text).map_err(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_exclude_the_proxy_and_send_the_rest_to_the_capture_ports() {
        let lines: Vec<String> = rules().iter().map(|r| r.join(" ")).collect();
        let pos = |s: &str| {
            lines
                .iter()
                .position(|l| l == s)
                .unwrap_or_else(|| panic!("{s} missing: {lines:#?}"))
        };
        // The proxy's own traffic returns before anything is redirected.
        assert!(
            pos("-A PLEXUS_OUTPUT -m owner --uid-owner 1337 -j RETURN")
                < pos("-A PLEXUS_OUTPUT -j PLEXUS_REDIRECT")
        );
        assert!(
            pos("-A PLEXUS_INBOUND -p tcp --dport 15000 -j RETURN")
                < pos("-A PLEXUS_INBOUND -p tcp -j PLEXUS_IN_REDIRECT")
        );
        assert_eq!(
            pos("-A PLEXUS_REDIRECT -p tcp -j REDIRECT --to-ports 15001"),
            5
        );
        assert!(
            lines.iter().all(|l| !l.starts_with("-t ")),
            "table is given by install()"
        );
    }

    #[test]
    fn nsswitch_keeps_other_databases_and_limits_hosts_to_files() {
        let n = nsswitch("passwd: files systemd\nhosts:   files mdns4 dns\n");
        assert_eq!(n, "passwd: files systemd\nhosts: files\n");
        assert_eq!(nsswitch(""), "hosts: files\n");
    }

    #[test]
    fn hosts_file_lists_every_name_of_a_service() {
        let h = hosts_file(&[("reviews".into(), "default".into(), "127.255.0.3".into())]);
        assert!(h.starts_with("127.0.0.1 localhost\n"));
        assert!(h.contains(
            "127.255.0.3 reviews.default.svc.cluster.local reviews.default.svc reviews.default reviews\n"
        ));
    }
}
