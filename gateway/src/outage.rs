//! Logins while the directory cannot be reached.
//!
//! A login names its user and project by name far more often than by id
//! (every `openrc` does), and names resolve through the directory's names
//! index. When the directory is unreachable, the gateway asks the shards
//! instead: a user's name and password are known only where the user lives
//! (other shards hold password-less stubs, which cannot authenticate) and a
//! project's name only where the project lives, so sending the request to
//! every serving member and keeping the one `201` finds the same shard the
//! index would have named. It costs one request per member, only while the
//! directory is down; ids still route through the view as usual.

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::future::join_all;
use keyfed_shared::auth::{AuthRequest, Identity, ProjectRef, ScopeRequest, UserRef};
use keyfed_shared::ids::ShardId;
use serde_json::{json, Value};

use crate::error::{GatewayError, Result};
use crate::proxy::{Outgoing, Upstream, SUBJECT_HEADER};
use crate::request::Incoming;
use crate::state::Gateway;

/// `POST /v3/auth/tokens` when a name could not be resolved because the
/// directory is unavailable (`cause`).
pub async fn issue(
    state: &Gateway,
    req: &Incoming,
    body: &Value,
    auth: &AuthRequest,
    cause: GatewayError,
) -> Result<Response> {
    tracing::info!(error = %cause, "directory unavailable: resolving login names through the shards");
    let project = match &auth.scope {
        ScopeRequest::Project(p) => Some(p),
        _ => None,
    };
    let Some(project) = project else {
        // Unscoped, domain or system scope: answered by the user's home,
        // which only the home can be.
        return Ok(first_created(state, &req.forward()).await?.into_response());
    };
    // A project scope: a token at the user's home first (unless the
    // request already carries one), then a rescope at the project's owner.
    let token = match &auth.identity {
        Identity::Token { id } => id.expose().to_owned(),
        Identity::Password { user, .. } => {
            let mut unscoped = body.clone();
            unscoped["auth"]["scope"] = json!("unscoped");
            let login = Outgoing::new(Method::POST, "/v3/auth/tokens?nocatalog", &req.headers)
                .json(&unscoped);
            let first = match user {
                UserRef::Id(id) => {
                    let home = state.view.home_of_user(id).ok_or(GatewayError::NoMember)?;
                    state.call(&home, &login).await?
                }
                UserRef::Name { .. } => first_created(state, &login).await?,
            };
            if first.status != StatusCode::CREATED {
                return Ok(first.into_response());
            }
            first
                .header(SUBJECT_HEADER)
                .ok_or_else(|| {
                    GatewayError::Internal("token issued without X-Subject-Token".into())
                })?
                .to_owned()
        }
    };
    let rescope = json!({"auth": {
        "identity": {"methods": ["token"], "token": {"id": token}},
        "scope": body["auth"]["scope"].clone(),
    }});
    let second = Outgoing::new(Method::POST, req.path_and_query(), &req.headers).json(&rescope);
    let answer = match project {
        ProjectRef::Id(id) => {
            let owner = state
                .view
                .owner_of_project(id)
                .ok_or(GatewayError::NoMember)?;
            state.call(&owner, &second).await?
        }
        ProjectRef::Name { .. } => first_created(state, &second).await?,
    };
    Ok(answer.into_response())
}

/// Sends `req` to every serving member at once. The `201` if one answers
/// it; otherwise a client error one of them gave (the login is wrong
/// everywhere); otherwise, when no member could answer, the failure.
async fn first_created(state: &Gateway, req: &Outgoing) -> Result<Upstream> {
    let members: Vec<ShardId> = state.serving_members();
    if members.is_empty() {
        return Err(GatewayError::NoMember);
    }
    let answers = join_all(members.iter().map(|m| state.call(m, req))).await;
    let mut refusal = None;
    let mut failure = None;
    for answer in answers {
        match answer {
            Ok(up) if up.status == StatusCode::CREATED => return Ok(up),
            Ok(up) if up.status.is_client_error() => {
                // A 401 (unknown here, or a stub) is the usual refusal;
                // keep any other client error in preference.
                if refusal
                    .as_ref()
                    .is_none_or(|r: &Upstream| r.status == StatusCode::UNAUTHORIZED)
                {
                    refusal = Some(up);
                }
            }
            Ok(up) => failure = failure.or(Some(Ok(up))),
            Err(e) => failure = failure.or(Some(Err(e))),
        }
    }
    // A member that could not answer may be the one that knows the name:
    // its failure (a 503) says more than the others' refusals.
    match (failure, refusal) {
        (Some(f), _) => f,
        (None, Some(r)) => Ok(r),
        (None, None) => Err(GatewayError::NoMember),
    }
}
