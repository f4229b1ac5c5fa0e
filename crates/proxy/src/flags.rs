//! Envoy's response flags for responses the proxy produces itself, and the `x-plexus-error`
//! header that names the cause (DESIGN §7).

/// Header naming why the proxy answered instead of the upstream.
pub const ERROR_HEADER: &str = "x-plexus-error";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFlag {
    /// No route (or virtual host, or route configuration) matched.
    NoRoute,
    /// The route's cluster does not exist.
    NoCluster,
    /// The cluster has no endpoints.
    NoHealthyUpstream,
    /// Connecting to the upstream failed or timed out.
    UpstreamConnectFailure,
    /// The upstream closed or reset the connection before a response.
    UpstreamConnectionTermination,
    /// The route timeout fired before the response started.
    UpstreamRequestTimeout,
    /// The downstream went away before the response was complete.
    DownstreamConnectionTermination,
    /// A circuit breaker refused the request (`max_requests`, `max_pending_requests`).
    UpstreamOverflow,
    /// An HTTP upgrade the configuration does not allow (Envoy answers 403 too).
    UpgradeFailed,
    /// An HTTP stream idled out (`stream_idle_timeout`, route `idle_timeout`), or a TCP proxy
    /// connection was closed for inactivity.
    StreamIdleTimeout,
    /// An HTTP stream outlived its `max_stream_duration`.
    DurationTimeout,
    /// The fault filter aborted the request.
    FaultInjected,
    /// The fault filter delayed the request.
    DelayInjected,
    /// Retries were exhausted; the last attempt's outcome was returned.
    UpstreamRetryLimitExceeded,
    /// The request body was too large to buffer for retries.
    RequestBodyTooLarge,
}

impl ResponseFlag {
    /// Envoy's short code.
    pub fn code(self) -> &'static str {
        match self {
            ResponseFlag::NoRoute => "NR",
            ResponseFlag::NoCluster => "NC",
            ResponseFlag::NoHealthyUpstream => "UH",
            ResponseFlag::UpstreamConnectFailure => "UF",
            ResponseFlag::UpstreamConnectionTermination => "UC",
            ResponseFlag::UpstreamRequestTimeout => "UT",
            ResponseFlag::DownstreamConnectionTermination => "DC",
            ResponseFlag::UpstreamRetryLimitExceeded => "URX",
            ResponseFlag::FaultInjected => "FI",
            ResponseFlag::StreamIdleTimeout => "SI",
            ResponseFlag::DurationTimeout => "DT",
            // Envoy reports this only as response code detail `upgrade_failed`.
            ResponseFlag::UpgradeFailed => "UPF",
            ResponseFlag::UpstreamOverflow => "UO",
            ResponseFlag::DelayInjected => "DI",
            // Envoy has no flag for this; its buffer filter answers 413 the same way.
            ResponseFlag::RequestBodyTooLarge => "RBT",
        }
    }
}
