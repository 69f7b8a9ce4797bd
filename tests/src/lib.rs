//! keyfed's end-to-end test harness.
//!
//! - [`cluster`]: a federation of real processes — `nats-server`, `keyfed
//!   shard` on fresh PostgreSQL databases, `keyfed gateway` — configured by
//!   TOML files, with shards and NATS that can be stopped and restarted.
//! - [`shard`]: one in-process shard on a real socket (standalone or
//!   federated), for tests that need no processes.
//! - [`keystone`]: a client for one Keystone endpoint (shard or gateway).
//! - [`cli_suite`]: the `openstack` CLI suite, run against a shard and
//!   against the gateway.
//! - [`python`]: the Python clients (`openstack` CLI, keystonemiddleware).
//! - [`pg`]: throwaway PostgreSQL databases; [`pg_standby`]: a primary
//!   with a streaming standby, to fail over.
//! - [`tls`]: an mTLS federation in one process (transport and join tests).
pub mod cli_suite;
pub mod cluster;
pub mod gateway;
pub mod keystone;
pub mod pg;
pub mod pg_standby;
pub mod python;
pub mod shard;
pub mod through;
pub mod tls;

pub use through::{claims, Gateways};
