//! Projects. Deleting a project cascades (in the schema) to its assignments;
//! an update or delete that revokes tokens stores its revocation event in
//! the same transaction.

use super::error::{db_err, Op};
use super::{col, decode_all, execute, query, query_opt, revocations, PgStore};
use crate::store::StoreResult;
use keyfed_shared::ids::{DomainId, ProjectId};
use keyfed_shared::model::{Extra, ListFilter, Project};
use keyfed_shared::revocation::RevocationEvent;
use tokio_postgres::types::Json;
use tokio_postgres::Row;

fn decode(row: &Row) -> StoreResult<Project> {
    let Json(extra) = col::<Json<Extra>>(row, "extra")?;
    Ok(Project {
        id: ProjectId::new(col::<String>(row, "id")?),
        name: col(row, "name")?,
        domain_id: DomainId::new(col::<String>(row, "domain_id")?),
        description: col(row, "description")?,
        enabled: col(row, "enabled")?,
        tags: col(row, "tags")?,
        extra,
    })
}

pub(super) async fn create(db: &PgStore, p: &Project) -> StoreResult<()> {
    let c = db.client().await?;
    execute(
        &c,
        "INSERT INTO projects (id, domain_id, name, description, enabled, tags, extra) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &p.id.as_str(),
            &p.domain_id.as_str(),
            &p.name,
            &p.description,
            &p.enabled,
            &p.tags,
            &Json(&p.extra),
        ],
        Op::Write,
    )
    .await?;
    Ok(())
}

pub(super) async fn get(db: &PgStore, id: &ProjectId) -> StoreResult<Option<Project>> {
    let c = db.client().await?;
    let row = query_opt(
        &c,
        "SELECT id, domain_id, name, description, enabled, tags, extra \
         FROM projects WHERE id = $1",
        &[&id.as_str()],
    )
    .await?;
    row.as_ref().map(decode).transpose()
}

pub(super) async fn find(
    db: &PgStore,
    domain: &DomainId,
    name: &str,
) -> StoreResult<Option<Project>> {
    let c = db.client().await?;
    let row = query_opt(
        &c,
        "SELECT id, domain_id, name, description, enabled, tags, extra \
         FROM projects WHERE domain_id = $1 AND name = $2",
        &[&domain.as_str(), &name],
    )
    .await?;
    row.as_ref().map(decode).transpose()
}

pub(super) async fn list(db: &PgStore, f: &ListFilter) -> StoreResult<Vec<Project>> {
    let c = db.client().await?;
    let rows = query(
        &c,
        "SELECT id, domain_id, name, description, enabled, tags, extra FROM projects \
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

pub(super) async fn update(
    db: &PgStore,
    p: &Project,
    revoke: Option<&RevocationEvent>,
) -> StoreResult<bool> {
    let mut c = db.client().await?;
    let tx = c.transaction().await.map_err(db_err)?;
    let n = execute(
        &tx,
        "UPDATE projects SET domain_id = $2, name = $3, description = $4, enabled = $5, \
         tags = $6, extra = $7 WHERE id = $1",
        &[
            &p.id.as_str(),
            &p.domain_id.as_str(),
            &p.name,
            &p.description,
            &p.enabled,
            &p.tags,
            &Json(&p.extra),
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

pub(super) async fn delete(
    db: &PgStore,
    id: &ProjectId,
    revoke: &RevocationEvent,
) -> StoreResult<bool> {
    let mut c = db.client().await?;
    let tx = c.transaction().await.map_err(db_err)?;
    let n = execute(
        &tx,
        "DELETE FROM projects WHERE id = $1",
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
