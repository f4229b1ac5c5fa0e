//! RouteMatch -> `RouteMatch`: path, header and query parameter matchers.

use envoy_types::pb::envoy::config::route::v3 as rt;
use regex::Regex;

use super::{FieldError, FieldResult, StringMatch, full_regex};
use crate::deny_set;

#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch {
    pub path: PathMatch,
    pub case_sensitive: bool,
    pub headers: Vec<HeaderMatcher>,
    pub query: Vec<QueryMatcher>,
}

#[derive(Debug, Clone)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
    /// Matches the path without its query, anchored at both ends.
    Regex(Regex),
    /// `/api` matches `/api` and `/api/...` but not `/apis`.
    SeparatedPrefix(String),
    /// `connect_matcher`: CONNECT requests only (the one way to route an HTTP/1.1 CONNECT).
    Connect,
}

impl PartialEq for PathMatch {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (PathMatch::Prefix(a), PathMatch::Prefix(b))
            | (PathMatch::Exact(a), PathMatch::Exact(b))
            | (PathMatch::SeparatedPrefix(a), PathMatch::SeparatedPrefix(b)) => a == b,
            (PathMatch::Regex(a), PathMatch::Regex(b)) => a.as_str() == b.as_str(),
            (PathMatch::Connect, PathMatch::Connect) => true,
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeaderMatcher {
    /// Lower-cased; pseudo-headers (`:method`, `:path`, `:authority`, `:scheme`) allowed.
    pub name: String,
    /// `None` is a presence test whose expected value is `present`.
    pub value: Option<StringMatch>,
    pub present: bool,
    pub invert: bool,
    pub treat_missing_as_empty: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryMatcher {
    pub name: String,
    /// `None` matches when the parameter is present.
    pub value: Option<StringMatch>,
}

impl TryFrom<&rt::RouteMatch> for RouteMatch {
    type Error = FieldError;
    fn try_from(m: &rt::RouteMatch) -> FieldResult<Self> {
        use rt::route_match::PathSpecifier as P;
        let rt::RouteMatch {
            case_sensitive,
            runtime_fraction,
            headers,
            query_parameters,
            cookies,
            grpc,
            tls_context,
            dynamic_metadata,
            filter_state,
            path_specifier,
        } = m;
        deny_set!(
            runtime_fraction,
            cookies,
            grpc,
            tls_context,
            dynamic_metadata,
            filter_state
        );
        let path = match path_specifier {
            Some(P::Prefix(p)) => PathMatch::Prefix(p.clone()),
            Some(P::Path(p)) => PathMatch::Exact(p.clone()),
            Some(P::SafeRegex(r)) => {
                PathMatch::Regex(full_regex(r).map_err(|e| e.within("safe_regex"))?)
            }
            Some(P::PathSeparatedPrefix(p)) => {
                if p.contains(['?', '#']) || (p.ends_with('/') && p.len() > 1) {
                    return Err(FieldError::invalid(
                        "path_separated_prefix",
                        "must not contain ? or # nor end with /",
                    ));
                }
                PathMatch::SeparatedPrefix(p.clone())
            }
            Some(P::ConnectMatcher(_)) => PathMatch::Connect,
            Some(P::PathMatchPolicy(_)) => {
                return Err(FieldError::unsupported("path_match_policy"));
            }
            None => {
                return Err(FieldError::invalid(
                    "path_specifier",
                    "a path match is required",
                ));
            }
        };
        let headers = headers
            .iter()
            .enumerate()
            .map(|(i, h)| header_matcher(h).map_err(|e| e.within(&format!("headers[{i}]"))))
            .collect::<FieldResult<Vec<_>>>()?;
        let query = query_parameters
            .iter()
            .enumerate()
            .map(|(i, q)| query_matcher(q).map_err(|e| e.within(&format!("query_parameters[{i}]"))))
            .collect::<FieldResult<Vec<_>>>()?;
        Ok(RouteMatch {
            path,
            case_sensitive: case_sensitive.as_ref().is_none_or(|b| b.value),
            headers,
            query,
        })
    }
}

pub(super) fn header_matcher(h: &rt::HeaderMatcher) -> FieldResult<HeaderMatcher> {
    use rt::header_matcher::HeaderMatchSpecifier as S;
    let rt::HeaderMatcher {
        name,
        invert_match,
        treat_missing_header_as_empty,
        header_match_specifier,
    } = h;
    let (value, present) = match header_match_specifier {
        Some(S::ExactMatch(s)) => (Some(StringMatch::Exact(s.clone(), false)), true),
        Some(S::PrefixMatch(s)) => (Some(StringMatch::Prefix(s.clone(), false)), true),
        Some(S::SuffixMatch(s)) => (Some(StringMatch::Suffix(s.clone(), false)), true),
        Some(S::ContainsMatch(s)) => (Some(StringMatch::Contains(s.clone(), false)), true),
        Some(S::SafeRegexMatch(r)) => (
            Some(StringMatch::Regex(
                full_regex(r).map_err(|e| e.within("safe_regex_match"))?,
            )),
            true,
        ),
        Some(S::StringMatch(m)) => (
            Some(StringMatch::try_from(m).map_err(|e| e.within("string_match"))?),
            true,
        ),
        Some(S::PresentMatch(p)) => (None, *p),
        Some(S::RangeMatch(_)) => return Err(FieldError::unsupported("range_match")),
        // No specifier: Envoy treats the matcher as "header is present".
        None => (None, true),
    };
    if name.is_empty() {
        return Err(FieldError::invalid("name", "header name is required"));
    }
    Ok(HeaderMatcher {
        name: name.to_ascii_lowercase(),
        value,
        present,
        invert: *invert_match,
        treat_missing_as_empty: *treat_missing_header_as_empty,
    })
}

fn query_matcher(q: &rt::QueryParameterMatcher) -> FieldResult<QueryMatcher> {
    use rt::query_parameter_matcher::QueryParameterMatchSpecifier as S;
    let rt::QueryParameterMatcher {
        name,
        query_parameter_match_specifier,
    } = q;
    let value = match query_parameter_match_specifier {
        Some(S::StringMatch(m)) => {
            Some(StringMatch::try_from(m).map_err(|e| e.within("string_match"))?)
        }
        Some(S::PresentMatch(true)) | None => None,
        Some(S::PresentMatch(false)) => {
            return Err(FieldError::invalid(
                "present_match",
                "false is not a valid query matcher",
            ));
        }
    };
    Ok(QueryMatcher {
        name: name.clone(),
        value,
    })
}
