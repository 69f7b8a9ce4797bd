//! `POST /internal/v1/renew` — on an issuer: a member renews its signing
//! certificate online, proving possession of its current certified key
//! ([`keyfed_federation::lifecycle::renew`]). A bad signature, unknown
//! member or kid, stale timestamp or replayed request → 401; a bad CSR or
//! field → 400; 404 on a shard that is not an issuer (a renewing member
//! tries the next one).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use keyfed_federation::lifecycle::renew::{renew as issue_renewal, RenewRequest};
use keyfed_shared::error::ApiError;

use super::body::JsonBody;
use super::internal::{federated, now, refusal};
use crate::error::Result;
use crate::state::AppState;

pub(super) async fn renew(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let f = federated(&state)?;
    let Some(ca) = &f.issuer else {
        return Err(ApiError::not_found("resource", "renew").into());
    };
    let request: RenewRequest = serde_json::from_value(body)
        .map_err(|e| ApiError::validation(format!("Invalid renewal request: {e}")))?;
    let grant = issue_renewal(
        f.directory.as_ref(),
        ca,
        &request,
        now(),
        f.certificate_validity_secs,
    )
    .await
    .map_err(refusal)?;
    Ok(Json(grant).into_response())
}
