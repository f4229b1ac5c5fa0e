//! `Cluster.health_checks` -> `HealthCheck`: Envoy's active HTTP (HTTP/1.1 or HTTP/2), gRPC
//! (`grpc.health.v1`) and TCP health checks with their timing (timeout, interval, jitter,
//! no-traffic interval), thresholds and `reuse_connection`. Everything else in the message
//! (custom checkers, edge intervals, TLS options, ...) is rejected by name.

use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3 as core;
use envoy_types::pb::envoy::config::core::v3::health_check as hc;
use http::{HeaderName, HeaderValue};

use super::{FieldError, FieldResult, duration};
use crate::deny_set;

/// Envoy's default `no_traffic_interval`.
const NO_TRAFFIC_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub timeout: Duration,
    pub interval: Duration,
    /// Extra wait added at random (0..jitter) to every interval.
    pub interval_jitter: Duration,
    pub interval_jitter_percent: u32,
    /// Interval used until the cluster has routed any traffic.
    pub no_traffic_interval: Duration,
    pub unhealthy_threshold: u32,
    pub healthy_threshold: u32,
    /// Keep one connection per host across checks (Envoy's default, true).
    pub reuse_connection: bool,
    pub kind: CheckKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    Http(HttpCheck),
    Tcp(TcpCheck),
    Grpc(GrpcCheck),
}

/// `grpc_health_check`: `grpc.health.v1.Health/Check` over HTTP/2.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpcCheck {
    /// The `service` of the request; empty asks about the server as a whole.
    pub service_name: String,
    /// `:authority`; empty means the cluster name.
    pub authority: String,
    /// `initial_metadata`: headers added to the request.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HttpCheck {
    pub path: String,
    /// Empty means the cluster name (Envoy's default authority).
    pub host: String,
    /// Half-open `[start, end)` status ranges; Envoy's default is `[200, 201)`.
    pub expected: Vec<(u16, u16)>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `codec_client_type: HTTP2` (prior knowledge); HTTP/1.1 otherwise.
    pub http2: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpCheck {
    pub send: Vec<u8>,
    /// Each block must appear in the response, in order; none means connect-only.
    pub receive: Vec<Vec<u8>>,
}

fn required(
    d: &Option<envoy_types::pb::google::protobuf::Duration>,
    f: &str,
) -> FieldResult<Duration> {
    let d = d
        .as_ref()
        .ok_or_else(|| FieldError::invalid(f, "is required"))?;
    duration(d).map_err(|e| e.within(f))
}

fn threshold(
    v: &Option<envoy_types::pb::google::protobuf::UInt32Value>,
    f: &str,
) -> FieldResult<u32> {
    match v {
        Some(v) if v.value > 0 => Ok(v.value),
        _ => Err(FieldError::invalid(f, "is required and must be at least 1")),
    }
}

impl TryFrom<&core::HealthCheck> for HealthCheck {
    type Error = FieldError;
    fn try_from(h: &core::HealthCheck) -> FieldResult<Self> {
        let core::HealthCheck {
            timeout,
            interval,
            initial_jitter,
            interval_jitter,
            interval_jitter_percent,
            unhealthy_threshold,
            healthy_threshold,
            alt_port,
            reuse_connection,
            no_traffic_interval,
            no_traffic_healthy_interval,
            unhealthy_interval,
            unhealthy_edge_interval,
            healthy_edge_interval,
            event_log_path,
            event_logger,
            event_service,
            always_log_health_check_failures,
            always_log_health_check_success,
            tls_options,
            transport_socket_match_criteria,
            health_checker,
        } = h;
        deny_set!(
            initial_jitter,
            alt_port,
            no_traffic_healthy_interval,
            unhealthy_interval,
            unhealthy_edge_interval,
            healthy_edge_interval,
            event_log_path,
            event_logger,
            event_service,
            always_log_health_check_failures,
            always_log_health_check_success,
            tls_options,
            transport_socket_match_criteria,
        );
        let kind = match health_checker {
            Some(hc::HealthChecker::HttpHealthCheck(h)) => {
                CheckKind::Http(http(h).map_err(|e| e.within("http_health_check"))?)
            }
            Some(hc::HealthChecker::TcpHealthCheck(t)) => {
                CheckKind::Tcp(tcp(t).map_err(|e| e.within("tcp_health_check"))?)
            }
            Some(hc::HealthChecker::GrpcHealthCheck(g)) => {
                CheckKind::Grpc(grpc(g).map_err(|e| e.within("grpc_health_check"))?)
            }
            Some(hc::HealthChecker::CustomHealthCheck(_)) => {
                return Err(FieldError::unsupported("custom_health_check"));
            }
            None => return Err(FieldError::invalid("health_checker", "is required")),
        };
        Ok(HealthCheck {
            timeout: required(timeout, "timeout")?,
            interval: required(interval, "interval")?,
            interval_jitter: match interval_jitter {
                Some(d) => duration(d).map_err(|e| e.within("interval_jitter"))?,
                None => Duration::ZERO,
            },
            interval_jitter_percent: *interval_jitter_percent,
            no_traffic_interval: match no_traffic_interval {
                Some(d) => duration(d).map_err(|e| e.within("no_traffic_interval"))?,
                None => NO_TRAFFIC_INTERVAL,
            },
            unhealthy_threshold: threshold(unhealthy_threshold, "unhealthy_threshold")?,
            healthy_threshold: threshold(healthy_threshold, "healthy_threshold")?,
            reuse_connection: reuse_connection.as_ref().is_none_or(|b| b.value),
            kind,
        })
    }
}

