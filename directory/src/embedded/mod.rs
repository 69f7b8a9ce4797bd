//! The embedded directory of `keyfed dev`: the same traits as the NATS
//! backend, in process, durable on disk.
//!
//! Layout on disk: `<path>/<namespace>/<bucket>.json` per bucket and
//! `<path>/<namespace>/revocations.json`, each rewritten atomically on every
//! write (temporary file, fsync, rename, fsync of the directory) and reloaded
//! by [`EmbeddedDirectory::open`]. Each write costs an fsync and a rewrite of
//! its bucket: fine for a development federation, not meant for production
//! volumes. Only one `EmbeddedDirectory` may have a namespace open at a time.
//!
//! Like the NATS backend, a bucket keeps the deletion marker of a deleted key
//! (so watchers resuming from an older revision learn of the deletion), and
//! a watcher that falls more than a channel's worth of changes behind
//! re-reads the bucket from its last revision.

mod kv;
mod persist;
mod revocations;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use self::kv::{bucket_path, EmbeddedKv};
use self::revocations::EmbeddedRevocations;
use crate::config::EmbeddedConfig;
use crate::directory::{Bucket, Directory, RevocationStream};
use crate::error::{DirectoryError, Result};
use crate::kv::Kv;

/// The directory kept in process and on local disk.
#[derive(Clone)]
pub struct EmbeddedDirectory {
    namespace: String,
    buckets: [Arc<EmbeddedKv>; 6],
    revocations: EmbeddedRevocations,
}

impl std::fmt::Debug for EmbeddedDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedDirectory")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl EmbeddedDirectory {
    /// Opens (creating if needed) the directory stored under `config.path`,
    /// reloading everything written before.
    pub fn open(config: &EmbeddedConfig) -> Result<Self> {
        config.validate()?;
        let dir = config.path.join(&config.namespace);
        crate::private_files::create_private_dir(&dir).map_err(|e| {
            DirectoryError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
        let open =
            |bucket: Bucket| EmbeddedKv::open(bucket_path(&dir, bucket.name())).map(Arc::new);
        let buckets = [
            open(Bucket::Members)?,
            open(Bucket::Pins)?,
            open(Bucket::Names)?,
            open(Bucket::Memberships)?,
            open(Bucket::Global)?,
            open(Bucket::Credentials)?,
        ];
        let revocations = EmbeddedRevocations::open(
            dir.join("revocations.json"),
            Duration::from_secs(config.revocation_max_age_secs),
        )?;
        Ok(EmbeddedDirectory {
            namespace: config.namespace.clone(),
            buckets,
            revocations,
        })
    }
}

#[async_trait]
impl Directory for EmbeddedDirectory {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn kv(&self, bucket: Bucket) -> Arc<dyn Kv> {
        self.buckets[bucket.index()].clone()
    }

    async fn publish_revocation(&self, payload: Bytes) -> Result<u64> {
        self.revocations.publish(payload).await
    }

    async fn revocations_from(&self, after: u64) -> Result<RevocationStream> {
        self.revocations.events_from(after).await
    }
}
