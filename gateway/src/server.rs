//! Serving: [`run`] opens the configured directory and serves until
//! `shutdown`; [`run_with_directory`] does the same over a directory the
//! caller already holds (`keyfed dev` shares one embedded directory between
//! the gateway and in-process shards). The edge middleware gives every
//! response an `x-openstack-request-id`, enforces the header-size limit
//! (431), guards against panics (500) and records metrics.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use futures::FutureExt;
use keyfed_directory::{Directory, EmbeddedDirectory, NatsDirectory};
use keyfed_http::tls::Transport;
use keyfed_shared::error::{ApiError, ErrorKind};
use tokio::net::TcpListener;
use tracing::Instrument;

use crate::config::GatewayConfig;
use crate::dispatch::{dispatch, RouteLabel};
use crate::error::{api_response, GatewayError, UpstreamFailure};
use crate::local;
use crate::metrics::method_label;
use crate::routes;
use crate::state::{AppState, Gateway};

/// Header carrying the request id, as Keystone names it.
pub use keyfed_http::request_id::REQUEST_ID_HEADER;

/// A TLS file problem at start-up, as a config error naming the field.
pub(crate) fn config_error(field: &str, e: keyfed_http::tls::TlsError) -> GatewayError {
    GatewayError::Config(crate::config::ConfigError(format!("field `{field}`: {e}")))
}

/// Opens the directory `config` names.
pub async fn open_directory(config: &GatewayConfig) -> Result<Arc<dyn Directory>, GatewayError> {
    match (&config.directory.nats, &config.directory.embedded) {
        (Some(nats), _) => Ok(Arc::new(NatsDirectory::connect(nats).await?)),
        (None, Some(embedded)) => Ok(Arc::new(EmbeddedDirectory::open(embedded)?)),
        (None, None) => Err(GatewayError::Config(crate::config::ConfigError(
            "field `directory`: set [directory.nats] or [directory.embedded]".into(),
        ))),
    }
}

/// Runs a gateway until `shutdown` resolves.
pub async fn run(
    config: GatewayConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    config.validate()?;
    let dir = open_directory(&config).await?;
    run_with_directory(config, dir, listener, shutdown).await
}

/// Runs a gateway over an open directory until `shutdown` resolves. The
/// `[directory]` section of `config` is ignored.
pub async fn run_with_directory(
    config: GatewayConfig,
    dir: Arc<dyn Directory>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), GatewayError> {
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let max_buf = (config.server.max_header_bytes * 4).max(64 * 1024);
    let state = Gateway::start(config, dir).await?;
    let transport = match &state.config.server.tls {
        Some(files) => Transport::tls(
            state
                .tls
                .server_config("server.tls", files)
                .map_err(|e| config_error("server.tls", e))?,
        ),
        None => Transport::Plain,
    };
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let stop_admin = async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    (state.config.admin)
        .spawn(
            admin_app(state.clone()),
            &state.tls,
            stop_admin,
            grace,
            max_buf,
        )
        .await
        .map_err(|e| GatewayError::Config(crate::config::ConfigError(e.to_string())))?;
    state
        .tls
        .spawn(Duration::from_secs(state.config.server.tls_reload_secs));
    let shutdown = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    tracing::info!(url = %state.public_url, "gateway serving");
    keyfed_http::serve_with(app(state), listener, transport, shutdown, grace, max_buf).await;
    Ok(())
}

/// The full HTTP application: local routes, the Keystone dispatch, edge
/// middleware.
pub fn app(state: AppState) -> Router {
    local::routes(&state.config.admin)
        .fallback(dispatch)
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(state, edge))
}

/// The admin listener's application: health and metrics, 404 for the
/// rest; not counted in the request metrics.
pub fn admin_app(state: AppState) -> Router {
    local::admin_routes()
        .fallback(|| async { axum::http::StatusCode::NOT_FOUND })
        .with_state(state)
}

async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let id_bytes = state.request_ids.next();
    let request_id = std::str::from_utf8(&id_bytes).unwrap_or("req-");
    let matched = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| local::route_label(p.as_str()));
    let method = method_label(req.method());
    // Token validation is the hot path and logs nothing of its own, so its
    // span is DEBUG: at the default INFO level it is not created at all
    // (formatting a span's fields for the log cost a few percent of a
    // validation's CPU). Every other request gets an INFO span.
    let span = if routes::is_token_validation(req.method(), req.uri().path()) {
        tracing::debug_span!("request", method, path = %req.uri().path(), request_id)
    } else {
        tracing::info_span!("request", method, path = %req.uri().path(), request_id)
    };
    let started = Instant::now();
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    let mut response = if header_bytes > state.config.server.max_header_bytes {
        api_response(&ApiError::new(
            ErrorKind::HeadersTooLarge,
            "Request headers are too large.",
        ))
    } else {
        AssertUnwindSafe(next.run(req))
            .catch_unwind()
            .instrument(span.clone())
            .await
            .unwrap_or_else(|_| {
                tracing::error!(parent: &span, "handler panicked");
                api_response(&ApiError::internal())
            })
    };
    let route = response
        .extensions()
        .get::<RouteLabel>()
        .map(|l| l.0)
        .or(matched)
        .unwrap_or("unmatched");
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    state
        .metrics
        .request(route, method, status, elapsed.as_secs_f64());
    if let Some(UpstreamFailure(shard)) = response.extensions().get::<UpstreamFailure>() {
        span.in_scope(|| tracing::warn!(%shard, "request failed at a shard"));
    }
    span.in_scope(|| {
        tracing::debug!(
            status,
            elapsed_us = elapsed.as_micros() as u64,
            "request done"
        )
    });
    if let Ok(v) = HeaderValue::from_bytes(&id_bytes) {
        response.headers_mut().insert(REQUEST_ID_HEADER, v);
    }
    response
}
