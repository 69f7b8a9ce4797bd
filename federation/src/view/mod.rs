//! The federation view: everything a process knows about the federation,
//! followed live from the directory.
//!
//! Three buckets are followed: members (→ the placement [`Ring`] over the
//! active members, and the verification key of every member not removed,
//! by `kid` — a retired member's tokens stay valid until they expire),
//! pins (entity → shard, overriding the ring), and global data (→ a
//! [`GlobalData`] snapshot). The name and membership indexes grow with the
//! number of tenants, so they are looked up per request, not held here.
//!
//! Each bucket has a follower task that owns the bucket's entries, and
//! publishes an immutable snapshot into an [`ArcSwap`] after each batch of
//! changes: readers never block and never see half a batch. The followers
//! are aborted when the view is dropped.
//!
//! While the directory is unreachable the view keeps answering from what it
//! holds. If it is unreachable at start, [`FederationView::start`] still
//! returns: the view is not [`ready`](FederationView::ready) until every
//! bucket's first snapshot has loaded, which the followers keep retrying.

mod discovered;
mod follow;
mod tables;
#[cfg(test)]
mod tests;
mod trust;
#[cfg(test)]
mod trust_tests;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use ed25519_dalek::VerifyingKey;
use keyfed_directory::{Bucket, Directory, Kv};
use keyfed_shared::federation::Member;
use keyfed_shared::global::GlobalData;
use keyfed_shared::ids::{ProjectId, ShardId, UserId};
use keyfed_shared::ring::Ring;
use tokio::sync::oneshot;

use self::discovered::DiscoveredKeys;
pub use self::discovered::MemberLookup;
use self::tables::{GlobalTable, MemberTable, Members, PinTable, Pins, Table};
pub use self::trust::Trust;
use crate::error::ViewError;
use crate::seal::{EntryCheck, SealedDirectory, Signers};
use crate::tasks::TaskGuard;

/// The buckets the view follows, in the order of
/// [`FederationView::revisions`].
pub const FOLLOWED: [Bucket; 3] = [Bucket::Members, Bucket::Pins, Bucket::Global];

/// How far the view has followed one bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketRevision {
    /// The bucket.
    pub bucket: Bucket,
    /// Whether its first snapshot has loaded.
    pub loaded: bool,
    /// The last bucket revision applied (0 before the first snapshot).
    pub revision: u64,
}

/// Progress of one follower, for readiness and metrics.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    loaded: AtomicBool,
    revision: AtomicU64,
}

impl Progress {
    /// The first snapshot, at `revision`, is published.
    fn loaded(&self, revision: u64) {
        self.revision.store(revision, Ordering::Release);
        self.loaded.store(true, Ordering::Release);
    }

    /// Changes up to `revision` are published.
    fn applied(&self, revision: u64) {
        self.revision.store(revision, Ordering::Release);
    }
}

/// The state shared between the view and its followers.
#[derive(Default)]
pub(crate) struct Shared {
    members: ArcSwap<Members>,
    pins: ArcSwap<Pins>,
    global: ArcSwap<GlobalData>,
    progress: [Progress; 3],
    /// What member keys are trusted on.
    pub(crate) trust: Trust,
    /// Keys found by direct look-ups, not yet delivered by the watch.
    discovered: DiscoveredKeys,
}

impl Shared {
    fn progress(&self, bucket: Bucket) -> &Progress {
        match bucket {
            Bucket::Members => &self.progress[0],
            Bucket::Pins => &self.progress[1],
            Bucket::Global => &self.progress[2],
            // Not followed: never asked for by the view's own code.
            Bucket::Names | Bucket::Memberships | Bucket::Credentials => &self.progress[0],
        }
    }
}

/// Everything a process knows about the federation. Cheap to query from
/// any thread; see the module doc.
pub struct FederationView {
    shared: Arc<Shared>,
    /// The members bucket, for direct look-ups of one member.
    members_kv: Arc<dyn Kv>,
    /// The directory the view reads, checking (under a CA) or unwrapping
    /// sealed entries.
    sealed: Arc<SealedDirectory>,
    _followers: TaskGuard,
}

impl std::fmt::Debug for FederationView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederationView")
            .field("revisions", &self.revisions())
            .finish_non_exhaustive()
    }
}

