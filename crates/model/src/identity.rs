//! Workload identities: SPIFFE ids `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.

use std::fmt;

/// A workload identity.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

impl Identity {
    pub fn new(trust_domain: &str, namespace: &str, service_account: &str) -> Identity {
        Identity {
            trust_domain: trust_domain.into(),
            namespace: namespace.into(),
            service_account: service_account.into(),
        }
    }

    /// Parse a SPIFFE id of the Istio form; the error names what is wrong.
    pub fn parse(uri: &str) -> Result<Identity, String> {
        let rest = uri
            .strip_prefix("spiffe://")
            .ok_or_else(|| format!("{uri:?}: a SPIFFE id starts with spiffe://"))?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [td, "ns", ns, "sa", sa] if !td.is_empty() && !ns.is_empty() && !sa.is_empty() => {
                Ok(Identity::new(td, ns, sa))
            }
            _ => Err(format!(
                "{uri:?}: expected spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>"
            )),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let id = Identity::new("cluster.local", "default", "bookinfo-reviews");
        let text = id.to_string();
        assert_eq!(
            text,
            "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
        );
        assert_eq!(Identity::parse(&text), Ok(id));
        assert!(Identity::parse("http://x").is_err());
        assert!(Identity::parse("spiffe://td/ns/a/sb/b").is_err());
        assert!(Identity::parse("spiffe://td/ns//sa/b").is_err());
    }
}
