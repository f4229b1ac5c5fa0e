//! Protocol detection for filter-chain selection: Envoy's `http_inspector` (HTTP/1.x request
//! line, HTTP/2 prior-knowledge preface) and `tls_inspector` (ClientHello) listener filters.
//! `detect` is a pure function over the peeked bytes; `sniff` is the thin peek loop around it,
//! bounded by `listener_filters_timeout` so server-first protocols are not held forever.

use std::time::Duration;

use tokio::net::TcpStream;

/// What the first bytes of a connection are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detected {
    /// An HTTP/1.x request line; `http10` for `HTTP/1.0`.
    Http1 { http10: bool },
    /// The HTTP/2 connection preface (h2c with prior knowledge).
    Http2,
    /// A complete TLS ClientHello, with its SNI and ALPN list.
    Tls {
        server_name: Option<String>,
        alpn: Vec<String>,
    },
    /// Anything else: opaque TCP.
    Tcp,
    /// Not decided yet: the bytes so far are a prefix of something recognised.
    NeedMore,
}

impl Detected {
    /// The application protocol Envoy's http_inspector reports (`application_protocols`).
    pub fn application_protocol(&self) -> Option<&'static str> {
        match self {
            Detected::Http1 { http10: true } => Some("http/1.0"),
            Detected::Http1 { http10: false } => Some("http/1.1"),
            Detected::Http2 => Some("h2c"),
            _ => None,
        }
    }
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Longest HTTP/1 request line looked at; a longer one is treated as opaque bytes.
const MAX_REQUEST_LINE: usize = 16 * 1024;
/// Largest prefix peeked (Envoy's default maximum ClientHello size).
const MAX_PEEK: usize = 64 * 1024;

/// Classify the first bytes of a connection.
pub fn detect(b: &[u8]) -> Detected {
    match b.first() {
        None => Detected::NeedMore,
        Some(0x16) => match crate::tls_inspect::parse(b) {
            None if b.len() < MAX_PEEK => Detected::NeedMore,
            Some(i) if i.tls => Detected::Tls {
                server_name: i.server_name,
                alpn: i.alpn,
            },
            _ => Detected::Tcp,
        },
        Some(_) => {
            let n = b.len().min(H2_PREFACE.len());
            if b[..n] == H2_PREFACE[..n] {
                return if n == H2_PREFACE.len() {
                    Detected::Http2
                } else {
                    Detected::NeedMore
                };
            }
            request_line(b)
        }
    }
}

/// `METHOD SP TARGET SP HTTP/1.x CRLF`, judged byte by byte so a wrong byte decides at once.
fn request_line(b: &[u8]) -> Detected {
    enum At {
        Method,
        Target,
        Version(usize),
    }
    let is_tchar = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
    let mut at = At::Method;
    let mut field_len = 0;
    for (i, &c) in b.iter().enumerate().take(MAX_REQUEST_LINE) {
        match at {
            At::Method if c == b' ' && field_len > 0 => (at, field_len) = (At::Target, 0),
            At::Method if is_tchar(c) => field_len += 1,
            At::Target if c == b' ' && field_len > 0 => at = At::Version(0),
            At::Target if c > b' ' && c != 0x7f => field_len += 1,
            At::Version(v) => {
                let ok = match v {
                    0..=6 => c == b"HTTP/1."[v],
                    7 => c == b'0' || c == b'1',
                    8 => c == b'\r',
                    _ => c == b'\n',
                };
                if !ok {
                    return Detected::Tcp;
                }
                if v == 9 {
                    return Detected::Http1 {
                        http10: b[i - 2] == b'0',
                    };
                }
                at = At::Version(v + 1);
            }
            _ => return Detected::Tcp,
        }
    }
    if b.len() >= MAX_REQUEST_LINE {
        Detected::Tcp
    } else {
        Detected::NeedMore
    }
}

/// `listener_filters_timeout` passed with the bytes still undecided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut;

