//! Label selection: `matchLabels`-style equality selectors (what Istio's workload selectors
//! are) and the pods they pick.

use std::collections::BTreeMap;

/// A selector matches when every selector label is present with the same value; an empty
/// selector matches everything (Kubernetes' `SelectorFromSet`).
pub fn matches(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// `k1=v1,k2=v2`, sorted by key, as Kubernetes prints a set selector.
pub fn to_string(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn subset_semantics() {
        let labels = m(&[("app", "a"), ("version", "v1")]);
        assert!(matches(&m(&[]), &labels));
        assert!(matches(&m(&[("app", "a")]), &labels));
        assert!(!matches(&m(&[("app", "b")]), &labels));
        assert!(!matches(&m(&[("zone", "x")]), &labels));
        assert_eq!(to_string(&m(&[("b", "2"), ("a", "1")])), "a=1,b=2");
    }
}
