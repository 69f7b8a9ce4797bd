//! `/healthz` (the process is up) and `/readyz` (the store answers).

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use keyfed_shared::ids::DomainId;
use serde_json::json;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
}

async fn ready(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    match state.store.get_domain(&DomainId::new("default")).await {
        Ok(_) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "store unavailable"})),
            )
        }
    }
}