/// The cluster's `health_checks`: Plexus runs at most one checker per cluster.
pub fn from_cluster(checks: &[core::HealthCheck]) -> FieldResult<Option<HealthCheck>> {
    if checks.len() > 1 {
        return Err(FieldError::unsupported("health_checks[1]"));
    }
    checks
        .first()
        .map(|h| HealthCheck::try_from(h).map_err(|e| e.within("health_checks[0]")))
        .transpose()
}

fn http(h: &hc::HttpHealthCheck) -> FieldResult<HttpCheck> {
    let hc::HttpHealthCheck {
        host,
        path,
        send,
        receive,
        response_buffer_size,
        request_headers_to_add,
        request_headers_to_remove,
        expected_statuses,
        retriable_statuses,
        codec_client_type,
        service_name_matcher,
        method,
    } = h;
    deny_set!(
        send,
        receive,
        response_buffer_size,
        request_headers_to_remove,
        retriable_statuses,
        service_name_matcher,
        method,
    );
    let http2 = match codec_client_type {
        0 => false,
        1 => true,
        n => {
            return Err(FieldError::unsupported(format!(
                "codec_client_type ({})",
                envoy_types::pb::envoy::r#type::v3::CodecClientType::try_from(*n)
                    .map_or("unknown", |t| t.as_str_name())
            )));
        }
    };
    if !path.starts_with('/') {
        return Err(FieldError::invalid("path", "must start with '/'"));
    }
    let mut expected = Vec::new();
    for (i, r) in expected_statuses.iter().enumerate() {
        let ok = (100..=600).contains(&r.start) && r.start < r.end && r.end <= 600;
        if !ok {
            return Err(FieldError::invalid(
                format!("expected_statuses[{i}]"),
                format!("[{}, {}) is not a range of HTTP statuses", r.start, r.end),
            ));
        }
        expected.push((r.start as u16, r.end as u16));
    }
    if expected.is_empty() {
        expected.push((200, 201));
    }
    Ok(HttpCheck {
        path: path.clone(),
        host: host.clone(),
        expected,
        headers: added(request_headers_to_add, "request_headers_to_add")?,
        http2,
    })
}

/// Headers to add, as (name, value) pairs; errors name `field`.
fn added(
    options: &[core::HeaderValueOption],
    field: &str,
) -> FieldResult<Vec<(HeaderName, HeaderValue)>> {
    let mutation = super::HeaderMutation::parse(options, &[]).map_err(|e| FieldError {
        field: e.field.replacen("headers_to_add", field, 1),
        ..e
    })?;
    Ok(mutation.add.into_iter().map(|(n, v, _)| (n, v)).collect())
}

fn grpc(g: &hc::GrpcHealthCheck) -> FieldResult<GrpcCheck> {
    let hc::GrpcHealthCheck {
        service_name,
        authority,
        initial_metadata,
    } = g;
    Ok(GrpcCheck {
        service_name: service_name.clone(),
        authority: authority.clone(),
        headers: added(initial_metadata, "initial_metadata")?,
    })
}

fn tcp(t: &hc::TcpHealthCheck) -> FieldResult<TcpCheck> {
    let hc::TcpHealthCheck {
        send,
        receive,
        proxy_protocol_config,
    } = t;
    deny_set!(proxy_protocol_config);
    let send = match send {
        Some(p) => payload(p).map_err(|e| e.within("send"))?,
        None => Vec::new(),
    };
    let mut blocks = Vec::new();
    for (i, p) in receive.iter().enumerate() {
        blocks.push(payload(p).map_err(|e| e.within(&format!("receive[{i}]")))?);
    }
    Ok(TcpCheck {
        send,
        receive: blocks,
    })
}

