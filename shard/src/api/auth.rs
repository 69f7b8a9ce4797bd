//! `/v3/auth/*`: issuing (password and token methods), validating, checking
//! and revoking tokens, and the caller's projects, domains, catalog and
//! system scope.

use super::assignments::{user_domains, user_projects};
use super::body::{query_flag, JsonBody, QueryMap};
use super::{collection, with_links};
use crate::error::{Error, Result};
use crate::policy::Caller;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use keyfed_shared::auth::{
    parse_auth_request, DomainRef, Identity, ProjectRef, ScopeRequest, UserRef,
};
use keyfed_shared::error::{ApiError, ErrorKind};
use keyfed_shared::ids::{AuditId, DomainId};
use keyfed_shared::model::{AssignmentFilter, Target, User};
use keyfed_shared::policy::{self, Operation};
use keyfed_shared::revocation::RevocationSubject;
use keyfed_shared::time::now_micros;
use keyfed_shared::token::{shard_set_claim, Claims, Scope};
use serde_json::json;

/// Header naming the token being issued or inspected.
pub const SUBJECT_HEADER: &str = "x-subject-token";

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v3/auth/tokens", get(validate).post(issue).delete(revoke))
        .route("/v3/auth/projects", get(auth_projects))
        .route("/v3/auth/domains", get(auth_domains))
        .route("/v3/auth/catalog", get(auth_catalog))
        .route("/v3/auth/system", get(auth_system))
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::Unauthorized, message)
}

fn resolve_domain(state: &AppState, domain: &DomainRef) -> Option<DomainId> {
    let global = state.global();
    match domain {
        DomainRef::Id(id) => global.domains.get(id).map(|d| d.id.clone()),
        DomainRef::Name(name) => global.domain_by_name(name).map(|d| d.id.clone()),
    }
}

async fn find_user(state: &AppState, user: &UserRef) -> Result<Option<User>> {
    Ok(match user {
        UserRef::Id(id) => state.store.get_user(id).await?,
        UserRef::Name { name, domain } => match resolve_domain(state, domain) {
            Some(domain) => state.store.find_user(&domain, name).await?,
            None => None,
        },
    })
}

/// Checks that the user and its domain are enabled.
fn check_enabled(state: &AppState, user: &User) -> Result<()> {
    let domain_enabled = state
        .global()
        .domains
        .get(&user.domain_id)
        .is_some_and(|d| d.enabled);
    if user.enabled && domain_enabled {
        Ok(())
    } else {
        Err(unauthorized("The account is disabled.").into())
    }
}

/// Role ids directly assigned to `user` on `target` (validators expand
/// implied roles from global data); none when they imply no global role, so
/// a domain-specific role implying nothing grants no access, as in Keystone.
async fn roles_on(
    state: &AppState,
    user: &User,
    target: Target,
) -> Result<Vec<keyfed_shared::ids::RoleId>> {
    let direct = state
        .store
        .list_assignments(&AssignmentFilter {
            user_id: Some(user.id.clone()),
            target: Some(target),
            role_id: None,
        })
        .await?;
    let mut roles: Vec<_> = direct.into_iter().map(|a| a.role_id).collect();
    roles.sort();
    roles.dedup();
    if state.global().token_roles(&roles).is_empty() {
        roles.clear();
    }
    Ok(roles)
}

