//! Network namespaces and veth pairs for `--netns` mode, made with `ip(8)` (root only).
//!
//! Every name starts with [`PREFIX`], so a leak is easy to see (`ip netns list`, `ip link`)
//! and the cleanup test can check that nothing with the prefix is left behind.

use std::process::Command;

use crate::LocalError;

/// Prefix of every namespace and link this crate creates.
pub const PREFIX: &str = "plx";

/// Run a command and fail with its stderr.
pub fn run(argv: &[&str]) -> Result<String, LocalError> {
    let Some((prog, args)) = argv.split_first() else {
        return Err(LocalError::Net("empty command".into()));
    };
    let out = Command::new(prog)
        .args(args)
        .output()
        .map_err(|e| LocalError::Net(format!("{}: {e}", argv.join(" "))))?;
    if !out.status.success() {
        return Err(LocalError::Net(format!(
            "{}: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Create namespace `name` with its loopback up.
pub fn create_namespace(name: &str) -> Result<(), LocalError> {
    run(&["ip", "netns", "add", name])?;
    run(&["ip", "-n", name, "link", "set", "lo", "up"]).map(|_| ())
}

/// Delete a namespace (and with it its veth ends and iptables rules); absent is fine.
pub fn delete_namespace(name: &str) {
    let _ = run(&["ip", "netns", "del", name]);
    let _ = std::fs::remove_dir_all(format!("/etc/netns/{name}"));
}

/// Delete a link in the host namespace; absent is fine.
pub fn delete_link(name: &str) {
    let _ = run(&["ip", "link", "del", name]);
}

/// A veth pair: `host` end stays in the namespace it is created in (moved to `host_ns` if
/// given), `peer` goes into `ns` with `peer_cidr` as its address and a default route via
/// `gateway`.
pub struct Veth<'a> {
    pub host: &'a str,
    pub host_ns: Option<&'a str>,
    /// Address of the host end; `None` for a bridge port.
    pub host_cidr: Option<&'a str>,
    pub peer: &'a str,
    pub ns: &'a str,
    pub peer_cidr: &'a str,
    pub gateway: &'a str,
}

pub fn create_veth(v: &Veth<'_>) -> Result<(), LocalError> {
    run(&[
        "ip", "link", "add", v.host, "type", "veth", "peer", "name", v.peer,
    ])?;
    run(&["ip", "link", "set", v.peer, "netns", v.ns])?;
    let in_host = |args: &[&str]| -> Result<String, LocalError> {
        match v.host_ns {
            Some(hns) => {
                let mut a = vec!["ip", "-n", hns];
                a.extend_from_slice(args);
                run(&a)
            }
            None => {
                let mut a = vec!["ip"];
                a.extend_from_slice(args);
                run(&a)
            }
        }
    };
    if let Some(hns) = v.host_ns {
        run(&["ip", "link", "set", v.host, "netns", hns])?;
    }
    if let Some(cidr) = v.host_cidr {
        in_host(&["addr", "add", cidr, "dev", v.host])?;
    }
    in_host(&["link", "set", v.host, "up"])?;
    run(&["ip", "-n", v.ns, "addr", "add", v.peer_cidr, "dev", v.peer])?;
    run(&["ip", "-n", v.ns, "link", "set", v.peer, "up"])?;
    run(&[
        "ip", "-n", v.ns, "route", "add", "default", "via", v.gateway,
    ])
    .map(|_| ())
}

/// Namespaces whose name starts with `prefix`.
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    run(&["ip", "netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// Host links whose name starts with `prefix`.
pub fn links_with_prefix(prefix: &str) -> Vec<String> {
    run(&["ip", "-o", "link", "show"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

/// Whether this process may create namespaces (root with CAP_SYS_ADMIN and `ip` present).
pub fn available() -> bool {
    let probe = format!("{PREFIX}probe{}", std::process::id());
    if create_namespace(&probe).is_err() {
        return false;
    }
    delete_namespace(&probe);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two namespaces joined by a veth talk to each other, and removing them leaves no
    /// namespace or link behind. Skipped (with a message) when not root.
    #[test]
    fn netns_and_veth_setup_and_teardown_leave_nothing_behind() {
        if !available() {
            eprintln!("skipped: needs root and ip(8) to create network namespaces");
            return;
        }
        let tag = format!("{PREFIX}t{}", std::process::id() % 100_000);
        let (a, b) = (format!("{tag}a"), format!("{tag}b"));
        create_namespace(&a).expect("ns a");
        create_namespace(&b).expect("ns b");
        let (ha, pb) = (format!("{tag}h"), format!("{tag}p"));
        create_veth(&Veth {
            host: &ha,
            host_ns: Some(&a),
            host_cidr: Some("10.250.0.1/30"),
            peer: &pb,
            ns: &b,
            peer_cidr: "10.250.0.2/30",
            gateway: "10.250.0.1",
        })
        .expect("veth");
        run(&[
            "ip",
            "netns",
            "exec",
            &b,
            "ping",
            "-c1",
            "-W2",
            "10.250.0.1",
        ])
        .or_else(|_| {
            // ping may be missing: check the route instead.
            run(&["ip", "-n", &b, "route", "get", "10.250.0.1"])
        })
        .expect("reach peer");
        assert!(namespaces_with_prefix(&tag).len() == 2);
        delete_namespace(&a);
        delete_namespace(&b);
        assert!(namespaces_with_prefix(&tag).is_empty(), "namespaces left");
        assert!(links_with_prefix(&tag).is_empty(), "links left");
    }
}