impl FederationView {
    /// Loads a snapshot of each followed bucket and starts following their
    /// changes. Must be called within a Tokio runtime.
    ///
    /// Returns once every bucket's first snapshot attempt has finished. When
    /// the directory is unreachable the view is returned not ready and the
    /// snapshots are retried in the background; only an error that retrying
    /// cannot fix fails the start.
    pub async fn start(dir: Arc<dyn Directory>) -> Result<Arc<Self>, ViewError> {
        Self::start_with_trust(dir, Trust::Registry).await
    }

    /// [`FederationView::start`], trusting member keys by `trust` (see
    /// [`Trust`]: with a CA, only keys certified by it).
    pub async fn start_with_trust(
        dir: Arc<dyn Directory>,
        trust: Trust,
    ) -> Result<Arc<Self>, ViewError> {
        // Under a CA every entry the view reads is checked (signed member
        // records, status attestations and global data; see
        // [`crate::seal`]); without one, sealed entries are only unwrapped.
        // The view signs nothing.
        let ca = match &trust {
            Trust::Ca(ca) => Some(ca.clone()),
            Trust::Registry => None,
        };
        let sealed = SealedDirectory::wrap(
            dir,
            EntryCheck::new(ca).map_err(|e| ViewError::Trust(e.to_string()))?,
            Arc::new(Signers::default()),
        );
        let dir: Arc<dyn Directory> = sealed.clone();
        let shared = Arc::new(Shared {
            trust: trust.clone(),
            ..Shared::default()
        });
        let mut followers = TaskGuard::default();
        let firsts = [
            (
                Bucket::Members,
                spawn_follower(
                    dir.as_ref(),
                    MemberTable::new(trust.clone()),
                    &shared,
                    &mut followers,
                ),
            ),
            (
                Bucket::Pins,
                spawn_follower(dir.as_ref(), PinTable::default(), &shared, &mut followers),
            ),
            (
                Bucket::Global,
                spawn_follower(
                    dir.as_ref(),
                    GlobalTable::default(),
                    &shared,
                    &mut followers,
                ),
            ),
        ];
        for (bucket, first) in firsts {
            match first.await {
                Ok(Ok(())) => {}
                Ok(Err(error)) if error.is_transient() => {
                    tracing::warn!(%bucket, %error, "directory unreachable; the federation view starts not ready");
                }
                Ok(Err(error)) => return Err(ViewError::Directory(error)),
                Err(_) => return Err(ViewError::Stopped(bucket.name())),
            }
        }
        Ok(Arc::new(Self {
            shared,
            sealed,
            members_kv: dir.kv(Bucket::Members),
            _followers: followers,
        }))
    }

    /// Whether every followed bucket's first snapshot has loaded.
    pub fn ready(&self) -> bool {
        FOLLOWED
            .iter()
            .all(|b| self.shared.progress(*b).loaded.load(Ordering::Acquire))
    }

    /// The progress of each followed bucket, in [`FOLLOWED`] order.
    pub fn revisions(&self) -> [BucketRevision; 3] {
        FOLLOWED.map(|bucket| {
            let progress = self.shared.progress(bucket);
            BucketRevision {
                bucket,
                loaded: progress.loaded.load(Ordering::Acquire),
                revision: progress.revision.load(Ordering::Acquire),
            }
        })
    }

    /// The shard owning a project: its pin, else its place on the ring.
    /// `None` only when it is not pinned and no member is active.
    pub fn owner_of_project(&self, id: &ProjectId) -> Option<ShardId> {
        if let Some(shard) = self.shared.pins.load().projects.get(id) {
            return Some(shard.clone());
        }
        self.ring_owner(id.as_str())
    }

    /// A user's home shard (where their credentials live): their pin, else
    /// their place on the ring.
    pub fn home_of_user(&self, id: &UserId) -> Option<ShardId> {
        if let Some(shard) = self.shared.pins.load().users.get(id) {
            return Some(shard.clone());
        }
        self.ring_owner(id.as_str())
    }

    /// A project's pin, if it has one.
    pub fn pinned_project(&self, id: &ProjectId) -> Option<ShardId> {
        self.shared.pins.load().projects.get(id).cloned()
    }

    /// A user's pin, if they have one.
    pub fn pinned_user(&self, id: &UserId) -> Option<ShardId> {
        self.shared.pins.load().users.get(id).cloned()
    }

    fn ring_owner(&self, id: &str) -> Option<ShardId> {
        let members = self.shared.members.load();
        members.ring.as_ref().map(|ring| ring.owner(id).clone())
    }