async fn resolve_scope(
    state: &AppState,
    user: &User,
    scope: ScopeRequest,
) -> Result<(Scope, Vec<keyfed_shared::ids::RoleId>)> {
    match scope {
        ScopeRequest::Unscoped => {
            // Keystone scopes an unscoped request to the default project when
            // the user has a role there.
            if let Some(pid) = &user.default_project_id {
                if let Some(project) = state.store.get_project(pid).await? {
                    let roles = roles_on(state, user, Target::Project(project.id.clone())).await?;
                    if project.enabled && !roles.is_empty() {
                        let scope = Scope::Project {
                            id: project.id,
                            name: project.name,
                            domain_id: project.domain_id,
                        };
                        return Ok((scope, roles));
                    }
                }
            }
            Ok((Scope::Unscoped, Vec::new()))
        }
        ScopeRequest::Project(project_ref) => {
            let project = match &project_ref {
                ProjectRef::Id(id) => state.store.get_project(id).await?,
                ProjectRef::Name { name, domain } => match resolve_domain(state, domain) {
                    Some(d) => state.store.find_project(&d, name).await?,
                    None => None,
                },
            };
            let Some(project) = project else {
                return Err(unauthorized("Could not find the requested project.").into());
            };
            let domain_enabled = state
                .global()
                .domains
                .get(&project.domain_id)
                .is_some_and(|d| d.enabled);
            if !project.enabled || !domain_enabled {
                return Err(unauthorized(format!("Project {} is disabled.", project.id)).into());
            }
            let roles = roles_on(state, user, Target::Project(project.id.clone())).await?;
            if roles.is_empty() {
                return Err(unauthorized(format!(
                    "User {} has no access to project {}.",
                    user.id, project.id
                ))
                .into());
            }
            Ok((
                Scope::Project {
                    id: project.id,
                    name: project.name,
                    domain_id: project.domain_id,
                },
                roles,
            ))
        }
        ScopeRequest::Domain(domain_ref) => {
            let Some(domain) = resolve_domain(state, &domain_ref) else {
                return Err(unauthorized("Could not find the requested domain.").into());
            };
            if !state
                .global()
                .domains
                .get(&domain)
                .is_some_and(|d| d.enabled)
            {
                return Err(unauthorized(format!("Domain {domain} is disabled.")).into());
            }
            let roles = roles_on(state, user, Target::Domain(domain.clone())).await?;
            if roles.is_empty() {
                return Err(unauthorized(format!(
                    "User {} has no access to domain {domain}.",
                    user.id
                ))
                .into());
            }
            Ok((Scope::Domain { id: domain }, roles))
        }
        ScopeRequest::System => {
            let roles = roles_on(state, user, Target::System).await?;
            if roles.is_empty() {
                return Err(
                    unauthorized(format!("User {} has no access to the system.", user.id)).into(),
                );
            }
            Ok((Scope::System, roles))
        }
    }
}

async fn issue(
    State(state): State<AppState>,
    QueryMap(query): QueryMap,
    JsonBody(body): JsonBody,
) -> Result<Response> {
    let request = parse_auth_request(&body)?;
    let now = now_micros();
    let (user, methods, parent) = match request.identity {
        Identity::Password { user, password } => {
            let found = find_user(&state, &user).await?;
            let stored = match &found {
                Some(u) => state.store.password_hash(&u.id).await?,
                None => None,
            };
            let ok = state.hasher.verify(&password, stored.as_deref()).await?;
            match (found, ok) {
                (Some(user), true) => (user, vec!["password".to_owned()], None),
                _ => return Err(ApiError::unauthorized().into()),
            }
        }
        Identity::Token { id } => {
            let parent = state.validate(id.expose(), false).await?;
            let Some(user) = state.store.get_user(&parent.user_id).await? else {
                return Err(ApiError::unauthorized().into());
            };
            let mut methods = vec!["token".to_owned()];
            methods.extend(parent.methods.iter().filter(|m| *m != "token").cloned());
            (user, methods, Some(parent))
        }
    };
    check_enabled(&state, &user)?;
    let (scope, roles) = resolve_scope(&state, &user, request.scope).await?;
    let mut audit_ids = vec![AuditId::generate()];
    let expires_at = match &parent {
        Some(p) => {
            audit_ids.extend(p.audit_ids.last().cloned());
            p.expires_at
        }
        None => now + state.config.tokens.expiration_secs as i64 * 1_000_000,
    };
    let shard_set = shard_set(&state, &user, &scope, parent.as_ref()).await;
    let claims = Claims {
        user_id: user.id,
        user_name: user.name,
        user_domain_id: user.domain_id,
        methods,
        issued_at: now,
        expires_at,
        audit_ids,
        scope,
        roles,
        shard_set,
    };
    let token = state.sign(&claims)?;
    tracing::debug!(user = %claims.user_id, "token issued");
    let with_catalog = query_flag(&query, "nocatalog") != Some(true);
    let mut response = (
        StatusCode::CREATED,
        Json(state.token_body(&claims, with_catalog)),
    )
        .into_response();
    let value = HeaderValue::from_str(&token)
        .map_err(|_| Error::Internal("token is not a header value".into()))?;
    response.headers_mut().insert(SUBJECT_HEADER, value);
    Ok(response)
}

