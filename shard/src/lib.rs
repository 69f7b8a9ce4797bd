//! A keyfed shard: a complete Keystone v3 Identity server for the tenants it
//! owns, storing entities in PostgreSQL (or the embedded store for
//! `keyfed dev`) and signing its own tokens.
//!
//! Layout: [`config`] the typed config file; [`server`] `run(config,
//! listener, shutdown)` and the edge middleware; [`api`] the Keystone v3
//! routes, one file per resource; [`state`] the shared `Arc<Shard>`;
//! [`tokens`] issuing and offline validation; [`policy`] who may do what;
//! [`password`] argon2id on a bounded blocking pool; [`global`] the
//! in-memory snapshot of domains, roles and the catalog; [`bootstrap`] the
//! `keystone-manage bootstrap` equivalent; [`store`] persistence;
//! [`metrics`] Prometheus metrics; [`federation`] membership in a federation (member record, trusted keys,
//! the revocation stream).

pub mod api;
pub mod bootstrap;
pub mod config;
pub mod error;
pub mod failpoints;
pub mod federation;
pub mod global;
pub mod keyring;
pub mod keys;
pub mod metrics;
pub mod password;
pub mod policy;
pub mod server;
pub mod state;
pub mod store;
pub mod tokens;

pub use server::run;

/// Why a shard could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("storage: {0}")]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Startup(#[from] error::Error),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("federation: {0}")]
    Federation(String),
    #[error("tls: {0}")]
    Tls(String),
}
