//! The membership outbox (see `migrations/0002_membership_outbox.sql`):
//! triggers on `assignments` write it; the relay reads and removes it here.

use super::error::Op;
use super::{col, execute, query, PgStore};
use crate::store::{OutboxEntry, StoreError, StoreResult};
use keyfed_shared::ids::UserId;
use tokio_postgres::Row;

fn decode(row: &Row) -> StoreResult<OutboxEntry> {
    let version: i64 = col(row, "version")?;
    Ok(OutboxEntry {
        user_id: UserId::new(col::<String>(row, "user_id")?),
        version: u64::try_from(version)
            .map_err(|_| StoreError::Backend(format!("negative outbox version {version}")))?,
        holds_assignments: col(row, "holds")?,
    })
}

pub(super) async fn pending(db: &PgStore, limit: usize) -> StoreResult<Vec<OutboxEntry>> {
    let c = db.client().await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    // One statement, so `version` and `holds` come from one snapshot.
    let rows = query(
        &c,
        "SELECT o.user_id, o.version, \
                EXISTS (SELECT 1 FROM assignments a WHERE a.user_id = o.user_id) AS holds \
         FROM membership_outbox o ORDER BY o.version LIMIT $1",
        &[&limit],
    )
    .await?;
    rows.iter().map(decode).collect()
}

pub(super) async fn remove(db: &PgStore, done: &[OutboxEntry]) -> StoreResult<u64> {
    if done.is_empty() {
        return Ok(0);
    }
    let users: Vec<&str> = done.iter().map(|e| e.user_id.as_str()).collect();
    let versions = done
        .iter()
        .map(|e| i64::try_from(e.version))
        .collect::<Result<Vec<i64>, _>>()
        .map_err(|_| StoreError::Backend("outbox version out of range".into()))?;
    let c = db.client().await?;
    let n = execute(
        &c,
        "DELETE FROM membership_outbox o \
         USING unnest($1::text[], $2::bigint[]) AS d(user_id, version) \
         WHERE o.user_id = d.user_id AND o.version = d.version",
        &[&users, &versions],
        Op::Delete,
    )
    .await?;
    Ok(n)
}

pub(super) async fn requeue(db: &PgStore, others: &[UserId]) -> StoreResult<u64> {
    let others: Vec<&str> = others.iter().map(UserId::as_str).collect();
    let c = db.client().await?;
    // In user-id order, as the triggers lock rows, so requeueing cannot
    // deadlock with a concurrent grant.
    execute(
        &c,
        "INSERT INTO membership_outbox (user_id) \
         SELECT u FROM (SELECT user_id AS u FROM assignments \
                        UNION SELECT unnest($1::text[])) AS s ORDER BY u \
         ON CONFLICT (user_id) DO UPDATE SET version = EXCLUDED.version",
        &[&others],
        Op::Write,
    )
    .await
}
