//! Who may do what, in the spirit of Keystone's default policy:
//!
//! - **manage** (create, update, delete identity and catalog data, grant
//!   roles): the `admin` role on any scope — system, domain or project (the
//!   classic `admin_required` rule);
//! - **read** (get and list identity data, assignments, services,
//!   endpoints): manage, or `reader` on the system scope (every role
//!   implying `reader` counts);
//! - **self**: any user may read itself, change its own password, list its
//!   own projects and read the project its token is scoped to;
//! - everyone else gets 403.

use crate::error::Error;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use keyfed_shared::error::ApiError;
use keyfed_shared::ids::{ProjectId, UserId};
use keyfed_shared::token::{Claims, Scope};

/// Header carrying the caller's token.
pub const AUTH_HEADER: &str = "x-auth-token";

/// The authenticated caller of a request.
#[derive(Debug)]
pub struct Caller {
    pub claims: Claims,
    /// The caller's token, to act on its behalf towards other members.
    pub token: String,
    admin: bool,
    reader: bool,
    service: bool,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = parts
            .headers
            .get(AUTH_HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(ApiError::unauthorized)?;
        let claims = state.validate(token, false)?;
        let global = state.global();
        let roles = global.effective_roles(&claims.roles);
        let admin = global.has_role_named(&roles, "admin");
        let reader = global.has_role_named(&roles, "reader");
        let service = global.has_role_named(&roles, "service");
        Ok(Caller {
            claims,
            token: token.to_owned(),
            admin,
            reader,
            service,
        })
    }
}

impl Caller {
    /// Whether the caller may manage identity data.
    pub fn is_admin(&self) -> bool {
        self.admin && self.claims.scope != Scope::Unscoped
    }

    /// Whether the caller may read identity data.
    pub fn is_reader(&self) -> bool {
        self.is_admin() || (self.reader && self.claims.scope == Scope::System)
    }

    /// 403 unless the caller may manage.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// 403 unless the caller may read.
    pub fn require_reader(&self) -> Result<(), ApiError> {
        if self.is_reader() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// 403 unless the caller may read, or is `user`.
    pub fn require_reader_or_self(&self, user: &UserId) -> Result<(), ApiError> {
        if self.is_reader() || self.claims.user_id == *user {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// 403 unless the caller may read, or its token is scoped to `project`.
    pub fn require_reader_or_scoped_to(&self, project: &ProjectId) -> Result<(), ApiError> {
        if self.is_reader() || self.claims.project_id() == Some(project) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// Whether the caller may validate other users' tokens (services such as
    /// keystonemiddleware do this with a `service` or `admin` role).
    pub fn may_validate_others(&self) -> bool {
        self.is_reader() || (self.service && self.claims.scope != Scope::Unscoped)
    }
}
