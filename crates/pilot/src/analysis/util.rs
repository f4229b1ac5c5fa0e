//! Host name and visibility rules shared by analyzers: short names to FQDNs, wildcard host
//! matching, `exportTo` scopes, and `ns/name` references.

/// Kubernetes service domain suffix for short names.
pub const DEFAULT_KUBERNETES_DOMAIN: &str = "svc.cluster.local";
/// The gateway name meaning "the sidecars of the mesh".
pub const MESH_GATEWAY: &str = "mesh";
/// `exportTo` value: every namespace.
pub const EXPORT_TO_ALL: &str = "*";
/// `exportTo` value: the object's own namespace.
pub const EXPORT_TO_LOCAL: &str = ".";

/// A short name (`reviews`) becomes `reviews.<ns>.svc.cluster.local`; wildcards and names with
/// a dot are left as they are.
pub fn to_fqdn(namespace: &str, host: &str) -> String {
    if is_short_name(host) {
        format!("{host}.{namespace}.{DEFAULT_KUBERNETES_DOMAIN}")
    } else {
        host.to_string()
    }
}

/// Not a wildcard and no dot.
pub fn is_short_name(host: &str) -> bool {
    !host.starts_with('*') && !host.contains('.')
}

/// `name.ns.svc.cluster.local` split into (ns, name); `None` for other host shapes.
pub fn service_of_fqdn(fqdn: &str) -> Option<(&str, &str)> {
    let rest = fqdn.strip_suffix(".svc.cluster.local")?;
    let (name, ns) = rest.rsplit_once('.')?;
    if name.is_empty() || ns.is_empty() {
        return None;
    }
    Some((ns, name))
}

/// The (namespace, name) a destination host refers to: a service FQDN names its namespace,
/// anything else is taken as a name in `default_ns`.
pub fn service_of_host<'h>(default_ns: &'h str, host: &'h str) -> (&'h str, &'h str) {
    service_of_fqdn(host).unwrap_or((default_ns, host))
}

/// Istio's host matching: `*.foo.com` matches `a.foo.com`; two wildcards match when one's
/// suffix contains the other's; plain names compare equal.
pub fn host_matches(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (Some(sa), Some(sb)) => {
            if a.len() < b.len() {
                sb.ends_with(sa)
            } else {
                sa.ends_with(sb)
            }
        }
        (Some(sa), None) => b.ends_with(sa),
        (None, Some(sb)) => a.ends_with(sb),
        (None, None) => a == b,
    }
}

/// Whether every host `b` matches is also matched by `a` (`a` is at least as wide as `b`).
pub fn host_subset_of(b: &str, a: &str) -> bool {
    match (b.strip_prefix('*'), a.strip_prefix('*')) {
        (Some(sb), Some(sa)) => sb.ends_with(sa),
        (Some(_), None) => false,
        (None, Some(sa)) => b.ends_with(sa),
        (None, None) => a == b,
    }
}

/// `ns/name` or `name` (in `default_ns`) as (namespace, name).
pub fn split_ref<'r>(default_ns: &'r str, reference: &'r str) -> (&'r str, &'r str) {
    match reference.split_once('/') {
        Some((ns, name)) => (ns, name),
        None => (default_ns, reference),
    }
}

/// Gateway `hosts` entries (`ns/host`, `./host`, `*/host`, `host`) visible to a namespace,
/// with the namespace part dropped.
pub fn hosts_for_namespace(hosts: &[String], gateway_ns: &str, namespace: &str) -> Vec<String> {
    let mut out = Vec::new();
    for h in hosts {
        match h.split_once('/') {
            Some(("*", host)) => out.push(host.to_string()),
            Some((".", host)) if gateway_ns == namespace => out.push(host.to_string()),
            Some((ns, host)) if ns == namespace => out.push(host.to_string()),
            Some(_) => {}
            None => out.push(h.clone()),
        }
    }
    out
}

/// The namespaces an `exportTo` list makes an object visible in (`*` for all); empty means all.
pub fn export_scopes(export_to: &[String], own_ns: &str) -> Vec<String> {
    if export_to.is_empty() || export_to.iter().any(|e| e == EXPORT_TO_ALL) {
        return vec![EXPORT_TO_ALL.to_string()];
    }
    let mut out: Vec<String> = export_to
        .iter()
        .map(|e| {
            if e == EXPORT_TO_LOCAL {
                own_ns.to_string()
            } else {
                e.clone()
            }
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Whether an object exported to `scopes` is visible from namespace `ns`.
pub fn visible_in(scopes: &[String], ns: &str) -> bool {
    scopes.iter().any(|s| s == EXPORT_TO_ALL || s == ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fqdn_and_matching() {
        assert_eq!(to_fqdn("ns", "reviews"), "reviews.ns.svc.cluster.local");
        assert_eq!(to_fqdn("ns", "a.b"), "a.b");
        assert_eq!(
            service_of_fqdn("reviews.ns.svc.cluster.local"),
            Some(("ns", "reviews"))
        );
        assert_eq!(service_of_fqdn("reviews.org"), None);
        assert!(host_matches("*.eu.com", "a.eu.com"));
        assert!(host_matches("*", "a.eu.com"));
        assert!(host_matches("*.com", "*.eu.com"));
        assert!(!host_matches("a.com", "b.com"));
        assert!(host_subset_of("a.eu.com", "*.eu.com"));
        assert!(!host_subset_of("*.eu.com", "a.eu.com"));
    }

    #[test]
    fn gateway_hosts_by_namespace() {
        let hosts = vec![
            "./a.com".to_string(),
            "ns1/b.com".into(),
            "*/c.com".into(),
            "d.com".into(),
        ];
        assert_eq!(
            hosts_for_namespace(&hosts, "gw", "ns1"),
            vec!["b.com", "c.com", "d.com"]
        );
        assert_eq!(
            hosts_for_namespace(&hosts, "gw", "gw"),
            vec!["a.com", "c.com", "d.com"]
        );
    }
}
