//! The names index, kept by the shards that own the entities.
//!
//! A project's or user's name is unique in its domain across the whole
//! federation: the names bucket maps `project/<domain>/<name>` (and
//! `user/…`) to the id holding it. The shard that stores the entity — never
//! a gateway — reserves the name before it stores the entity, releases it
//! only once it knows the entity is not stored under that name and will not
//! be, and releases it after a delete or rename. So a gateway's timeout, a
//! client's retry or a crash of any process can leave at worst a
//! reservation without its entity, never two entities with one name:
//!
//! - A shard hung or killed after reserving keeps the name reserved: if it
//!   later stores the entity, the name is its own; if it never does, the
//!   reservation is *orphaned*.
//! - An orphan is reclaimed by the entity's owner alone, and only when the
//!   owner neither stores the entity under that name nor has its create or
//!   rename in flight ([`InFlight`]: the id is held exclusively from before
//!   the reservation until the store answered). A create that finds a name
//!   held asks the holder's owner to reclaim it (locally, or through
//!   `POST /internal/v1/names/reclaim`) before answering 409; an owner that
//!   cannot be reached leaves the name held (503: the outcome is unknown).
//! - [`audit`](super::names_audit) repairs both directions at start and
//!   periodically: orphans of this shard's entities are released, and an
//!   entity of this shard whose name is not reserved gets it back.
//!
//! Domain and role names are reserved by `writes` (global data) in the
//! same bucket.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use keyfed_directory::{DirectoryError, Kv};
use keyfed_shared::error::ApiError;
use keyfed_shared::federation::{name_key, pin_key};
use keyfed_shared::ids::{DomainId, ProjectId, ShardId, UserId};
use serde::{Deserialize, Serialize};

use super::Federated;
use crate::error::{Error, Result};
use crate::state::Shard;

/// How long asking another member to reclaim a name may take.
const RECLAIM_TIMEOUT: Duration = Duration::from_secs(3);

/// What a name belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    Project,
    User,
}

impl NameKind {
    fn member(self) -> &'static str {
        match self {
            NameKind::Project => "project",
            NameKind::User => "user",
        }
    }

    /// The kind of a names-bucket key (`None` for domain and role names).
    pub fn of_key(key: &str) -> Option<Self> {
        match key.split_once('/')?.0 {
            "project" => Some(NameKind::Project),
            "user" => Some(NameKind::User),
            _ => None,
        }
    }
}

/// One entity's name: what is reserved, for whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Name {
    pub kind: NameKind,
    pub id: String,
    pub key: String,
}

impl Name {
    /// A project's name.
    pub fn project(id: &ProjectId, domain: &DomainId, name: &str) -> Self {
        Self {
            kind: NameKind::Project,
            id: id.to_string(),
            key: name_key::project(domain, name),
        }
    }

    /// A user's name.
    pub fn user(id: &UserId, domain: &DomainId, name: &str) -> Self {
        Self {
            kind: NameKind::User,
            id: id.to_string(),
            key: name_key::user(domain, name),
        }
    }

    fn duplicate(&self) -> Error {
        ApiError::conflict(format!(
            "Conflict occurred attempting to store {} - Duplicate entry.",
            self.kind.member()
        ))
        .into()
    }
}

/// Ids whose create, rename or reclaim is in progress on this shard, held
/// exclusively: a reclaim never runs beside the write it would judge.
#[derive(Clone, Debug, Default)]
pub struct InFlight(Arc<Mutex<HashSet<String>>>);

/// Holds an id in [`InFlight`] until dropped.
#[derive(Debug)]
pub struct InFlightGuard {
    set: InFlight,
    id: String,
}

impl InFlight {
    /// Holds `id`; `None` when something else holds it.
    pub fn try_enter(&self, id: &str) -> Option<InFlightGuard> {
        let mut set = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        set.insert(id.to_owned()).then(|| InFlightGuard {
            set: self.clone(),
            id: id.to_owned(),
        })
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.set
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// What the owner of an entity did about a name held for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reclaim {
    /// The entity is stored under that name: the name is taken.
    Exists,
    /// A write of the entity is in flight: the name may yet be taken.
    Busy,
    /// The reservation was an orphan and is gone.
    Released,
    /// The asked member does not own the entity (its view differs).
    NotOwner,
}

/// The body of `POST /internal/v1/names/reclaim`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReclaimRequest {
    pub key: String,
    pub id: String,
}

/// Its answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReclaimAnswer {
    pub outcome: Reclaim,
}

impl Shard {
    fn names_of(&self) -> Option<(&Federated, Arc<dyn Kv>)> {
        let f = self.federation.as_deref()?;
        Some((f, f.directory.kv(keyfed_directory::Bucket::Names)))
    }

