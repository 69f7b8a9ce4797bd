//! Role assignments: grants on projects, domains and the system
//! (`PUT`/`HEAD`/`GET`/`DELETE /v3/{target}/users/{user}/roles/{role}`), and
//! `GET /v3/role_assignments` with Keystone's filters, `effective` and
//! `include_names`.

use super::body::Path;
use super::body::{query_flag, QueryMap};
use super::collection;
use crate::error::Result;
use crate::policy::Caller;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use keyfed_shared::error::{ApiError, ErrorKind};
use keyfed_shared::ids::{DomainId, ProjectId, RoleId, UserId};
use keyfed_shared::model::{Assignment, AssignmentFilter, Domain, ListFilter, Project, Target};
use keyfed_shared::policy::{self, Operation};
use keyfed_shared::revocation::RevocationSubject;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v3/projects/{target}/users/{user}/roles",
            get(list_project),
        )
        .route(
            "/v3/projects/{target}/users/{user}/roles/{role}",
            get(check_project).put(grant_project).delete(revoke_project),
        )
        .route("/v3/domains/{target}/users/{user}/roles", get(list_domain))
        .route(
            "/v3/domains/{target}/users/{user}/roles/{role}",
            get(check_domain).put(grant_domain).delete(revoke_domain),
        )
        .route("/v3/system/users/{user}/roles", get(list_system))
        .route(
            "/v3/system/users/{user}/roles/{role}",
            get(check_system).put(grant_system).delete(revoke_system),
        )
        .route("/v3/role_assignments", get(list_assignments))
}

/// Projects on which `user` holds any role, by id.
pub(crate) async fn user_projects(state: &AppState, user: &UserId) -> Result<Vec<Project>> {
    let ids: BTreeSet<ProjectId> = assignments_of(state, user)
        .await?
        .into_iter()
        .filter_map(|a| match a.target {
            Target::Project(p) => Some(p),
            _ => None,
        })
        .collect();
    let mut projects = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(p) = state.store.get_project(&id).await? {
            projects.push(p);
        }
    }
    Ok(projects)
}

/// Domains on which `user` holds any role.
pub(crate) async fn user_domains(state: &AppState, user: &UserId) -> Result<Vec<Domain>> {
    let global = state.global();
    let ids: BTreeSet<DomainId> = assignments_of(state, user)
        .await?
        .into_iter()
        .filter_map(|a| match a.target {
            Target::Domain(d) => Some(d),
            _ => None,
        })
        .collect();
    Ok(ids
        .iter()
        .filter_map(|d| global.domains.get(d).cloned())
        .collect())
}

async fn assignments_of(state: &AppState, user: &UserId) -> Result<Vec<Assignment>> {
    Ok(state
        .store
        .list_assignments(&AssignmentFilter {
            user_id: Some(user.clone()),
            ..AssignmentFilter::default()
        })
        .await?)
}

/// The operations on one kind of assignment target.
struct Ops {
    list: Operation,
    check: Operation,
    grant: Operation,
    revoke: Operation,
}

fn ops(target: &Target) -> Ops {
    match target {
        Target::System => Ops {
            list: Operation::ListSystemGrants,
            check: Operation::CheckSystemGrant,
            grant: Operation::CreateSystemGrant,
            revoke: Operation::RevokeSystemGrant,
        },
        _ => Ops {
            list: Operation::ListGrants,
            check: Operation::CheckGrant,
            grant: Operation::CreateGrant,
            revoke: Operation::RevokeGrant,
        },
    }
}

/// Resolves the parts of an assignment path (404 for a missing one) into
/// the policy target: the project or domain, then the user and the role
/// when given.
async fn resolve(
    state: &AppState,
    target: &Target,
    user: Option<&str>,
    role: Option<&str>,
) -> Result<policy::Target> {
    let mut resolved = match target {
        Target::Project(p) => {
            let Some(project) = state.store.get_project(p).await? else {
                return Err(ApiError::not_found("project", p.as_str()).into());
            };
            policy::Target::project(project.id, project.domain_id)
        }
        Target::Domain(d) => {
            super::require_domain(state, d).await?;
            policy::Target::domain(d.clone())
        }
        Target::System => policy::Target::none(),
    };
    if let Some(user) = user {
        let Some(u) = state.store.get_user(&UserId::new(user)).await? else {
            return Err(ApiError::not_found("user", user).into());
        };
        resolved = resolved.with_user(u.id, u.domain_id);
    }
    if let Some(role) = role {
        let role_id = RoleId::new(role);
        if !state.global().roles.contains_key(&role_id) {
            state.catch_up_global(&format!("role/{role_id}")).await?;
        }
        let Some(r) = state.global().roles.get(&role_id).cloned() else {
            return Err(ApiError::not_found("role", role).into());
        };
        resolved = resolved.with_role(r.name, r.domain_id);
    }
    Ok(resolved)
}

