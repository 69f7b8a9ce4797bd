//! The keyfed gateway: stateless replicas behind one public Keystone v3
//! endpoint that route each request to the shard owning its tenant, merge a
//! user's memberships across shards into one token, and validate tokens
//! offline.
//!
//! Layout: [`view`] the [`FederationView`], everything a gateway knows about
//! the federation (members, their placement ring and verification keys,
//! placement pins, global data), followed live from the directory;
//! [`revocations`] the [`Revocations`] index, fed from the directory's
//! revocation stream; [`validate`] the [`Validator`], which checks a token
//! with no I/O (structure, signer key, signature, expiry, revocation) and
//! caches verified tokens by digest, and renders the Keystone token body;
//! [`error`] the gateway's error kinds. Internally, `tasks` owns background
//! tasks (aborted when their owner is dropped) and the retry back-off.
//! The HTTP front end is not built yet.
//!
//! Dependency direction: this crate uses `keyfed-shared` (types, token
//! format, ring) and `keyfed-directory` (the directory traits), never
//! `keyfed-shard`.

#![forbid(unsafe_code)]

pub mod error;
pub mod revocations;
mod tasks;
pub mod validate;
pub mod view;

#[cfg(test)]
mod testutil;

pub use crate::error::ViewError;
pub use crate::revocations::Revocations;
pub use crate::validate::{CacheStats, Validator, ValidatorConfig};
pub use crate::view::{BucketRevision, FederationView};