fn payload(p: &hc::Payload) -> FieldResult<Vec<u8>> {
    match &p.payload {
        Some(hc::payload::Payload::Binary(b)) => Ok(b.clone()),
        Some(hc::payload::Payload::Text(t)) => hex(t)
            .ok_or_else(|| FieldError::invalid("text", format!("{t:?} is not hex-encoded bytes"))),
        None => Err(FieldError::invalid("payload", "is required")),
    }
}

fn hex(t: &str) -> Option<Vec<u8>> {
    if !t.len().is_multiple_of(2) {
        return None;
    }
    (0..t.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(t.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::google::protobuf::{Duration as PbDuration, UInt32Value};

    fn base(checker: hc::HealthChecker) -> core::HealthCheck {
        let ms = |n: i32| PbDuration {
            seconds: 0,
            nanos: n * 1_000_000,
        };
        core::HealthCheck {
            timeout: Some(ms(100)),
            interval: Some(ms(20)),
            unhealthy_threshold: Some(UInt32Value { value: 2 }),
            healthy_threshold: Some(UInt32Value { value: 3 }),
            health_checker: Some(checker),
            ..Default::default()
        }
    }

    #[test]
    fn tcp_payloads_decode_hex() {
        let t = hc::TcpHealthCheck {
            send: Some(hc::Payload {
                payload: Some(hc::payload::Payload::Text("50494e47".into())),
            }),
            receive: vec![hc::Payload {
                payload: Some(hc::payload::Payload::Binary(b"PONG".to_vec())),
            }],
            ..Default::default()
        };
        let h = HealthCheck::try_from(&base(hc::HealthChecker::TcpHealthCheck(t))).unwrap();
        assert_eq!(
            h.kind,
            CheckKind::Tcp(TcpCheck {
                send: b"PING".to_vec(),
                receive: vec![b"PONG".to_vec()]
            })
        );
        assert_eq!(h.no_traffic_interval, NO_TRAFFIC_INTERVAL);
        assert_eq!((h.unhealthy_threshold, h.healthy_threshold), (2, 3));
    }

    #[test]
    fn unsupported_fields_are_named() {
        let http = hc::HttpHealthCheck {
            path: "/h".into(),
            retriable_statuses: vec![Default::default()],
            ..Default::default()
        };
        let e = HealthCheck::try_from(&base(hc::HealthChecker::HttpHealthCheck(http))).unwrap_err();
        assert_eq!(e.field, "http_health_check.retriable_statuses");
        let http3 = hc::HttpHealthCheck {
            path: "/h".into(),
            codec_client_type: envoy_types::pb::envoy::r#type::v3::CodecClientType::Http3 as i32,
            ..Default::default()
        };
        let e =
            HealthCheck::try_from(&base(hc::HealthChecker::HttpHealthCheck(http3))).unwrap_err();
        assert_eq!(e.field, "http_health_check.codec_client_type (HTTP3)");
        let mut h = base(hc::HealthChecker::GrpcHealthCheck(hc::GrpcHealthCheck {
            service_name: "reviews".into(),
            authority: "reviews.default".into(),
            ..Default::default()
        }));
        let parsed = HealthCheck::try_from(&h).unwrap();
        assert!(parsed.reuse_connection, "Envoy's default");
        assert_eq!(
            parsed.kind,
            CheckKind::Grpc(GrpcCheck {
                service_name: "reviews".into(),
                authority: "reviews.default".into(),
                headers: vec![],
            })
        );
        h.unhealthy_edge_interval = h.interval;
        assert_eq!(
            HealthCheck::try_from(&h).unwrap_err().field,
            "unhealthy_edge_interval"
        );
        let mut h = base(hc::HealthChecker::TcpHealthCheck(Default::default()));
        h.timeout = None;
        assert_eq!(HealthCheck::try_from(&h).unwrap_err().field, "timeout");
    }

    #[test]
    fn http_defaults_to_200() {
        let http = hc::HttpHealthCheck {
            path: "/healthz".into(),
            ..Default::default()
        };
        let h = HealthCheck::try_from(&base(hc::HealthChecker::HttpHealthCheck(http))).unwrap();
        let CheckKind::Http(http) = h.kind else {
            panic!("not an http check")
        };
        assert_eq!(http.expected, vec![(200, 201)]);
    }
}
