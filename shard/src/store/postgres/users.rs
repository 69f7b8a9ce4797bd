//! Users and their password hashes. Deleting a user cascades (in the schema)
//! to their assignments; changes that revoke tokens store their revocation
//! event in the same transaction.

use super::error::{db_err, Op};
use super::{col, decode_all, execute, query, query_opt, revocations, PgStore};
use crate::store::StoreResult;
use keyfed_shared::ids::{DomainId, ProjectId, UserId};
use keyfed_shared::model::{Extra, ListFilter, User};
use keyfed_shared::revocation::RevocationEvent;
use tokio_postgres::types::Json;
use tokio_postgres::Row;

fn decode(row: &Row) -> StoreResult<User> {
    let Json(extra) = col::<Json<Extra>>(row, "extra")?;
    Ok(User {
        id: UserId::new(col::<String>(row, "id")?),
        name: col(row, "name")?,
        domain_id: DomainId::new(col::<String>(row, "domain_id")?),
        enabled: col(row, "enabled")?,
        default_project_id: col::<Option<String>>(row, "default_project_id")?.map(ProjectId::new),
        extra,
    })
}

pub(super) async fn create(db: &PgStore, u: &User, password_hash: Option<&str>) -> StoreResult<()> {
    let c = db.client().await?;
    execute(
        &c,
        "INSERT INTO users (id, domain_id, name, enabled, default_project_id, extra, password_hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &u.id.as_str(),
            &u.domain_id.as_str(),
            &u.name,
            &u.enabled,
            &u.default_project_id.as_ref().map(ProjectId::as_str),
            &Json(&u.extra),
            &password_hash,
        ],
        Op::Write,
    )
    .await?;
    Ok(())
}

pub(super) async fn get(db: &PgStore, id: &UserId) -> StoreResult<Option<User>> {
    let c = db.client().await?;
    let row = query_opt(
        &c,
        "SELECT id, domain_id, name, enabled, default_project_id, extra FROM users WHERE id = $1",
        &[&id.as_str()],
    )
    .await?;
    row.as_ref().map(decode).transpose()
}

pub(super) async fn find(db: &PgStore, domain: &DomainId, name: &str) -> StoreResult<Option<User>> {
    let c = db.client().await?;
    let row = query_opt(
        &c,
        "SELECT id, domain_id, name, enabled, default_project_id, extra FROM users \
         WHERE domain_id = $1 AND name = $2",
        &[&domain.as_str(), &name],
    )
    .await?;
    row.as_ref().map(decode).transpose()
}

pub(super) async fn list(db: &PgStore, f: &ListFilter) -> StoreResult<Vec<User>> {
    let c = db.client().await?;
    let rows = query(
        &c,
        "SELECT id, domain_id, name, enabled, default_project_id, extra FROM users \
         WHERE ($1::text IS NULL OR name = $1) \
           AND ($2::text IS NULL OR domain_id = $2) \
           AND ($3::boolean IS NULL OR enabled = $3) \
         ORDER BY id",
        &[
            &f.name.as_deref(),
            &f.domain_id.as_ref().map(DomainId::as_str),
            &f.enabled,
        ],
    )
    .await?;
    decode_all(&rows, decode)
}

pub(super) async fn password_hash(db: &PgStore, id: &UserId) -> StoreResult<Option<String>> {
    let c = db.client().await?;
    let row = query_opt(
        &c,
        "SELECT password_hash FROM users WHERE id = $1",
        &[&id.as_str()],
    )
    .await?;
    match row {
        Some(row) => col(&row, "password_hash"),
        None => Ok(None),
    }
}

/// Updates a user's attributes, and its password hash when one is given.
pub(super) async fn update(
    db: &PgStore,
    u: &User,
    password_hash: Option<&str>,
    revoke: Option<&RevocationEvent>,
) -> StoreResult<bool> {
    let mut c = db.client().await?;
    let tx = c.transaction().await.map_err(db_err)?;
    let n = execute(
        &tx,
        "UPDATE users SET domain_id = $2, name = $3, enabled = $4, default_project_id = $5, \
         extra = $6, password_hash = coalesce($7, password_hash) WHERE id = $1",
        &[
            &u.id.as_str(),
            &u.domain_id.as_str(),
            &u.name,
            &u.enabled,
            &u.default_project_id.as_ref().map(ProjectId::as_str),
            &Json(&u.extra),
            &password_hash,
        ],
        Op::Write,
    )
    .await?;
    if n == 0 {
        return Ok(false);
    }
    if let Some(event) = revoke {
        revocations::insert(&tx, event).await?;
    }
    tx.commit().await.map_err(db_err)?;
    Ok(true)
}

pub(super) async fn set_password(
    db: &PgStore,
    id: &UserId,
    password_hash: &str,
    revoke: &RevocationEvent,
) -> StoreResult<bool> {
    let mut c = db.client().await?;
    let tx = c.transaction().await.map_err(db_err)?;
    let n = execute(
        &tx,
        "UPDATE users SET password_hash = $2 WHERE id = $1",
        &[&id.as_str(), &password_hash],
        Op::Write,
    )
    .await?;
    if n == 0 {
        return Ok(false);
    }
    revocations::insert(&tx, revoke).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(true)
}

pub(super) async fn delete(
    db: &PgStore,
    id: &UserId,
    revoke: &RevocationEvent,
) -> StoreResult<bool> {
    let mut c = db.client().await?;
    let tx = c.transaction().await.map_err(db_err)?;
    let n = execute(
        &tx,
        "DELETE FROM users WHERE id = $1",
        &[&id.as_str()],
        Op::Delete,
    )
    .await?;
    if n == 0 {
        return Ok(false);
    }
    revocations::insert(&tx, revoke).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(true)
}
