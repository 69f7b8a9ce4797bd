//! Roles and role implications. Deleting a role cascades (in the schema) to
//! the implications it takes part in and to its assignments.

use super::error::Op;
use super::{col, decode_all, execute, query, query_opt, PgStore};
use crate::store::StoreResult;
use keyfed_shared::ids::{DomainId, RoleId};
use keyfed_shared::model::{ImpliedRole, Role};
use tokio_postgres::Row;

fn decode(row: &Row) -> StoreResult<Role> {
    Ok(Role {
        id: RoleId::new(col::<String>(row, "id")?),
        name: col(row, "name")?,
        domain_id: col::<Option<String>>(row, "domain_id")?.map(DomainId::new),
        description: col(row, "description")?,
    })
}

fn decode_implied(row: &Row) -> StoreResult<ImpliedRole> {
    Ok(ImpliedRole {
        prior: RoleId::new(col::<String>(row, "prior_role_id")?),
        implied: RoleId::new(col::<String>(row, "implied_role_id")?),
    })
}

pub(super) async fn create(db: &PgStore, r: &Role) -> StoreResult<()> {
    let c = db.client().await?;
    execute(
        &c,
        "INSERT INTO roles (id, domain_id, name, description) VALUES ($1, $2, $3, $4)",
        &[
            &r.id.as_str(),
            &r.domain_id.as_ref().map(DomainId::as_str),
            &r.name,
            &r.description,
        ],
        Op::Write,
    )
    .await?;
    Ok(())
}

pub(super) async fn get(db: &PgStore, id: &RoleId) -> StoreResult<Option<Role>> {
    let c = db.client().await?;
    let row = query_opt(
        &c,
        "SELECT id, domain_id, name, description FROM roles WHERE id = $1",
        &[&id.as_str()],
    )
    .await?;
    row.as_ref().map(decode).transpose()
}

pub(super) async fn list(db: &PgStore) -> StoreResult<Vec<Role>> {
    let c = db.client().await?;
    let rows = query(
        &c,
        "SELECT id, domain_id, name, description FROM roles ORDER BY id",
        &[],
    )
    .await?;
    decode_all(&rows, decode)
}

pub(super) async fn update(db: &PgStore, r: &Role) -> StoreResult<bool> {
    let c = db.client().await?;
    let n = execute(
        &c,
        "UPDATE roles SET domain_id = $2, name = $3, description = $4 WHERE id = $1",
        &[
            &r.id.as_str(),
            &r.domain_id.as_ref().map(DomainId::as_str),
            &r.name,
            &r.description,
        ],
        Op::Write,
    )
    .await?;
    Ok(n > 0)
}

pub(super) async fn delete(db: &PgStore, id: &RoleId) -> StoreResult<bool> {
    let c = db.client().await?;
    let n = execute(
        &c,
        "DELETE FROM roles WHERE id = $1",
        &[&id.as_str()],
        Op::Delete,
    )
    .await?;
    Ok(n > 0)
}

pub(super) async fn add_implied(db: &PgStore, rule: &ImpliedRole) -> StoreResult<bool> {
    let c = db.client().await?;
    let n = execute(
        &c,
        "INSERT INTO implied_roles (prior_role_id, implied_role_id) VALUES ($1, $2) \
         ON CONFLICT DO NOTHING",
        &[&rule.prior.as_str(), &rule.implied.as_str()],
        Op::Write,
    )
    .await?;
    Ok(n > 0)
}

pub(super) async fn remove_implied(db: &PgStore, rule: &ImpliedRole) -> StoreResult<bool> {
    let c = db.client().await?;
    let n = execute(
        &c,
        "DELETE FROM implied_roles WHERE prior_role_id = $1 AND implied_role_id = $2",
        &[&rule.prior.as_str(), &rule.implied.as_str()],
        Op::Delete,
    )
    .await?;
    Ok(n > 0)
}

pub(super) async fn list_implied(db: &PgStore) -> StoreResult<Vec<ImpliedRole>> {
    let c = db.client().await?;
    let rows = query(
        &c,
        "SELECT prior_role_id, implied_role_id FROM implied_roles \
         ORDER BY prior_role_id, implied_role_id",
        &[],
    )
    .await?;
    decode_all(&rows, decode_implied)
}
