//! `x-request-id` as Envoy's connection manager and its default UUID request-id extension set
//! it: a request without one gets a fresh UUID v4 (`generate_request_id`, on by default); an
//! edge request's own id (external, on a manager with `use_remote_address`) is replaced unless
//! `preserve_external_request_id`, and a preserved UUID has its trace-reason nibble reset to
//! "not traceable" (`pack_trace_reason`, the extension's default); a request that is not edge
//! keeps its id. With `always_set_request_id_in_response`, or when the request carries
//! `x-envoy-force-trace` (which only survives on internal requests), the request's id is copied
//! into the response, local replies included.

use http::{HeaderMap, HeaderValue};
use rand::Rng;

use crate::config::hcm_options::RequestIdOptions;

pub const X_REQUEST_ID: &str = "x-request-id";

/// The UUID nibble where the extension packs the trace reason, and its "not traceable" value.
const TRACE_REASON_AT: usize = 14;
const NOT_TRACEABLE: u8 = b'4';
const UUID_LEN: usize = 36;

/// Set the request's id; returns the value to put in the response, if any.
pub fn on_request(
    headers: &mut HeaderMap,
    opts: &RequestIdOptions,
    edge: bool,
) -> Option<HeaderValue> {
    if opts.generate {
        match headers.get(X_REQUEST_ID) {
            None => {
                headers.insert(X_REQUEST_ID, uuid_v4());
            }
            Some(_) if !edge => {}
            Some(_) if !opts.preserve_external => {
                headers.insert(X_REQUEST_ID, uuid_v4());
            }
            Some(id) => {
                if let Some(reset) = untraced(id) {
                    headers.insert(X_REQUEST_ID, reset);
                }
            }
        }
    }
    if opts.in_response || headers.contains_key("x-envoy-force-trace") {
        headers.get(X_REQUEST_ID).cloned()
    } else {
        None
    }
}

/// A 36-character id with the trace reason reset; `None` when it has another length (the
/// extension leaves those alone) or already says "not traceable".
fn untraced(id: &HeaderValue) -> Option<HeaderValue> {
    let bytes = id.as_bytes();
    if bytes.len() != UUID_LEN || bytes[TRACE_REASON_AT] == NOT_TRACEABLE {
        return None;
    }
    let mut out = [0u8; UUID_LEN];
    out.copy_from_slice(bytes);
    out[TRACE_REASON_AT] = NOT_TRACEABLE;
    HeaderValue::from_bytes(&out).ok()
}

/// A random (version 4, RFC 9562 variant) UUID in lower-case hex. The thread-local generator
/// takes no lock and only reads the OS entropy source when it reseeds, not per id.
pub fn uuid_v4() -> HeaderValue {
    let mut bits: u128 = rand::rng().random();
    bits = (bits & !(0xf << 76)) | (0x4 << 76);
    bits = (bits & !(0x3 << 62)) | (0x2 << 62);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; UUID_LEN];
    let mut nibble = 32;
    for (i, slot) in out.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            *slot = b'-';
            continue;
        }
        nibble -= 1;
        *slot = HEX[((bits >> (nibble * 4)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Whether `s` is a lower-case version 4 UUID of the RFC 9562 variant (what `uuid_v4` and
/// Envoy generate).
pub fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == UUID_LEN
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(c),
        })
        && b[14] == b'4'
        && matches!(b[19], b'8' | b'9' | b'a' | b'b')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(generate: bool, preserve_external: bool, in_response: bool) -> RequestIdOptions {
        RequestIdOptions {
            generate,
            preserve_external,
            in_response,
        }
    }

    fn with_id(id: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static(id));
        h
    }

    fn id(h: &HeaderMap) -> &str {
        h.get(X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    #[test]
    fn generated_ids_are_distinct_v4_uuids() {
        let a = uuid_v4();
        let b = uuid_v4();
        let a = a.to_str().expect("ascii");
        assert!(is_uuid_v4(a), "{a}");
        assert_ne!(a, b.to_str().expect("ascii"));
        assert!(!is_uuid_v4("not-a-uuid"));
        assert!(!is_uuid_v4("0123456789ab-cdef-4123-8123-0123456789ab"));
        assert!(!is_uuid_v4("01234567-89ab-5def-8123-0123456789ab"));
        assert!(!is_uuid_v4("01234567-89ab-4def-c123-0123456789ab"));
    }

    #[test]
    fn missing_ids_are_generated_unless_disabled() {
        let mut h = HeaderMap::new();
        assert_eq!(on_request(&mut h, &opts(true, false, false), false), None);
        assert!(is_uuid_v4(id(&h)));
        let mut h = HeaderMap::new();
        assert_eq!(on_request(&mut h, &opts(false, false, true), true), None);
        assert!(!h.contains_key(X_REQUEST_ID));
    }

    #[test]
    fn edge_requests_lose_their_id_unless_preserved() {
        let mut inner = with_id("abc");
        on_request(&mut inner, &opts(true, false, false), false);
        assert_eq!(id(&inner), "abc");
        let mut edge = with_id("abc");
        on_request(&mut edge, &opts(true, false, false), true);
        assert!(is_uuid_v4(id(&edge)));
        let mut kept = with_id("abc");
        on_request(&mut kept, &opts(true, true, false), true);
        assert_eq!(id(&kept), "abc");
        let mut sampled = with_id("01234567-89ab-9def-8123-0123456789ab");
        on_request(&mut sampled, &opts(true, true, false), true);
        assert_eq!(id(&sampled), "01234567-89ab-4def-8123-0123456789ab");
        let mut off = with_id("abc");
        on_request(&mut off, &opts(false, false, false), true);
        assert_eq!(id(&off), "abc");
    }

    #[test]
    fn response_gets_the_final_id() {
        let mut h = with_id("abc");
        let echoed = on_request(&mut h, &opts(true, false, true), true);
        assert_eq!(echoed.as_ref(), h.get(X_REQUEST_ID));
        assert_ne!(id(&h), "abc");
        let mut forced = with_id("abc");
        forced.insert("x-envoy-force-trace", HeaderValue::from_static("1"));
        let echoed = on_request(&mut forced, &opts(true, false, false), false);
        assert_eq!(echoed, Some(HeaderValue::from_static("abc")));
        let mut none = HeaderMap::new();
        assert_eq!(
            on_request(&mut none, &opts(false, false, true), false),
            None
        );
    }
}
