//! The caller of a request and its authorization. The rules are Keystone's
//! default policy, in [`keyfed_shared::policy`] (shared with the gateway):
//! handlers load the target entity, then ask
//! `caller.authorize(Operation::X, &target)?` — 403 when refused.

use crate::error::Error;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use keyfed_shared::error::ApiError;
use keyfed_shared::ids::DomainId;
use keyfed_shared::policy::{self, Credentials, Operation, Roles, Target};
use keyfed_shared::token::Claims;

/// Header carrying the caller's token.
pub const AUTH_HEADER: &str = "x-auth-token";

/// The authenticated caller of a request.
#[derive(Debug)]
pub struct Caller {
    pub claims: Claims,
    /// The caller's token, to act on its behalf towards other members.
    pub token: String,
    /// The global roles the token's roles imply.
    roles: Roles,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = parts
            .headers
            .get(AUTH_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        let claims = state.validate(token, false).await?;
        let roles = Credentials::from_claims(&claims, &state.global()).roles;
        Ok(Caller {
            claims,
            token: token.to_owned(),
            roles,
        })
    }
}

impl Caller {
    /// The caller as the policy sees it.
    pub fn credentials(&self) -> Credentials<'_> {
        Credentials {
            user_id: &self.claims.user_id,
            scope: &self.claims.scope,
            roles: self.roles,
        }
    }

    /// Whether the policy lets the caller perform `op` on `target`.
    pub fn may(&self, op: Operation, target: &Target) -> bool {
        policy::authorize(&self.credentials(), op, target)
    }

    /// 403 unless the policy lets the caller perform `op` on `target`.
    pub fn authorize(&self, op: Operation, target: &Target) -> Result<(), ApiError> {
        if self.may(op, target) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// 403 unless the caller may list with `op`; the target is the caller's
    /// domain for a domain-scoped token, else the `filter` domain.
    pub fn authorize_list(&self, op: Operation, filter: Option<DomainId>) -> Result<(), ApiError> {
        self.authorize(op, &Target::list(&self.credentials(), filter))
    }

    /// The domain a domain-scoped caller's lists are filtered to.
    pub fn list_domain(&self) -> Option<&DomainId> {
        self.credentials().domain_scope()
    }

    /// Authorizes `op` on an entity just loaded: on the entity's target
    /// when found (then returns it), else on no target — so a caller the
    /// policy refuses learns nothing (403) and one it allows gets the 404.
    pub fn authorize_found<T, E: From<ApiError>>(
        &self,
        op: Operation,
        loaded: Result<T, E>,
        target: impl FnOnce(&T) -> Target,
    ) -> Result<T, E> {
        match loaded {
            Ok(entity) => {
                self.authorize(op, &target(&entity))?;
                Ok(entity)
            }
            Err(e) => {
                self.authorize(op, &Target::none())?;
                Err(e)
            }
        }
    }
}
