//! Route `hash_policy` -> `HashPolicy`: what a request hashes on for ring hash and maglev
//! clusters (header, cookie, source IP, query parameter). Evaluated in `crate::lb`.

use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3::route_action::{
    HashPolicy as PbHashPolicy, hash_policy as hp,
};
use http::HeaderName;
use regex::Regex;

use super::{FieldError, FieldResult, duration, search_regex};
use crate::deny_set;

#[derive(Debug, Clone)]
pub struct HashPolicy {
    pub source: HashSource,
    /// Stop at this policy when it produced a hash.
    pub terminal: bool,
}

#[derive(Debug, Clone)]
pub enum HashSource {
    /// The header's value, optionally rewritten first.
    Header(HeaderName, Option<(Regex, String)>),
    /// The cookie's value; with a TTL a missing cookie is generated and set on the response.
    Cookie {
        name: String,
        ttl: Option<Duration>,
        path: String,
    },
    SourceIp,
    QueryParameter(String),
}

impl PartialEq for HashPolicy {
    fn eq(&self, o: &Self) -> bool {
        use HashSource::*;
        self.terminal == o.terminal
            && match (&self.source, &o.source) {
                (Header(a, ra), Header(b, rb)) => {
                    a == b
                        && ra.as_ref().map(|(r, s)| (r.as_str(), s))
                            == rb.as_ref().map(|(r, s)| (r.as_str(), s))
                }
                (
                    Cookie { name, ttl, path },
                    Cookie {
                        name: n2,
                        ttl: t2,
                        path: p2,
                    },
                ) => name == n2 && ttl == t2 && path == p2,
                (SourceIp, SourceIp) => true,
                (QueryParameter(a), QueryParameter(b)) => a == b,
                _ => false,
            }
    }
}

impl HashPolicy {
    pub fn parse_all(list: &[PbHashPolicy]) -> FieldResult<Vec<HashPolicy>> {
        list.iter()
            .enumerate()
            .map(|(i, p)| HashPolicy::parse(p).map_err(|e| e.within(&format!("hash_policy[{i}]"))))
            .collect()
    }

    fn parse(p: &PbHashPolicy) -> FieldResult<HashPolicy> {
        let PbHashPolicy {
            terminal,
            policy_specifier,
        } = p;
        let source = match policy_specifier {
            Some(hp::PolicySpecifier::Header(h)) => header(h)?,
            Some(hp::PolicySpecifier::Cookie(c)) => cookie(c).map_err(|e| e.within("cookie"))?,
            Some(hp::PolicySpecifier::ConnectionProperties(c)) => {
                if !c.source_ip {
                    return Err(FieldError::invalid(
                        "connection_properties.source_ip",
                        "must be true",
                    ));
                }
                HashSource::SourceIp
            }
            Some(hp::PolicySpecifier::QueryParameter(q)) => {
                HashSource::QueryParameter(q.name.clone())
            }
            Some(hp::PolicySpecifier::FilterState(_)) => {
                return Err(FieldError::unsupported("filter_state"));
            }
            None => {
                return Err(FieldError::invalid(
                    "policy_specifier",
                    "a hash source is required",
                ));
            }
        };
        Ok(HashPolicy {
            source,
            terminal: *terminal,
        })
    }
}

fn header(h: &hp::Header) -> FieldResult<HashSource> {
    let name = HeaderName::from_bytes(h.header_name.as_bytes())
        .map_err(|_| FieldError::invalid("header.header_name", "not a valid header name"))?;
    let rewrite = match &h.regex_rewrite {
        Some(r) => {
            let pattern = r
                .pattern
                .as_ref()
                .ok_or_else(|| FieldError::invalid("header.regex_rewrite.pattern", "required"))?;
            let re = search_regex(pattern).map_err(|e| e.within("header.regex_rewrite"))?;
            Some((re, super::action::envoy_substitution(&r.substitution)))
        }
        None => None,
    };
    Ok(HashSource::Header(name, rewrite))
}

fn cookie(c: &hp::Cookie) -> FieldResult<HashSource> {
    let hp::Cookie {
        name,
        ttl,
        path,
        attributes,
    } = c;
    deny_set!(attributes);
    let ttl = match ttl {
        Some(d) => Some(duration(d).map_err(|e| e.within("ttl"))?),
        None => None,
    };
    Ok(HashSource::Cookie {
        name: name.clone(),
        ttl,
        path: path.clone(),
    })
}
