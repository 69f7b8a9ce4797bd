//! Keystone APIs keyfed does not provide yet (groups, trusts, application
//! credentials, OAuth, federation protocols, ...) answer 501 in Keystone's
//! error shape, so clients get a clear message instead of a bare 404.

use crate::error::api_response;
use crate::state::AppState;
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use keyfed_shared::error::{ApiError, ErrorKind};

/// Their paths (and everything under them).
pub(super) const PREFIXES: &[&str] = &[
    "/v3/groups",
    "/v3/OS-TRUST",
    "/v3/OS-OAUTH1",
    "/v3/OS-OAUTH2",
    "/v3/OS-FEDERATION",
    "/v3/OS-EP-FILTER",
    "/v3/OS-INHERIT",
    "/v3/OS-REVOKE",
    "/v3/OS-SIMPLE-CERT",
    "/v3/credentials",
    "/v3/policies",
    "/v3/limits",
    "/v3/registered_limits",
    "/v3/domains/config",
    "/v3/users/{id}/application_credentials",
    "/v3/users/{id}/access_rules",
    "/v3/users/{id}/groups",
    "/v3/users/{id}/credentials/OS-EC2",
    "/v3/auth/OS-FEDERATION",
];

pub(super) fn routes() -> Router<AppState> {
    PREFIXES.iter().fold(Router::new(), |router, prefix| {
        router
            .route(prefix, any(not_implemented))
            .route(&format!("{prefix}/{{*rest}}"), any(not_implemented))
    })
}

async fn not_implemented() -> Response {
    api_response(&ApiError::new(
        ErrorKind::NotImplemented,
        "This Keystone API is not implemented by keyfed yet.",
    ))
}
