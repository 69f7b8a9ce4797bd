//! `/v3/users`: users homed on this shard, their passwords and projects.

use super::assignments::user_projects;
use super::body::Path;
use super::body::{
    check_id, extras, name, opt_bool, opt_name, opt_str, section, JsonBody, QueryMap,
};
use super::projects::{default_domain, list_filter, placed_id};
use super::{collection, entity, to_json, with_links};
use crate::error::Result;
use crate::federation::names::Name;
use crate::policy::Caller;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use keyfed_shared::auth::{Secret, MAX_PASSWORD_LEN};
use keyfed_shared::error::{ApiError, ErrorKind};
use keyfed_shared::ids::{DomainId, ProjectId, UserId, MAX_ID_LEN};
use keyfed_shared::model::User;
use keyfed_shared::policy::{Operation, Target};
use keyfed_shared::revocation::RevocationSubject;
use serde_json::{json, Value};

/// The attributes of its schema (the rest are kept as extras).
pub(super) const KNOWN: &[&str] = &[
    "id",
    "name",
    "domain_id",
    "enabled",
    "password",
    "default_project_id",
    "options",
    "password_expires_at",
    "original_password",
];

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3/users", get(list).post(create))
        .route("/v3/users/{id}", get(show).patch(update).delete(remove))
        .route("/v3/users/{id}/password", post(change_password))
        .route("/v3/users/{id}/projects", get(projects))
}

fn render(state: &AppState, u: &User) -> Value {
    let mut v = to_json(u);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("password_expires_at".into(), Value::Null);
        obj.insert("options".into(), json!({}));
    }
    with_links(v, state, &format!("users/{}", u.id))
}

/// A user as a policy target.
pub(super) fn target(u: &User) -> Target {
    Target::user(u.id.clone(), u.domain_id.clone())
}

async fn load(state: &AppState, id: &str) -> Result<User> {
    state
        .store
        .get_user(&UserId::new(id))
        .await?
        .ok_or_else(|| ApiError::not_found("user", id).into())
}

fn password(obj: &serde_json::Map<String, Value>, key: &str) -> Result<Option<Secret>, ApiError> {
    Ok(opt_str(obj, key, MAX_PASSWORD_LEN)?.map(Secret::new))
}

