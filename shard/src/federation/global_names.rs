//! The audit of domain and role names: the names index and the global
//! bucket made to agree, in both directions, as [`super::names_audit`]
//! does for projects and users.
//!
//! Any member may write global data, so no member owns these names; one
//! member audits them: the active member with the smallest id (every member
//! computes the same from its view; repairs are compare-and-swap writes,
//! so two members auditing at once while views disagree do no harm).
//!
//! - A domain or global role whose name is not reserved gets it back.
//! - A reservation whose holder is not in the global bucket under that
//!   name — a writer that crashed between reserving the name and writing
//!   the entity, or between deleting the entity and releasing the name —
//!   is released, but only when a previous audit found the same
//!   reservation (same revision) orphaned already: a create in flight
//!   takes one directory round trip, an audit interval is far longer.
//!   A writer that was stopped for that long finds its name gone when it
//!   resumes and undoes its entity ([`Shard::create_global`] checks its
//!   reservation after the write).

use std::collections::HashMap;

use bytes::Bytes;
use keyfed_directory::{Bucket, DirectoryError};
use keyfed_shared::federation::{GlobalEntity, MemberStatus};

use super::writes::{id_of, reserved_name};
use crate::error::{Error, Result};
use crate::state::Shard;

/// Reservations found orphaned by the previous audit: key → revision.
pub type Orphans = HashMap<String, u64>;

/// What one audit of domain and role names did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GlobalNamesReport {
    /// Names reserved again for entities that had lost them.
    pub restored: usize,
    /// Orphaned reservations released.
    pub released: usize,
    /// Reservations found orphaned for the first time (released by the
    /// next audit if still orphaned).
    pub suspected: usize,
}

/// Whether this shard is the one that audits domain and role names.
fn audits_global_names(shard: &Shard) -> bool {
    let Some(f) = shard.federation.as_deref() else {
        return false;
    };
    f.view
        .members()
        .iter()
        .filter(|m| m.status == MemberStatus::Active)
        .map(|m| m.id.as_str().to_owned())
        .min()
        .is_some_and(|first| first == shard.config.shard.id.as_str())
}

/// One audit (see the module doc); `previous` carries the orphans seen
/// from one audit to the next.
pub async fn audit(shard: &Shard, previous: &mut Orphans) -> Result<GlobalNamesReport> {
    let Some(f) = shard.federation.as_deref() else {
        return Ok(GlobalNamesReport::default());
    };
    if !audits_global_names(shard) {
        previous.clear();
        return Ok(GlobalNamesReport::default());
    }
    let names = f.directory.kv(Bucket::Names);
    // Names first, then entities: an entity written in between has its
    // name already, so nothing written meanwhile looks orphaned.
    let mut held: HashMap<String, (String, u64)> = HashMap::new();
    for prefix in ["domain/", "role/"] {
        for (key, entry) in names.snapshot(prefix).await?.entries {
            let holder = String::from_utf8_lossy(&entry.value).into_owned();
            held.insert(key, (holder, entry.revision));
        }
    }
    let global = f.directory.kv(Bucket::Global);
    let mut entities: HashMap<String, String> = HashMap::new();
    for prefix in ["domain/", "role/"] {
        for (key, entry) in global.snapshot(prefix).await?.entries {
            let Ok(entity) = GlobalEntity::decode(&key, &entry.value) else {
                continue;
            };
            if let Some(name) = reserved_name(&entity) {
                entities.insert(name, id_of(&entity));
            }
        }
    }
    let mut report = GlobalNamesReport::default();
    for (key, id) in &entities {
        if held.contains_key(key) {
            continue;
        }
        match names.create(key, Bytes::from(id.clone())).await {
            Ok(_) => {
                report.restored += 1;
                shard.metrics.name_repaired("name_restored");
                tracing::warn!(%key, %id, "name reservation restored");
            }
            Err(DirectoryError::AlreadyExists) => {}
            Err(e) => return Err(Error::Directory(e)),
        }
    }
    let mut orphans = Orphans::new();
    for (key, (holder, revision)) in held {
        if entities.get(&key) == Some(&holder) {
            continue;
        }
        if previous.get(&key) != Some(&revision) {
            report.suspected += 1;
            orphans.insert(key, revision);
            continue;
        }
        match names.delete(&key, Some(revision)).await {
            Ok(_) => {
                report.released += 1;
                shard.metrics.name_repaired("orphan_released");
                tracing::warn!(%key, %holder, "orphaned name reservation released");
            }
            Err(DirectoryError::WrongRevision | DirectoryError::NotFound) => {}
            Err(e) => return Err(Error::Directory(e)),
        }
    }
    *previous = orphans;
    Ok(report)
}
