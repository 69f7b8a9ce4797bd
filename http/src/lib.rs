//! The HTTP serving loop shared by shards and gateways: HTTP/1.1 with a
//! header read timeout and a bounded buffer, `TCP_NODELAY`, and a graceful
//! shutdown that lets in-flight requests finish within a grace period.
//! Connections are plain or TLS ([`tls::Transport`]); the plain path is the
//! same as without TLS support, and a TLS handshake runs on the
//! connection's own task, bounded by a timeout. [`admin`]: the admin
//! listener's config (`/metrics` and health apart from the public API).

pub mod admin;
pub mod error;
pub mod metrics;
pub mod request_id;
pub mod server_config;
pub mod tls;

pub use crate::error::api_response;
pub use crate::server_config::ServerConfig;

use crate::tls::Transport;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a client may take to complete a TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` over plain HTTP: [`serve_with`] and [`Transport::Plain`].
pub async fn serve(
    app: Router,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    max_buf: usize,
) {
    serve_with(app, listener, Transport::Plain, shutdown, grace, max_buf).await
}

/// Serves `app` on `listener` over `transport` until `shutdown` resolves,
/// then drains open connections for at most `grace`. `max_buf` bounds each
/// connection's read buffer (and so the size of request headers hyper
/// accepts).
pub async fn serve_with(
    app: Router,
    listener: TcpListener,
    transport: Transport,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    max_buf: usize,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT)
                    .max_buf_size(max_buf);
                match &transport {
                    Transport::Plain => {
                        let service = TowerToHyperService::new(app.clone());
                        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
                        tokio::spawn(async move {
                            if let Err(e) = conn.await {
                                tracing::debug!(error = %e, "connection ended with an error");
                            }
                        });
                    }
                    Transport::Tls(acceptor) => {
                        let handshake = acceptor.accept(stream);
                        tokio::spawn(serve_tls(handshake, peer, builder, app.clone(), graceful.watcher()));
                    }
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace period elapsed with connections still open");
    }
}

/// The certificate a TLS client presented on the connection of a request
/// (its leaf, DER), verified by the handshake: a request extension set by
/// the serve loop on every request of a TLS connection whose client sent
/// one (mTLS listeners require one). Handlers read the member it names
/// with `keyfed_pki::tls::peer_member`.
#[derive(Clone, Debug)]
pub struct PeerCertificate(pub Arc<[u8]>);

/// Completes a TLS handshake (bounded by [`TLS_HANDSHAKE_TIMEOUT`]), then
/// serves the connection under the graceful-shutdown `watcher`, each
/// request carrying the client's [`PeerCertificate`] if it sent one.
async fn serve_tls(
    handshake: tokio_rustls::Accept<tokio::net::TcpStream>,
    peer: std::net::SocketAddr,
    builder: hyper::server::conn::http1::Builder,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let stream = match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => {
            // A refused client certificate lands here.
            tracing::info!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let certificate = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|leaf| PeerCertificate(Arc::from(leaf.as_ref())));
    let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
        if let Some(c) = &certificate {
            req.extensions_mut().insert(c.clone());
        }
        app.clone().oneshot(req)
    });
    let conn = watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
