//! A load generator for any Keystone v3 endpoint.
//!
//! It speaks only the public Keystone v3 API (`/v3/auth/tokens`,
//! `/v3/projects`), so the same run can be pointed at keyfed or at an
//! OpenStack Keystone. The `loadgen` binary (`src/bin/loadgen.rs`) parses the
//! command line and calls into this module.
//!
//! Layout:
//! - [`config`]: what to run — scenario, credentials, bounds.
//! - [`keystone`]: the set-up calls (issue tokens, find or create projects)
//!   and the base URL.
//! - [`scenario`]: turns a scenario into a fixed list of ready-made requests
//!   (a [`Plan`]) before anything is timed.
//! - [`runner`]: the workers, each with its own keep-alive connection
//!   ([`conn`]: hyper's connection-level HTTP/1.1 client), the warm-up and
//!   the timed phase.
//! - [`stats`]: per-worker recording (HDR histogram, error counts) and the
//!   [`Summary`].
//! - [`error`]: the one error type of the module.

pub mod config;
pub mod conn;
pub mod error;
pub mod keystone;
pub mod runner;
pub mod scenario;
pub mod stats;

pub use config::{Credentials, LoadConfig, Scenario};
pub use error::LoadgenError;
pub use keystone::Endpoint;
pub use runner::{drive, run, Report};
pub use scenario::{prepare, Plan};
pub use stats::{Latency, Summary};
