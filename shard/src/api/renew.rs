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

use super::body::JsonBody;
use super::internal::{issuer_request, now, refusal};
use crate::error::Result;
use crate::state::AppState;

pub(super) async fn renew(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let (f, ca, request) = issuer_request::<RenewRequest>(&state, body, "renew", "renewal")?;
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