/// Resolves an assignment path and authorizes `op` on it.
async fn authorized(
    state: &AppState,
    caller: &Caller,
    op: Operation,
    target: &Target,
    user: &str,
    role: &str,
) -> Result<Assignment> {
    let resolved = resolve(state, target, Some(user), Some(role)).await;
    caller.authorize_found(op, resolved, Clone::clone)?;
    Ok(Assignment {
        user_id: UserId::new(user),
        target: target.clone(),
        role_id: RoleId::new(role),
    })
}

/// Refuses a domain-specific role outside its domain, as Keystone does:
/// 403 on a project (or domain) of another domain, 400 on the system.
fn check_role_domain(
    resolved: &policy::Target,
    target: &Target,
    role: &str,
) -> Result<(), ApiError> {
    let Some(role_domain) = resolved.role.as_ref().and_then(|r| r.domain_id.as_ref()) else {
        return Ok(());
    };
    let (kind, id, domain) = match (target, &resolved.project) {
        (Target::Project(p), Some(project)) => ("Project", p.as_str(), &project.domain_id),
        (Target::Domain(d), _) => ("Domain", d.as_str(), d),
        _ => {
            return Err(ApiError::validation(format!(
                "Role {role} is a domain-specific role. Unable to use a domain-specific role in a system assignment."
            )))
        }
    };
    if domain == role_domain {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorKind::Forbidden,
        format!("{kind} {id} must be in the same domain as the role {role} being assigned."),
    ))
}

async fn grant(
    state: AppState,
    caller: Caller,
    target: Target,
    user: String,
    role: String,
) -> Result<StatusCode> {
    let op = ops(&target).grant;
    let user_id = UserId::new(user.as_str());
    if state.store.get_user(&user_id).await?.is_none() {
        // A user homed elsewhere is stubbed here first, which only a caller
        // who may grant this role here to a user of its own domain may
        // cause (the home shard also refuses one who may not read the user).
        let own = caller
            .list_domain()
            .unwrap_or(&caller.claims.user_domain_id)
            .clone();
        let scope = resolve(&state, &target, None, Some(&role)).await;
        caller.authorize_found(op, scope, |t| t.clone().with_user(user_id.clone(), own))?;
        state.local_or_stub_user(&user_id, &caller.token).await?;
    }
    let resolved = resolve(&state, &target, Some(&user), Some(&role)).await;
    let resolved = caller.authorize_found(op, resolved, Clone::clone)?;
    check_role_domain(&resolved, &target, &role)?;
    let a = Assignment {
        user_id,
        target,
        role_id: RoleId::new(role),
    };
    if state.store.grant(&a).await? {
        state.membership_granted().await;
    }
    tracing::info!(user = %a.user_id, role = %a.role_id, "role granted");
    Ok(StatusCode::NO_CONTENT)
}

