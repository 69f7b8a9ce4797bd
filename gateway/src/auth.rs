//! `/v3/auth/tokens`: validation answered by the gateway alone (offline,
//! with the [`keyfed_federation::Validator`]), issue routed to the user's
//! home shard and the scope's owner, revocation routed to the signer.

use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use keyfed_directory::{Bucket, DirectoryError};
use keyfed_federation::Valid;
use keyfed_shared::auth::{
    parse_auth_request, AuthRequest, DomainRef, Identity, ProjectRef, ScopeRequest, UserRef,
};
use keyfed_shared::error::{ApiError, ErrorKind};
use keyfed_shared::federation::name_key;
use keyfed_shared::ids::{DomainId, ProjectId, ShardId, UserId};
use keyfed_shared::policy;
use keyfed_shared::token::{self, Claims};
use serde_json::{json, Value};
use std::sync::Arc;

use crate::error::{GatewayError, Result};
use crate::proxy::{Outgoing, SUBJECT_HEADER};
use crate::request::Incoming;
use crate::state::Gateway;

fn token_not_found() -> GatewayError {
    GatewayError::api(ErrorKind::NotFound, "Could not find token.")
}

fn unauthorized() -> GatewayError {
    GatewayError::Api(ApiError::unauthorized())
}

/// The caller's validated token (401 when missing or invalid). A signer
/// the federation view does not know yet is rejected without a look-up.
pub fn caller(state: &Gateway, req: &Incoming) -> Result<Arc<Claims>> {
    let token = req.auth_token().ok_or_else(unauthorized)?;
    state
        .validator
        .validate(token, false)
        .map_err(|_| unauthorized())
}

/// The caller's validated token, looking up a signer the view does not
/// know yet (bounded; see [`keyfed_federation::Validator::validate_token`]).
async fn caller_token(state: &Gateway, req: &Incoming) -> Result<Valid> {
    let token = req.auth_token().ok_or_else(unauthorized)?;
    state
        .validator
        .validate_token(token, false)
        .await
        .map_err(|_| unauthorized())
}

