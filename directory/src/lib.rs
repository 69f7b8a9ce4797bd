//! The keyfed federation directory: the state every gateway and shard shares
//! (members, placement pins, the name and membership indexes, global data)
//! as key-value buckets with compare-and-swap and watches, plus the
//! append-only stream of revocation events.
//!
//! Layout: [`directory`] the [`Directory`] trait, its [`Bucket`]s and the
//! revocation stream types; [`kv`] the [`Kv`] bucket trait (get, create,
//! compare-and-swap update and delete, snapshot, watch from a revision);
//! [`error`] the error kinds callers branch on; [`config`] the validated
//! configuration of both backends; [`nats`] the production backend on NATS
//! JetStream ([`NatsDirectory`], with the behaviour during outages documented
//! there); [`embedded`] the in-process, on-disk backend of `keyfed dev`
//! ([`EmbeddedDirectory`]); [`private_files`] creates directories (0700) and
//! files (0600) only their owner reads; [`conformance`] the behaviour both backends must
//! show, as a test suite any implementation can run; `testing` (feature
//! `testing`) spawns a real nats-server for tests. Internally, `resume`
//! turns a subscription that can fail into a stream that resumes after the
//! last item it delivered.
//!
//! A process follows a bucket by loading [`Kv::snapshot`] and then
//! [`Kv::watch_from`] the snapshot's revision; the watch bridges outages on
//! its own. Every name (bucket, stream, subject, file) is prefixed by a
//! namespace, so several federations and parallel tests share one server.
//!
//! This crate depends on no other keyfed crate: values are opaque bytes,
//! encoded by their owners.

#![forbid(unsafe_code)]

pub mod config;
pub mod conformance;
pub mod directory;
pub mod embedded;
pub mod error;
pub mod kv;
pub mod nats;
pub mod private_files;
mod resume;
#[cfg(feature = "testing")]
pub mod testing;

pub use crate::config::{EmbeddedConfig, NatsConfig};
pub use crate::directory::{
    validate_namespace, Bucket, Directory, RevocationEvent, RevocationStream,
};
pub use crate::embedded::EmbeddedDirectory;
pub use crate::error::{DirectoryError, Result};
pub use crate::kv::{Change, ChangeStream, Entry, Kv, Snapshot};
pub use crate::nats::NatsDirectory;
