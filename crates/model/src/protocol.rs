//! The protocol of a service port, decided as Istio does (istio-api.md §2): Kubernetes
//! `appProtocol` first, else the port name's `<proto>[-suffix]` prefix; ServiceEntry ports
//! name it in `protocol`.

use std::fmt;

/// An application protocol Istio recognises on a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Http,
    Http2,
    Https,
    Grpc,
    GrpcWeb,
    Tcp,
    Tls,
    Mongo,
    Mysql,
    Redis,
    Udp,
    /// No recognisable name: Istio sniffs the protocol. Plexus does not sniff (yet); translation
    /// treats such ports as TCP and says so in a warning.
    Unknown,
}

impl Protocol {
    /// Parse a protocol name (`HTTP`, `http2`, `GRPC-Web`...), case-insensitively.
    pub fn parse(name: &str) -> Option<Protocol> {
        let p = match name.to_ascii_lowercase().as_str() {
            "http" => Protocol::Http,
            "http2" | "kubernetes.io/h2c" => Protocol::Http2,
            "https" => Protocol::Https,
            "grpc" => Protocol::Grpc,
            "grpc-web" => Protocol::GrpcWeb,
            "tcp" => Protocol::Tcp,
            "tls" => Protocol::Tls,
            "mongo" => Protocol::Mongo,
            "mysql" => Protocol::Mysql,
            "redis" => Protocol::Redis,
            "udp" => Protocol::Udp,
            "kubernetes.io/ws" | "kubernetes.io/wss" => Protocol::Http,
            _ => return None,
        };
        Some(p)
    }

    /// A Kubernetes port: `appProtocol` wins, then the name prefix before the first `-`
    /// (`http-web` is HTTP; `grpc-web` as a whole name is gRPC-Web).
    pub fn of_port(name: Option<&str>, app_protocol: Option<&str>) -> Protocol {
        if let Some(p) = app_protocol.and_then(Protocol::parse) {
            return p;
        }
        let Some(name) = name else {
            return Protocol::Unknown;
        };
        if name.eq_ignore_ascii_case("grpc-web")
            || name.to_ascii_lowercase().starts_with("grpc-web-")
        {
            return Protocol::GrpcWeb;
        }
        let prefix = name.split('-').next().unwrap_or(name);
        Protocol::parse(prefix).unwrap_or(Protocol::Unknown)
    }

    /// HTTP routes apply: HTTP/1.1, HTTP/2, gRPC, gRPC-Web.
    pub fn is_http(self) -> bool {
        matches!(
            self,
            Protocol::Http | Protocol::Http2 | Protocol::Grpc | Protocol::GrpcWeb
        )
    }

    /// The upstream speaks HTTP/2 (gRPC included).
    pub fn is_http2(self) -> bool {
        matches!(self, Protocol::Http2 | Protocol::Grpc)
    }

    /// TLS routes apply (SNI routing of unterminated TLS).
    pub fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Tls)
    }

    /// Istio's upper-case spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "HTTP",
            Protocol::Http2 => "HTTP2",
            Protocol::Https => "HTTPS",
            Protocol::Grpc => "GRPC",
            Protocol::GrpcWeb => "GRPC-WEB",
            Protocol::Tcp => "TCP",
            Protocol::Tls => "TLS",
            Protocol::Mongo => "MONGO",
            Protocol::Mysql => "MYSQL",
            Protocol::Redis => "REDIS",
            Protocol::Udp => "UDP",
            Protocol::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_protocol_table() {
        let cases = [
            (Some("http"), None, Protocol::Http),
            (Some("http-web"), None, Protocol::Http),
            (Some("HTTP2"), None, Protocol::Http2),
            (Some("grpc-web"), None, Protocol::GrpcWeb),
            (Some("grpc-api"), None, Protocol::Grpc),
            (Some("tcp-db"), None, Protocol::Tcp),
            (Some("https"), None, Protocol::Https),
            (Some("tls-x"), None, Protocol::Tls),
            (Some("web"), None, Protocol::Unknown),
            (None, None, Protocol::Unknown),
            (Some("web"), Some("http"), Protocol::Http),
            (Some("http"), Some("kubernetes.io/h2c"), Protocol::Http2),
            (Some("tcp"), Some("grpc"), Protocol::Grpc),
            (Some("mongo"), Some("bogus"), Protocol::Mongo),
        ];
        for (name, app, want) in cases {
            assert_eq!(Protocol::of_port(name, app), want, "{name:?} {app:?}");
        }
    }
}
