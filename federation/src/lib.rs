//! What every keyfed process knows of the federation, followed live from the
//! directory, and the offline token validation built on it. Gateways and
//! shards both use this crate.
//!
//! Layout: [`view`] the [`FederationView`], everything a process knows about
//! the federation (members, their placement ring and verification keys,
//! placement pins, global data), followed live from the directory;
//! [`revocations`] the [`Revocations`] index, fed from the directory's
//! revocation stream; [`validate`] the [`Validator`], which checks a token
//! with no I/O (structure, signer key, signature, expiry, revocation) and
//! caches verified tokens by digest, and renders the Keystone token body;
//! [`error`] the crate's error kinds. Internally, `tasks` owns background
//! tasks (aborted when their owner is dropped) and the retry back-off.
//!
//! Dependency direction: this crate uses `keyfed-shared` (types, token
//! format, ring) and `keyfed-directory` (the directory traits); it never
//! depends on `keyfed-shard` or `keyfed-gateway`.

#![forbid(unsafe_code)]

pub mod error;
pub mod lifecycle;
pub mod revocations;
pub mod seal;
mod tasks;
pub mod validate;
pub mod view;

#[cfg(test)]
mod testutil;

pub use crate::error::ViewError;
pub use crate::revocations::Revocations;
pub use crate::validate::{
    CacheStats, LookupStats, Valid, Validator, ValidatorConfig, DEFAULT_MAX_CLOCK_SKEW_SECS,
};
pub use crate::view::{BucketRevision, FederationView, MemberLookup};
