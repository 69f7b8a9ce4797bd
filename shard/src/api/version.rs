//! Version discovery: `GET /` (300 Multiple Choices) and `GET /v3`.

use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(versions))
        .route("/v3", get(v3))
        .route("/v3/", get(v3))
}

fn v3_description(state: &AppState) -> Value {
    json!({
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": format!("{}/v3/", state.public_url)}],
        "media-types": [{"base": "application/json",
            "type": "application/vnd.openstack.identity-v3+json"}],
    })
}

async fn versions(State(state): State<AppState>) -> Response {
    (
        StatusCode::MULTIPLE_CHOICES,
        Json(json!({"versions": {"values": [v3_description(&state)]}})),
    )
        .into_response()
}

async fn v3(State(state): State<AppState>) -> Json<Value> {
    Json(json!({ "version": v3_description(&state) }))
}