    /// Stores entity `name.id` under `name` with `store` (its create, or a
    /// rename to it), keeping the names index right whatever happens:
    /// reserves the name first (409 when another entity holds it), and on
    /// failure releases it unless the entity is stored under it after all.
    /// `previous` is the name a rename leaves, released after success.
    ///
    /// Runs as a task of its own: a client (or gateway) that gives up does
    /// not cancel it halfway, so what it started — a commit in flight
    /// included — finishes while its id is still held in flight.
    pub async fn with_name<T, F, Fut>(
        self: &Arc<Self>,
        name: &Name,
        previous: Option<&Name>,
        store: F,
    ) -> Result<T>
    where
        F: FnOnce(Arc<Shard>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        let (name, previous) = (name.clone(), previous.cloned());
        self.detached(move |shard| async move {
            let write = store(shard.clone());
            shard.named_write(&name, previous.as_ref(), write).await
        })
        .await
    }

    /// Runs `write` as a task of its own: a client (or gateway) that gives
    /// up does not cancel it halfway between its directory writes.
    pub async fn detached<T, F, Fut>(self: &Arc<Self>, write: F) -> Result<T>
    where
        F: FnOnce(Arc<Shard>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
        T: Send + 'static,
    {
        tokio::spawn(write(self.clone()))
            .await
            .map_err(|e| Error::Internal(format!("a write stopped: {e}")))?
    }

    async fn named_write<T, F>(&self, name: &Name, previous: Option<&Name>, store: F) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>>,
    {
        let Some((f, names)) = self.names_of() else {
            return store.await;
        };
        let Some(_held) = f.names_in_flight.try_enter(&name.id) else {
            return Err(ApiError::conflict(format!(
                "Another change of {} {} is in progress; retry.",
                name.kind.member(),
                name.id
            ))
            .into());
        };
        self.reserve(names.as_ref(), name).await?;
        self.failpoints.hit("name.reserved", &name.key).await;
        let stored = store.await;
        match &stored {
            Ok(_) => {
                self.failpoints.hit("name.stored", &name.key).await;
                if let Some(old) = previous.filter(|old| old.key != name.key) {
                    release(names.as_ref(), old).await;
                }
            }
            Err(_) => match self.stored_name(name.kind, &name.id).await {
                Ok(Some(key)) if key == name.key => {}
                Ok(_) => release(names.as_ref(), name).await,
                // Unknown outcome: keep the name (a reclaim or the audit
                // settles it once the store answers).
                Err(_) => {}
            },
        }
        stored
    }

    /// Releases `name` after its entity was deleted (kept when the
    /// directory cannot be reached: the audit or a reclaim frees it).
    pub async fn name_deleted(&self, name: &Name) {
        if let Some((_, names)) = self.names_of() {
            release(names.as_ref(), name).await;
        }
    }

    /// Reserves `name`: takes it when free or already its entity's, and
    /// asks the holder's owner to reclaim it when another id holds it.
    async fn reserve(&self, names: &dyn Kv, name: &Name) -> Result<()> {
        for _ in 0..3 {
            match names.create(&name.key, Bytes::from(name.id.clone())).await {
                Ok(_) => return Ok(()),
                Err(DirectoryError::AlreadyExists) => {}
                Err(e) => return Err(Error::Directory(e)),
            }
            let Some(held) = names.get(&name.key).await? else {
                continue;
            };
            let holder = String::from_utf8_lossy(&held.value).into_owned();
            if holder == name.id {
                return Ok(());
            }
            match self.ask_reclaim(name.kind, &name.key, &holder).await {
                Some(Reclaim::Released) => continue,
                Some(Reclaim::Exists | Reclaim::Busy | Reclaim::NotOwner) => {
                    return Err(name.duplicate())
                }
                None => {
                    return Err(ApiError::unavailable(
                        "The name is held by a member that cannot be reached; retry later.",
                    )
                    .into())
                }
            }
        }
        Err(name.duplicate())
    }

    /// The owner of entity `id` of `kind`, by this shard's view.
    pub(crate) fn owner_of(&self, kind: NameKind, id: &str) -> Option<ShardId> {
        let f = self.federation.as_deref()?;
        match kind {
            NameKind::Project => f.view.owner_of_project(&ProjectId::new(id)),
            NameKind::User => f.view.home_of_user(&UserId::new(id)),
        }
    }

    /// Has the owner of `holder` reclaim `key`; `None` when it cannot be
    /// asked (no owner, or no answer).
    async fn ask_reclaim(&self, kind: NameKind, key: &str, holder: &str) -> Option<Reclaim> {
        let f = self.federation.as_deref()?;
        let owner = self.owner_of(kind, holder)?;
        if owner.as_str() == self.config.shard.id {
            return self.reclaim(key, holder).await.ok();
        }
        let url = format!("{}/internal/v1/names/reclaim", f.view.member(&owner)?.url);
        let request = ReclaimRequest {
            key: key.to_owned(),
            id: holder.to_owned(),
        };
        let answer = f
            .internal_http
            .post(&url)
            .timeout(RECLAIM_TIMEOUT)
            .json(&request)
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success())?
            .json::<ReclaimAnswer>()
            .await
            .ok()?;
        tracing::info!(%key, %holder, %owner, outcome = ?answer.outcome, "asked to reclaim a name");
        Some(answer.outcome)
    }

