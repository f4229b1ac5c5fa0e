//! Envoy's `tls_inspector` listener filter without terminating TLS: peek at the first bytes of
//! a connection and, when they are a TLS ClientHello, read its SNI. Filter chains match on the
//! result (`transport_protocol` "tls" or "raw_buffer", `server_names`). The peeking is done
//! by `detect::sniff`.

/// What the first bytes of a connection say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inspected {
    pub tls: bool,
    /// Lower-cased SNI of a ClientHello.
    pub server_name: Option<String>,
}

/// `Some` once the bytes decide: not TLS, or a complete ClientHello (with or without SNI).
pub fn parse(b: &[u8]) -> Option<Inspected> {
    let not_tls = Some(Inspected::default());
    match b.first() {
        None => return None,
        Some(0x16) => {}
        Some(_) => return not_tls,
    }
    if b.len() < 9 {
        return None;
    }
    if b[1] != 3 || b[5] != 1 {
        return not_tls;
    }
    let hello_len = (usize::from(b[6]) << 16) | (usize::from(b[7]) << 8) | usize::from(b[8]);
    // The hello may span records; only the common single-record case is read.
    let hello = b.get(9..9 + hello_len)?;
    Some(Inspected {
        tls: true,
        server_name: sni(hello),
    })
}

fn sni(h: &[u8]) -> Option<String> {
    let mut at = 2 + 32;
    let sid = usize::from(*h.get(at)?);
    at += 1 + sid;
    let suites = u16_at(h, at)?;
    at += 2 + suites;
    let comp = usize::from(*h.get(at)?);
    at += 1 + comp;
    let ext_end = at + 2 + u16_at(h, at)?;
    at += 2;
    while at + 4 <= ext_end.min(h.len()) {
        let (ty, len) = (u16_at(h, at)?, u16_at(h, at + 2)?);
        let data = h.get(at + 4..at + 4 + len)?;
        if ty == 0 {
            // server_name_list: list length, then (type 0 = host_name, length, name).
            let name_len = u16_at(data, 3)?;
            let name = data.get(5..5 + name_len)?;
            return std::str::from_utf8(name).ok().map(str::to_ascii_lowercase);
        }
        at += 4 + len;
    }
    None
}

fn u16_at(b: &[u8], at: usize) -> Option<usize> {
    Some((usize::from(*b.get(at)?) << 8) | usize::from(*b.get(at + 1)?))
}

/// A minimal ClientHello carrying `sni` (tests and the differential harness).
pub fn client_hello(sni: &str) -> Vec<u8> {
    let name = sni.as_bytes();
    let mut ext = Vec::new();
    let list_len = name.len() + 3;
    ext.extend_from_slice(&[0, 0]);
    ext.extend_from_slice(&u16::try_from(list_len + 2).unwrap_or(0).to_be_bytes());
    ext.extend_from_slice(&u16::try_from(list_len).unwrap_or(0).to_be_bytes());
    ext.push(0);
    ext.extend_from_slice(&u16::try_from(name.len()).unwrap_or(0).to_be_bytes());
    ext.extend_from_slice(name);
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

    #[test]
    fn reads_sni_and_tells_tls_from_plaintext() {
        let hello = client_hello("API.Payments.example");
        assert_eq!(
            parse(&hello),
            Some(Inspected {
                tls: true,
                server_name: Some("api.payments.example".into())
            })
        );
        assert_eq!(parse(&hello[..20]), None, "incomplete hello");
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Some(Inspected::default()));
        assert_eq!(parse(b""), None);
    }
}
