//! The federation's internal API on a shard (not Keystone; for members and
//! administration tools, never routed by gateways):
//!
//! - `POST /internal/v1/join` — on an issuer (a shard holding the CA key):
//!   admits a joining shard ([`keyfed_federation::lifecycle::admit`]): its
//!   join token is spent, its certificate issued, its record `joining`.
//!   The token is the credential: bad, expired or spent → 401; a bad CSR or
//!   field → 400; an id taken → 409. 404 on a shard that is not an issuer.
//!   With a `tls_csr` it also issues the joiner's internal TLS certificate.
//!   On an mTLS issuer a joiner without a TLS certificate reaches this
//!   route on the join listener (`[trust] join_listen`, TLS without client
//!   certificates, serving this route only).
//! - `POST /internal/v1/renew` — on an issuer: a member's online
//!   certificate renewal (see [`super::renew`]).
//! - `GET /internal/v1/tenants[?joining=<shard>|?retiring=<shard>]` — the
//!   ids of the projects this shard owns and the users homed here (not
//!   stubs), for a joining member's pins, `keyfed status` and `keyfed shard
//!   retire`. Authorised by an admin call token (`X-Keyfed-Admin-Token`,
//!   from the credentials bucket). With `joining` (`retiring`) it answers
//!   only once its view has that member joining (retiring), after the
//!   placement barrier (see [`crate::federation::joining`]), so no creation
//!   that began before is missed.
//! - `POST /internal/v1/names/reclaim` — body `{"key", "id"}`: releases
//!   the name `key` held for entity `id` of this shard if it is an orphan;
//!   answers `{"outcome": "exists" | "busy" | "released" | "not_owner"}`
//!   (see [`crate::federation::names`]).
//! - `POST /internal/v1/close` — body `{"seconds": n}` (1–600; 0 reopens),
//!   admin call token: this shard refuses new projects and users (503)
//!   for `n` seconds, waits for the creations in flight (placement
//!   barrier), and answers the listing above — after which nothing can be
//!   added to it until it reopens. `keyfed shard retire` closes a member
//!   before its emptiness check and keeps it closed until it is out of the
//!   ring, so no tenant is created on it meanwhile (see
//!   [`crate::federation::admin`]).

use std::collections::HashMap;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use keyfed_federation::lifecycle::admit::{admit, JoinRequest};
use keyfed_federation::lifecycle::{credentials, LifecycleError};
use keyfed_http::PeerCertificate;
use keyfed_pki::tls::{peer_member, MemberKind};
use keyfed_pki::FederationCa;
use keyfed_shared::error::ApiError;
use keyfed_shared::federation::MemberStatus;
use keyfed_shared::ids::ShardId;
use keyfed_shared::model::ListFilter;
use keyfed_shared::time::now_micros;
use serde_json::json;

use crate::api::body::{JsonBody, RawBody};
use crate::error::{api_response, Result};
use crate::federation::names::{ReclaimAnswer, ReclaimRequest};
use crate::federation::Federated;
use crate::state::AppState;

/// The `Retry-After` of a join refused while another shard joins.
pub const JOIN_RETRY_AFTER_SECS: u64 = 2;

pub use keyfed_shared::federation::ADMIN_TOKEN_HEADER;

/// The join route alone, for an issuer's join listener (`[trust]
/// join_listen`: server-only TLS, as a joiner has no client certificate
/// yet; the join token authorises).
pub(super) fn join_routes() -> Router<AppState> {
    Router::new().route("/internal/v1/join", post(join))
}

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/internal/v1/join", post(join))
        .route("/internal/v1/tenants", get(tenants))
        .route("/internal/v1/close", post(close))
        .route("/internal/v1/renew", post(super::renew::renew))
        .route("/internal/v1/names/reclaim", post(reclaim))
}

/// `POST /internal/v1/names/reclaim`: another member found a name held for
/// an entity this shard owns; release it if it is an orphan (see
/// [`crate::federation::names`]). Harmless whoever asks — it only removes a
/// reservation its own entity does not use and no write of it is using —
/// so it needs no credential beyond the listener's (mTLS: shards only).
async fn reclaim(State(state): State<AppState>, JsonBody(body): JsonBody) -> Result<Response> {
    let request: ReclaimRequest = serde_json::from_value(body)
        .map_err(|e| ApiError::validation(format!("Invalid reclaim request: {e}")))?;
    let outcome = state.reclaim(&request.key, &request.id).await?;
    Ok(Json(ReclaimAnswer { outcome }).into_response())
}

/// Authorises the caller of an internal route on the shard's listener:
/// with `[internal_tls]` (mTLS), only a peer whose certificate names a
/// shard (`keyfed:shard:<id>`) — a gateway's certificate, which a gateway
/// presents on every call it forwards, gets 403, so no path a gateway could
/// be made to forward reaches these routes. Without mTLS there is no
/// caller identity to check; the routes' own credentials (join and admin
/// tokens) authorise. The join listener serves the join route without this
/// check (its callers have no certificate yet).
pub(super) async fn members_only(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    if state.config.internal_tls.is_some() {
        let shard = req
            .extensions()
            .get::<PeerCertificate>()
            .and_then(|c| peer_member(&c.0))
            .is_some_and(|(kind, _)| kind == MemberKind::Shard);
        if !shard {
            return api_response(&ApiError::forbidden());
        }
    }
    next.run(req).await
}

