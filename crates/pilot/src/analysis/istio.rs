//! The Istio kinds the analyzers read: `plexus_api::kinds` models, plus small helpers that
//! read their optional fields the way Istio's getters do (absent reads as empty).

pub use plexus_api::kinds::{
    AuthorizationPolicy, Destination, DestinationRule, EnvoyFilter, Gateway, RequestAuthentication,
    Server, ServiceEntry, Sidecar, Telemetry, VirtualService, WasmPlugin,
};

/// A string field, empty when absent.
pub fn s(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

/// A destination's host, empty when absent.
pub fn host(d: &Destination) -> &str {
    s(&d.host)
}

/// A destination's subset, empty when absent.
pub fn subset(d: &Destination) -> &str {
    s(&d.subset)
}

/// A destination's port number, if it selects one.
pub fn port(d: &Destination) -> Option<u32> {
    d.port.as_ref().and_then(|p| p.number)
}

/// The server's port number, if set.
pub fn server_port(server: &Server) -> Option<u32> {
    server.port.as_ref().and_then(|p| p.number)
}
