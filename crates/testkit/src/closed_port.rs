//! A loopback port that refuses connections for as long as the handle lives: a TCP socket bound
//! to `127.0.0.1:0` that never listens. Connecting gets a reset (connection refused), and no
//! other socket can take the port meanwhile — unlike a listener bound and then dropped, whose
//! port a parallel test may be given next.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

pub struct ClosedPort {
    _socket: Socket,
    pub addr: SocketAddr,
}

impl ClosedPort {
    pub fn new() -> std::io::Result<ClosedPort> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        let any: SocketAddr = ([127, 0, 0, 1], 0).into();
        socket.bind(&any.into())?;
        let addr = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| std::io::Error::other("bound address is not an IP socket"))?;
        Ok(ClosedPort {
            _socket: socket,
            addr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_connections_while_held() {
        let port = ClosedPort::new().expect("bind");
        let err = std::net::TcpStream::connect(port.addr).expect_err("nothing listens");
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(
            std::net::TcpListener::bind(port.addr).is_err(),
            "the port stays taken"
        );
    }
}
