//! The accept loop. axum's `serve` sets no timer on hyper, so a client could hold a
//! connection open forever by sending its request headers a byte at a time (slowloris).
//! This loop serves the same router with a header-read timeout, the peer's address as
//! `ConnectInfo`, graceful shutdown, and a cap on open connections: at the cap it stops
//! accepting (new clients wait in the kernel's backlog) instead of running out of file
//! descriptors, which the database pool needs too.

use axum::{
    Router,
    body::Body,
    extract::ConnectInfo,
    http::{HeaderValue, Request, Uri},
};
use hyper::{body::Incoming, server::conn::http1};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::{convert::Infallible, net::SocketAddr, time::Duration};
use tokio::{net::TcpListener, sync::watch};
use tower::{ServiceExt as _, util::Oneshot};

/// Serves `router` on `listener` until `stop` turns true, then stops accepting, asks
/// every connection to finish its in-flight request, and returns once all have closed
/// (the caller bounds that wait with its grace period).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    mut stop: watch::Receiver<bool>,
    header_read_timeout: Duration,
    max_connections: usize,
) {
    // Every connection task holds a clone; `closed()` resolves once all are gone.
    let (open_tx, open_rx) = watch::channel(());
    let places = std::sync::Arc::new(tokio::sync::Semaphore::new(max_connections.max(1)));
    let mut warned_full = false;
    loop {
        let place = tokio::select! {
            place = places.clone().acquire_owned() => match place {
                Ok(p) => p,
                Err(_) => break,
            },
            () = stopped(&mut stop) => break,
        };
        if places.available_permits() == 0 && !warned_full {
            tracing::warn!(max_connections, "connection cap reached; new clients wait");
            warned_full = true;
        } else if places.available_permits() > max_connections / 10 {
            warned_full = false;
        }
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stop) => break,
        };
        // Small writes (event-stream lines) go out at once, not after Nagle's wait for
        // the client's delayed ACK (40 ms on Linux).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "could not set TCP_NODELAY");
        }
        let router = router.clone();
        let mut stop = stop.clone();
        let open = open_rx.clone();
        tokio::spawn(async move {
            // HTTP/1 only: TLS (and with it HTTP/2) ends at the reverse proxy in front,
            // and hyper's header-read timeout covers HTTP/1 alone.
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout)
                .serve_connection(TokioIo::new(stream), Handoff { router, peer });
            tokio::pin!(conn);
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            drop(open);
            drop(place);
        });
    }
    drop(listener);
    drop(open_rx);
    open_tx.closed().await;
}

/// Hands a connection's requests to the router, with the peer's address.
#[derive(Clone)]
struct Handoff {
    router: Router,
    peer: SocketAddr,
}

impl hyper::service::Service<Request<Incoming>> for Handoff {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = Oneshot<Router, Request<Body>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let mut req = req.map(Body::new);
        if is_event_stream(req.uri()) {
            req = with_own_head(req);
        }
        req.extensions_mut().insert(ConnectInfo(self.peer));
        self.router.clone().oneshot(req)
    }
}

/// `/pay/{id}/events`: a response that lasts as long as the shopper's page.
fn is_event_stream(uri: &Uri) -> bool {
    let path = uri.path();
    path.starts_with("/pay/") && path.ends_with("/events")
}

/// The request with its path and header values copied out of hyper's read buffer,
/// which they share as hyper parses them. Right after handing a request on, hyper
/// reads the socket again (to notice a client that hangs up mid-response); if the
/// request still shares the buffer then, it takes a new one, kept for the
/// connection's life (16 KB each in heaptrack with 10,000 event streams open; 8 KB
/// with this copy, hyper's first buffer reused).
fn with_own_head(req: Request<Body>) -> Request<Body> {
    let (mut parts, body) = req.into_parts();
    if let Ok(uri) = Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
    for value in parts.headers.values_mut() {
        if let Ok(mut own) = HeaderValue::from_bytes(value.as_bytes()) {
            own.set_sensitive(value.is_sensitive());
            *value = own;
        }
    }
    Request::from_parts(parts, body)
}

/// Resolves once `stop` is true (or its sender is gone), holding no borrow of it.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn an_event_streams_request_keeps_its_path_and_headers_in_its_own_copy() {
        let mut secret = HeaderValue::from_static("Bearer sk_test_x");
        secret.set_sensitive(true);
        let req = Request::builder()
            .uri("/pay/cs_1/events?lang=sw")
            .header("accept", "text/event-stream")
            .header("authorization", secret)
            .body(Body::empty())
            .unwrap();
        assert!(is_event_stream(req.uri()));
        assert!(!is_event_stream(&Uri::from_static("/pay/cs_1/mpesa")));
        assert!(!is_event_stream(&Uri::from_static("/v1/events")));
        let own = with_own_head(req);
        assert_eq!(own.uri(), "/pay/cs_1/events?lang=sw");
        assert_eq!(own.headers()["accept"], "text/event-stream");
        assert!(own.headers()["authorization"].is_sensitive());
    }

    #[tokio::test]
    async fn a_client_that_never_finishes_its_headers_is_cut_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = watch::channel(false);
        let router = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let server = tokio::spawn(serve(
            listener,
            router,
            stop_rx,
            Duration::from_millis(300),
            100,
        ));
        // A well-behaved request is served, with the peer address available.
        let mut good = tokio::net::TcpStream::connect(addr).await.unwrap();
        good.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        good.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        // Slowloris: half a request line, then nothing.
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nhost: ").await.unwrap();
        let mut buf = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut buf)).await;
        assert!(
            closed.is_ok(),
            "the server hangs up after the header timeout"
        );
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("stops")
            .unwrap();
    }

    #[tokio::test]
    async fn past_the_connection_cap_new_clients_wait_their_turn() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_stop_tx, stop_rx) = watch::channel(false);
        let router = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        tokio::spawn(serve(listener, router, stop_rx, Duration::from_secs(30), 2));
        // Two clients hold the only places, saying nothing.
        let mut idle = Vec::new();
        for _ in 0..2 {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A third is connected by the kernel but not served…
        let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
        third
            .write_all(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = String::new();
        let early = tokio::time::timeout(
            Duration::from_millis(500),
            third.read_to_string(&mut answer),
        )
        .await;
        assert!(early.is_err(), "served past the cap: {answer}");
        // … until a place frees.
        drop(idle);
        tokio::time::timeout(Duration::from_secs(5), third.read_to_string(&mut answer))
            .await
            .expect("served once a place is free")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
}
