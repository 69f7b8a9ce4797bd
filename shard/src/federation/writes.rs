//! Writes to global data. A standalone shard writes to its store; a
//! federated shard writes to the directory — the global bucket, with names
//! reserved in the names index so they stay unique across the federation —
//! then waits until its own mirror has applied the write, so a client reads
//! its own writes. Cascades the store performs locally (a service's
//! endpoints, a role's implications) are written to the directory too, so
//! every member sees them.

use crate::error::{Error, Result};
use crate::state::Shard;
use crate::store::StoreError;
use bytes::Bytes;
use keyfed_directory::{Bucket, DirectoryError};
use keyfed_shared::error::ApiError;
use keyfed_shared::federation::{name_key, GlobalEntity};
use std::sync::Arc;
use std::time::Duration;

/// How long a writer waits for its write to reach the local mirror.
const MIRROR_WAIT: Duration = Duration::from_secs(5);

/// The names-index key an entity's name is reserved under, if any.
pub(super) fn reserved_name(e: &GlobalEntity) -> Option<String> {
    match e {
        GlobalEntity::Domain(d) => Some(name_key::domain(&d.name)),
        GlobalEntity::Role(r) if r.domain_id.is_none() => Some(name_key::role(&r.name)),
        _ => None,
    }
}

pub(super) fn id_of(e: &GlobalEntity) -> String {
    match e {
        GlobalEntity::Domain(d) => d.id.to_string(),
        GlobalEntity::Role(r) => r.id.to_string(),
        GlobalEntity::Implied(i) => format!("{}/{}", i.prior, i.implied),
        GlobalEntity::Region(r) => r.id.to_string(),
        GlobalEntity::Service(s) => s.id.to_string(),
        GlobalEntity::Endpoint(e) => e.id.to_string(),
    }
}

async fn store_create(shard: &Shard, e: &GlobalEntity) -> Result<(), StoreError> {
    let s = &shard.store;
    match e {
        GlobalEntity::Domain(x) => s.create_domain(x).await,
        GlobalEntity::Role(x) => s.create_role(x).await,
        GlobalEntity::Implied(x) => s.add_implied_role(x).await.map(drop),
        GlobalEntity::Region(x) => s.create_region(x).await,
        GlobalEntity::Service(x) => s.create_service(x).await,
        GlobalEntity::Endpoint(x) => s.create_endpoint(x).await,
    }
}

async fn store_update(shard: &Shard, e: &GlobalEntity) -> Result<bool, StoreError> {
    let s = &shard.store;
    match e {
        GlobalEntity::Domain(x) => s.update_domain(x).await,
        GlobalEntity::Role(x) => s.update_role(x).await,
        GlobalEntity::Implied(x) => s.add_implied_role(x).await.map(|_| true),
        GlobalEntity::Region(x) => s.update_region(x).await,
        GlobalEntity::Service(x) => s.update_service(x).await,
        GlobalEntity::Endpoint(x) => s.update_endpoint(x).await,
    }
}

async fn store_delete(shard: &Shard, e: &GlobalEntity) -> Result<bool, StoreError> {
    let s = &shard.store;
    match e {
        GlobalEntity::Domain(x) => s.delete_domain(&x.id).await,
        GlobalEntity::Role(x) => s.delete_role(&x.id).await,
        GlobalEntity::Implied(x) => s.remove_implied_role(x).await,
        GlobalEntity::Region(x) => s.delete_region(&x.id).await,
        GlobalEntity::Service(x) => s.delete_service(&x.id).await,
        GlobalEntity::Endpoint(x) => s.delete_endpoint(&x.id).await,
    }
}

impl Shard {
    async fn wait_mirrored(&self, revision: u64) -> Result<()> {
        if self.mirror.wait_for(revision, MIRROR_WAIT).await {
            Ok(())
        } else {
            Err(ApiError::unavailable(
                "The change was accepted but is not visible on this shard yet; retry the read.",
            )
            .into())
        }
    }

