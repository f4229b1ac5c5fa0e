//! Host names as Istio resolves them (istio-api.md §2): short names expand in the namespace of
//! the config that wrote them, `*.` wildcards match suffixes, the most specific match wins, and
//! `exportTo` decides which namespaces see an object.

/// Kubernetes DNS domain suffix (`<svc>.<ns>.svc.<suffix>`).
pub const DEFAULT_DOMAIN_SUFFIX: &str = "cluster.local";

/// Expand a short name (no dot, not `*`) to `<name>.<namespace>.svc.<suffix>`.
pub fn fqdn(host: &str, namespace: &str, suffix: &str) -> String {
    if host.contains('.') || host == "*" || host.is_empty() {
        host.to_string()
    } else {
        format!("{host}.{namespace}.svc.{suffix}")
    }
}

/// Whether `pattern` (an FQDN, `*.suffix` or `*`) matches the concrete or wildcard `host`.
/// A wildcard host is matched only by a pattern at least as wide.
pub fn matches(pattern: &str, host: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        if let Some(h) = host.strip_prefix('*') {
            return h.ends_with(suffix);
        }
        return host.ends_with(suffix) && host.len() > suffix.len();
    }
    pattern.eq_ignore_ascii_case(host)
}

/// Specificity of a pattern for "most specific match wins": exact beats any wildcard, longer
/// wildcard suffixes beat shorter ones.
pub fn specificity(pattern: &str) -> (bool, usize) {
    (!pattern.starts_with('*'), pattern.len())
}

/// Whether an object in `owner_ns` with `export_to` (empty means `default`) is visible from
/// `client_ns`.
pub fn exported_to(
    export_to: &[String],
    default: &[String],
    owner_ns: &str,
    client_ns: &str,
) -> bool {
    let list = if export_to.is_empty() {
        default
    } else {
        export_to
    };
    if list.is_empty() {
        return true;
    }
    list.iter().any(|e| match e.as_str() {
        "*" => true,
        "~" => false,
        "." => owner_ns == client_ns,
        ns => ns == client_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_rules() {
        assert_eq!(
            fqdn("reviews", "default", DEFAULT_DOMAIN_SUFFIX),
            "reviews.default.svc.cluster.local"
        );
        assert_eq!(fqdn("a.b", "x", "cluster.local"), "a.b");
        assert!(matches("*.example.com", "a.example.com"));
        assert!(!matches("*.example.com", "example.com"));
        assert!(matches("*", "x"));
        assert!(matches("*.com", "*.example.com"));
        assert!(!matches("*.example.com", "*.com"));
        assert!(matches("A.b", "a.B"));
        assert!(specificity("a.b.c") > specificity("*.b.c"));
        assert!(specificity("*.b.c") > specificity("*.c"));
    }

    #[test]
    fn export_rules() {
        let star = vec!["*".to_string()];
        assert!(exported_to(&[], &star, "a", "b"));
        assert!(!exported_to(&[".".into()], &star, "a", "b"));
        assert!(exported_to(&[".".into()], &star, "a", "a"));
        assert!(exported_to(&["b".into()], &star, "a", "b"));
        assert!(!exported_to(&["~".into()], &star, "a", "a"));
        assert!(!exported_to(&[], &[".".into()], "a", "b"));
    }
}