async fn check(
    state: AppState,
    caller: Caller,
    target: Target,
    user: String,
    role: String,
) -> Result<StatusCode> {
    let a = authorized(&state, &caller, ops(&target).check, &target, &user, &role).await?;
    let found = state
        .store
        .list_assignments(&AssignmentFilter {
            user_id: Some(a.user_id.clone()),
            target: Some(a.target.clone()),
            role_id: Some(a.role_id.clone()),
        })
        .await?;
    if found.is_empty() {
        return Err(ApiError::not_found("role assignment", role.as_str()).into());
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn revoke(
    state: AppState,
    caller: Caller,
    target: Target,
    user: String,
    role: String,
) -> Result<StatusCode> {
    let a = authorized(&state, &caller, ops(&target).revoke, &target, &user, &role).await?;
    let subject = match &a.target {
        Target::Project(p) => RevocationSubject::UserOnProject(a.user_id.clone(), p.clone()),
        _ => RevocationSubject::User(a.user_id.clone()),
    };
    let event = state.revocation_event(subject);
    if !state.store.revoke_grant(&a, &event).await? {
        return Err(ApiError::not_found("role assignment", role.as_str()).into());
    }
    state.apply_revocation(event);
    state.memberships_changed();
    tracing::info!(user = %a.user_id, role = %a.role_id, "role revoked");
    Ok(StatusCode::NO_CONTENT)
}

async fn list_roles(
    state: AppState,
    caller: Caller,
    target: Target,
    user: String,
) -> Result<Response> {
    let resolved = resolve(&state, &target, Some(&user), None).await;
    caller.authorize_found(ops(&target).list, resolved, Clone::clone)?;
    let found = state
        .store
        .list_assignments(&AssignmentFilter {
            user_id: Some(UserId::new(user.as_str())),
            target: Some(target),
            role_id: None,
        })
        .await?;
    let global = state.global();
    let items = found
        .iter()
        .filter_map(|a| global.roles.get(&a.role_id))
        .map(|r| super::with_links(json!({"id": r.id, "name": r.name, "domain_id": r.domain_id, "description": r.description, "options": {}}), &state, &format!("roles/{}", r.id)))
        .collect();
    Ok(collection(&state, "roles", "roles", items))
}

macro_rules! target_handlers {
    ($list:ident, $check:ident, $grant:ident, $revoke:ident, $make:expr) => {
        async fn $list(
            State(s): State<AppState>,
            c: Caller,
            Path((t, u)): Path<(String, String)>,
        ) -> Result<Response> {
            list_roles(s, c, $make(t), u).await
        }
        async fn $check(
            State(s): State<AppState>,
            c: Caller,
            Path((t, u, r)): Path<(String, String, String)>,
        ) -> Result<StatusCode> {
            check(s, c, $make(t), u, r).await
        }
        async fn $grant(
            State(s): State<AppState>,
            c: Caller,
            Path((t, u, r)): Path<(String, String, String)>,
        ) -> Result<StatusCode> {
            grant(s, c, $make(t), u, r).await
        }
        async fn $revoke(
            State(s): State<AppState>,
            c: Caller,
            Path((t, u, r)): Path<(String, String, String)>,
        ) -> Result<StatusCode> {
            revoke(s, c, $make(t), u, r).await
        }
    };
}

target_handlers!(
    list_project,
    check_project,
    grant_project,
    revoke_project,
    |t: String| Target::Project(ProjectId::new(t))
);
target_handlers!(
    list_domain,
    check_domain,
    grant_domain,
    revoke_domain,
    |t: String| Target::Domain(DomainId::new(t))
);

async fn list_system(
    State(s): State<AppState>,
    c: Caller,
    Path(u): Path<String>,
) -> Result<Response> {
    list_roles(s, c, Target::System, u).await
}
async fn check_system(
    State(s): State<AppState>,
    c: Caller,
    Path((u, r)): Path<(String, String)>,
) -> Result<StatusCode> {
    check(s, c, Target::System, u, r).await
}
async fn grant_system(
    State(s): State<AppState>,
    c: Caller,
    Path((u, r)): Path<(String, String)>,
) -> Result<StatusCode> {
    grant(s, c, Target::System, u, r).await
}
async fn revoke_system(
    State(s): State<AppState>,
    c: Caller,
    Path((u, r)): Path<(String, String)>,
) -> Result<StatusCode> {
    revoke(s, c, Target::System, u, r).await
}

/// Parses `GET /v3/role_assignments` filters.
fn filter_from_query(q: &super::body::Query) -> Result<AssignmentFilter, ApiError> {
    let project = q.get("scope.project.id").map(ProjectId::new);
    let domain = q.get("scope.domain.id").map(DomainId::new);
    let system = q.contains_key("scope.system");
    let target = match (project, domain, system) {
        (Some(p), None, false) => Some(Target::Project(p)),
        (None, Some(d), false) => Some(Target::Domain(d)),
        (None, None, true) => Some(Target::System),
        (None, None, false) => None,
        _ => {
            return Err(ApiError::validation(
                "Specify at most one of scope.project.id, scope.domain.id, scope.system.",
            ))
        }
    };
    if q.contains_key("group.id") {
        return Err(ApiError::new(
            keyfed_shared::error::ErrorKind::NotImplemented,
            "Groups are not implemented by keyfed yet.",
        ));
    }
    Ok(AssignmentFilter {
        user_id: q.get("user.id").map(UserId::new),
        target,
        role_id: None,
    })
}

async fn list_assignments(
    State(state): State<AppState>,
    caller: Caller,
    QueryMap(q): QueryMap,
) -> Result<Response> {
    caller.authorize_list(Operation::ListRoleAssignments, None)?;
    let filter = filter_from_query(&q)?;
    let effective = query_flag(&q, "effective") == Some(true);
    let names = query_flag(&q, "include_names") == Some(true);
    let role_filter = q.get("role.id").map(RoleId::new);
    let global = state.global();
    let mut direct = state.store.list_assignments(&filter).await?;
    if let Some(domain) = caller.list_domain() {
        // A domain-scoped caller sees the assignments on its domain and on
        // its domain's projects only.
        let projects: BTreeSet<ProjectId> = state
            .store
            .list_projects(&ListFilter {
                domain_id: Some(domain.clone()),
                ..ListFilter::default()
            })
            .await?
            .into_iter()
            .map(|p| p.id)
            .collect();
        direct.retain(|a| match &a.target {
            Target::Domain(d) => d == domain,
            Target::Project(p) => projects.contains(p),
            Target::System => false,
        });
    }
    let mut rows: Vec<(Assignment, Option<RoleId>)> = Vec::new();
    for a in direct {
        if effective {
            for role in global.token_roles([&a.role_id]) {
                let prior = (role != a.role_id).then(|| a.role_id.clone());
                rows.push((
                    Assignment {
                        role_id: role,
                        ..a.clone()
                    },
                    prior,
                ));
            }
        } else {
            rows.push((a, None));
        }
    }
    if effective {
        let mut seen = BTreeSet::new();
        rows.retain(|(a, _)| seen.insert((a.user_id.clone(), a.target.clone(), a.role_id.clone())));
    }
    rows.retain(|(a, _)| role_filter.as_ref().is_none_or(|r| *r == a.role_id));

    let mut user_names = HashMap::new();
    let mut project_names = HashMap::new();
    if names {
        for (a, _) in &rows {
            if !user_names.contains_key(&a.user_id) {
                if let Some(u) = state.store.get_user(&a.user_id).await? {
                    user_names.insert(a.user_id.clone(), (u.name, u.domain_id));
                }
            }
            if let Target::Project(p) = &a.target {
                if !project_names.contains_key(p) {
                    if let Some(pr) = state.store.get_project(p).await? {
                        project_names.insert(p.clone(), (pr.name, pr.domain_id));
                    }
                }
            }
        }
    }
    let domain_ref = |d: &DomainId| json!({"id": d, "name": global.domain_name(d)});
    let items = rows
        .iter()
        .map(|(a, prior)| {
            let mut role = json!({"id": a.role_id});
            let mut user = json!({"id": a.user_id});
            let (mut scope, path) = match &a.target {
                Target::Project(p) => (json!({"project": {"id": p}}), format!("projects/{p}")),
                Target::Domain(d) => (json!({"domain": {"id": d}}), format!("domains/{d}")),
                Target::System => (json!({"system": {"all": true}}), "system".to_owned()),
            };
            if names {
                if let Some(r) = global.roles.get(&a.role_id) {
                    role["name"] = json!(r.name);
                }
                if let Some((n, d)) = user_names.get(&a.user_id) {
                    user["name"] = json!(n);
                    user["domain"] = domain_ref(d);
                }
                match &a.target {
                    Target::Project(p) => {
                        if let Some((n, d)) = project_names.get(p) {
                            scope["project"]["name"] = json!(n);
                            scope["project"]["domain"] = domain_ref(d);
                        }
                    }
                    Target::Domain(d) => scope["domain"]["name"] = json!(global.domain_name(d)),
                    Target::System => {}
                }
            }
            let role_id = prior.as_ref().unwrap_or(&a.role_id);
            let base = super::base_url::base(&state);
            let mut links = json!({"assignment": format!("{base}/v3/{path}/users/{}/roles/{role_id}", a.user_id)});
            if let Some(prior) = prior {
                links["prior_role"] = json!(format!("{base}/v3/roles/{prior}"));
            }
            let mut v = json!({"role": role, "user": user, "scope": scope, "links": links});
            if let Some(obj) = v.as_object_mut() {
                obj.retain(|_, v| !v.is_null());
            }
            v
        })
        .collect::<Vec<Value>>();
    Ok(collection(
        &state,
        "role_assignments",
        "role_assignments",
        items,
    ))
}