/// `GET`/`HEAD /v3/auth/tokens`.
pub async fn validate(state: &Gateway, req: &Incoming) -> Result<Response> {
    let caller = caller_token(state, req).await?;
    let subject = req.header(SUBJECT_HEADER).ok_or_else(|| {
        GatewayError::Api(ApiError::validation(
            "The X-Subject-Token header is required.",
        ))
    })?;
    // A token validating itself (common for services) is checked once: it
    // passed as the caller's, without the allow-expired leniency.
    let valid = if req.auth_token() == Some(subject) {
        caller.clone()
    } else {
        state
            .validator
            .validate_token(subject, req.flag("allow_expired"))
            .await
            .map_err(|_| token_not_found())?
    };
    let (caller, claims) = (caller.claims(), valid.claims());
    if !policy::may_check_token(
        caller,
        claims,
        req.method == Method::HEAD,
        &state.view.global(),
    ) {
        return Err(GatewayError::Api(ApiError::forbidden()));
    }
    let mut response = if req.method == Method::HEAD {
        StatusCode::OK.into_response()
    } else {
        (
            [(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            state.validator.body(&valid, !req.flag("nocatalog")),
        )
            .into_response()
    };
    if let Some(v) = req.header_value(SUBJECT_HEADER) {
        response.headers_mut().insert(SUBJECT_HEADER, v.clone());
    }
    Ok(response)
}

/// `DELETE /v3/auth/tokens`: to the shard whose key signed the subject.
pub async fn revoke(state: &Gateway, req: &Incoming) -> Result<Response> {
    let subject = req.header(SUBJECT_HEADER).ok_or_else(|| {
        GatewayError::Api(ApiError::validation(
            "The X-Subject-Token header is required.",
        ))
    })?;
    let parsed = token::parse(subject).map_err(|_| token_not_found())?;
    let signer = parsed
        .kid()
        .rsplit_once('.')
        .map(|(shard, _)| ShardId::new(shard))
        .ok_or_else(token_not_found)?;
    if state.view.member(&signer).is_none() {
        return Err(token_not_found());
    }
    let answer = state.call(&signer, &req.forward()).await?;
    if answer.status == StatusCode::NO_CONTENT {
        // Read-your-writes: the event reaches this gateway's validator
        // through the directory's stream (milliseconds); wait for it, so a
        // validation here right after the revocation refuses the token.
        let deadline = std::time::Instant::now() + REVOCATION_WAIT;
        while state.validator.validate(subject, false).is_ok()
            && std::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
    }
    Ok(answer.into_response())
}

/// Longest a revocation waits to reach this gateway's own validator (all
/// of it only while the directory is unreachable).
const REVOCATION_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Resolves a domain reference (unknown name → 401, as Keystone).
fn domain_id(state: &Gateway, domain: &DomainRef) -> Result<DomainId> {
    match domain {
        DomainRef::Id(id) => Ok(id.clone()),
        DomainRef::Name(name) => state
            .view
            .global()
            .domain_by_name(name)
            .map(|d| d.id.clone())
            .ok_or_else(unauthorized),
    }
}

/// Looks a name up in the names index.
async fn lookup_name(state: &Gateway, key: &str) -> Result<Option<String>> {
    let entry = state.directory.kv(Bucket::Names).get(key).await?;
    Ok(entry.and_then(|e| String::from_utf8(e.value.to_vec()).ok()))
}

/// The id of the user a request names; `None` for a name (or a domain)
/// that names no one.
async fn user_id(state: &Gateway, user: &UserRef) -> Result<Option<UserId>> {
    match user {
        UserRef::Id(id) => Ok(Some(id.clone())),
        UserRef::Name { name, domain } => {
            let Ok(domain) = domain_id(state, domain) else {
                return Ok(None);
            };
            let id = lookup_name(state, &name_key::user(&domain, name)).await?;
            Ok(id.map(UserId::new))
        }
    }
}

/// Where a password login naming no user goes: a shard chosen by the ring
/// over the name as given, the same for every attempt. The shard does not
/// find the user either and verifies the password against its dummy hash
/// before answering 401, so a login naming an unknown user costs what one
/// with a wrong password does: answering it here, without the hash, would
/// tell user names apart by timing.
fn decoy(state: &Gateway, user: &UserRef) -> Result<IssueRoute> {
    let key = match user {
        UserRef::Id(id) => id.to_string(),
        UserRef::Name { name, domain } => format!("{domain:?}/{name}"),
    };
    let shard = state
        .view
        .ring()
        .map(|ring| ring.owner(&key).clone())
        .ok_or(GatewayError::NoMember)?;
    Ok(IssueRoute {
        user: UserId::new(""),
        by_password: true,
        home: shard.clone(),
        target: shard,
    })
}

async fn project_id(state: &Gateway, project: &ProjectRef) -> Result<ProjectId> {
    match project {
        ProjectRef::Id(id) => Ok(id.clone()),
        ProjectRef::Name { name, domain } => {
            let domain = domain_id(state, domain)?;
            let id = lookup_name(state, &name_key::project(&domain, name)).await?;
            id.map(ProjectId::new).ok_or_else(unauthorized)
        }
    }
}

/// Where a token request goes: the user, whether a password is checked,
/// the user's home and the shard that signs the requested scope.
struct IssueRoute {
    user: UserId,
    by_password: bool,
    home: ShardId,
    target: ShardId,
}

/// Resolves the names and ids of a token request to shards.
async fn resolve(state: &Gateway, auth: &AuthRequest) -> Result<IssueRoute> {
    let (user, by_password) = match &auth.identity {
        Identity::Password { user, .. } => match user_id(state, user).await? {
            Some(id) => (id, true),
            None => return decoy(state, user),
        },
        Identity::Token { id } => {
            let valid = state
                .validator
                .validate_token(id.expose(), false)
                .await
                .map_err(|_| unauthorized())?;
            (valid.claims().user_id.clone(), false)
        }
    };
    let home = state
        .view
        .home_of_user(&user)
        .ok_or(GatewayError::NoMember)?;
    let target = match &auth.scope {
        ScopeRequest::Project(p) => {
            let project = project_id(state, p).await?;
            state
                .view
                .owner_of_project(&project)
                .ok_or(GatewayError::NoMember)?
        }
        _ => home.clone(),
    };
    Ok(IssueRoute {
        user,
        by_password,
        home,
        target,
    })
}

/// `POST /v3/auth/tokens`; see the crate doc for the routing. Names that
/// cannot be resolved while the directory is down are resolved by the
/// shards ([`crate::outage`]).
pub async fn issue(state: &Gateway, req: &Incoming) -> Result<Response> {
    let body = req.json()?;
    let auth = parse_auth_request(&body)?;
    let IssueRoute {
        user,
        by_password,
        home,
        target,
    } = match resolve(state, &auth).await {
        Ok(route) => route,
        Err(e @ GatewayError::Directory(DirectoryError::Unavailable(_))) => {
            return crate::outage::issue(state, req, &body, &auth, e).await;
        }
        Err(e) => return Err(e),
    };
    tracing::debug!(%user, %home, %target, "routing token issue");
    if target == home || !by_password {
        return Ok(state.call(&target, &req.forward()).await?.into_response());
    }
    // Password at home (unscoped), then rescope at the project's owner.
    let mut unscoped = body.clone();
    unscoped["auth"]["scope"] = json!("unscoped");
    let first = state
        .call(
            &home,
            &Outgoing::new(Method::POST, "/v3/auth/tokens?nocatalog", &req.headers).json(&unscoped),
        )
        .await?;
    if first.status != StatusCode::CREATED {
        return Ok(first.into_response());
    }
    let token = first
        .header(SUBJECT_HEADER)
        .ok_or_else(|| GatewayError::Upstream {
            shard: home.clone(),
            reason: "token issued without X-Subject-Token".into(),
        })?
        .to_owned();
    let rescope: Value = json!({"auth": {
        "identity": {"methods": ["token"], "token": {"id": token}},
        "scope": body["auth"]["scope"].clone(),
    }});
    let second = Outgoing::new(Method::POST, req.path_and_query(), &req.headers).json(&rescope);
    Ok(state.call(&target, &second).await?.into_response())
}
