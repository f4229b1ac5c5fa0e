//! TLS for the proxy: Envoy's `envoy.transport_sockets.tls` on listener filter chains
//! (`DownstreamTlsContext`) and clusters (`UpstreamTlsContext`), and SDS `Secret`s over ADS.
//! Every use of rustls lives under this module so that a rustls upgrade (0.24 moves the
//! providers out) touches one place. Only the aws-lc-rs provider is used, passed explicitly
//! (`builder_with_provider`), so a second provider in the build can never make a builder panic.
//!
//! - `secret`: PEM data sources, certificate/key pairs, trust roots, `Secret` conversion.
//! - `context`: transport-socket protos -> `DownstreamTls` / `UpstreamTls` (NACKing the rest).
//! - `verify`: certificate verifiers with Envoy's subject-alt-name matching.
//! - `sni`: which of a server's certificates a handshake gets (SNI, then key type).
//! - `build`: rustls server/client configs from a context plus the current secrets; the
//!   handler rebuilds them whenever a secret changes (rotation without a listener restart).
//! - `stream`: one stream type for plain TCP and TLS in both directions.

pub mod build;
pub mod context;
pub mod secret;
pub mod sni;
pub mod state;
pub mod stream;
pub mod verify;

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

pub use build::Secrets;
pub use context::{DownstreamTls, UpstreamTls};
pub use secret::Secret;
pub use stream::Conn;

/// Type URL of `envoy.extensions.transport_sockets.tls.v3.Secret` (SDS).
pub const SECRET_TYPE: &str = plexus_xds::SECRET_TYPE;

/// The one crypto provider (aws-lc-rs), shared by every config.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// `tls_params` protocol versions, as rustls can offer them (TLS 1.2 and 1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Versions {
    pub tls12: bool,
    pub tls13: bool,
}

impl Versions {
    pub fn list(&self) -> Vec<&'static rustls::SupportedProtocolVersion> {
        let mut v = Vec::new();
        if self.tls13 {
            v.push(&rustls::version::TLS13);
        }
        if self.tls12 {
            v.push(&rustls::version::TLS12);
        }
        v
    }
}