/// Peek (without consuming) until `detect` decides, the peer closes (opaque TCP), or
/// `timeout` passes; `None` waits as long as it takes (Envoy's `listener_filters_timeout: 0s`).
/// Without `http`, only a TLS ClientHello is waited for: any other first byte is opaque TCP.
pub async fn sniff(
    stream: &TcpStream,
    timeout: Option<Duration>,
    http: bool,
) -> Result<Detected, TimedOut> {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut buf = vec![0u8; 4 * 1024];
    let mut last = 0;
    loop {
        let n = within(deadline, stream.peek(&mut buf)).await?.unwrap_or(0);
        let seen = &buf[..n];
        let decided = if http || seen.first() == Some(&0x16) {
            detect(seen)
        } else {
            Detected::Tcp
        };
        match decided {
            // Peek waits for readiness, so zero bytes means the peer closed.
            _ if n == 0 => return Ok(Detected::Tcp),
            Detected::NeedMore if n == last && n == buf.len() => return Ok(Detected::Tcp),
            Detected::NeedMore if n == buf.len() => buf.resize((n * 4).min(MAX_PEEK), 0),
            Detected::NeedMore if n == last => {
                // Peek returns the same bytes until more arrive (or the peer half-closed, when
                // readiness stays set): back off instead of spinning.
                within(deadline, stream.readable()).await?.ok();
                within(deadline, tokio::time::sleep(Duration::from_millis(1))).await?;
            }
            Detected::NeedMore => {}
            decided => return Ok(decided),
        }
        last = n;
    }
}

async fn within<F: std::future::Future>(
    deadline: Option<tokio::time::Instant>,
    f: F,
) -> Result<F::Output, TimedOut> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, f).await.map_err(|_| TimedOut),
        None => Ok(f.await),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(sni: &str) -> Detected {
        Detected::Tls {
            server_name: Some(sni.into()),
            alpn: Vec::new(),
        }
    }

    #[test]
    fn classifies_prefixes_table() {
        let hello = crate::tls_inspect::client_hello("Db.Example");
        let h1 = Detected::Http1 { http10: false };
        let h10 = Detected::Http1 { http10: true };
        let cases: Vec<(&[u8], Detected)> = vec![
            (b"", Detected::NeedMore),
            (b"G", Detected::NeedMore),
            (b"GET", Detected::NeedMore),
            (b"GET ", Detected::NeedMore),
            (b"GET /index.html HTTP/1", Detected::NeedMore),
            (b"GET /index.html HTTP/1.1\r", Detected::NeedMore),
            (b"GET /index.html HTTP/1.1\r\n", h1.clone()),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", h1.clone()),
            (b"POST /x?y=1 HTTP/1.0\r\n", h10),
            (b"OPTIONS * HTTP/1.1\r\n", h1.clone()),
            (b"CONNECT db:3306 HTTP/1.1\r\n", h1.clone()),
            (b"PRI", Detected::NeedMore),
            (b"PRI * HTTP/2.0\r\n", Detected::NeedMore),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Detected::Http2),
            (
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\x12\x04",
                Detected::Http2,
            ),
            (b"PRI * HTTP/1.1\r\n", h1),
            (b"PRI * HTTP/2.0\r\n\r\nXX", Detected::Tcp),
            (&hello, tls("db.example")),
            (&hello[..12], Detected::NeedMore),
            (b"\x16", Detected::NeedMore),
            (b"\x16\x01\x00\x00\x00\x01\x00\x00\x00", Detected::Tcp),
            (b" GET / HTTP/1.1\r\n", Detected::Tcp),
            (b"GET  / HTTP/1.1\r\n", Detected::Tcp),
            (b"GET / HTTP/2.0\r\n", Detected::Tcp),
            (b"GET / HTTP/1.2\r\n", Detected::Tcp),
            (b"GET / HTTP/1.1\n", Detected::Tcp),
            (b"GET /\r\n", Detected::Tcp),
            (b"GE\x00T", Detected::Tcp),
            (b"\x00\x00\x00\x01", Detected::Tcp),
            (b"SSH-2.0-OpenSSH_9.6\r\n", Detected::Tcp),
            (b"\x4a\x00\x00\x00\x0a8.0.36", Detected::Tcp),
        ];
        for (bytes, want) in cases {
            assert_eq!(detect(bytes), want, "{:?}", String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn an_endless_request_line_is_opaque() {
        let mut b = b"GET /".to_vec();
        b.resize(MAX_REQUEST_LINE - 1, b'a');
        assert_eq!(detect(&b), Detected::NeedMore);
        b.push(b'a');
        assert_eq!(detect(&b), Detected::Tcp);
    }

    #[test]
    fn application_protocols_are_envoys_names() {
        let names: Vec<_> = [
            Detected::Http1 { http10: true },
            Detected::Http1 { http10: false },
            Detected::Http2,
            Detected::Tcp,
            tls("a"),
        ]
        .iter()
        .map(Detected::application_protocol)
        .collect();
        assert_eq!(
            names,
            [Some("http/1.0"), Some("http/1.1"), Some("h2c"), None, None]
        );
    }
}
