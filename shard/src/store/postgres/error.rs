//! The one place where PostgreSQL errors become [`StoreError`]s.
//!
//! Constraint violations are classified by SQLSTATE and described by
//! constraint name (the names are fixed in `migrations/`): a unique violation
//! is a [`StoreError::Conflict`]; a foreign-key violation is a
//! [`StoreError::MissingReference`] when a row is written and a
//! [`StoreError::InUse`] when a referenced row is deleted. Anything else is a
//! [`StoreError::Backend`] whose message carries the SQLSTATE and the server's
//! primary message, never the connection string or the row's values.

use crate::store::StoreError;
use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

/// What the failing statement did; it decides how a foreign-key violation reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    /// Reads, inserts and updates: a foreign-key violation means the row
    /// refers to something that does not exist.
    Write,
    /// Deletes: a foreign-key violation means something still refers to the
    /// row being deleted.
    Delete,
}

/// Classifies an error from a read, insert or update (deletes go through
/// [`classify`] with [`Op::Delete`]).
pub(super) fn db_err(e: tokio_postgres::Error) -> StoreError {
    classify(&e, Op::Write)
}

/// Classifies an error from checking a connection out of the pool.
pub(super) fn pool_err(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => classify(&e, Op::Write),
        PoolError::Timeout(kind) => StoreError::Backend(format!(
            "timed out getting a database connection ({kind:?})"
        )),
        PoolError::Closed => StoreError::Backend("database pool closed".into()),
        other => StoreError::Backend(format!("database pool: {other}")),
    }
}

/// Maps a driver error to a store error.
pub(super) fn classify(e: &tokio_postgres::Error, op: Op) -> StoreError {
    let Some(db) = e.as_db_error() else {
        // Connection-level failure (refused, closed, TLS, decoding). The
        // driver's text names the failure, not the credentials.
        return StoreError::Backend(format!("database: {e}"));
    };
    let constraint = db.constraint().unwrap_or_default();
    match *db.code() {
        SqlState::UNIQUE_VIOLATION => StoreError::Conflict(conflict_message(constraint)),
        SqlState::FOREIGN_KEY_VIOLATION => match op {
            Op::Write => StoreError::MissingReference(missing_message(constraint)),
            Op::Delete => StoreError::InUse(in_use_message(constraint)),
        },
        _ => StoreError::Backend(format!(
            "database error {}: {}",
            db.code().code(),
            db.message()
        )),
    }
}

/// Describes a unique violation.
fn conflict_message(constraint: &str) -> String {
    let text = match constraint {
        "domains_pkey" => "a domain with this id already exists",
        "domains_name_key" => "a domain with this name already exists",
        "projects_pkey" => "a project with this id already exists",
        "projects_domain_name_key" => "a project with this name already exists in the domain",
        "users_pkey" => "a user with this id already exists",
        "users_domain_name_key" => "a user with this name already exists in the domain",
        "roles_pkey" => "a role with this id already exists",
        "roles_domain_name_key" => "a role with this name already exists",
        "regions_pkey" => "a region with this id already exists",
        "services_pkey" => "a service with this id already exists",
        "endpoints_pkey" => "an endpoint with this id already exists",
        other => return format!("duplicate value ({other})"),
    };
    text.to_owned()
}

/// Describes a foreign-key violation on insert or update.
fn missing_message(constraint: &str) -> String {
    let text = match constraint {
        "projects_domain_fkey" | "users_domain_fkey" | "roles_domain_fkey" => "domain not found",
        "implied_roles_prior_fkey" => "prior role not found",
        "implied_roles_implied_fkey" => "implied role not found",
        "assignments_user_fkey" => "user not found",
        "assignments_role_fkey" => "role not found",
        "assignments_project_fkey" => "project not found",
        "assignments_domain_fkey" => "domain not found",
        "regions_parent_fkey" => "parent region not found",
        "endpoints_service_fkey" => "service not found",
        "endpoints_region_fkey" => "region not found",
        other => return format!("referenced entity not found ({other})"),
    };
    text.to_owned()
}

/// Describes a foreign-key violation on delete.
fn in_use_message(constraint: &str) -> String {
    let text = match constraint {
        "regions_parent_fkey" => "region has child regions",
        "endpoints_region_fkey" => "region is used by endpoints",
        other => return format!("entity is still referenced ({other})"),
    };
    text.to_owned()
}
