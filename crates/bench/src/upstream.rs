//! The benchmark's upstream: a minimal HTTP/1.1 + h2c server on one thread with its own
//! current-thread runtime, so the app costs as little as possible and never competes with
//! itself for cores.
//!
//! Plain requests get `200` with a fixed 1 KiB body. Requests with `content-type:
//! application/grpc` are answered as a gRPC unary call: the request body is read to the end,
//! then one length-prefixed message of `GRPC_REPLY_BYTES` and the trailer `grpc-status: 0`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::thread;

use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Either, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use crate::procs;

/// Size of the plain HTTP response body (Istio's benchmark payload).
pub const BODY_BYTES: usize = 1024;
/// Size of the protobuf message in a gRPC reply.
pub const GRPC_REPLY_BYTES: usize = 1024;

type GrpcFrames = tokio_stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>;
type Reply = Either<Full<Bytes>, StreamBody<GrpcFrames>>;

/// Frame a protobuf-sized message the way gRPC does: flag byte, 4-byte length, payload.
pub fn grpc_frame(len: usize) -> Bytes {
    let mut b = BytesMut::with_capacity(5 + len);
    b.put_u8(0);
    b.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    // The content is opaque to every proxy; only its size matters.
    b.put_bytes(b'x', len);
    b.freeze()
}

/// Bind `127.0.0.1:0` and serve on a dedicated thread, pinned to `cpu` when given (the
/// performance anchors' topology puts the app on the proxy's core). Returns the bound address.
pub fn spawn(cpu: Option<usize>) -> anyhow::Result<SocketAddr> {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    thread::Builder::new()
        .name("bench-upstream".into())
        .spawn(move || {
            if let Some(cpu) = cpu
                && let Err(e) = procs::pin_current_thread(cpu)
            {
                eprintln!("upstream: cannot pin to CPU {cpu}: {e:#}");
                return;
            }
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("upstream: cannot start runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                match TcpListener::from_std(std_listener) {
                    Ok(l) => serve(l).await,
                    Err(e) => eprintln!("upstream: {e}"),
                }
            });
        })?;
    Ok(addr)
}

async fn serve(listener: TcpListener) {
    let body = Bytes::from(vec![b'a'; BODY_BYTES]);
    let grpc = grpc_frame(GRPC_REPLY_BYTES);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (body, grpc) = (body.clone(), grpc.clone());
        tokio::spawn(async move {
            let svc = service_fn(move |req| answer(req, body.clone(), grpc.clone()));
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn answer(
    req: Request<Incoming>,
    body: Bytes,
    grpc: Bytes,
) -> Result<Response<Reply>, Infallible> {
    let is_grpc = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if !is_grpc {
        let mut resp = Response::new(Either::Left(Full::new(body)));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        );
        return Ok(resp);
    }
    // A unary call answers after the whole request message arrived.
    let _ = req.into_body().collect().await;
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let frames = vec![Ok(Frame::data(grpc)), Ok(Frame::trailers(trailers))];
    let mut resp = Response::new(Either::Right(StreamBody::new(tokio_stream::iter(frames))));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    Ok(resp)
}