    /// On the owner of `holder`: releases `key` if it is an orphan (see
    /// the module doc).
    pub async fn reclaim(&self, key: &str, holder: &str) -> Result<Reclaim> {
        let Some((f, names)) = self.names_of() else {
            return Ok(Reclaim::NotOwner);
        };
        let Some(kind) = NameKind::of_key(key) else {
            return Ok(Reclaim::NotOwner);
        };
        if self.owner_of(kind, holder).as_ref().map(ShardId::as_str)
            != Some(self.config.shard.id.as_str())
        {
            return Ok(Reclaim::NotOwner);
        }
        let Some(_held) = f.names_in_flight.try_enter(holder) else {
            return Ok(Reclaim::Busy);
        };
        if self.stored_name(kind, holder).await?.as_deref() == Some(key) {
            return Ok(Reclaim::Exists);
        }
        if !self.pinned_here_or_unpinned(f, kind, holder).await? {
            return Ok(Reclaim::NotOwner);
        }
        let Some(entry) = names.get(key).await? else {
            return Ok(Reclaim::Released);
        };
        if entry.value.as_ref() != holder.as_bytes() {
            // Held by someone else by now: not this shard's to judge.
            return Ok(Reclaim::Busy);
        }
        match names.delete(key, Some(entry.revision)).await {
            Ok(_) => {
                tracing::info!(%key, %holder, "orphaned name reservation released");
                self.metrics.name_repaired("orphan_released");
                Ok(Reclaim::Released)
            }
            Err(DirectoryError::WrongRevision | DirectoryError::NotFound) => Ok(Reclaim::Busy),
            Err(e) => Err(Error::Directory(e)),
        }
    }

    /// Whether the pins bucket itself (not only the view, which may lag)
    /// leaves entity `id` to this shard.
    async fn pinned_here_or_unpinned(
        &self,
        f: &Federated,
        kind: NameKind,
        id: &str,
    ) -> Result<bool> {
        let key = match kind {
            NameKind::Project => pin_key::project(&ProjectId::new(id)),
            NameKind::User => pin_key::user(&UserId::new(id)),
        };
        let pin = f
            .directory
            .kv(keyfed_directory::Bucket::Pins)
            .get(&key)
            .await?;
        Ok(pin.is_none_or(|p| p.value.as_ref() == self.config.shard.id.as_bytes()))
    }

    /// The names key entity `id` is stored under here, if it is stored.
    pub(crate) async fn stored_name(&self, kind: NameKind, id: &str) -> Result<Option<String>> {
        Ok(match kind {
            NameKind::Project => self
                .store
                .get_project(&ProjectId::new(id))
                .await?
                .map(|p| name_key::project(&p.domain_id, &p.name)),
            NameKind::User => self
                .store
                .get_user(&UserId::new(id))
                .await?
                .map(|u| name_key::user(&u.domain_id, &u.name)),
        })
    }
}

/// Deletes `name` if it still names its entity.
async fn release(names: &dyn Kv, name: &Name) {
    let outcome = match names.get(&name.key).await {
        Ok(Some(e)) if e.value.as_ref() == name.id.as_bytes() => {
            names.delete(&name.key, Some(e.revision)).await.map(|_| ())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(error) = outcome {
        tracing::warn!(key = %name.key, %error, "could not release a name; the audit will");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_id_in_flight_is_held_once() {
        let set = InFlight::default();
        let held = set.try_enter("a").unwrap();
        assert!(set.try_enter("a").is_none());
        assert!(set.try_enter("b").is_some());
        drop(held);
        assert!(set.try_enter("a").is_some());
    }

    #[test]
    fn keys_name_their_kind() {
        assert_eq!(NameKind::of_key("project/d/x"), Some(NameKind::Project));
        assert_eq!(NameKind::of_key("user/d/x/y"), Some(NameKind::User));
        assert_eq!(NameKind::of_key("domain/x"), None);
        assert_eq!(NameKind::of_key("role/x"), None);
    }
}
