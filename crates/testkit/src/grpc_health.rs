//! The gRPC health service (`grpc.health.v1.Health/Check`) of the echo server: each service
//! name has a serving status a test can flip (`EchoHandle::set_health`). The overall service
//! `""` starts SERVING; a name never set answers `NOT_FOUND` (grpc-status 5), as the protocol
//! says. The messages are small enough to encode by hand: `HealthCheckRequest { string
//! service = 1; }` and `HealthCheckResponse { ServingStatus status = 1; }`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// The path of the health check method.
pub const CHECK_PATH: &str = "/grpc.health.v1.Health/Check";

/// `ServingStatus` values.
pub const SERVING: u64 = 1;
pub const NOT_SERVING: u64 = 2;

/// Statuses by service name, and what the last check asked.
#[derive(Debug, Clone)]
pub struct HealthState {
    pub statuses: Arc<Mutex<HashMap<String, u64>>>,
    /// (`:authority`, requested service) of the last check.
    pub last_check: Arc<Mutex<Option<(String, String)>>>,
}

impl Default for HealthState {
    fn default() -> Self {
        HealthState {
            statuses: Arc::new(Mutex::new(HashMap::from([(String::new(), SERVING)]))),
            last_check: Arc::default(),
        }
    }
}

impl HealthState {
    /// (grpc-status, response message) for one framed request.
    pub fn answer(&self, authority: &str, framed: &[u8]) -> (u64, Bytes) {
        let Some(service) = unframe(framed).and_then(service_of) else {
            return (3, Bytes::new()); // INVALID_ARGUMENT
        };
        if let Ok(mut last) = self.last_check.lock() {
            *last = Some((authority.to_string(), service.clone()));
        }
        let status = self
            .statuses
            .lock()
            .ok()
            .and_then(|s| s.get(&service).copied());
        match status {
            Some(status) => (0, frame(&[0x08, status as u8])),
            None => (5, Bytes::new()),
        }
    }
}

/// The message of a gRPC length-prefixed frame (uncompressed only).
fn unframe(b: &[u8]) -> Option<&[u8]> {
    let (&flag, rest) = b.split_first()?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    (flag == 0).then_some(rest.get(4..4 + len)?)
}

fn frame(message: &[u8]) -> Bytes {
    let mut out = vec![0u8];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    Bytes::from(out)
}

/// Field 1 (`service`) of a `HealthCheckRequest`; empty when absent.
fn service_of(msg: &[u8]) -> Option<String> {
    let mut rest = msg;
    let mut service = String::new();
    while let Some((&tag, after)) = rest.split_first() {
        let (len, after) = varint(after)?;
        if tag != 0x0a {
            return None; // no other field is defined
        }
        let bytes = after.get(..len as usize)?;
        service = String::from_utf8(bytes.to_vec()).ok()?;
        rest = &after[len as usize..];
    }
    Some(service)
}

fn varint(b: &[u8]) -> Option<(u64, &[u8])> {
    let mut v = 0u64;
    for (i, byte) in b.iter().enumerate().take(10) {
        v |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, &b[i + 1..]));
        }
    }
    None
}

/// A framed `HealthCheckRequest` for `service` (for tests and checkers).
pub fn request(service: &str) -> Bytes {
    let mut msg = Vec::new();
    if !service.is_empty() {
        msg.push(0x0a);
        let mut n = service.len();
        while n >= 0x80 {
            msg.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        msg.push(n as u8);
        msg.extend_from_slice(service.as_bytes());
    }
    frame(&msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_by_service() {
        let h = HealthState::default();
        assert_eq!(h.answer("a", &request("")), (0, frame(&[0x08, 1])));
        assert_eq!(h.answer("a", &request("reviews")).0, 5);
        h.statuses
            .lock()
            .unwrap()
            .insert("reviews".into(), NOT_SERVING);
        assert_eq!(
            h.answer("auth", &request("reviews")),
            (0, frame(&[0x08, 2]))
        );
        assert_eq!(
            h.last_check.lock().unwrap().clone(),
            Some(("auth".to_string(), "reviews".to_string()))
        );
        assert_eq!(h.answer("a", b"\x00\x00").0, 3);
    }
}
