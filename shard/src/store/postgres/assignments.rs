//! Direct role assignments. A target is stored as `(target_type, target_id)`:
//! `('project', id)`, `('domain', id)` or `('system', '')`. Foreign keys on
//! the user, the role and (through generated columns) the project or domain
//! make a grant on anything unknown fail with `MissingReference`.

use super::error::{db_err, Op};
use super::{col, decode_all, execute, query, revocations, PgStore};
use crate::store::{StoreError, StoreResult};
use keyfed_shared::ids::{DomainId, ProjectId, RoleId, UserId};
use keyfed_shared::model::{Assignment, AssignmentFilter, Target};
use keyfed_shared::revocation::RevocationEvent;
use tokio_postgres::Row;

/// The `(target_type, target_id)` columns of a target.
fn target_columns(t: &Target) -> (&'static str, &str) {
    match t {
        Target::Project(p) => ("project", p.as_str()),
        Target::Domain(d) => ("domain", d.as_str()),
        Target::System => ("system", ""),
    }
}

fn decode(row: &Row) -> StoreResult<Assignment> {
    let kind: String = col(row, "target_type")?;
    let id: String = col(row, "target_id")?;
    let target = match kind.as_str() {
        "project" => Target::Project(ProjectId::new(id)),
        "domain" => Target::Domain(DomainId::new(id)),
        "system" => Target::System,
        other => {
            return Err(StoreError::Backend(format!(
                "unknown assignment target type {other:?}"
            )))
        }
    };
    Ok(Assignment {
        user_id: UserId::new(col::<String>(row, "user_id")?),
        target,
        role_id: RoleId::new(col::<String>(row, "role_id")?),
    })
}

pub(super) async fn grant(db: &PgStore, a: &Assignment) -> StoreResult<bool> {
    let c = db.client().await?;
    let (kind, id) = target_columns(&a.target);
    let n = execute(
        &c,
        "INSERT INTO assignments (user_id, target_type, target_id, role_id) \
         VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        &[&a.user_id.as_str(), &kind, &id, &a.role_id.as_str()],
        Op::Write,
    )
    .await?;
    Ok(n > 0)
}

pub(super) async fn revoke(
    db: &PgStore,
    a: &Assignment,
    event: &RevocationEvent,
) -> StoreResult<bool> {
    let mut c = db.client().await?;
    let tx = c.transaction().await.map_err(db_err)?;
    let (kind, id) = target_columns(&a.target);
    let n = execute(
        &tx,
        "DELETE FROM assignments \
         WHERE user_id = $1 AND target_type = $2 AND target_id = $3 AND role_id = $4",
        &[&a.user_id.as_str(), &kind, &id, &a.role_id.as_str()],
        Op::Delete,
    )
    .await?;
    if n == 0 {
        return Ok(false);
    }
    revocations::insert(&tx, event).await?;
    tx.commit().await.map_err(db_err)?;
    Ok(true)
}

pub(super) async fn list(db: &PgStore, f: &AssignmentFilter) -> StoreResult<Vec<Assignment>> {
    let c = db.client().await?;
    let (kind, id) = match &f.target {
        Some(t) => {
            let (kind, id) = target_columns(t);
            (Some(kind), Some(id))
        }
        None => (None, None),
    };
    let rows = query(
        &c,
        "SELECT user_id, target_type, target_id, role_id FROM assignments \
         WHERE ($1::text IS NULL OR user_id = $1) \
           AND ($2::text IS NULL OR (target_type = $2 AND target_id = $3::text)) \
           AND ($4::text IS NULL OR role_id = $4) \
         ORDER BY user_id, target_type, target_id, role_id",
        &[
            &f.user_id.as_ref().map(UserId::as_str),
            &kind,
            &id,
            &f.role_id.as_ref().map(RoleId::as_str),
        ],
    )
    .await?;
    decode_all(&rows, decode)
}