/// The `ss` claim: on an unscoped token from a federated shard, the shards
/// holding the user's assignments (membership index, the user's home, and
/// the set of the token it was rescoped from). Scoped tokens need none: they
/// are good on their own scope only.
async fn shard_set(
    state: &AppState,
    user: &User,
    scope: &Scope,
    parent: Option<&Claims>,
) -> Vec<keyfed_shared::ids::ShardId> {
    let (Scope::Unscoped, Some(f)) = (scope, &state.federation) else {
        return Vec::new();
    };
    let mut shards = f.shard_set(&user.id).await;
    shards.extend(parent.iter().flat_map(|p| p.shard_set.iter().cloned()));
    shard_set_claim(shards)
}

fn subject_token(headers: &HeaderMap) -> Result<&str> {
    headers
        .get(SUBJECT_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::validation("The X-Subject-Token header is required.").into())
}

fn token_not_found() -> Error {
    ApiError::new(ErrorKind::NotFound, "Could not find token.").into()
}

async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    method: Method,
    headers: HeaderMap,
    QueryMap(query): QueryMap,
) -> Result<Response> {
    let subject = subject_token(&headers)?;
    let allow_expired = query_flag(&query, "allow_expired") == Some(true);
    let claims = state
        .validate(subject, allow_expired)
        .await
        .map_err(|_| token_not_found())?;
    let head = method == Method::HEAD;
    if !policy::may_check_token(&caller.claims, &claims, head, &state.global()) {
        return Err(ApiError::forbidden().into());
    }
    let with_catalog = query_flag(&query, "nocatalog") != Some(true);
    let mut response = (
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        state.token_body_bytes(&claims, with_catalog),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(subject) {
        response.headers_mut().insert(SUBJECT_HEADER, value);
    }
    Ok(response)
}

async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<StatusCode> {
    let subject = subject_token(&headers)?;
    let claims = state
        .validate(subject, false)
        .await
        .map_err(|_| token_not_found())?;
    caller.authorize(
        Operation::RevokeToken,
        &policy::Target::token(claims.user_id.clone()),
    )?;
    let Some(audit_id) = claims.audit_ids.first() else {
        return Err(token_not_found());
    };
    state
        .revoke(RevocationSubject::AuditId(audit_id.clone()))
        .await?;
    tracing::info!(user = %claims.user_id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}

async fn auth_projects(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    let projects = user_projects(&state, &caller.claims.user_id).await?;
    let items = projects
        .into_iter()
        .filter(|p| p.enabled)
        .map(|p| {
            let path = format!("projects/{}", p.id);
            with_links(super::projects::project_json(&p), &state, &path)
        })
        .collect();
    Ok(collection(&state, "projects", "auth/projects", items))
}

async fn auth_domains(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    let domains = user_domains(&state, &caller.claims.user_id).await?;
    let items = domains
        .into_iter()
        .filter(|d| d.enabled)
        .map(|d| {
            let path = format!("domains/{}", d.id);
            with_links(super::domains::domain_json(&d), &state, &path)
        })
        .collect();
    Ok(collection(&state, "domains", "auth/domains", items))
}

async fn auth_catalog(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    if caller.claims.scope == Scope::Unscoped {
        return Err(ApiError::forbidden().into());
    }
    let catalog = state.global().catalog.as_ref().clone();
    Ok(Json(json!({
        "catalog": catalog,
        "links": {"self": format!("{}/v3/auth/catalog", super::base_url::base(&state)), "previous": null, "next": null},
    }))
    .into_response())
}

async fn auth_system(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    let direct = state
        .store
        .list_assignments(&AssignmentFilter {
            user_id: Some(caller.claims.user_id.clone()),
            target: Some(Target::System),
            role_id: None,
        })
        .await?;
    let system = if direct.is_empty() {
        vec![]
    } else {
        vec![json!({"all": true})]
    };
    Ok(Json(json!({
        "system": system,
        "links": {"self": format!("{}/v3/auth/system", super::base_url::base(&state)), "previous": null, "next": null},
    }))
    .into_response())
}
