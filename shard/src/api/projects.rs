//! `/v3/projects`: the tenants this shard owns. Projects are flat under their
//! domain (`parent_id` is the domain id, `is_domain` false).

use super::body::Path;
use super::body::{
    check_id, extras, name, opt_bool, opt_name, opt_str, opt_strings, query_flag, section,
    JsonBody, QueryMap,
};
use super::{collection, entity, to_json, with_links};
use crate::error::Result;
use crate::federation::names::Name;
use crate::policy::Caller;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use keyfed_shared::error::ApiError;
use keyfed_shared::ids::{DomainId, ProjectId, MAX_ID_LEN};
use keyfed_shared::model::{ListFilter, Project};
use keyfed_shared::policy::{Operation, Target};
use keyfed_shared::revocation::RevocationSubject;
use serde_json::{json, Map, Value};

/// The attributes of its schema (the rest are kept as extras).
pub(super) const KNOWN: &[&str] = &[
    "id",
    "name",
    "domain_id",
    "description",
    "enabled",
    "tags",
    "parent_id",
    "is_domain",
    "options",
];

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3/projects", get(list).post(create))
        .route("/v3/projects/{id}", get(show).patch(update).delete(remove))
}

/// A project as Keystone renders it (without links).
pub(crate) fn project_json(p: &Project) -> Value {
    let mut v = to_json(p);
    if let Some(obj) = v.as_object_mut() {
        obj.insert("parent_id".into(), json!(p.domain_id));
        obj.insert("is_domain".into(), json!(false));
        obj.insert("options".into(), json!({}));
    }
    v
}

pub(crate) fn render(state: &AppState, p: &Project) -> Value {
    with_links(project_json(p), state, &format!("projects/{}", p.id))
}

async fn load(state: &AppState, id: &str) -> Result<Project> {
    state
        .store
        .get_project(&ProjectId::new(id))
        .await?
        .ok_or_else(|| ApiError::not_found("project", id).into())
}

/// A project as a policy target.
pub(super) fn target(p: &Project) -> Target {
    Target::project(p.id.clone(), p.domain_id.clone())
}

/// Parses `name`, `domain_id` and `enabled` filters.
pub(super) fn list_filter(q: &super::body::Query) -> ListFilter {
    ListFilter {
        name: q.get("name").cloned(),
        domain_id: q.get("domain_id").map(DomainId::new),
        enabled: query_flag(q, "enabled"),
    }
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryMap(q): QueryMap,
) -> Result<Response> {
    let filter = list_filter(&q);
    caller.authorize_list(Operation::ListProjects, filter.domain_id.clone())?;
    let confined = caller.list_domain();
    let items = state
        .store
        .list_projects(&filter)
        .await?
        .iter()
        .filter(|p| confined.is_none_or(|d| *d == p.domain_id))
        .map(|p| render(&state, p))
        .collect();
    Ok(collection(&state, "projects", "projects", items))
}

/// The id a gateway chose for a new entity: honoured only on a federated
/// shard, where the gateway places entities (standalone shards pick ids).
pub(super) fn placed_id(
    state: &AppState,
    obj: &Map<String, Value>,
) -> Result<Option<String>, ApiError> {
    if state.federation.is_none() {
        return Ok(None);
    }
    match opt_str(obj, "id", MAX_ID_LEN)? {
        Some(id) if id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()) => Ok(Some(id)),
        Some(_) => Err(ApiError::validation(
            "Invalid input for field 'id': expected 32 hexadecimal characters.",
        )),
        None => Ok(None),
    }
}

/// The domain a new entity lands in when the body names none: the caller's
/// scope domain, else its own domain.
pub(super) fn default_domain(caller: &Caller) -> DomainId {
    caller
        .claims
        .scope_domain_id()
        .cloned()
        .unwrap_or_else(|| caller.claims.user_domain_id.clone())
}

