//! The keyfed gateway: stateless replicas behind one public Keystone v3
//! endpoint, in front of N federated shards. A gateway follows the
//! federation directory (members, ring, pins, global data, revocations),
//! validates tokens offline, routes each request to the shard owning its
//! tenant, places new projects and users, and merges listings across shards.
//!
//! Layout: [`config`] the TOML configuration; [`server`] `run` /
//! `run_with_directory` and the edge middleware (the serve loop is `keyfed-http`); [`state`]
//! the shared [`Gateway`] state; [`local`] what the gateway answers alone
//! (version discovery, health, readiness, metrics); [`dispatch`] reads and
//! classifies Keystone requests ([`routes`], pure) and hands them to
//! [`auth`] (token validation, issue, revocation; logins by name while the
//! directory is down: [`outage`]), [`fanout`] (listings
//! merged across shards, asking only a user's shards for their projects:
//! [`memberships`]), [`placement`] (create/delete/rename with the
//! name index) or the plain [`proxy`] (one call to one shard); [`error`] the
//! one error type, classified into Keystone bodies; [`metrics`] Prometheus;
//! [`request_id`] the `x-openstack-request-id` of each request.
//!
//! Dependency direction: `gateway → {federation, directory, shared}`, never
//! `gateway ↔ shard`.

#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod dispatch;
pub mod error;
pub mod fanout;
pub mod health;
pub mod local;
pub mod memberships;
pub mod metrics;
pub mod outage;
pub mod placement;
pub mod proxy;
pub mod request;
pub use keyfed_http::request_id;
pub mod routes;
pub mod server;
pub mod state;

pub use crate::config::GatewayConfig;
pub use crate::error::GatewayError;
pub use crate::server::{run, run_with_directory};
pub use crate::state::{AppState, Gateway};

#[cfg(test)]
mod tests;
