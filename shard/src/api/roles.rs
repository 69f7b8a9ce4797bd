//! `/v3/roles` and implied roles (`/v3/roles/{prior}/implies/{implied}`,
//! `/v3/role_inferences`). Roles are global data: writes reload the snapshot.

use super::body::Path;
use super::body::{check_id, name, opt_name, opt_str, section, JsonBody, QueryMap};
use super::{collection, entity, links, to_json, with_links};
use crate::error::Result;
use crate::policy::Caller;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use keyfed_shared::error::{ApiError, ErrorKind};
use keyfed_shared::federation::GlobalEntity;
use keyfed_shared::ids::{DomainId, RoleId, MAX_ID_LEN};
use keyfed_shared::model::{ImpliedRole, Role};
use keyfed_shared::policy::{Operation, Target};
use serde_json::{json, Value};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3/roles", get(list).post(create))
        .route("/v3/roles/{id}", get(show).patch(update).delete(remove))
        .route("/v3/roles/{id}/implies", get(list_implied))
        .route(
            "/v3/roles/{id}/implies/{implied}",
            get(show_implied).put(add_implied).delete(remove_implied),
        )
        .route("/v3/role_inferences", get(inferences))
}

fn render(state: &AppState, r: &Role) -> Value {
    let mut v = to_json(r);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("options".into(), json!({}));
    }
    with_links(v, state, &format!("roles/{}", r.id))
}

fn role_ref(state: &AppState, r: &Role) -> Value {
    json!({"id": r.id, "name": r.name, "links": links(state, &format!("roles/{}", r.id))})
}

/// A role as a policy target.
fn target(r: &Role) -> Target {
    Target::role(r.name.clone(), r.domain_id.clone())
}

fn known_role(state: &AppState, id: &str) -> Result<Role> {
    state
        .global()
        .roles
        .get(&RoleId::new(id))
        .cloned()
        .ok_or_else(|| ApiError::not_found("role", id).into())
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryMap(q): QueryMap,
) -> Result<Response> {
    // Without a `domain_id` filter Keystone lists the global roles.
    let domain = q.get("domain_id");
    let op = match domain {
        Some(_) => Operation::ListDomainRoles,
        None => Operation::ListRoles,
    };
    caller.authorize(op, &Target::none())?;
    let mut roles: Vec<Role> = state.global().roles.values().cloned().collect();
    roles.sort_by(|a, b| a.name.cmp(&b.name));
    let items = roles
        .iter()
        .filter(|r| q.get("name").is_none_or(|n| *n == r.name))
        .filter(|r| r.domain_id.as_ref().map(|d| d.as_str()) == domain.map(String::as_str))
        .map(|r| render(&state, r))
        .collect();
    Ok(collection(&state, "roles", "roles", items))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let obj = section(&body, "role")?;
    let role = Role {
        id: opt_str(obj, "id", MAX_ID_LEN)?.map_or_else(RoleId::generate, RoleId::new),
        name: name(obj)?,
        domain_id: opt_str(obj, "domain_id", MAX_ID_LEN)?.map(DomainId::new),
        description: opt_str(obj, "description", 65_535)?,
    };
    caller.authorize(Operation::CreateRole, &target(&role))?;
    state
        .create_global(GlobalEntity::Role(role.clone()))
        .await?;
    tracing::info!(role = %role.id, "role created");
    Ok(entity(StatusCode::CREATED, "role", render(&state, &role)))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let role = caller.authorize_found(Operation::GetRole, known_role(&state, &id), target)?;
    Ok(entity(StatusCode::OK, "role", render(&state, &role)))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let mut role =
        caller.authorize_found(Operation::UpdateRole, known_role(&state, &id), target)?;
    let obj = section(&body, "role")?;
    check_id(obj, &id)?;
    if let Some(n) = opt_name(obj)? {
        role.name = n;
    }
    if let Some(d) = opt_str(obj, "description", 65_535)? {
        role.description = Some(d);
    }
    if !state
        .update_global(GlobalEntity::Role(role.clone()))
        .await?
    {
        return Err(ApiError::not_found("role", &id).into());
    }
    Ok(entity(StatusCode::OK, "role", render(&state, &role)))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let role = caller.authorize_found(Operation::DeleteRole, known_role(&state, &id), target)?;
    if !state.delete_global(GlobalEntity::Role(role)).await? {
        return Err(ApiError::not_found("role", &id).into());
    }
    tracing::info!(role = %id, "role deleted");
    Ok(StatusCode::NO_CONTENT)
}

