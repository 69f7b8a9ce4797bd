//! `/v3/domains`. Domains are global data: every write reloads the in-memory
//! snapshot that token validation reads.

use super::body::Path;
use super::body::{
    check_id, name, opt_bool, opt_name, opt_str, query_flag, section, JsonBody, QueryMap,
};
use super::{collection, entity, to_json, with_links};
use crate::error::Result;
use crate::policy::Caller;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use keyfed_shared::error::ApiError;
use keyfed_shared::federation::GlobalEntity;
use keyfed_shared::ids::{DomainId, MAX_ID_LEN};
use keyfed_shared::model::Domain;
use keyfed_shared::policy::{Operation, Target};
use keyfed_shared::revocation::RevocationSubject;
use serde_json::{json, Value};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3/domains", get(list).post(create))
        .route("/v3/domains/{id}", get(show).patch(update).delete(remove))
}

/// A domain as Keystone renders it (without links).
pub(crate) fn domain_json(d: &Domain) -> Value {
    let mut v = to_json(d);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("tags".into(), json!([]));
        obj.insert("options".into(), json!({}));
    }
    v
}

fn render(state: &AppState, d: &Domain) -> Value {
    with_links(domain_json(d), state, &format!("domains/{}", d.id))
}

async fn load(state: &AppState, id: &str) -> Result<Domain> {
    state
        .store
        .get_domain(&DomainId::new(id))
        .await?
        .ok_or_else(|| ApiError::not_found("domain", id).into())
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryMap(q): QueryMap,
) -> Result<Response> {
    caller.authorize_list(Operation::ListDomains, None)?;
    let enabled = query_flag(&q, "enabled");
    let confined = caller.list_domain();
    let items = state
        .store
        .list_domains()
        .await?
        .into_iter()
        .filter(|d| q.get("name").is_none_or(|n| *n == d.name))
        .filter(|d| enabled.is_none_or(|e| e == d.enabled))
        .filter(|d| confined.is_none_or(|c| *c == d.id))
        .map(|d| render(&state, &d))
        .collect();
    Ok(collection(&state, "domains", "domains", items))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    caller.authorize(Operation::CreateDomain, &Target::none())?;
    let obj = section(&body, "domain")?;
    let domain = Domain {
        id: opt_str(obj, "id", MAX_ID_LEN)?.map_or_else(DomainId::generate, DomainId::new),
        name: name(obj)?,
        description: opt_str(obj, "description", 65_535)?.unwrap_or_default(),
        enabled: opt_bool(obj, "enabled")?.unwrap_or(true),
    };
    state
        .create_global(GlobalEntity::Domain(domain.clone()))
        .await?;
    tracing::info!(domain = %domain.id, "domain created");
    Ok(entity(
        StatusCode::CREATED,
        "domain",
        render(&state, &domain),
    ))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    caller.authorize(
        Operation::GetDomain,
        &Target::domain(DomainId::new(id.as_str())),
    )?;
    let domain = load(&state, &id).await?;
    Ok(entity(StatusCode::OK, "domain", render(&state, &domain)))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    caller.authorize(
        Operation::UpdateDomain,
        &Target::domain(DomainId::new(id.as_str())),
    )?;
    let obj = section(&body, "domain")?;
    check_id(obj, &id)?;
    let mut domain = load(&state, &id).await?;
    let was_enabled = domain.enabled;
    if let Some(n) = opt_name(obj)? {
        domain.name = n;
    }
    if let Some(d) = opt_str(obj, "description", 65_535)? {
        domain.description = d;
    }
    if let Some(e) = opt_bool(obj, "enabled")? {
        domain.enabled = e;
    }
    if !state
        .update_global(GlobalEntity::Domain(domain.clone()))
        .await?
    {
        return Err(ApiError::not_found("domain", &id).into());
    }
    if was_enabled && !domain.enabled {
        state
            .revoke(RevocationSubject::Domain(domain.id.clone()))
            .await?;
    }
    state.reload_global().await?;
    Ok(entity(StatusCode::OK, "domain", render(&state, &domain)))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    caller.authorize(
        Operation::DeleteDomain,
        &Target::domain(DomainId::new(id.as_str())),
    )?;
    let domain = load(&state, &id).await?;
    if domain.enabled {
        return Err(ApiError::new(
            keyfed_shared::error::ErrorKind::Forbidden,
            "Cannot delete a domain that is enabled, please disable it first.",
        )
        .into());
    }
    if !state.delete_global(GlobalEntity::Domain(domain)).await? {
        return Err(ApiError::not_found("domain", &id).into());
    }
    tracing::info!(domain = %id, "domain deleted");
    Ok(StatusCode::NO_CONTENT)
}
