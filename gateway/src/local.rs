//! What the gateway answers alone, with no shard or directory call: version
//! discovery (pointing at the gateway's public URL), liveness, readiness and
//! metrics. Health and metrics are served on the admin listener
//! ([`admin_routes`]) and on the public one as `[admin]` says ([`routes`]).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use keyfed_http::admin::AdminConfig;
use keyfed_shared::discovery;
use serde_json::{json, Value};

use crate::state::AppState;

/// The metrics label of a local route, from the path it matched.
pub fn route_label(matched: &str) -> &'static str {
    match matched {
        "/" => "/",
        "/v3" | "/v3/" => "/v3",
        "/healthz" => "/healthz",
        "/readyz" => "/readyz",
        "/metrics" => "/metrics",
        _ => "local",
    }
}

/// The local routes of the public listener: discovery, health unless
/// `admin.public_health = false`, metrics only with `admin.public_metrics`
/// (else they reach the dispatch, which answers Keystone's 404).
pub fn routes(admin: &AdminConfig) -> Router<AppState> {
    let routes = Router::new()
        .route("/", get(versions))
        .route("/v3", get(v3))
        .route("/v3/", get(v3));
    operator_routes(routes, admin.public_health, admin.public_metrics)
}

/// The admin listener's routes: health and metrics.
pub fn admin_routes() -> Router<AppState> {
    operator_routes(Router::new(), true, true)
}

fn operator_routes(
    mut routes: Router<AppState>,
    health: bool,
    metrics_too: bool,
) -> Router<AppState> {
    if health {
        routes = routes
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz));
    }
    if metrics_too {
        routes = routes.route("/metrics", get(metrics));
    }
    routes
}

async fn versions(State(state): State<AppState>) -> Response {
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(discovery::versions(&state.public_url)),
    )
        .into_response()
}

async fn v3(State(state): State<AppState>) -> Json<Value> {
    Json(discovery::version(&state.public_url))
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// 200 once the view and the revocation index are loaded, else 503.
async fn readyz(State(state): State<AppState>) -> Response {
    let revisions: Vec<Value> = state
        .view
        .revisions()
        .iter()
        .map(|r| json!({"bucket": r.bucket.name(), "loaded": r.loaded, "revision": r.revision}))
        .collect();
    let ready = state.ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "ready": ready,
        "revocations": state.revocations.ready(),
        "buckets": revisions,
    });
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let members: Vec<String> = state
        .view
        .members()
        .into_iter()
        .map(|m| m.id.to_string())
        .collect();
    let down: Vec<String> = state.health.down().iter().map(|s| s.to_string()).collect();
    state.metrics.set_members_down(&members, &down);
    let text = state.metrics.render(
        state.validator.cache_stats(),
        state.validator.lookup_stats(),
        &state.view.revisions(),
        state.view.refused_entries(),
    );
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}
