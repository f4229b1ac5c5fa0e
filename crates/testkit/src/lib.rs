//! Test doubles shared by Plexus tests: echo servers (HTTP/1.1 + h2c, TCP), a fake ADS server
//! with a push API that records ACKs and NACKs, a launcher for a real Envoy, polling helpers,
//! and TLS helpers (a test CA, rustls configs, an HTTPS client).

pub mod ads;
mod ads_delta;
pub mod closed_port;
pub mod echo;
pub mod envoy;
pub mod eventually;
pub mod grpc_health;
pub mod tls;

pub use ads::{AckRecord, FakeAds};
pub use closed_port::ClosedPort;
pub use echo::{EchoConfig, EchoHandle, TcpEchoHandle};
pub use envoy::{Envoy, EnvoyError};
pub use eventually::eventually;
