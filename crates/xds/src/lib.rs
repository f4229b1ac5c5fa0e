//! xDS v3 over `envoy-types`: resource type URLs, the Istio-style node identity, and the
//! state-of-the-world and delta ADS client half (LDS, RDS, CDS, EDS, SDS; (subscribe, ACK/NACK, reconnect with backoff).
//!
//! The data plane (`plexus-proxy`) and the test fakes (`plexus-testkit`) both speak xDS through
//! this crate so that the protobuf dependency sits behind one boundary.

pub mod client;
mod delta;
pub mod node;

pub use envoy_types;
pub use envoy_types::pb;

/// Type URL of `envoy.config.listener.v3.Listener` (LDS).
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// Type URL of `envoy.config.route.v3.RouteConfiguration` (RDS).
pub const ROUTE_TYPE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
/// Type URL of `envoy.config.cluster.v3.Cluster` (CDS).
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// Type URL of `envoy.config.endpoint.v3.ClusterLoadAssignment` (EDS).
pub const ENDPOINT_TYPE: &str =
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

/// Type URL of `envoy.extensions.transport_sockets.tls.v3.Secret` (SDS over ADS).
pub const SECRET_TYPE: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// The order in which Envoy asks for SotW types on a fresh ADS stream (clusters before
/// listeners, so routes never point at clusters the proxy has not heard of yet).
/// Secrets come last: they are asked for by name once listeners or clusters reference them.
pub const SUBSCRIBE_ORDER: [&str; 5] = [
    CLUSTER_TYPE,
    ENDPOINT_TYPE,
    LISTENER_TYPE,
    ROUTE_TYPE,
    SECRET_TYPE,
];

/// Short name of a type URL for logs and metrics (`LDS`, `RDS`, `CDS`, `EDS`, `SDS`, or the
/// URL).
pub fn short_type(type_url: &str) -> &str {
    match type_url {
        LISTENER_TYPE => "LDS",
        ROUTE_TYPE => "RDS",
        CLUSTER_TYPE => "CDS",
        ENDPOINT_TYPE => "EDS",
        SECRET_TYPE => "SDS",
        other => other,
    }
}

/// Decode one `Any` into its message type, checking the type URL first.
pub fn unpack<T: prost::Message + prost::Name + Default>(
    any: &pb::google::protobuf::Any,
) -> Result<T, UnpackError> {
    let want = T::type_url();
    if any.type_url != want {
        return Err(UnpackError::TypeUrl {
            want,
            got: any.type_url.clone(),
        });
    }
    T::decode(any.value.as_slice()).map_err(|e| UnpackError::Decode {
        type_url: want,
        reason: e.to_string(),
    })
}

/// Why an `Any` could not be turned into the message it claims to hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnpackError {
    #[error("expected type {want}, got {got}")]
    TypeUrl { want: String, got: String },
    #[error("cannot decode {type_url}: {reason}")]
    Decode { type_url: String, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::util::pack_any;

    #[test]
    fn type_urls_match_envoy_types() {
        use prost::Name;
        assert_eq!(LISTENER_TYPE, Listener::type_url());
        assert_eq!(CLUSTER_TYPE, Cluster::type_url());
        assert_eq!(
            ROUTE_TYPE,
            pb::envoy::config::route::v3::RouteConfiguration::type_url()
        );
        assert_eq!(
            ENDPOINT_TYPE,
            pb::envoy::config::endpoint::v3::ClusterLoadAssignment::type_url()
        );
        assert_eq!(
            SECRET_TYPE,
            pb::envoy::extensions::transport_sockets::tls::v3::Secret::type_url()
        );
    }

    #[test]
    fn unpack_checks_type_url() {
        let any = pack_any(Cluster {
            name: "c".into(),
            ..Default::default()
        });
        assert_eq!(unpack::<Cluster>(&any).map(|c| c.name), Ok("c".to_string()));
        assert!(matches!(
            unpack::<Listener>(&any),
            Err(UnpackError::TypeUrl { .. })
        ));
    }
}
