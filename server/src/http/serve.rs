//! The HTTP/1.1 accept loop, with the limits a server facing slow or hostile
//! clients needs (axum's `serve` sets none of them):
//!
//! - at most `max_connections` open connections; one more gets a `503` JSON
//!   reply and is closed at once;
//! - a header read timeout, which also bounds how long an idle keep-alive
//!   connection is kept (hyper starts it whenever it waits for a request head);
//! - graceful shutdown: connections finish their in-flight request and close;
//!   after `shutdown_timeout` the rest are dropped, so a stop is bounded.
//!
//! - TLS when configured: the handshake runs on the connection's task and
//!   must finish within the header read timeout.
//!
//! Body read timeouts and the declared-size check are per request
//! ([`super::guard`]).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

/// Limits of the accept loop.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Time to send a request head (and idle keep-alive limit).
    pub header_read_timeout: Duration,
    /// How long shutdown waits for open connections.
    pub shutdown_timeout: Duration,
}

fn busy_reply() -> Vec<u8> {
    let body = r#"{"error":{"code":"unavailable","message":"too many open connections; retry shortly"}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\nretry-after: 1\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serve `router` on `listener` until `shutdown` resolves, then drain.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "connection limit reached; refusing a connection");
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = tokio::time::timeout(Duration::from_secs(1), stream.write_all(&busy_reply())).await;
                let _ = stream.shutdown().await;
            });
            continue;
        };
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut r: axum::http::Request<hyper::body::Incoming>| {
                r.extensions_mut().insert(super::access::ClientAddr(peer));
                r
            },
        ));
        let (http, stop, tls) = (http.clone(), stop_rx.clone(), tls.clone());
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => connection(&http, TokioIo::new(stream), service, stop, peer).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => connection(&http, TokioIo::new(tls), service, stop, peer).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.shutdown_timeout, slots.acquire_many(all)).await.is_err() {
        tracing::warn!(
            open = limits.max_connections - slots.available_permits(),
            "shutdown timeout: closing connections that are still busy"
        );
    }
    Ok(())
}

/// Serve one connection until it ends, shutting it down gracefully on `stop`.
async fn connection<I, S>(
    http: &hyper::server::conn::http1::Builder,
    io: I,
    service: S,
    mut stop: watch::Receiver<bool>,
    peer: std::net::SocketAddr,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming> + Send,
    S::ResBody: Send + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    S::Future: Send,
{
    let conn = http.serve_connection(io, service);
    tokio::pin!(conn);
    let mut stopping = false;
    loop {
        tokio::select! {
            res = conn.as_mut() => {
                if let Err(e) = res {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}