fn default_project(
    obj: &serde_json::Map<String, Value>,
) -> Result<Option<Option<ProjectId>>, ApiError> {
    match obj.get("default_project_id") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(_) => Ok(Some(
            opt_str(obj, "default_project_id", MAX_ID_LEN)?.map(ProjectId::new),
        )),
    }
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryMap(q): QueryMap,
) -> Result<Response> {
    let filter = list_filter(&q);
    caller.authorize_list(Operation::ListUsers, filter.domain_id.clone())?;
    let confined = caller.list_domain();
    let items = state
        .store
        .list_users(&filter)
        .await?
        .iter()
        .filter(|u| confined.is_none_or(|d| *d == u.domain_id))
        .map(|u| render(&state, u))
        .collect();
    Ok(collection(&state, "users", "users", items))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let obj = section(&body, "user")?;
    let domain_id = opt_str(obj, "domain_id", MAX_ID_LEN)?
        .map(DomainId::new)
        .unwrap_or_else(|| default_domain(&caller));
    let id = placed_id(&state, obj)?.map_or_else(UserId::generate, UserId::new);
    caller.authorize(
        Operation::CreateUser,
        &Target::user(id.clone(), domain_id.clone()),
    )?;
    super::require_domain(&state, &domain_id).await?;
    let _placement = state
        .place_new_user(&id, super::place_instead_of(&headers))
        .await?;
    let user = User {
        id,
        name: name(obj)?,
        domain_id,
        enabled: opt_bool(obj, "enabled")?.unwrap_or(true),
        default_project_id: default_project(obj)?.flatten(),
        extra: extras(obj, KNOWN),
    };
    let hash = match password(obj, "password")? {
        Some(p) => Some(state.hasher.hash(&p).await?),
        None => None,
    };
    let name = Name::user(&user.id, &user.domain_id, &user.name);
    let stored = user.clone();
    state
        .with_name(&name, None, move |s| async move {
            Ok(s.store.create_user(&stored, hash.as_deref()).await?)
        })
        .await?;
    tracing::info!(user = %user.id, "user created");
    Ok(entity(StatusCode::CREATED, "user", render(&state, &user)))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let user = caller.authorize_found(Operation::GetUser, load(&state, &id).await, target)?;
    Ok(entity(StatusCode::OK, "user", render(&state, &user)))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let mut user =
        caller.authorize_found(Operation::UpdateUser, load(&state, &id).await, target)?;
    let obj = section(&body, "user")?;
    check_id(obj, &id)?;
    if let Some(d) = opt_str(obj, "domain_id", MAX_ID_LEN)? {
        if d != user.domain_id.as_str() {
            return Err(ApiError::validation("Cannot change the domain of a user.").into());
        }
    }
    let was_enabled = user.enabled;
    let old_name = Name::user(&user.id, &user.domain_id, &user.name);
    if let Some(n) = opt_name(obj)? {
        user.name = n;
    }
    if let Some(e) = opt_bool(obj, "enabled")? {
        user.enabled = e;
    }
    if let Some(p) = default_project(obj)? {
        user.default_project_id = p;
    }
    user.extra.extend(extras(obj, KNOWN));
    let hash = match password(obj, "password")? {
        Some(p) => Some(state.hasher.hash(&p).await?),
        None => None,
    };
    let revoke = ((was_enabled && !user.enabled) || hash.is_some())
        .then(|| state.revocation_event(RevocationSubject::User(user.id.clone())));
    let new_name = Name::user(&user.id, &user.domain_id, &user.name);
    let (stored, event) = (user.clone(), revoke.clone());
    let updated = state.with_name(&new_name, Some(&old_name), move |s| async move {
        Ok(s.store
            .update_user(&stored, hash.as_deref(), event.as_ref())
            .await?)
    });
    if !updated.await? {
        return Err(ApiError::not_found("user", &id).into());
    }
    if let Some(event) = revoke {
        state.apply_revocation(event);
    }
    Ok(entity(StatusCode::OK, "user", render(&state, &user)))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let user = caller.authorize_found(Operation::DeleteUser, load(&state, &id).await, target)?;
    let uid = UserId::new(id.as_str());
    let event = state.revocation_event(RevocationSubject::User(uid.clone()));
    if !state.store.delete_user(&uid, &event).await? {
        return Err(ApiError::not_found("user", &id).into());
    }
    state
        .name_deleted(&Name::user(&uid, &user.domain_id, &user.name))
        .await;
    state.apply_revocation(event);
    state.memberships_changed();
    tracing::info!(user = %id, "user deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// A user changes its own password, proving it knows the current one.
async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<StatusCode> {
    let uid = UserId::new(id.as_str());
    if caller.claims.user_id != uid {
        return Err(ApiError::forbidden().into());
    }
    let obj = section(&body, "user")?;
    let (Some(original), Some(new)) = (
        password(obj, "original_password")?,
        password(obj, "password")?,
    ) else {
        return Err(
            ApiError::validation("Both 'password' and 'original_password' are required.").into(),
        );
    };
    let stored = state.store.password_hash(&uid).await?;
    if !state.hasher.verify(&original, stored.as_deref()).await? {
        return Err(ApiError::new(
            ErrorKind::Unauthorized,
            "The original password is incorrect.",
        )
        .into());
    }
    let hash = state.hasher.hash(&new).await?;
    let event = state.revocation_event(RevocationSubject::User(uid.clone()));
    if !state.store.set_password(&uid, &hash, &event).await? {
        return Err(ApiError::not_found("user", &id).into());
    }
    state.apply_revocation(event);
    tracing::info!(user = %id, "password changed");
    Ok(StatusCode::NO_CONTENT)
}

async fn projects(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let uid = UserId::new(id.as_str());
    caller.authorize_found(Operation::ListUserProjects, load(&state, &id).await, target)?;
    let items = user_projects(&state, &uid)
        .await?
        .iter()
        .map(|p| super::projects::render(&state, p))
        .collect();
    Ok(collection(
        &state,
        "projects",
        &format!("users/{id}/projects"),
        items,
    ))
}