    /// Catches up with the directory's global entry `key` (as
    /// [`GlobalEntity::key`], e.g. `role/<id>`) that this shard's mirror
    /// has not applied yet — another member wrote it a moment ago — so a
    /// client can use at once on any shard what it created on one.
    /// `Ok(true)` once the entry is applied here; `Ok(false)` when the
    /// directory has no such entry, cannot be reached, or the shard is
    /// standalone.
    pub async fn catch_up_global(&self, key: &str) -> Result<bool> {
        let Some(f) = &self.federation else {
            return Ok(false);
        };
        match f.directory.kv(Bucket::Global).get(key).await {
            Ok(Some(entry)) => {
                self.wait_mirrored(entry.revision).await?;
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => {
                tracing::debug!(%key, error = %e, "cannot check the directory for a global entry");
                Ok(false)
            }
        }
    }

    /// Creates a global entity (409 if its id or name is taken), as a task
    /// of its own (see [`Shard::detached`]).
    pub async fn create_global(self: &Arc<Self>, entity: GlobalEntity) -> Result<()> {
        self.detached(move |s| async move { s.create_global_now(entity).await })
            .await
    }

    /// [`Shard::create_global`] in the caller's task.
    pub(crate) async fn create_global_now(&self, entity: GlobalEntity) -> Result<()> {
        let Some(f) = &self.federation else {
            store_create(self, &entity).await?;
            return self.reload_global().await;
        };
        let names = f.directory.kv(Bucket::Names);
        let name = reserved_name(&entity);
        if let Some(k) = &name {
            names
                .create(k, Bytes::from(id_of(&entity)))
                .await
                .map_err(|e| match e {
                    DirectoryError::AlreadyExists => Error::Api(ApiError::conflict(
                        "Conflict occurred attempting to store the entity: the name is taken.",
                    )),
                    other => Error::Directory(other),
                })?;
            self.failpoints.hit("global.reserved", k).await;
        }
        let created = f
            .directory
            .kv(Bucket::Global)
            .create(&entity.key(), Bytes::from(entity.to_bytes()))
            .await;
        match created {
            Ok(revision) => {
                if let Some(k) = &name {
                    self.check_reservation(k, &entity, revision).await?;
                }
                self.wait_mirrored(revision).await
            }
            Err(e) => {
                if let Some(k) = &name {
                    if let Err(release) = names.delete(k, None).await {
                        tracing::error!(error = %release, key = %k, "releasing a name reservation failed");
                    }
                }
                Err(Error::Directory(e))
            }
        }
    }

    /// After writing `entity` (at `revision`) under the name reserved at
    /// `key`: whether the reservation is still its own. A writer stopped
    /// between the two for longer than the names audit's grace may find
    /// it released (see [`super::global_names`]); it then undoes the write
    /// and answers 409, so a name never stands for two entities.
    async fn check_reservation(
        &self,
        key: &str,
        entity: &GlobalEntity,
        revision: u64,
    ) -> Result<()> {
        let Some(f) = &self.federation else {
            return Ok(());
        };
        let held = f.directory.kv(Bucket::Names).get(key).await?;
        if held.is_some_and(|h| h.value.as_ref() == id_of(entity).as_bytes()) {
            return Ok(());
        }
        tracing::warn!(%key, "name reservation lost during a global create; undoing it");
        f.directory
            .kv(Bucket::Global)
            .delete(&entity.key(), Some(revision))
            .await?;
        Err(ApiError::conflict(
            "Conflict occurred attempting to store the entity: the name is taken.",
        )
        .into())
    }

    /// Replaces a global entity; `Ok(false)` if it does not exist. A renamed
    /// domain or role reserves its new name and releases the old one. A
    /// task of its own (see [`Shard::detached`]).
    pub async fn update_global(self: &Arc<Self>, entity: GlobalEntity) -> Result<bool> {
        self.detached(move |s| async move { s.update_global_now(entity).await })
            .await
    }

    /// [`Shard::update_global`] in the caller's task.
    pub(crate) async fn update_global_now(&self, entity: GlobalEntity) -> Result<bool> {
        let Some(f) = &self.federation else {
            let found = store_update(self, &entity).await?;
            self.reload_global().await?;
            return Ok(found);
        };
        let global = f.directory.kv(Bucket::Global);
        let key = entity.key();
        let Some(current) = global.get(&key).await? else {
            return Ok(false);
        };
        let old = GlobalEntity::decode(&key, &current.value)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let (old_name, new_name) = (reserved_name(&old), reserved_name(&entity));
        let names = f.directory.kv(Bucket::Names);
        let renamed = old_name != new_name;
        if renamed {
            if let Some(k) = &new_name {
                names
                    .create(k, Bytes::from(id_of(&entity)))
                    .await
                    .map_err(|e| match e {
                        DirectoryError::AlreadyExists => Error::Api(ApiError::conflict(
                            "Conflict occurred attempting to store the entity: the name is taken.",
                        )),
                        other => Error::Directory(other),
                    })?;
            }
        }
        match global
            .update(&key, Bytes::from(entity.to_bytes()), current.revision)
            .await
        {
            Ok(revision) => {
                if renamed {
                    if let Some(k) = &old_name {
                        let _ = names.delete(k, None).await;
                    }
                }
                self.wait_mirrored(revision).await?;
                Ok(true)
            }
            Err(e) => {
                if renamed {
                    if let Some(k) = &new_name {
                        let _ = names.delete(k, None).await;
                    }
                }
                Err(Error::Directory(e))
            }
        }
    }

    /// Deletes a global entity and what depends on it in the directory (a
    /// service's endpoints, a role's implications); `Ok(false)` if absent.
    /// A region still used by endpoints or child regions is refused.
    pub async fn delete_global(&self, entity: GlobalEntity) -> Result<bool> {
        let Some(f) = &self.federation else {
            let found = store_delete(self, &entity).await?;
            self.reload_global().await?;
            return Ok(found);
        };
        let snapshot = self.global();
        let mut dependents = Vec::new();
        match &entity {
            GlobalEntity::Service(s) => dependents.extend(
                snapshot
                    .endpoints
                    .iter()
                    .filter(|e| e.service_id == s.id)
                    .map(|e| GlobalEntity::Endpoint(e.clone()).key()),
            ),
            GlobalEntity::Role(r) => {
                for (prior, implied) in &snapshot.implied {
                    for i in implied {
                        if *prior == r.id || *i == r.id {
                            dependents.push(format!("implied/{prior}/{i}"));
                        }
                    }
                }
            }
            GlobalEntity::Region(r) => {
                let used = snapshot
                    .endpoints
                    .iter()
                    .any(|e| e.region_id.as_ref() == Some(&r.id))
                    || snapshot
                        .regions
                        .iter()
                        .any(|x| x.parent_region_id.as_ref() == Some(&r.id));
                if used {
                    return Err(StoreError::InUse(format!("region {}", r.id)).into());
                }
            }
            _ => {}
        }
        let global = f.directory.kv(Bucket::Global);
        for key in dependents {
            global.delete(&key, None).await?;
        }
        let key = entity.key();
        let Some(current) = global.get(&key).await? else {
            return Ok(false);
        };
        let revision = global.delete(&key, Some(current.revision)).await?;
        if let Ok(old) = GlobalEntity::decode(&key, &current.value) {
            if let Some(k) = reserved_name(&old) {
                let _ = f.directory.kv(Bucket::Names).delete(&k, None).await;
            }
        }
        self.wait_mirrored(revision).await?;
        Ok(true)
    }
}