    /// The placement ring over the active members, if any is active.
    pub fn ring(&self) -> Option<Ring> {
        self.shared.members.load().ring.clone()
    }

    /// A member's record, whatever its status, unless it was removed.
    pub fn member(&self, id: &ShardId) -> Option<Member> {
        self.shared.members.load().by_id.get(id).cloned()
    }

    /// Whether a TLS server certificate (`der`, already verified against the
    /// federation CA) presented at `host` is that of the member the view
    /// has there: it names a shard (`keyfed:shard:<id>`, not a gateway) and
    /// that member's URL has `host`. Internal clients check it, so a
    /// certificate of another member, or a gateway's, cannot stand in for
    /// the member called.
    pub fn serves_at(&self, der: &[u8], host: &str) -> bool {
        let Some((keyfed_pki::MemberKind::Shard, id)) = keyfed_pki::tls::peer_member(der) else {
            return false;
        };
        let same = |url_host: String| match (
            url_host.parse::<std::net::IpAddr>(),
            host.parse::<std::net::IpAddr>(),
        ) {
            (Ok(a), Ok(b)) => a == b,
            _ => url_host.eq_ignore_ascii_case(host),
        };
        self.member(&ShardId::new(id))
            .is_some_and(|m| keyfed_pki::tls_request::url_host(&m.url).is_ok_and(same))
    }

    /// Every member not removed, in id order.
    pub fn members(&self) -> Vec<Member> {
        let mut all: Vec<Member> = self.shared.members.load().by_id.values().cloned().collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// The key that verifies tokens whose header names `kid`: the key of a
    /// member not removed (joining, active, retiring or retired), or one
    /// found by [`FederationView::look_up_member`] that the watch has not
    /// delivered yet.
    pub fn key(&self, kid: &str) -> Option<VerifyingKey> {
        if let Some(key) = self.shared.members.load().keys.get(kid) {
            return Some(*key);
        }
        if let Some(key) = self.shared.discovered_key(kid) {
            return Some(key);
        }
        // The watch may have caught up (and the discovered key been
        // dropped) between the two reads above.
        self.shared.members.load().keys.get(kid).copied()
    }

    /// The directory as the view reads it: every entry checked (under a
    /// CA) by the signature policy of [`crate::seal`]. Readers of buckets
    /// the view does not follow (names, memberships) go through it.
    pub fn checked_directory(&self) -> Arc<dyn Directory> {
        self.sealed.clone()
    }

    /// How many directory entries the view ignored for failing their
    /// signature check (forged, moved or unsigned).
    pub fn refused_entries(&self) -> u64 {
        self.sealed.refused()
    }

    /// What member keys are trusted on.
    pub fn trust(&self) -> &Trust {
        &self.shared.trust
    }

    /// The current global-data snapshot.
    pub fn global(&self) -> Arc<GlobalData> {
        self.shared.global.load_full()
    }

    /// The current global-data snapshot with a revision that changes
    /// whenever the snapshot does (the global bucket's applied revision).
    /// The snapshot is at least as new as the revision, so a value derived
    /// from it and tagged with the revision is never newer than its tag
    /// says; when the tag no longer matches, derive it again.
    pub fn global_with_revision(&self) -> (u64, Arc<GlobalData>) {
        let revision = self.global_revision();
        (revision, self.shared.global.load_full())
    }

    /// The global bucket's applied revision (see
    /// [`FederationView::global_with_revision`]).
    pub fn global_revision(&self) -> u64 {
        self.shared
            .progress(Bucket::Global)
            .revision
            .load(Ordering::Acquire)
    }

    /// The shared state, for tests that watch the followers stop.
    #[cfg(test)]
    pub(crate) fn shared_weak(&self) -> std::sync::Weak<Shared> {
        Arc::downgrade(&self.shared)
    }
}

/// Spawns the follower of `T::BUCKET`; the receiver reports its first
/// snapshot attempt.
fn spawn_follower<T: Table>(
    dir: &dyn Directory,
    table: T,
    shared: &Arc<Shared>,
    followers: &mut TaskGuard,
) -> oneshot::Receiver<Result<(), keyfed_directory::DirectoryError>> {
    let (tx, rx) = oneshot::channel();
    let kv = dir.kv(T::BUCKET);
    followers.push(tokio::spawn(follow::follow(kv, table, shared.clone(), tx)));
    rx
}