pub(super) fn now() -> i64 {
    now_micros() / 1_000_000
}

pub(super) fn federated(state: &AppState) -> Result<&Federated> {
    state
        .federation
        .as_deref()
        .ok_or_else(|| ApiError::not_found("resource", "internal").into())
}

/// An issuer's request: the federation, its CA and the body as `T` — 404
/// on a shard that is not an issuer (`route` names it), 400 for a body
/// that is not a `T` (`what` names it).
pub(super) fn issuer_request<'a, T: serde::de::DeserializeOwned>(
    state: &'a AppState,
    body: serde_json::Value,
    route: &str,
    what: &str,
) -> Result<(&'a Federated, &'a FederationCa, T)> {
    let f = federated(state)?;
    let Some(ca) = &f.issuer else {
        return Err(ApiError::not_found("resource", route).into());
    };
    let request = serde_json::from_value(body)
        .map_err(|e| ApiError::validation(format!("Invalid {what} request: {e}")))?;
    Ok((f, ca, request))
}

/// A lifecycle error as the client sees it.
pub(super) fn refusal(e: LifecycleError) -> ApiError {
    match e {
        LifecycleError::Refused => ApiError::unauthorized(),
        LifecycleError::Invalid(m) => ApiError::validation(m),
        LifecycleError::Conflict(m) | LifecycleError::Busy(m) => ApiError::conflict(m),
        LifecycleError::Directory(e) => {
            tracing::warn!(error = %e, "directory failed during a lifecycle call");
            ApiError::unavailable("The federation directory is unavailable; retry later.")
        }
    }
}

/// The join token is the credential and is checked before anything else
/// about the request is looked at — its JSON, its CSR, whether a member of
/// that name exists — so a caller without a valid token learns nothing but
/// 401 (on an issuer; a shard that is not one answers 404).
async fn join(State(state): State<AppState>, RawBody(body): RawBody) -> Result<Response> {
    let f = federated(&state)?;
    if f.issuer.is_none() {
        return Err(ApiError::not_found("resource", "join").into());
    }
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let token = body["join_token"]
        .as_str()
        .ok_or_else(ApiError::unauthorized)?;
    credentials::check_join_token(f.directory.as_ref(), token, now())
        .await
        .map_err(refusal)?;
    let (f, ca, request) = issuer_request::<JoinRequest>(&state, body, "join", "join")?;
    let admitted = admit(
        f.directory.as_ref(),
        ca,
        &request,
        now(),
        f.certificate_validity_secs,
    )
    .await;
    match admitted {
        Ok(grant) => Ok((StatusCode::CREATED, Json(grant)).into_response()),
        // Another shard is joining: the same request succeeds later.
        Err(LifecycleError::Busy(m)) => {
            let mut answer = api_response(&ApiError::conflict(m));
            answer.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(JOIN_RETRY_AFTER_SECS),
            );
            Ok(answer)
        }
        Err(e) => Err(refusal(e).into()),
    }
}

async fn tenants(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response> {
    let f = federated(&state)?;
    check_admin(f, &headers).await?;
    for (param, status) in [
        ("joining", MemberStatus::Joining),
        ("retiring", MemberStatus::Retiring),
    ] {
        let Some(member) = query.get(param) else {
            continue;
        };
        let seen = f
            .view
            .member(&ShardId::new(member.as_str()))
            .is_some_and(|m| m.status == status);
        if !seen {
            return Err(ApiError::unavailable(format!(
                "This member does not see {member} {param} yet; retry."
            ))
            .into());
        }
        f.gate.barrier().await;
    }
    listing(&state, f).await
}

/// The admin call token of `headers`, checked.
async fn check_admin(f: &Federated, headers: &HeaderMap) -> Result<()> {
    let token = headers
        .get(ADMIN_TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(ApiError::unauthorized)?;
    credentials::check_admin_token(f.directory.as_ref(), token, now())
        .await
        .map_err(refusal)?;
    Ok(())
}

/// Longest a member stays closed for one call.
const MAX_CLOSE_SECS: i64 = 600;

async fn close(
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let f = federated(&state)?;
    check_admin(f, &headers).await?;
    let seconds = body["seconds"]
        .as_i64()
        .filter(|s| (0..=MAX_CLOSE_SECS).contains(s))
        .ok_or_else(|| {
            ApiError::validation(format!(
                "Invalid close request: `seconds` must be 0 to {MAX_CLOSE_SECS}."
            ))
        })?;
    if seconds == 0 {
        f.gate.reopen();
        tracing::info!("reopened for new tenants");
    } else {
        f.gate
            .close_until(now_micros() / 1_000 + seconds * 1_000)
            .await;
        tracing::info!(seconds, "closed for new tenants");
    }
    listing(&state, f).await
}

/// The projects owned and users homed here.
async fn listing(state: &AppState, f: &Federated) -> Result<Response> {
    let me = ShardId::new(state.config.shard.id.as_str());
    let all = ListFilter::default();
    let projects: Vec<String> = state
        .store
        .list_projects(&all)
        .await?
        .into_iter()
        .map(|p| p.id.to_string())
        .collect();
    let homed_here = crate::federation::homed_here(f, &me);
    let users: Vec<String> = state
        .store
        .list_users(&all)
        .await?
        .into_iter()
        .filter(|u| homed_here(&u.id))
        .map(|u| u.id.to_string())
        .collect();
    Ok(Json(json!({"shard": me, "projects": projects, "users": users})).into_response())
}
