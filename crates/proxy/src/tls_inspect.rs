//! Envoy's `tls_inspector` listener filter without terminating TLS: peek at the first bytes of
//! a connection and, when they are a TLS ClientHello, read its SNI and ALPN list. Filter chains
//! match on the result (`transport_protocol` "tls" or "raw_buffer", `server_names`,
//! `application_protocols`). The peeking is done by `detect::sniff`.

/// What the first bytes of a connection say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inspected {
    pub tls: bool,
    /// Lower-cased SNI of a ClientHello.
    pub server_name: Option<String>,
    /// The ClientHello's ALPN protocols, in the client's order.
    pub alpn: Vec<String>,
}

/// `Some` once the bytes decide: not TLS, or a complete ClientHello (with or without SNI).
pub fn parse(b: &[u8]) -> Option<Inspected> {
    let not_tls = Some(Inspected::default());
    match b.first() {
        None => return None,
        Some(0x16) => {}
        Some(_) => return not_tls,
    }
    if b.len() < 6 {
        return None;
    }
    // Record version major 3, and the handshake message must be a ClientHello (type 1).
    let header = reassemble(b, 4)?.unwrap_or_default();
    if b[1] != 3 || header.first() != Some(&1) {
        return not_tls;
    }
    let hello_len =
        (usize::from(header[1]) << 16) | (usize::from(header[2]) << 8) | usize::from(header[3]);
    let handshake = reassemble(b, 4 + hello_len)?;
    let Some(handshake) = handshake else {
        // A record that is not a handshake record interrupts the hello: TLS, nothing to read.
        return Some(Inspected {
            tls: true,
            ..Inspected::default()
        });
    };
    let hello = &handshake[4..];
    let exts = extensions(hello).unwrap_or_default();
    let find = |ty: usize| exts.iter().find(|(t, _)| *t == ty).map(|(_, d)| *d);
    Some(Inspected {
        tls: true,
        server_name: find(0).and_then(sni),
        alpn: find(16).map(alpn).unwrap_or_default(),
    })
}

/// The first `want` bytes of the handshake stream, which may span several records (large
/// ClientHellos are split). `None`: more bytes are needed; `Some(None)`: a record of another
/// type came first.
fn reassemble(b: &[u8], want: usize) -> Option<Option<Vec<u8>>> {
    let mut out = Vec::with_capacity(want);
    let mut at = 0;
    while out.len() < want {
        let header = b.get(at..at + 5)?;
        if header[0] != 0x16 || header[1] != 3 {
            return Some(None);
        }
        let len = (usize::from(header[3]) << 8) | usize::from(header[4]);
        out.extend_from_slice(b.get(at + 5..at + 5 + len)?);
        at += 5 + len;
    }
    out.truncate(want);
    Some(Some(out))
}

/// server_name_list: list length, then (type 0 = host_name, length, name).
fn sni(data: &[u8]) -> Option<String> {
    let name_len = u16_at(data, 3)?;
    let name = data.get(5..5 + name_len)?;
    std::str::from_utf8(name).ok().map(str::to_ascii_lowercase)
}

/// protocol_name_list: list length, then (length, name) pairs.
fn alpn(data: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let Some(list_len) = u16_at(data, 0) else {
        return out;
    };
    let list = data.get(2..2 + list_len).unwrap_or_default();
    let mut at = 0;
    while let Some(&len) = list.get(at) {
        let Some(name) = list.get(at + 1..at + 1 + usize::from(len)) else {
            break;
        };
        out.push(String::from_utf8_lossy(name).into_owned());
        at += 1 + usize::from(len);
    }
    out
}

/// The hello's extensions as (type, data).
fn extensions(h: &[u8]) -> Option<Vec<(usize, &[u8])>> {
    let mut at = 2 + 32;
    let sid = usize::from(*h.get(at)?);
    at += 1 + sid;
    let suites = u16_at(h, at)?;
    at += 2 + suites;
    let comp = usize::from(*h.get(at)?);
    at += 1 + comp;
    let ext_end = at + 2 + u16_at(h, at)?;
    at += 2;
    let mut out = Vec::new();
    while at + 4 <= ext_end.min(h.len()) {
        let (ty, len) = (u16_at(h, at)?, u16_at(h, at + 2)?);
        out.push((ty, h.get(at + 4..at + 4 + len)?));
        at += 4 + len;
    }
    Some(out)
}

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    Some((usize::from(*b.get(at)?) << 8) | usize::from(*b.get(at + 1)?))
}

