//! Version discovery: `GET /` (300 Multiple Choices) and `GET /v3`.

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use keyfed_shared::discovery;
use serde_json::Value;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(versions))
        .route("/v3", get(v3))
        .route("/v3/", get(v3))
}

async fn versions(State(state): State<AppState>) -> Response {
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(discovery::versions(&super::base_url::base(&state))),
    )
        .into_response()
}

async fn v3(State(state): State<AppState>) -> Json<Value> {
    Json(discovery::version(&super::base_url::base(&state)))
}
