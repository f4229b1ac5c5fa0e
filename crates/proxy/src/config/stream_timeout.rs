//! Route stream timeouts: `max_stream_duration` and the deprecated `max_grpc_timeout` /
//! `grpc_timeout_offset` (runtime side in `crate::grpc_timeout` and `crate::idle`).

use std::time::Duration;

use envoy_types::pb::envoy::config::route::v3 as rt;
use envoy_types::pb::google::protobuf::Duration as PbDuration;

use super::{FieldResult, duration};

/// A route's `max_stream_duration`, each field as configured (`Some(0s)` is meaningful).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamDuration {
    /// `max_stream_duration`: `0s` disables the connection manager's limit for this route.
    pub max: Option<Duration>,
    /// `grpc_timeout_header_max`: when set, a `grpc-timeout` header sets the limit, capped by
    /// this unless it is zero.
    pub grpc_header_max: Option<Duration>,
    /// `grpc_timeout_header_offset`: subtracted from the header's timeout.
    pub grpc_header_offset: Option<Duration>,
}

/// `max_grpc_timeout` (`0s`: the header is not capped) and `grpc_timeout_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcTimeout {
    pub max: Duration,
    pub offset: Option<Duration>,
}

pub fn stream_duration(m: &rt::route_action::MaxStreamDuration) -> FieldResult<StreamDuration> {
    let rt::route_action::MaxStreamDuration {
        max_stream_duration,
        grpc_timeout_header_max,
        grpc_timeout_header_offset,
    } = m;
    let field = |d: &Option<_>, name: &str| -> FieldResult<Option<Duration>> {
        match d {
            Some(d) => Ok(Some(duration(d).map_err(|e| e.within(name))?)),
            None => Ok(None),
        }
    };
    Ok(StreamDuration {
        max: field(max_stream_duration, "max_stream_duration")?,
        grpc_header_max: field(grpc_timeout_header_max, "grpc_timeout_header_max")?,
        grpc_header_offset: field(grpc_timeout_header_offset, "grpc_timeout_header_offset")?,
    })
}

/// `max_grpc_timeout` with its offset; as in Envoy, the offset alone does nothing.
pub fn grpc_timeout(
    max: Option<&PbDuration>,
    offset: Option<&PbDuration>,
) -> FieldResult<Option<GrpcTimeout>> {
    let Some(max) = max else {
        return Ok(None);
    };
    Ok(Some(GrpcTimeout {
        max: duration(max).map_err(|e| e.within("max_grpc_timeout"))?,
        offset: match offset {
            Some(d) => Some(duration(d).map_err(|e| e.within("grpc_timeout_offset"))?),
            None => None,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_is_kept_and_an_offset_needs_a_maximum() {
        let zero = PbDuration::default();
        let m = rt::route_action::MaxStreamDuration {
            max_stream_duration: Some(zero),
            ..Default::default()
        };
        let s = stream_duration(&m).expect("valid");
        assert_eq!(
            s.max,
            Some(Duration::ZERO),
            "0s lifts the limit, unlike unset"
        );
        assert_eq!(s.grpc_header_max, None);
        assert_eq!(grpc_timeout(None, Some(&zero)), Ok(None));
        let bad = PbDuration {
            seconds: -1,
            nanos: 0,
        };
        let err = grpc_timeout(Some(&zero), Some(&bad)).map_err(|e| e.field);
        assert_eq!(err, Err("grpc_timeout_offset".to_string()));
    }
}
