//! Versioned schema migrations.
//!
//! Each migration is an SQL file `migrations/NNNN_name.sql` compiled into the
//! binary. [`apply`] runs the pending ones in version order, all in one
//! transaction, and records each in `schema_migrations`. The transaction
//! first takes a transaction-scoped advisory lock, so processes starting at
//! the same time apply the migrations once: the others wait, then find
//! nothing left to do.

use super::error::db_err;
use crate::store::{StoreError, StoreResult};
use std::collections::BTreeSet;

/// One schema migration.
#[derive(Debug)]
struct Migration {
    /// Strictly increasing; the `NNNN` of the file name.
    version: i32,
    /// The `name` part of the file name, for logs.
    name: &'static str,
    /// The statements, run as one batch.
    sql: &'static str,
}

/// Every migration, in version order. Never edit an applied migration: add a
/// new file and a new entry.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../../../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "membership_outbox",
        sql: include_str!("../../../migrations/0002_membership_outbox.sql"),
    },
];

/// Advisory-lock key serializing migrations in one database ("keyfedmg").
const LOCK_KEY: i64 = 0x6b65_7966_6564_6d67;

/// Brings the schema up to date; returns the versions it applied.
///
/// Fails if the database records a version this binary does not know (a
/// newer keyfed migrated it), rather than run against a schema it does not
/// understand.
pub(super) async fn apply(client: &mut deadpool_postgres::Client) -> StoreResult<Vec<i32>> {
    let tx = client.transaction().await.map_err(db_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(db_err)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(db_err)?;
    let applied: BTreeSet<i32> = tx
        .query("SELECT version FROM schema_migrations", &[])
        .await
        .map_err(db_err)?
        .iter()
        .map(|row| row.try_get::<_, i32>(0))
        .collect::<Result<_, _>>()
        .map_err(db_err)?;
    let known = MIGRATIONS.last().map_or(0, |m| m.version);
    if let Some(&newest) = applied.last() {
        if newest > known {
            return Err(StoreError::Backend(format!(
                "database schema version {newest} is newer than this binary's {known}"
            )));
        }
    }
    let mut done = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        tx.batch_execute(m.sql).await.map_err(|e| {
            StoreError::Backend(format!(
                "migration {} ({}): {}",
                m.version,
                m.name,
                db_err(e)
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, now())",
            &[&m.version],
        )
        .await
        .map_err(db_err)?;
        done.push(m.version);
    }
    tx.commit().await.map_err(db_err)?;
    for m in MIGRATIONS.iter().filter(|m| done.contains(&m.version)) {
        tracing::info!(
            version = m.version,
            name = m.name,
            "applied schema migration"
        );
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_from_one_without_gaps() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version, i as i32 + 1, "migration {}", m.name);
            assert!(!m.sql.trim().is_empty());
        }
    }
}