/// A minimal ClientHello carrying `sni` (tests and the differential harness).
pub fn client_hello(sni: &str) -> Vec<u8> {
    client_hello_alpn(sni, &[])
}

/// A minimal ClientHello carrying `sni` and, when not empty, an ALPN list.
pub fn client_hello_alpn(sni: &str, protocols: &[&str]) -> Vec<u8> {
    let name = sni.as_bytes();
    let mut ext = Vec::new();
    let list_len = name.len() + 3;
    ext.extend_from_slice(&[0, 0]);
    ext.extend_from_slice(&u16::try_from(list_len + 2).unwrap_or(0).to_be_bytes());
    ext.extend_from_slice(&u16::try_from(list_len).unwrap_or(0).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&u16::try_from(name.len()).unwrap_or(0).to_be_bytes());
    ext.extend_from_slice(name);
    if !protocols.is_empty() {
        let list: Vec<u8> = protocols
            .iter()
            .flat_map(|p| std::iter::once(p.len() as u8).chain(p.bytes()))
            .collect();
        ext.extend_from_slice(&[0, 16]);
        ext.extend_from_slice(&u16::try_from(list.len() + 2).unwrap_or(0).to_be_bytes());
        ext.extend_from_slice(&u16::try_from(list.len()).unwrap_or(0).to_be_bytes());
        ext.extend_from_slice(&list);
    }
    let mut hello = vec![3, 3];
    hello.extend_from_slice(&[0u8; 32]);
    hello.push(0);
    hello.extend_from_slice(&[0, 2, 0x13, 0x01]);
    hello.extend_from_slice(&[1, 0]);
    hello.extend_from_slice(&u16::try_from(ext.len()).unwrap_or(0).to_be_bytes());
    hello.extend_from_slice(&ext);
    let len = hello.len();
    let mut out = vec![0x16, 3, 1];
    out.extend_from_slice(&u16::try_from(len + 4).unwrap_or(0).to_be_bytes());
    out.push(1);
    out.extend_from_slice(&[0, (len >> 8) as u8, (len & 0xff) as u8]);
    out.extend_from_slice(&hello);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Re-frame a single-record hello as two handshake records, the first carrying `first`
    /// bytes of the handshake message.
    fn split_records(one: &[u8], first: usize) -> Vec<u8> {
        let body = &one[5..];
        let mut out = Vec::new();
        for part in [&body[..first], &body[first..]] {
            out.extend_from_slice(&[0x16, 3, 1]);
            out.extend_from_slice(&(part.len() as u16).to_be_bytes());
            out.extend_from_slice(part);
        }
        out
    }

    #[test]
    fn reads_sni_and_tells_tls_from_plaintext() {
        let hello = client_hello("API.Payments.example");
        assert_eq!(
            parse(&hello),
            Some(Inspected {
                tls: true,
                server_name: Some("api.payments.example".into()),
                alpn: Vec::new(),
            })
        );
        // The same hello split over two records (as large hellos are) reads the same.
        for first in [2, 20] {
            let split = split_records(&hello, first);
            let partial = parse(&split[..split.len() - 1]);
            assert_eq!(partial, None, "second record incomplete");
            let got = parse(&split).and_then(|i| i.server_name);
            assert_eq!(got.as_deref(), Some("api.payments.example"));
        }
        let with_alpn = client_hello_alpn("a.example", &["istio-peer-exchange", "h2"]);
        let got = parse(&with_alpn).expect("complete");
        assert_eq!(got.server_name.as_deref(), Some("a.example"));
        assert_eq!(got.alpn, ["istio-peer-exchange", "h2"]);
        assert_eq!(parse(&hello[..20]), None, "incomplete hello");
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Some(Inspected::default()));
        assert_eq!(parse(b""), None);
    }
}
