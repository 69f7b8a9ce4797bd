//! Writes that change where names and entities live: creating a project or
//! user (the gateway generates the id, places it by the ring, reserves the
//! name federation-wide, then has the owner create it with that id),
//! deleting one (the name is released once the shard deleted it) and
//! renaming one (the new name is reserved first, the old released after).

use std::time::Duration;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use keyfed_directory::{Bucket, DirectoryError};
use keyfed_shared::error::ApiError;
use keyfed_shared::federation::name_key;
use keyfed_shared::ids::{DomainId, ProjectId, ShardId, UserId};
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

fn names_key(kind: Kind, domain: &DomainId, name: &str) -> String {
    match kind {
        Kind::Project => name_key::project(domain, name),
        Kind::User => name_key::user(domain, name),
    }
}

fn owner(state: &Gateway, kind: Kind, id: &str) -> Result<ShardId> {
    match kind {
        Kind::Project => state.view.owner_of_project(&ProjectId::new(id)),
        Kind::User => state.view.home_of_user(&UserId::new(id)),
    }
    .ok_or(GatewayError::NoMember)
}

fn duplicate(kind: Kind) -> GatewayError {
    GatewayError::Api(ApiError::conflict(format!(
        "Conflict occurred attempting to store {} - Duplicate entry.",
        kind.member()
    )))
}

/// Reserves `key` for `id`; returns the revision to release it with.
async fn reserve(state: &Gateway, kind: Kind, key: &str, id: &str) -> Result<u64> {
    let names = state.directory.kv(Bucket::Names);
    match names.create(key, Bytes::from(id.to_owned())).await {
        Ok(revision) => Ok(revision),
        Err(DirectoryError::AlreadyExists) => Err(duplicate(kind)),
        Err(e) => Err(e.into()),
    }
}

/// Releases `key` if it still names `id`. While the directory cannot be
/// reached, keeps trying in the background (see [`release_later`]).
async fn release(state: &Gateway, key: &str, id: &str) {
    if let Err(error) = try_release(state.directory.as_ref(), key, id).await {
        tracing::warn!(%key, %error, "could not release a name reservation; retrying");
        release_later(state, key, id);
    }
}

/// Releases `key` if it names `id`, in the background, once the directory
/// answers — and keeps checking a little after that. A reservation whose
/// call failed with the directory unreachable may still land later (the
/// NATS client sends writes it buffered once it reconnects), and would
/// otherwise block the name of an entity that was never created.
fn release_later(state: &Gateway, key: &str, id: &str) {
    let (directory, key, id) = (state.directory.clone(), key.to_owned(), id.to_owned());
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + RELEASE_RETRY_FOR;
        let mut answered = 0;
        while answered < RELEASE_CHECKS {
            tokio::time::sleep(RELEASE_RETRY_EVERY).await;
            match try_release(directory.as_ref(), &key, &id).await {
                Ok(()) => answered += 1,
                Err(_) if tokio::time::Instant::now() < deadline => {}
                Err(error) => {
                    tracing::warn!(%key, %error, "gave up releasing a name reservation");
                    return;
                }
            }
        }
    });
}

/// How long [`release_later`] keeps trying while the directory is down.
const RELEASE_RETRY_FOR: Duration = Duration::from_secs(600);
/// Pause between [`release_later`]'s attempts.
const RELEASE_RETRY_EVERY: Duration = Duration::from_secs(1);
/// Answered checks [`release_later`] makes before it stops.
const RELEASE_CHECKS: u32 = 3;

