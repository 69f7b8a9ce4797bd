//! [`PgStore`]: the production [`Store`](crate::store::Store) on PostgreSQL.
//!
//! Layout: `error` maps driver errors to [`StoreError`]s (the only place
//! that does); `migrate` applies the versioned schema in `migrations/`;
//! one file per resource group holds its SQL (`domains`, `projects`, `users`,
//! `roles`, `assignments`, `catalog`, `revocations`, `outbox`); `store_impl`
//! wires them into the trait. The membership outbox is written by triggers
//! (migration 2), so every change to assignments records it in its own
//! transaction, cascades included.
//!
//! Every trait method runs as one transaction: single statements run on
//! their own, multi-statement methods (a change plus its revocation event)
//! inside an explicit transaction. Statements are prepared once per pooled
//! connection (`prepare_cached`). Integrity (unique names, references,
//! cascades, regions in use) is enforced by the schema, not by read-then-write
//! checks, so it holds under concurrent writers and across processes.

mod assignments;
mod catalog;
mod domains;
mod error;
mod migrate;
mod outbox;
mod projects;
mod revocations;
mod roles;
mod store_impl;
mod users;

use crate::store::{StoreError, StoreResult};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use error::{db_err, pool_err, Op};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{NoTls, Row};

/// How long a request waits for a free pooled connection.
const WAIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long opening a new connection may take.
const CREATE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long checking a returned connection may take.
const RECYCLE_TIMEOUT: Duration = Duration::from_secs(5);
/// `application_name` reported to the server unless the URL sets one.
const APPLICATION_NAME: &str = "keyfed-shard";

/// A shard's store on PostgreSQL, over a connection pool. Cheap to clone:
/// clones share the pool.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PgStore")
            .field("max_size", &status.max_size)
            .field("size", &status.size)
            .finish()
    }
}

impl PgStore {
    /// Connects to the database at `url` with a pool of up to `pool_size`
    /// connections, and brings its schema up to date.
    ///
    /// `url` is a libpq key-value string (`host=127.0.0.1 user=postgres
    /// dbname=keyfed`) or a `postgres://` URL. Connections are not encrypted
    /// (TLS is not supported yet). Fails with [`StoreError::Backend`] if the
    /// string does not parse, the server cannot be reached, or the database
    /// holds a schema version newer than this binary knows.
    pub async fn connect(url: &str, pool_size: usize) -> Result<PgStore, StoreError> {
        if pool_size == 0 {
            return Err(StoreError::Backend(
                "database pool size must be at least 1".into(),
            ));
        }
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Backend(format!("invalid database connection string: {e}")))?;
        if config.get_application_name().is_none() {
            config.application_name(APPLICATION_NAME);
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(WAIT_TIMEOUT))
            .create_timeout(Some(CREATE_TIMEOUT))
            .recycle_timeout(Some(RECYCLE_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Backend(format!("building database pool: {e}")))?;
        let store = PgStore { pool };
        let mut client = store.client().await?;
        migrate::apply(&mut client).await?;
        Ok(store)
    }

    /// Checks a connection out of the pool.
    async fn client(&self) -> StoreResult<deadpool_postgres::Client> {
        self.pool.get().await.map_err(pool_err)
    }
}

/// Statement parameters.
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Runs one write statement (prepared once per connection) and returns the
/// number of rows it touched; `op` says how a foreign-key violation reads.
async fn execute<C: GenericClient>(
    c: &C,
    sql: &str,
    params: Params<'_>,
    op: Op,
) -> StoreResult<u64> {
    let stmt = c.prepare_cached(sql).await.map_err(db_err)?;
    c.execute(&stmt, params)
        .await
        .map_err(|e| error::classify(&e, op))
}

/// Runs one query (prepared once per connection).
async fn query<C: GenericClient>(c: &C, sql: &str, params: Params<'_>) -> StoreResult<Vec<Row>> {
    let stmt = c.prepare_cached(sql).await.map_err(db_err)?;
    c.query(&stmt, params).await.map_err(db_err)
}

/// Runs one query expected to return at most one row.
async fn query_opt<C: GenericClient>(
    c: &C,
    sql: &str,
    params: Params<'_>,
) -> StoreResult<Option<Row>> {
    let stmt = c.prepare_cached(sql).await.map_err(db_err)?;
    c.query_opt(&stmt, params).await.map_err(db_err)
}

/// Reads a column, reporting a type mismatch as a backend error.
fn col<'a, T: FromSql<'a>>(row: &'a Row, name: &str) -> StoreResult<T> {
    row.try_get(name)
        .map_err(|e| StoreError::Backend(format!("decoding column {name}: {e}")))
}

/// Decodes every row with `f`.
fn decode_all<T>(rows: &[Row], f: fn(&Row) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(f).collect()
}
