//! Following one bucket: load a snapshot (retrying with back-off while the
//! directory is unreachable), publish it, then apply the bucket's changes
//! from the snapshot's revision on. The directory's watch streams bridge
//! outages themselves; should one end anyway, the follower re-opens it from
//! the last revision it applied. A table whose content depends on time
//! (member keys expire) is also republished periodically.

use std::sync::Arc;

use futures::StreamExt;
use keyfed_directory::{DirectoryError, Kv};
use tokio::sync::oneshot;

use super::tables::Table;
use super::Shared;
use crate::tasks::Backoff;

/// Most changes applied before publishing a new snapshot. Changes that
/// arrive together are applied as one batch, so a burst costs one rebuild.
const MAX_BATCH: usize = 512;

/// Follows `T::BUCKET` forever, publishing into `shared`. The outcome of the
/// first snapshot attempt is sent on `first`: a permanent error ends the
/// follower there; a transient one is retried in the background.
pub(crate) async fn follow<T: Table>(
    kv: Arc<dyn Kv>,
    mut table: T,
    shared: Arc<Shared>,
    first: oneshot::Sender<Result<(), DirectoryError>>,
) {
    let bucket = T::BUCKET.name();
    let mut first = Some(first);
    let mut backoff = Backoff::default();
    let snapshot = loop {
        match kv.snapshot("").await {
            Ok(snapshot) => break snapshot,
            Err(error) => {
                if let Some(first) = first.take() {
                    let permanent = !error.is_transient();
                    let _ = first.send(Err(error.clone()));
                    if permanent {
                        return;
                    }
                }
                let delay = backoff.next_delay();
                tracing::warn!(bucket, %error, ?delay, "cannot load the bucket snapshot; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    };
    table.clear();
    for (key, entry) in &snapshot.entries {
        table.apply(key, Some(&entry.value));
    }
    table.publish(&shared);
    let mut revision = snapshot.revision;
    shared.progress(T::BUCKET).loaded(revision);
    tracing::info!(
        bucket,
        revision,
        entries = snapshot.entries.len(),
        "bucket snapshot loaded"
    );
    if let Some(first) = first.take() {
        let _ = first.send(Ok(()));
    }
    drop(snapshot);
    backoff.reset();
    loop {
        let stream = match kv.watch_from(revision).await {
            Ok(stream) => stream,
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(bucket, %error, ?delay, revision, "cannot watch the bucket; retrying");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        backoff.reset();
        let mut batches = stream.ready_chunks(MAX_BATCH);
        loop {
            let next = match table.refresh_every() {
                None => batches.next().await,
                Some(every) => match tokio::time::timeout(every, batches.next()).await {
                    Ok(next) => next,
                    Err(_) => {
                        // Nothing changed, but time did (expiring keys).
                        table.publish(&shared);
                        continue;
                    }
                },
            };
            let Some(batch) = next else { break };
            for change in batch {
                if change.revision <= revision {
                    continue;
                }
                table.apply(&change.key, change.value.as_deref());
                revision = change.revision;
            }
            table.publish(&shared);
            shared.progress(T::BUCKET).applied(revision);
        }
        tracing::warn!(bucket, revision, "bucket watch ended; re-opening");
    }
}
