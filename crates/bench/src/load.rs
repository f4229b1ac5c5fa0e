//! The load generator: a fixed number of keep-alive connections, one request in flight per
//! connection, driven either closed-loop (as fast as answers come back, for throughput) or
//! open-loop at a fixed rate (for latency, corrected for coordinated omission).
//!
//! HTTP/1.1 uses a lean hand-written client (one pre-built request, `httparse` for the
//! response) so that the generator, which shares its core with the upstream, costs as little
//! as possible. gRPC unary uses hyper's HTTP/2 client connection, one stream at a time per
//! connection (like `h2load -m1`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::upstream::grpc_frame;

/// Size of the protobuf message in a gRPC request.
pub const GRPC_REQUEST_BYTES: usize = 128;
/// No single request may take longer than this; a stuck proxy fails the phase, not the run.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Which protocol the generator speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proto {
    /// HTTP/1.1 `GET /` with keep-alive.
    H1,
    /// gRPC unary over h2c (`POST /bench.Echo/Unary`, trailers).
    Grpc,
}

impl Proto {
    pub fn label(self) -> &'static str {
        match self {
            Proto::H1 => "http1",
            Proto::Grpc => "grpc",
        }
    }
}

const H1_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

struct H1Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

enum Conn {
    H1(H1Conn),
    Grpc(SendRequest<Full<Bytes>>, Bytes),
}

async fn open(addr: SocketAddr, proto: Proto) -> anyhow::Result<Conn> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect {addr}"))?;
    stream.set_nodelay(true)?;
    match proto {
        Proto::H1 => Ok(Conn::H1(H1Conn {
            stream,
            buf: Vec::with_capacity(4096),
        })),
        Proto::Grpc => {
            let (send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .context("h2 handshake")?;
            tokio::spawn(conn);
            Ok(Conn::Grpc(send, grpc_frame(GRPC_REQUEST_BYTES)))
        }
    }
}

impl Conn {
    async fn call(&mut self) -> anyhow::Result<()> {
        let fut = async {
            match self {
                Conn::H1(c) => c.call().await,
                Conn::Grpc(send, body) => grpc_call(send, body.clone()).await,
            }
        };
        tokio::time::timeout(CALL_TIMEOUT, fut)
            .await
            .map_err(|_| anyhow!("request timed out after {CALL_TIMEOUT:?}"))?
    }
}

/// How the response body is delimited.
enum Framing {
    Length(usize),
    Chunked,
}

impl H1Conn {
    async fn call(&mut self) -> anyhow::Result<()> {
        self.stream.write_all(H1_REQUEST).await?;
        self.buf.clear();
        let (head, framing) = loop {
            if let Some(parsed) = parse_head(&self.buf)? {
                break parsed;
            }
            self.fill().await?;
        };
        match framing {
            Framing::Length(n) => {
                while self.buf.len() < head + n {
                    self.fill().await?;
                }
            }
            Framing::Chunked => self.read_chunked(head).await?,
        }
        Ok(())
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        self.buf.reserve(4096);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            bail!("connection closed mid-response");
        }
        Ok(())
    }

    async fn read_chunked(&mut self, mut pos: usize) -> anyhow::Result<()> {
        loop {
            match httparse::parse_chunk_size(&self.buf[pos..]) {
                Ok(httparse::Status::Complete((used, 0))) => {
                    // Last chunk: no trailers expected, just the closing CRLF.
                    while self.buf.len() < pos + used + 2 {
                        self.fill().await?;
                    }
                    return Ok(());
                }
                Ok(httparse::Status::Complete((used, size))) => {
                    let size = usize::try_from(size)?;
                    while self.buf.len() < pos + used + size + 2 {
                        self.fill().await?;
                    }
                    pos += used + size + 2;
                }
                Ok(httparse::Status::Partial) => self.fill().await?,
                Err(_) => bail!("bad chunk size"),
            }
        }
    }
}

/// Parse a complete response head: its length and body framing. Non-200 is an error.
fn parse_head(buf: &[u8]) -> anyhow::Result<Option<(usize, Framing)>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head) = resp.parse(buf)? else {
        return Ok(None);
    };
    if resp.code != Some(200) {
        bail!("status {:?}", resp.code);
    }
    let mut framing = Framing::Length(0);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            framing = Framing::Length(std::str::from_utf8(h.value)?.trim().parse()?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
            && h.value.eq_ignore_ascii_case(b"chunked")
        {
            framing = Framing::Chunked;
        }
    }
    Ok(Some((head, framing)))
}

async fn grpc_call(send: &mut SendRequest<Full<Bytes>>, body: Bytes) -> anyhow::Result<()> {
    let req = http::Request::builder()
        .method(http::Method::POST)
        .uri("http://bench/bench.Echo/Unary")
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(Full::new(body))?;
    send.ready().await?;
    let resp = send.send_request(req).await?;
    if resp.status() != http::StatusCode::OK {
        bail!("status {}", resp.status());
    }
    let in_headers = resp.headers().get("grpc-status").cloned();
    let collected = resp.into_body().collect().await?;
    let status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status").cloned())
        .or(in_headers);
    match status {
        Some(s) if s == "0" => Ok(()),
        other => bail!("grpc-status {other:?}"),
    }
}

/// One request on a fresh connection: readiness check.
pub async fn probe(addr: SocketAddr, proto: Proto) -> anyhow::Result<()> {
    open(addr, proto).await?.call().await
}

/// Result of a closed-loop phase.
pub struct Throughput {
    pub requests: u64,
    pub errors: u64,
    pub elapsed: Duration,
    pub first_error: Option<String>,
}

