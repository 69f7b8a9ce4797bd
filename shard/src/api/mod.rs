//! The Keystone v3 HTTP API of a shard: one file per resource, routes
//! assembled here. Handlers take the [`AppState`], a [`Caller`] where the
//! route needs authentication, and return `Result<Response, Error>`; errors
//! become Keystone bodies in one place ([`crate::error`]).
//!
//! [`Caller`]: crate::policy::Caller

mod assignments;
mod auth;
pub mod base_url;
pub mod body;
mod catalog;
mod domains;
mod health;
pub mod internal;
mod projects;
mod renew;
mod roles;
mod unsupported;
mod users;
mod version;

use crate::error::api_response;
use crate::state::AppState;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Router;
use keyfed_shared::error::{ApiError, ErrorKind};
use keyfed_shared::ids::DomainId;
use serde_json::{json, Value};

/// Every route of the shard's public API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(version::routes())
        .merge(health::routes(&state.config.admin))
        .merge(auth::routes())
        .merge(domains::routes())
        .merge(projects::routes())
        .merge(users::routes())
        .merge(roles::routes())
        .merge(assignments::routes())
        .merge(catalog::routes())
        .merge(
            internal::routes().route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                internal::members_only,
            )),
        )
        .merge(unsupported::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

pub use health::admin_router;

/// The join listener's routes (`[trust] join_listen`): `POST
/// /internal/v1/join` alone; everything else is 404.
pub fn join_router(state: AppState) -> Router {
    internal::join_routes()
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found() -> Response {
    api_response(&ApiError::new(
        ErrorKind::NotFound,
        "The resource could not be found.",
    ))
}

async fn method_not_allowed() -> Response {
    api_response(&ApiError::new(
        ErrorKind::MethodNotAllowed,
        "The method is not allowed for the requested URL.",
    ))
}

/// `{"self": <base>/v3/<path>}`.
pub(crate) fn links(state: &AppState, path: &str) -> Value {
    json!({"self": format!("{}/v3/{path}", base_url::base(state))})
}

/// A collection body: `{"<key>": [...], "links": {...}}`.
pub(crate) fn collection(state: &AppState, key: &str, path: &str, items: Vec<Value>) -> Response {
    let body = json!({
        key: items,
        "links": {"self": format!("{}/v3/{path}", base_url::base(state)), "previous": null, "next": null},
    });
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// A single-entity body with a status.
pub(crate) fn entity(status: StatusCode, key: &str, value: Value) -> Response {
    (status, axum::Json(json!({ key: value }))).into_response()
}

/// Adds `links` to an entity's JSON.
pub(crate) fn with_links(mut value: Value, state: &AppState, path: &str) -> Value {
    if let Some(obj) = value.as_object_mut() {
        obj.insert("links".into(), links(state, path));
    }
    value
}

/// 404 unless domain `id` exists. A domain another member created a moment
/// ago may not be mirrored here yet: it is looked up in the directory and
/// waited for first.
pub(crate) async fn require_domain(state: &AppState, id: &DomainId) -> crate::error::Result<()> {
    if state.global().domains.contains_key(id)
        || state.catch_up_global(&format!("domain/{id}")).await?
    {
        Ok(())
    } else {
        Err(ApiError::not_found("domain", id.as_str()).into())
    }
}

/// Serializes a model value (which cannot fail for our types).
pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests;

/// The member a gateway found down when it sent a create here instead (see
/// [`keyfed_shared::federation::PLACE_INSTEAD_HEADER`]).
pub(crate) fn place_instead_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(keyfed_shared::federation::PLACE_INSTEAD_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}
