//! The names audit: makes the names index and this shard's entities agree,
//! in both directions (see [`super::names`]). Run at start, once the view
//! has loaded, and every `[federation] name_audit_interval_secs`.
//!
//! - An entity stored here (a project, or a user homed here) whose name is
//!   free gets it reserved again; one whose name another entity holds is a
//!   conflict, logged and counted (it cannot be repaired without choosing
//!   which entity loses its name).
//! - A reservation held for an entity this shard owns but does not store
//!   under that name is reclaimed ([`Shard::reclaim`]: never while a write
//!   of the entity is in flight, never for an entity pinned elsewhere).
//! - Domain and role names: [`super::global_names`], by one member.

use std::collections::HashMap;
use std::sync::Weak;
use std::time::Duration;

use bytes::Bytes;
use keyfed_directory::{Bucket, DirectoryError};
use keyfed_shared::ids::ShardId;
use keyfed_shared::model::ListFilter;

use super::global_names;
use super::names::{Name, NameKind, Reclaim};
use crate::error::{Error, Result};
use crate::state::Shard;

/// What one audit found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditReport {
    /// Entities of this shard checked.
    pub entities: usize,
    /// Names reserved again for entities that had lost them.
    pub restored: usize,
    /// Orphaned reservations released.
    pub released: usize,
    /// Entities whose name another entity holds.
    pub conflicts: usize,
}

/// How long after start the first audit waits for the view to settle.
const FIRST_AUDIT_AFTER: Duration = Duration::from_secs(2);

/// Audits at start and then every `interval` (never again when zero).
pub async fn run(shard: Weak<Shard>, interval: Duration) {
    tokio::time::sleep(FIRST_AUDIT_AFTER).await;
    let mut orphans = global_names::Orphans::new();
    loop {
        let Some(s) = shard.upgrade() else { return };
        match audit(&s).await {
            Ok(report) => tracing::info!(?report, "names audit done"),
            Err(error) => tracing::warn!(%error, "names audit failed; retrying later"),
        }
        match global_names::audit(&s, &mut orphans).await {
            Ok(report) if report != global_names::GlobalNamesReport::default() => {
                tracing::info!(?report, "domain and role names audit done");
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "domain and role names audit failed"),
        }
        drop(s);
        if interval.is_zero() {
            return;
        }
        tokio::time::sleep(interval).await;
    }
}

/// The entities stored here under their names: names key → entity.
async fn own_names(shard: &Shard) -> Result<Vec<Name>> {
    let Some(f) = shard.federation.as_deref() else {
        return Ok(Vec::new());
    };
    let all = ListFilter::default();
    let mut names: Vec<Name> = shard
        .store
        .list_projects(&all)
        .await?
        .iter()
        .map(|p| Name::project(&p.id, &p.domain_id, &p.name))
        .collect();
    let homed_here = super::homed_here(f, &ShardId::new(shard.config.shard.id.as_str()));
    names.extend(
        shard
            .store
            .list_users(&all)
            .await?
            .iter()
            .filter(|u| homed_here(&u.id))
            .map(|u| Name::user(&u.id, &u.domain_id, &u.name)),
    );
    Ok(names)
}

/// One audit; see the module doc.
pub async fn audit(shard: &Shard) -> Result<AuditReport> {
    let Some(f) = shard.federation.as_deref() else {
        return Ok(AuditReport::default());
    };
    let names = f.directory.kv(Bucket::Names);
    let mut held: HashMap<String, String> = HashMap::new();
    for prefix in ["project/", "user/"] {
        for (key, entry) in names.snapshot(prefix).await?.entries {
            held.insert(key, String::from_utf8_lossy(&entry.value).into_owned());
        }
    }
    let own = own_names(shard).await?;
    let mut report = AuditReport {
        entities: own.len(),
        ..AuditReport::default()
    };
    for name in &own {
        match held.get(&name.key) {
            Some(holder) if *holder == name.id => {}
            Some(holder) => {
                report.conflicts += 1;
                shard.metrics.name_repaired("conflict");
                tracing::error!(key = %name.key, id = %name.id, %holder, "two entities share a name");
            }
            None => {
                let Some(_held) = f.names_in_flight.try_enter(&name.id) else {
                    continue;
                };
                // Stored meanwhile under another name? Then nothing to do.
                if shard.stored_name(name.kind, &name.id).await?.as_deref() != Some(&name.key) {
                    continue;
                }
                match names.create(&name.key, Bytes::from(name.id.clone())).await {
                    Ok(_) => {
                        report.restored += 1;
                        shard.metrics.name_repaired("name_restored");
                        tracing::warn!(key = %name.key, id = %name.id, "name reservation restored");
                    }
                    Err(DirectoryError::AlreadyExists) => {}
                    Err(e) => return Err(Error::Directory(e)),
                }
            }
        }
    }
    let me = shard.config.shard.id.as_str();
    let stored: std::collections::HashSet<&str> = own.iter().map(|n| n.key.as_str()).collect();
    for (key, holder) in &held {
        let Some(kind) = NameKind::of_key(key) else {
            continue;
        };
        let owner = shard.owner_of(kind, holder);
        if owner.as_ref().map(ShardId::as_str) != Some(me) || stored.contains(key.as_str()) {
            continue;
        }
        if shard.reclaim(key, holder).await? == Reclaim::Released {
            report.released += 1;
        }
    }
    Ok(report)
}
