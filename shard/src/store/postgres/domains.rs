//! Domains. Deleting a domain cascades (in the schema) to its projects,
//! users and domain-specific roles, and through them to their assignments.

use super::error::Op;
use super::{col, decode_all, execute, query, query_opt, PgStore};
use crate::store::StoreResult;
use keyfed_shared::ids::DomainId;
use keyfed_shared::model::Domain;
use tokio_postgres::Row;

fn decode(row: &Row) -> StoreResult<Domain> {
    Ok(Domain {
        id: DomainId::new(col::<String>(row, "id")?),
        name: col(row, "name")?,
        description: col(row, "description")?,
        enabled: col(row, "enabled")?,
    })
}

pub(super) async fn create(db: &PgStore, d: &Domain) -> StoreResult<()> {
    let c = db.client().await?;
    execute(
        &c,
        "INSERT INTO domains (id, name, description, enabled) VALUES ($1, $2, $3, $4)",
        &[&d.id.as_str(), &d.name, &d.description, &d.enabled],
        Op::Write,
    )
    .await?;
    Ok(())
}

pub(super) async fn get(db: &PgStore, id: &DomainId) -> StoreResult<Option<Domain>> {
    let c = db.client().await?;
    let row = query_opt(
        &c,
        "SELECT id, name, description, enabled FROM domains WHERE id = $1",
        &[&id.as_str()],
    )
    .await?;
    row.as_ref().map(decode).transpose()
}

pub(super) async fn list(db: &PgStore) -> StoreResult<Vec<Domain>> {
    let c = db.client().await?;
    let rows = query(
        &c,
        "SELECT id, name, description, enabled FROM domains ORDER BY id",
        &[],
    )
    .await?;
    decode_all(&rows, decode)
}

pub(super) async fn update(db: &PgStore, d: &Domain) -> StoreResult<bool> {
    let c = db.client().await?;
    let n = execute(
        &c,
        "UPDATE domains SET name = $2, description = $3, enabled = $4 WHERE id = $1",
        &[&d.id.as_str(), &d.name, &d.description, &d.enabled],
        Op::Write,
    )
    .await?;
    Ok(n > 0)
}

pub(super) async fn delete(db: &PgStore, id: &DomainId) -> StoreResult<bool> {
    let c = db.client().await?;
    let n = execute(
        &c,
        "DELETE FROM domains WHERE id = $1",
        &[&id.as_str()],
        Op::Delete,
    )
    .await?;
    Ok(n > 0)
}
