//! Connections redirected by iptables (Istio's REDIRECT capture): where the client meant to
//! connect, read with SO_ORIGINAL_DST.

use std::net::SocketAddr;

/// The pre-NAT destination of a redirected connection; `None` when the kernel has none (the
/// connection was not redirected, or the platform has no SO_ORIGINAL_DST).
pub fn original_dst(stream: &tokio::net::TcpStream) -> Option<SocketAddr> {
    let sock = socket2::SockRef::from(stream);
    let local = stream.local_addr().ok()?;
    let addr = if local.is_ipv4() {
        sock.original_dst_v4()
    } else {
        sock.original_dst_v6()
    };
    addr.ok()?.as_socket()
}
