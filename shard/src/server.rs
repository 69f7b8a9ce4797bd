//! Serving: `run(config, listener, shutdown)` opens the store, builds the
//! state, bootstraps when configured, and serves HTTP/1.1 until `shutdown`
//! resolves, then lets in-flight requests finish within the grace period.
//! The listener speaks mTLS, TLS or plain HTTP as the config chose
//! ([`transport`]).
//! The edge middleware adds `x-openstack-request-id`, a tracing span per
//! request, the header-size limit and a panic guard.

use crate::api;
use crate::config::{ShardConfig, StorageKind};
use crate::error::{api_response, StoreFailure};
use crate::state::{AppState, Shard};
use crate::store::embedded::EmbeddedStore;
use crate::store::postgres::PgStore;
use crate::store::Store;
use crate::ShardError;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use futures::FutureExt;
use keyfed_directory::Directory;
use keyfed_http::tls::Transport;
use keyfed_shared::error::{ApiError, ErrorKind};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tracing::Instrument;

/// Header carrying the request id, as Keystone names it.
pub use keyfed_http::request_id::REQUEST_ID_HEADER;

/// Opens the configured store.
pub async fn open_store(config: &ShardConfig) -> Result<Arc<dyn Store>, ShardError> {
    Ok(match config.storage.kind {
        StorageKind::Postgres => {
            Arc::new(PgStore::connect(&config.storage.url, config.storage.pool_size).await?)
        }
        StorageKind::Embedded => Arc::new(EmbeddedStore::open(&config.storage.path)?),
    })
}

/// Builds the state (and bootstraps when configured) without serving.
pub async fn build(config: ShardConfig) -> Result<AppState, ShardError> {
    build_with_directory(config, None).await
}

/// [`build`], with the federation directory given instead of opened from
/// the config (one process running several components shares one).
pub async fn build_with_directory(
    config: ShardConfig,
    directory: Option<Arc<dyn Directory>>,
) -> Result<AppState, ShardError> {
    config.validate()?;
    let store = open_store(&config).await?;
    let state = Shard::new(config, store, directory).await?;
    if let Some(b) = state.config.bootstrap.clone() {
        crate::bootstrap::run(&state, &b).await?;
    }
    Ok(state)
}

/// The full HTTP application for a state: routes plus edge middleware.
pub fn app(state: AppState) -> Router {
    with_edge(api::router(state.clone()), state)
}

fn with_edge(router: Router, state: AppState) -> Router {
    let max_body = state.config.server.max_body_bytes;
    router
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn_with_state(state, edge))
}

async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let max_headers = state.config.server.max_header_bytes;
    let id_bytes = state.request_ids.next();
    let request_id = std::str::from_utf8(&id_bytes).unwrap_or("req-");
    let route: std::borrow::Cow<'static, str> = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".into(), |p| p.as_str().to_owned().into());
    let method = req.method().clone();
    let span = tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %request_id);
    let started = Instant::now();
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    let mut response = if header_bytes > max_headers {
        api_response(&ApiError::new(
            ErrorKind::HeadersTooLarge,
            "Request headers are too large.",
        ))
    } else {
        // Behind a gateway, links name the federation's public endpoint.
        let base = state
            .federation
            .is_some()
            .then(|| api::base_url::of_request(req.headers()))
            .flatten();
        AssertUnwindSafe(api::base_url::scope(base, next.run(req)))
            .catch_unwind()
            .instrument(span.clone())
            .await
            .unwrap_or_else(|_| {
                tracing::error!(parent: &span, "handler panicked");
                api_response(&ApiError::internal())
            })
    };
    let elapsed = started.elapsed();
    state.metrics.request(
        route,
        &method,
        response.status().as_u16(),
        elapsed.as_secs_f64(),
    );
    if response.extensions().get::<StoreFailure>().is_some() {
        state.metrics.store_error();
    }
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "request done"
        )
    });
    if let Ok(v) = HeaderValue::from_bytes(&id_bytes) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    response
}

