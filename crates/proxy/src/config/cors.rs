//! `envoy.filters.http.cors`: the filter in the connection manager (no options) and the
//! `CorsPolicy` a route or virtual host sets in `typed_per_filter_config`. Runtime in
//! `crate::cors`.

use std::collections::HashMap;

use envoy_types::pb::envoy::extensions::filters::http::cors::v3::{Cors as PbCors, CorsPolicy};
use envoy_types::pb::google::protobuf::Any;
use prost::Name;

use super::{FieldError, FieldResult, StringMatch, unpack_field};
use crate::deny_set;

pub fn is_filter(any: &Any) -> bool {
    any.type_url == PbCors::type_url()
}

pub fn is_policy(any: &Any) -> bool {
    any.type_url == CorsPolicy::type_url()
}

/// The filter takes no options.
pub fn filter(any: &Any) -> FieldResult<()> {
    let cfg: PbCors = unpack_field(any, "typed_config")?;
    let PbCors {} = cfg;
    Ok(())
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cors {
    pub allow_origin: Vec<StringMatch>,
    pub allow_methods: String,
    pub allow_headers: String,
    pub expose_headers: String,
    pub max_age: String,
    pub allow_credentials: bool,
    /// A preflight from an origin that is not allowed goes upstream (default); otherwise the
    /// proxy answers it 200 without CORS headers.
    pub forward_not_matching_preflights: bool,
}

/// The CORS policy among a route's or virtual host's `typed_per_filter_config`, if any.
pub fn policy(map: &HashMap<String, Any>) -> FieldResult<Option<Cors>> {
    let Some((name, any)) = map.iter().find(|(_, a)| is_policy(a)) else {
        return Ok(None);
    };
    let at = format!("typed_per_filter_config[{name:?}]");
    let p: CorsPolicy = unpack_field(any, &at)?;
    parse(&p).map(Some).map_err(|e| e.within(&at))
}

fn parse(p: &CorsPolicy) -> FieldResult<Cors> {
    let CorsPolicy {
        allow_origin_string_match,
        allow_methods,
        allow_headers,
        expose_headers,
        max_age,
        allow_credentials,
        filter_enabled,
        shadow_enabled,
        allow_private_network_access,
        forward_not_matching_preflights,
    } = p;
    deny_set!(filter_enabled, shadow_enabled);
    if allow_private_network_access.is_some_and(|b| b.value) {
        return Err(FieldError::unsupported("allow_private_network_access"));
    }
    let allow_origin = allow_origin_string_match
        .iter()
        .enumerate()
        .map(|(i, m)| {
            StringMatch::try_from(m)
                .map_err(|e| e.within(&format!("allow_origin_string_match[{i}]")))
        })
        .collect::<FieldResult<Vec<_>>>()?;
    Ok(Cors {
        allow_origin,
        allow_methods: allow_methods.clone(),
        allow_headers: allow_headers.clone(),
        expose_headers: expose_headers.clone(),
        max_age: max_age.clone(),
        allow_credentials: allow_credentials.is_some_and(|b| b.value),
        forward_not_matching_preflights: forward_not_matching_preflights.is_none_or(|b| b.value),
    })
}