async fn try_release(
    directory: &dyn keyfed_directory::Directory,
    key: &str,
    id: &str,
) -> Result<(), DirectoryError> {
    let names = directory.kv(Bucket::Names);
    match names.get(key).await? {
        Some(entry) if entry.value.as_ref() == id.as_bytes() => {
            names.delete(key, Some(entry.revision)).await?;
            tracing::info!(%key, "name reservation released");
            Ok(())
        }
        _ => Ok(()),
    }
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

/// `POST /v3/projects` and `POST /v3/users`.
pub async fn create(state: &Gateway, req: &Incoming, kind: Kind) -> Result<Response> {
    let caller = auth::caller(state, req)?;
    let mut body = req.json()?;
    let entity = entity_of(&mut body, kind)?;
    let name = match entity.get("name") {
        Some(Value::String(n)) if !n.is_empty() && n.len() <= 255 => n.clone(),
        _ => {
            return Err(GatewayError::Api(ApiError::validation(format!(
                "Invalid input for field '{}/name': a non-empty string is required.",
                kind.member()
            ))))
        }
    };
    let domain = match entity.get("domain_id") {
        Some(Value::String(d)) if !d.is_empty() => DomainId::new(d.clone()),
        None | Some(Value::Null) => caller
            .scope_domain_id()
            .cloned()
            .unwrap_or_else(|| DomainId::new("default")),
        Some(_) => {
            return Err(GatewayError::Api(ApiError::validation(format!(
                "Invalid input for field '{}/domain_id': expected a string.",
                kind.member()
            ))))
        }
    };
    let id = match kind {
        Kind::Project => ProjectId::generate().into_string(),
        Kind::User => UserId::generate().into_string(),
    };
    entity.insert("domain_id".into(), json!(domain));
    entity.insert("id".into(), json!(id));
    let key = names_key(kind, &domain, &name);
    if let Err(e) = reserve(state, kind, &key, &id).await {
        if matches!(e, GatewayError::Directory(_)) {
            // The reservation may land later: undo it when it does.
            release_later(state, &key, &id);
        }
        return Err(e);
    }
    let out = Outgoing::new(Method::POST, req.path_and_query(), &req.headers).json(&body);
    let answer = create_at_owner(state, kind, &id, &out).await;
    if !matches!(&answer, Ok(a) if a.status == StatusCode::CREATED) {
        release(state, &key, &id).await;
    }
    Ok(answer?.into_response())
}

/// Sends the create to the owner; if it refuses as not the owner (409),
/// lets the view catch up and retries once where it now points.
async fn create_at_owner(
    state: &Gateway,
    kind: Kind,
    id: &str,
    out: &Outgoing,
) -> Result<Upstream> {
    let first_owner = owner(state, kind, id)?;
    let answer = state.call(&first_owner, out).await?;
    if answer.status != StatusCode::CONFLICT {
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

/// The entity's current name and domain, read from its owner with the
/// caller's token (`None` when it cannot be read).
async fn current(
    state: &Gateway,
    req: &Incoming,
    kind: Kind,
    id: &str,
    at: &ShardId,
) -> Result<Option<(String, DomainId)>> {
    let path = format!("/v3/{}s/{id}", kind.member());
    let answer = state
        .call(at, &Outgoing::new(Method::GET, path, &req.headers))
        .await?;
    if answer.status != StatusCode::OK {
        return Ok(None);
    }
    Ok(answer.json().and_then(|v| {
        let e = &v[kind.member()];
        Some((
            e["name"].as_str()?.to_owned(),
            DomainId::new(e["domain_id"].as_str()?),
        ))
    }))
}

/// `DELETE /v3/{projects,users}/{id}`: forwarded; on 204 the name is
/// released.
pub async fn delete(state: &Gateway, req: &Incoming, kind: Kind, id: &str) -> Result<Response> {
    let at = owner(state, kind, id)?;
    let known = current(state, req, kind, id, &at).await?;
    let answer = state.call(&at, &req.forward()).await?;
    if answer.status == StatusCode::NO_CONTENT {
        if let Some((name, domain)) = known {
            release(state, &names_key(kind, &domain, &name), id).await;
        }
    }
    Ok(answer.into_response())
}

/// `PATCH /v3/{projects,users}/{id}`: a rename reserves the new name first,
/// releases the old one after the shard's 200, or the new one otherwise.
pub async fn update(state: &Gateway, req: &Incoming, kind: Kind, id: &str) -> Result<Response> {
    let at = owner(state, kind, id)?;
    let mut body = req.json()?;
    let new_name = entity_of(&mut body, kind)?
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let Some(new_name) = new_name else {
        return Ok(state.call(&at, &req.forward()).await?.into_response());
    };
    let Some((old_name, domain)) = current(state, req, kind, id, &at).await? else {
        return Ok(state.call(&at, &req.forward()).await?.into_response());
    };
    if new_name == old_name {
        return Ok(state.call(&at, &req.forward()).await?.into_response());
    }
    let new_key = names_key(kind, &domain, &new_name);
    if let Err(e) = reserve(state, kind, &new_key, id).await {
        if matches!(e, GatewayError::Directory(_)) {
            release_later(state, &new_key, id);
        }
        return Err(e);
    }
    let answer = state.call(&at, &req.forward()).await;
    match &answer {
        Ok(a) if a.status == StatusCode::OK => {
            release(state, &names_key(kind, &domain, &old_name), id).await
        }
        _ => release(state, &new_key, id).await,
    }
    Ok(answer?.into_response())
}
