//! Compression where it pays, and nothing at all where it cannot.
//!
//! tower-http's compression wraps every answer's body in one type able to hold any of
//! its encoders — ≈ 3 kB, allocated for every answer, even one sent as it is (and on
//! glibc an allocation that size also tidies the allocator's small free lists each
//! time). A client that asks for no encoding we offer (most API clients, `curl`)
//! bypasses it here. For the others, answers under [`MIN_SIZE`] are sent as they are: a
//! session object (≈ 500 bytes) fits one packet either way, and starting a gzip stream
//! costs more than the bytes it saves.

use axum::{
    body::Body,
    http::{HeaderMap, Request, Response, header},
};
use futures_util::future::{Either, FutureExt, Map};
use std::{
    convert::Infallible,
    task::{Context, Poll, ready},
};
use tower::{Layer, Service};
use tower_http::compression::{
    Compression, CompressionBody, CompressionLayer, ResponseFuture,
    predicate::{And, NotForContentType, Predicate, SizeAbove},
};

/// Smallest answer worth compressing, in bytes (answers whose size is not known ahead,
/// such as streamed pages, are compressed).
pub const MIN_SIZE: u16 = 1024;

/// When an answer is compressed: big enough, and not an image, a gRPC message or an
/// event stream (tower-http's default, with a higher floor).
type Worthwhile = And<And<And<SizeAbove, NotForContentType>, NotForContentType>, NotForContentType>;

fn worthwhile() -> Worthwhile {
    SizeAbove::new(MIN_SIZE)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::SSE)
}

/// Brotli or gzip, for clients that accept either ([`Compress`]).
#[derive(Clone)]
pub struct CompressLayer {
    inner: CompressionLayer<Worthwhile>,
}

impl CompressLayer {
    pub fn new() -> CompressLayer {
        CompressLayer {
            // Brotli 5, not tower-http's default 4: the hosted page's HTML (≈ 16 kB)
            // comes out ≈ 6 % smaller (350 B on a 2G first load) for well under a
            // millisecond more per page; 11 would save more but costs milliseconds.
            inner: CompressionLayer::new()
                .br(true)
                .gzip(true)
                .quality(tower_http::CompressionLevel::Precise(5))
                .compress_when(worthwhile()),
        }
    }
}

impl<S: Clone> Layer<S> for CompressLayer {
    type Service = Compress<S>;

    fn layer(&self, inner: S) -> Compress<S> {
        Compress {
            compressing: self.inner.layer(inner.clone()),
            plain: inner,
        }
    }
}

/// The service below, reached through tower-http's compression when the request's
/// `Accept-Encoding` names an encoding we offer, directly otherwise.
#[derive(Clone)]
pub struct Compress<S> {
    plain: S,
    compressing: Compression<S, Worthwhile>,
}

type Boxed =
    fn(Result<Response<CompressionBody<Body>>, Infallible>) -> Result<Response<Body>, Infallible>;

impl<S> Service<Request<Body>> for Compress<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<S::Future, Map<ResponseFuture<S::Future, Worthwhile>, Boxed>>;

    /// Both are copies of one service; axum's routes are always ready.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        ready!(self.plain.poll_ready(cx))?;
        self.compressing.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        if asks_for_compression(req.headers()) {
            let boxed: Boxed = |res| Ok(res?.map(Body::new));
            Either::Right(self.compressing.call(req).map(boxed))
        } else {
            Either::Left(self.plain.call(req))
        }
    }
}

/// Whether `Accept-Encoding` mentions brotli or gzip (tower-http then reads it
/// properly, `q=0` and all).
fn asks_for_compression(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT_ENCODING).iter().any(|v| {
        let v = v.as_bytes();
        contains_ignore_case(v, b"gzip") || contains_ignore_case(v, b"br")
    })
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_brotli_or_gzip_takes_the_compressing_path() {
        let asks = |values: &[&'static str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            }
            asks_for_compression(&h)
        };
        assert!(asks(&["gzip, deflate, br"]));
        assert!(asks(&["GZIP"]));
        assert!(asks(&["identity", "br;q=0.5"]));
        assert!(!asks(&[]));
        assert!(!asks(&["identity"]));
        assert!(!asks(&["deflate, zstd"]));
    }
}