/// Runs a shard until `shutdown` resolves.
pub async fn run(
    config: ShardConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ShardError> {
    run_with_directory(config, None, listener, shutdown).await
}

/// [`run`] with a directory shared with other components of the process.
pub async fn run_with_directory(
    config: ShardConfig,
    directory: Option<Arc<dyn Directory>>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ShardError> {
    let state = build_with_directory(config, directory).await?;
    serve_state(state, listener, shutdown).await
}

/// Serves a built shard until `shutdown`, pruning expired revocation
/// events in the background.
pub async fn serve_state(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ShardError> {
    let transport = transport(&state)?;
    let grace = Duration::from_secs(state.config.server.shutdown_grace_secs);
    let max_buf = (state.config.server.max_header_bytes * 4).max(64 * 1024);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    if let Some((join_listener, join_transport)) = join_listener(&state).await? {
        let app = with_edge(api::join_router(state.clone()), state.clone());
        let mut stopped = stopped.clone();
        let stop_join = async move {
            let _ = stopped.wait_for(|s| *s).await;
        };
        tokio::spawn(keyfed_http::serve_with(
            app,
            join_listener,
            join_transport,
            stop_join,
            grace,
            max_buf,
        ));
    }
    let mut stop_admin = stopped.clone();
    let stop_admin = async move {
        let _ = stop_admin.wait_for(|s| *s).await;
    };
    let admin = api::admin_router(state.clone());
    (state.config.admin)
        .spawn(admin, &state.tls, stop_admin, grace, max_buf)
        .await
        .map_err(|e| tls_error_field(e.field, e.problem))?;
    drop(stopped);
    spawn_pruner(state.clone());
    state
        .tls
        .spawn(Duration::from_secs(state.config.server.tls_reload_secs));
    let shutdown = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    keyfed_http::serve_with(app(state), listener, transport, shutdown, grace, max_buf).await;
    Ok(())
}

/// An issuer's join listener (`[trust] join_listen`): TLS with its
/// internal certificate, no client certificate asked for, serving the join
/// route only — a joining shard has no client certificate yet.
async fn join_listener(state: &Shard) -> Result<Option<(TcpListener, Transport)>, ShardError> {
    let config = &state.config;
    let (Some(addr), Some(mtls)) = (config.trust.join_listen, &config.internal_tls) else {
        return Ok(None);
    };
    let tls = state
        .tls
        .server_config("internal_tls", &mtls.identity())
        .map_err(|e| tls_error("internal_tls", e))?;
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        ShardError::Config(crate::config::ConfigError::Invalid {
            field: "trust.join_listen",
            problem: format!("binding {addr}: {e}"),
        })
    })?;
    tracing::info!(%addr, "serving joins (TLS, join route only)");
    Ok(Some((listener, Transport::tls(tls))))
}

fn tls_error(field: &'static str, e: keyfed_http::tls::TlsError) -> ShardError {
    tls_error_field(field, e.to_string())
}

fn tls_error_field(field: &'static str, problem: String) -> ShardError {
    ShardError::Config(crate::config::ConfigError::Invalid { field, problem })
}

/// How the listener speaks, as the config chose: mTLS with the federation
/// CA (`[internal_tls]`), public TLS (`server.tls`) or plain HTTP. The TLS
/// files are followed by the shard's reloader.
pub fn transport(state: &Shard) -> Result<Transport, ShardError> {
    let config = &state.config;
    let tls = &state.tls;
    Ok(match (&config.internal_tls, &config.server.tls) {
        (Some(mtls), _) => Transport::tls(
            tls.mtls_server_config("internal_tls", mtls)
                .map_err(|e| tls_error("internal_tls", e))?,
        ),
        (None, Some(files)) => Transport::tls(
            tls.server_config("server.tls", files)
                .map_err(|e| tls_error("server.tls", e))?,
        ),
        (None, None) => Transport::Plain,
    })
}

fn spawn_pruner(state: AppState) {
    let weak = Arc::downgrade(&state);
    drop(state);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            let Some(state) = weak.upgrade() else { break };
            match state.prune_revocations().await {
                Ok(n) if n > 0 => tracing::info!(pruned = n, "expired revocation events pruned"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "pruning revocation events failed"),
            }
        }
    });
}