fn reject_hierarchy(obj: &Map<String, Value>, domain_id: &DomainId) -> Result<(), ApiError> {
    if opt_bool(obj, "is_domain")? == Some(true) {
        return Err(ApiError::validation(
            "Projects acting as domains are not supported; create a domain.",
        ));
    }
    match opt_str(obj, "parent_id", MAX_ID_LEN)? {
        Some(parent) if parent != domain_id.as_str() => Err(ApiError::validation(
            "Project hierarchies are not supported: parent_id must be the domain.",
        )),
        _ => Ok(()),
    }
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let obj = section(&body, "project")?;
    let domain_id = opt_str(obj, "domain_id", MAX_ID_LEN)?
        .map(DomainId::new)
        .unwrap_or_else(|| default_domain(&caller));
    let id = placed_id(&state, obj)?.map_or_else(ProjectId::generate, ProjectId::new);
    caller.authorize(
        Operation::CreateProject,
        &Target::project(id.clone(), domain_id.clone()),
    )?;
    reject_hierarchy(obj, &domain_id)?;
    super::require_domain(&state, &domain_id).await?;
    let _placement = state
        .place_new_project(&id, super::place_instead_of(&headers))
        .await?;
    let project = Project {
        id,
        name: name(obj)?,
        domain_id,
        description: opt_str(obj, "description", 65_535)?.unwrap_or_default(),
        enabled: opt_bool(obj, "enabled")?.unwrap_or(true),
        tags: opt_strings(obj, "tags")?.unwrap_or_default(),
        extra: extras(obj, KNOWN),
    };
    let name = Name::project(&project.id, &project.domain_id, &project.name);
    let stored = project.clone();
    state
        .with_name(&name, None, move |s| async move {
            Ok(s.store.create_project(&stored).await?)
        })
        .await?;
    tracing::info!(project = %project.id, "project created");
    Ok(entity(
        StatusCode::CREATED,
        "project",
        render(&state, &project),
    ))
}

async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response> {
    let project = caller.authorize_found(Operation::GetProject, load(&state, &id).await, target)?;
    Ok(entity(StatusCode::OK, "project", render(&state, &project)))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let mut project =
        caller.authorize_found(Operation::UpdateProject, load(&state, &id).await, target)?;
    let obj = section(&body, "project")?;
    check_id(obj, &id)?;
    if let Some(d) = opt_str(obj, "domain_id", MAX_ID_LEN)? {
        if d != project.domain_id.as_str() {
            return Err(ApiError::validation("Cannot change the domain of a project.").into());
        }
    }
    reject_hierarchy(obj, &project.domain_id)?;
    let was_enabled = project.enabled;
    let old_name = Name::project(&project.id, &project.domain_id, &project.name);
    if let Some(n) = opt_name(obj)? {
        project.name = n;
    }
    if let Some(d) = opt_str(obj, "description", 65_535)? {
        project.description = d;
    }
    if let Some(e) = opt_bool(obj, "enabled")? {
        project.enabled = e;
    }
    if let Some(t) = opt_strings(obj, "tags")? {
        project.tags = t;
    }
    project.extra.extend(extras(obj, KNOWN));
    let revoke = (was_enabled && !project.enabled)
        .then(|| state.revocation_event(RevocationSubject::Project(project.id.clone())));
    let new_name = Name::project(&project.id, &project.domain_id, &project.name);
    let (stored, event) = (project.clone(), revoke.clone());
    let updated = state.with_name(&new_name, Some(&old_name), move |s| async move {
        Ok(s.store.update_project(&stored, event.as_ref()).await?)
    });
    if !updated.await? {
        return Err(ApiError::not_found("project", &id).into());
    }
    if let Some(event) = revoke {
        state.apply_revocation(event);
    }
    Ok(entity(StatusCode::OK, "project", render(&state, &project)))
}

async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let project =
        caller.authorize_found(Operation::DeleteProject, load(&state, &id).await, target)?;
    let pid = ProjectId::new(id.as_str());
    let event = state.revocation_event(RevocationSubject::Project(pid.clone()));
    if !state.store.delete_project(&pid, &event).await? {
        return Err(ApiError::not_found("project", &id).into());
    }
    state
        .name_deleted(&Name::project(&pid, &project.domain_id, &project.name))
        .await;
    state.apply_revocation(event);
    state.memberships_changed();
    tracing::info!(project = %id, "project deleted");
    Ok(StatusCode::NO_CONTENT)
}