/// Result of an open-loop phase.
pub struct Latency {
    pub requests: u64,
    pub errors: u64,
    pub hist: Histogram<u64>,
    pub first_error: Option<String>,
}

impl Throughput {
    /// Adds another slice of the same setup's throughput phase (the phases run in rounds).
    pub fn merge(&mut self, other: Throughput) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.elapsed += other.elapsed;
        self.first_error = self.first_error.take().or(other.first_error);
    }
}

impl Latency {
    /// Adds another slice of the same setup's latency phase (the phases run in rounds).
    pub fn merge(&mut self, other: Latency) -> anyhow::Result<()> {
        self.requests += other.requests;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.hist
            .add(&other.hist)
            .map_err(|e| anyhow!("histogram: {e}"))
    }
}

/// Per-connection tallies, merged after the phase.
struct Tally {
    requests: u64,
    errors: u64,
    hist: Histogram<u64>,
    first_error: Option<String>,
}

fn histogram() -> Histogram<u64> {
    // 1 ns .. 60 s at 3 significant digits: constant, valid bounds.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid constant histogram bounds")
}

impl Tally {
    fn new() -> Tally {
        Tally {
            requests: 0,
            errors: 0,
            hist: histogram(),
            first_error: None,
        }
    }

    fn error(&mut self, e: &anyhow::Error) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{e:#}"));
        }
    }
}

/// After an error the connection is reopened; a proxy that refuses connections ends the
/// connection's work for the phase (bounded: errors are counted, never retried in a loop).
async fn reopen(addr: SocketAddr, proto: Proto, tally: &mut Tally) -> Option<Conn> {
    match open(addr, proto).await {
        Ok(c) => Some(c),
        Err(e) => {
            tally.error(&e);
            None
        }
    }
}

/// `conns` connections, each sending its next request as soon as the last one is answered,
/// until `duration` has passed.
pub async fn closed_loop(
    addr: SocketAddr,
    proto: Proto,
    conns: usize,
    duration: Duration,
) -> anyhow::Result<Throughput> {
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = Vec::with_capacity(conns);
    for _ in 0..conns {
        let conn = open(addr, proto).await?;
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::new();
            let mut conn = Some(conn);
            while Instant::now() < end {
                let Some(c) = conn.as_mut() else { break };
                match c.call().await {
                    Ok(()) => tally.requests += 1,
                    Err(e) => {
                        tally.error(&e);
                        conn = reopen(addr, proto, &mut tally).await;
                    }
                }
            }
            tally
        }));
    }
    let tallies = join(tasks).await?;
    let elapsed = start.elapsed();
    let mut out = Throughput {
        requests: 0,
        errors: 0,
        elapsed,
        first_error: None,
    };
    for t in tallies {
        out.requests += t.requests;
        out.errors += t.errors;
        out.first_error = out.first_error.or(t.first_error);
    }
    Ok(out)
}

/// `conns` connections sharing `rate` requests per second, each on its own fixed schedule
/// (wrk2-style). Latency counts from the scheduled send time when the connection was still
/// busy with the previous request at that time (coordinated omission), and from the actual
/// send time otherwise (so the runtime's timer granularity is not counted as latency).
pub async fn open_loop(
    addr: SocketAddr,
    proto: Proto,
    conns: usize,
    rate: f64,
    duration: Duration,
) -> anyhow::Result<Latency> {
    let interval = Duration::from_secs_f64(conns as f64 / rate);
    let mut opened = Vec::with_capacity(conns);
    for _ in 0..conns {
        opened.push(open(addr, proto).await?);
    }
    let start = Instant::now() + Duration::from_millis(10);
    let end = start + duration;
    let mut tasks = Vec::with_capacity(conns);
    for (i, conn) in opened.into_iter().enumerate() {
        let offset = Duration::from_secs_f64(i as f64 / rate);
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::new();
            let mut conn = Some(conn);
            let mut intended = start + offset;
            let mut prev_done = start;
            while intended < end {
                if Instant::now() < intended {
                    tokio::time::sleep_until(intended.into()).await;
                }
                let sent = Instant::now();
                let from = if prev_done > intended { intended } else { sent };
                let Some(c) = conn.as_mut() else { break };
                let result = c.call().await;
                let done = Instant::now();
                match result {
                    Ok(()) => {
                        tally.requests += 1;
                        let ns = u64::try_from((done - from).as_nanos()).unwrap_or(u64::MAX);
                        let _ = tally.hist.record(ns.max(1));
                    }
                    Err(e) => {
                        tally.error(&e);
                        conn = reopen(addr, proto, &mut tally).await;
                    }
                }
                prev_done = done;
                intended += interval;
            }
            tally
        }));
    }
    let mut out = Latency {
        requests: 0,
        errors: 0,
        hist: histogram(),
        first_error: None,
    };
    for t in join(tasks).await? {
        out.requests += t.requests;
        out.errors += t.errors;
        out.first_error = out.first_error.or(t.first_error);
        out.hist
            .add(&t.hist)
            .map_err(|e| anyhow!("histogram: {e}"))?;
    }
    Ok(out)
}

async fn join(tasks: Vec<tokio::task::JoinHandle<Tally>>) -> anyhow::Result<Vec<Tally>> {
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.context("load task panicked")?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
        let (head, framing) = parse_head(r).expect("ok").expect("complete");
        assert_eq!(head, r.len() - 5);
        assert!(matches!(framing, Framing::Length(5)));
        let c = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(
            parse_head(c).expect("ok"),
            Some((_, Framing::Chunked))
        ));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n").expect("ok").is_none());
        assert!(parse_head(b"HTTP/1.1 503 x\r\n\r\n").is_err());
    }
}