fn inference(state: &AppState, prior: &Role, implies: Value) -> Value {
    json!({"role_inference": {"prior_role": role_ref(state, prior), "implies": implies}})
}

async fn list_implied(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    caller.authorize(Operation::ListImpliedRoles, &Target::none())?;
    let prior = known_role(&state, &id)?;
    let global = state.global();
    let implies: Vec<Value> = global
        .implied
        .get(&prior.id)
        .into_iter()
        .flatten()
        .filter_map(|r| global.roles.get(r))
        .map(|r| role_ref(&state, r))
        .collect();
    Ok(Json(inference(&state, &prior, Value::Array(implies))).into_response())
}

/// The two roles of an implication. A role this shard's mirror does not
/// hold yet — created on another member a moment ago — is caught up from
/// the directory first, so what a client created through one member it
/// can use at once through any.
async fn implication(state: &AppState, prior: &str, implied: &str) -> Result<(Role, Role)> {
    for id in [prior, implied] {
        if known_role(state, id).is_err() {
            state.catch_up_global(&format!("role/{id}")).await?;
        }
    }
    Ok((known_role(state, prior)?, known_role(state, implied)?))
}

async fn show_implied(
    State(state): State<AppState>,
    caller: Caller,
    Path((prior, implied)): Path<(String, String)>,
) -> Result<Response> {
    caller.authorize(Operation::GetImpliedRole, &Target::none())?;
    let (prior, implied) = implication(&state, &prior, &implied).await?;
    let exists = state
        .global()
        .implied
        .get(&prior.id)
        .is_some_and(|v| v.contains(&implied.id));
    if !exists {
        return Err(ApiError::not_found("implied role", implied.id.as_str()).into());
    }
    Ok(Json(inference(&state, &prior, role_ref(&state, &implied))).into_response())
}

async fn add_implied(
    State(state): State<AppState>,
    caller: Caller,
    Path((prior, implied)): Path<(String, String)>,
) -> Result<Response> {
    caller.authorize(Operation::CreateImpliedRole, &Target::none())?;
    let (prior, implied) = implication(&state, &prior, &implied).await?;
    if keyfed_shared::global::is_prohibited_implied(&implied) {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            format!("{} cannot be an implied roles.", implied.id),
        )
        .into());
    }
    // Refuse cycles: `implied` must not already (transitively) imply `prior`.
    if state
        .global()
        .effective_roles([&implied.id])
        .contains(&prior.id)
    {
        return Err(
            ApiError::conflict("This implication would create a cycle of implied roles.").into(),
        );
    }
    let rule = ImpliedRole {
        prior: prior.id.clone(),
        implied: implied.id.clone(),
    };
    let exists = state
        .global()
        .implied
        .get(&rule.prior)
        .is_some_and(|v| v.contains(&rule.implied));
    if !exists {
        state.create_global(GlobalEntity::Implied(rule)).await?;
    }
    Ok((
        StatusCode::CREATED,
        Json(inference(&state, &prior, role_ref(&state, &implied))),
    )
        .into_response())
}

async fn remove_implied(
    State(state): State<AppState>,
    caller: Caller,
    Path((prior, implied)): Path<(String, String)>,
) -> Result<StatusCode> {
    caller.authorize(Operation::DeleteImpliedRole, &Target::none())?;
    let (prior, implied) = implication(&state, &prior, &implied).await?;
    let rule = ImpliedRole {
        prior: prior.id,
        implied: implied.id,
    };
    let implied_id = rule.implied.clone();
    if !state.delete_global(GlobalEntity::Implied(rule)).await? {
        return Err(ApiError::not_found("implied role", implied_id.as_str()).into());
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn inferences(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    caller.authorize(Operation::ListRoleInferenceRules, &Target::none())?;
    let global = state.global();
    let mut items: Vec<Value> = global
        .implied
        .iter()
        .filter_map(|(prior, implied)| {
            let prior = global.roles.get(prior)?;
            let implies: Vec<Value> = implied
                .iter()
                .filter_map(|r| global.roles.get(r))
                .map(|r| role_ref(&state, r))
                .collect();
            Some(json!({"prior_role": role_ref(&state, prior), "implies": implies}))
        })
        .collect();
    items.sort_by(|a, b| {
        a["prior_role"]["name"]
            .as_str()
            .cmp(&b["prior_role"]["name"].as_str())
    });
    Ok(collection(
        &state,
        "role_inferences",
        "role_inferences",
        items,
    ))
}
