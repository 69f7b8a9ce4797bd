//! [`EmbeddedStore`]: the durable, single-process store behind `keyfed dev`.
//!
//! The whole state lives in memory and is saved to `<dir>/state.json` after
//! every write (see `file` for the crash-safe replace). A write clones the
//! state, applies the change to the clone, saves the clone and only then
//! publishes it: a failed rule check or a failed save leaves the published
//! state untouched, and readers never wait for a save. Writers are
//! serialized by a mutex and run on tokio's blocking pool, since a save
//! fsyncs. The cost of a write grows with the size of the store, which is
//! fine for development data sets, not for production.
//!
//! The rules (uniqueness, references, cascades, regions in use) are the
//! PostgreSQL schema's, implemented in `identity` and `catalog`; the
//! shared [`conformance`](crate::store::conformance) suite holds both stores
//! to them. Only one process may open a directory at a time (not enforced).

mod catalog;
mod file;
mod identity;
mod outbox;
mod state;
mod store_impl;
#[cfg(test)]
mod tests;

use crate::store::{StoreError, StoreResult};
use state::State;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// The result of applying a write to the state: the value to return and
/// whether anything changed (an unchanged state is not saved).
#[derive(Debug)]
pub(super) struct Outcome<T> {
    value: T,
    changed: bool,
}

impl<T> Outcome<T> {
    /// The state changed.
    fn changed(value: T) -> Self {
        Outcome {
            value,
            changed: true,
        }
    }
    /// Nothing changed.
    fn unchanged(value: T) -> Self {
        Outcome {
            value,
            changed: false,
        }
    }
}

impl Outcome<bool> {
    /// `changed` is the returned flag itself (e.g. "something was removed").
    fn changed_if(changed: bool) -> Self {
        Outcome {
            value: changed,
            changed,
        }
    }
}

/// A durable store in a directory. Cheap to clone: clones share the state.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

/// Shows the directory only: the state holds password hashes.
impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("dir", &self.inner.dir)
            .finish_non_exhaustive()
    }
}

struct Inner {
    dir: PathBuf,
    /// The published state. Held only to clone or swap the `Arc`.
    state: RwLock<Arc<State>>,
    /// Serializes writers, so that each write starts from the state the
    /// previous one published.
    writer: Mutex<()>,
}

impl EmbeddedStore {
    /// Opens the store in `dir`, creating the directory if needed and
    /// loading the state saved there, if any.
    pub fn open(dir: &Path) -> Result<EmbeddedStore, StoreError> {
        keyfed_directory::private_files::create_private_dir(dir).map_err(|e| {
            StoreError::Backend(format!("creating store directory {}: {e}", dir.display()))
        })?;
        let state = file::load(dir)?;
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                state: RwLock::new(Arc::new(state)),
                writer: Mutex::new(()),
            }),
        })
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// A consistent snapshot of the state for a read.
    fn read(&self) -> Arc<State> {
        self.inner.current()
    }

    /// Applies `change` as one atomic, durable write: on tokio's blocking
    /// pool when called inside a tokio runtime, inline otherwise.
    async fn write<T, F>(&self, change: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut State) -> StoreResult<Outcome<T>> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn_blocking(move || inner.write(change))
                .await
                .map_err(|e| StoreError::Backend(format!("store write task failed: {e}")))?,
            Err(_) => inner.write(change),
        }
    }
}

impl Inner {
    fn current(&self) -> Arc<State> {
        // Poisoning cannot leave a half-applied state behind (the lock only
        // guards an `Arc` swap), so a poisoned lock is still good to use.
        Arc::clone(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }

    fn write<T>(
        &self,
        change: impl FnOnce(&mut State) -> StoreResult<Outcome<T>>,
    ) -> StoreResult<T> {
        let _writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = State::clone(&self.current());
        let outcome = change(&mut next)?;
        if outcome.changed {
            file::save(&self.dir, &next)?;
            *self.state.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        }
        Ok(outcome.value)
    }
}
