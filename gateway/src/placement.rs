//! Writes that change where entities live: creating a project or user (the
//! gateway generates the id, places it by the ring and has the owner create
//! it with that id), deleting and renaming one. Names are the owners'
//! business: the shard storing an entity reserves its name federation-wide
//! (gateways only read the names index).

use std::time::Duration;

use axum::http::Method;
use axum::response::{IntoResponse, Response};
use keyfed_shared::error::ApiError;
use keyfed_shared::error::Refusal;
use keyfed_shared::federation::PLACE_INSTEAD_HEADER;
use keyfed_shared::ids::{ProjectId, ShardId, UserId};
use serde_json::{json, Value};

use crate::auth;
use crate::error::{GatewayError, Result};
use crate::proxy::{Outgoing, Upstream};
use crate::request::Incoming;
use crate::routes::Kind;
use crate::state::Gateway;

/// How long to let the view catch up before retrying a create that the
/// chosen owner refused as not its own.
const REPLACE_DELAY: Duration = Duration::from_millis(200);

fn owner(state: &Gateway, kind: Kind, id: &str) -> Result<ShardId> {
    match kind {
        Kind::Project => state.view.owner_of_project(&ProjectId::new(id)),
        Kind::User => state.view.home_of_user(&UserId::new(id)),
    }
    .ok_or(GatewayError::NoMember)
}

/// The entity's body object from a request (400 when missing).
fn entity_of(body: &mut Value, kind: Kind) -> Result<&mut serde_json::Map<String, Value>> {
    body.get_mut(kind.member())
        .and_then(Value::as_object_mut)
        .ok_or_else(|| {
            GatewayError::Api(ApiError::validation(format!(
                "Invalid input for field '{}': expected an object.",
                kind.member()
            )))
        })
}

/// `POST /v3/projects` and `POST /v3/users`: the id is chosen here and the
/// create sent to the member it places the entity on, which reserves the
/// name (see the shard's `federation::names`). A timeout is an unknown
/// outcome: the client gets 503, and the name stays with whatever the
/// owner does, so a retry never creates a second entity of that name.
pub async fn create(state: &Gateway, req: &Incoming, kind: Kind) -> Result<Response> {
    // A bad token never reaches a shard.
    auth::caller(state, req)?;
    let mut body = req.json()?;
    let entity = entity_of(&mut body, kind)?;
    let id = match kind {
        Kind::Project => ProjectId::generate().into_string(),
        Kind::User => UserId::generate().into_string(),
    };
    entity.insert("id".into(), json!(id));
    let out = Outgoing::new(Method::POST, req.path_and_query(), &req.headers).json(&body);
    Ok(create_at_owner(state, kind, &id, &out)
        .await?
        .into_response())
}

/// Sends the create to the owner — or, while the owner is marked down
/// (see [`crate::health`]), to the member a ring over the live members
/// places it on, which pins it to itself: a new tenant has no data
/// anywhere yet, so creations go on through a member's outage. If the
/// owner refuses as not the owner (a 409 saying so; a duplicate name is
/// the client's 409),
/// lets the view catch up and retries once where it now points.
async fn create_at_owner(
    state: &Gateway,
    kind: Kind,
    id: &str,
    out: &Outgoing,
) -> Result<Upstream> {
    let first_owner = owner(state, kind, id)?;
    if state.health.is_down(&first_owner) {
        if let Some(instead) = state.live_owner(id, &first_owner) {
            tracing::info!(%id, owner = %first_owner, %instead, "owner down; creating on a live member");
            let mut taken = out.clone();
            if let Ok(value) = http::HeaderValue::from_str(first_owner.as_str()) {
                taken.headers.insert(PLACE_INSTEAD_HEADER, value);
            }
            return state.call(&instead, &taken).await;
        }
    }
    let answer = state.call(&first_owner, out).await?;
    if answer.refusal != Some(Refusal::NotOwner) {
        return Ok(answer);
    }
    tokio::time::sleep(REPLACE_DELAY).await;
    let now_owner = owner(state, kind, id)?;
    if now_owner == first_owner {
        return Ok(answer);
    }
    tracing::info!(%id, from = %first_owner, to = %now_owner, "owner changed; retrying the create");
    state.call(&now_owner, out).await
}

/// `DELETE` and `PATCH /v3/{projects,users}/{id}`: sent to the owner,
/// which keeps the names index in step.
pub async fn forward(state: &Gateway, req: &Incoming, kind: Kind, id: &str) -> Result<Response> {
    let at = owner(state, kind, id)?;
    Ok(state.call(&at, &req.forward()).await?.into_response())
}
