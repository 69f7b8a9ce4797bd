//! [`SealedDirectory`]: a [`Directory`] that seals what its owner writes
//! and opens (verifies) what it reads, by the rules of [`super::policy`].
//! Readers and writers above it see plain values; a stored value that
//! fails its check is ignored — absent for `get`, left out of snapshots,
//! a deletion for watches (so a follower agrees with a fresh snapshot) —
//! counted and logged.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use keyfed_directory::{
    Bucket, ChangeStream, Directory, DirectoryError, Entry, Kv, RevocationStream, Snapshot,
};
use keyfed_shared::federation::{Attestations, StatusAttestation, STATUS_PREFIX};
use keyfed_shared::ids::ShardId;
use keyfed_shared::time::now_micros;
use tokio::sync::OnceCell;

use super::envelope::{EntryCheck, EntrySigner, SealError, SignedBy};
use super::policy::{required, Required};

type Result<T> = std::result::Result<T, DirectoryError>;

fn now() -> i64 {
    now_micros() / 1_000_000
}

/// The keys a process signs entries with: its own member key (replaced on
/// rotation) and, on an issuer, the federation CA key.
#[derive(Debug, Default)]
pub struct Signers {
    member: ArcSwapOption<EntrySigner>,
    ca: Option<EntrySigner>,
}

impl Signers {
    /// Signers with `member` (an [`EntrySigner::Member`]) and `ca` (an
    /// [`EntrySigner::Ca`]).
    pub fn new(member: Option<EntrySigner>, ca: Option<EntrySigner>) -> Self {
        Self {
            member: ArcSwapOption::from(member.map(Arc::new)),
            ca,
        }
    }

    /// Signs with `member` from now on (after a key rotation).
    pub fn set_member(&self, member: EntrySigner) {
        self.member.store(Some(Arc::new(member)));
    }

    /// The signer for an entry that must be signed as `required`.
    fn pick(&self, required: &Required) -> Option<EntrySigner> {
        let member = self.member.load_full();
        let member = member.as_deref();
        match required {
            Required::Nothing => None,
            Required::Ca => self.ca.clone(),
            Required::MemberOrCa(id) => member
                .filter(|m| m.member_id() == Some(id.as_str()))
                .cloned()
                .or_else(|| self.ca.clone()),
            Required::AnyMemberOrCa => member.cloned().or_else(|| self.ca.clone()),
        }
    }
}

/// What every bucket handle of one [`SealedDirectory`] shares.
struct Sealing {
    check: EntryCheck,
    signers: Arc<Signers>,
    /// Status attestations seen (retired members sign nothing after their
    /// `trusted_until`), loaded once from the members bucket and kept up
    /// to date by every read of it.
    attestations: Mutex<Attestations>,
    loaded: OnceCell<()>,
    members: Arc<dyn Kv>,
    refused: AtomicU64,
}

impl Sealing {
    async fn ensure_attestations(&self) -> Result<()> {
        self.loaded
            .get_or_try_init(|| async {
                let snapshot = self.members.snapshot(STATUS_PREFIX).await?;
                for (key, entry) in &snapshot.entries {
                    self.open(Bucket::Members, key, &entry.value);
                }
                Ok::<(), DirectoryError>(())
            })
            .await
            .map(|_| ())
    }

    fn refuse(&self, bucket: Bucket, key: &str, why: &SealError) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%bucket, key, reason = %why, "ignoring a directory entry that fails its signature check");
    }

    /// The value under `key`, if it passes its check.
    fn open(&self, bucket: Bucket, key: &str, stored: &[u8]) -> Option<Bytes> {
        let required = required(bucket, key);
        if required == Required::Nothing {
            return Some(Bytes::copy_from_slice(stored));
        }
        match self.verify(bucket, key, stored, &required) {
            Ok(value) => Some(value),
            Err(why) => {
                self.refuse(bucket, key, &why);
                None
            }
        }
    }

    fn verify(
        &self,
        bucket: Bucket,
        key: &str,
        stored: &[u8],
        required: &Required,
    ) -> std::result::Result<Bytes, SealError> {
        let (value, by) = self.check.open(bucket, key, stored, now())?;
        let allowed = match (&by, required) {
            (SignedBy::Unchecked | SignedBy::Ca, _) => true,
            (SignedBy::Member { .. }, Required::Ca) => false,
            (SignedBy::Member { id, .. }, Required::MemberOrCa(want)) => id == want.as_str(),
            (SignedBy::Member { .. }, _) => true,
        };
        if !allowed {
            let who = match by {
                SignedBy::Member { id, .. } => id,
                _ => String::new(),
            };
            return Err(SealError::WrongSigner(who));
        }
        if let SignedBy::Member { id, at } = &by {
            let attestations = self
                .attestations
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let attestation = attestations.get(&ShardId::new(id.as_str()));
            if let Some(a) = attestation.filter(|a| a.refuses(*at)) {
                return Err(SealError::Revoked {
                    id: id.clone(),
                    until: a.trusted_until.unwrap_or_default(),
                });
            }
        }
        if bucket == Bucket::Members && key.starts_with(STATUS_PREFIX) {
            let a: StatusAttestation = serde_json::from_slice(&value)
                .map_err(|e| SealError::Malformed(format!("status attestation: {e}")))?;
            if key.strip_prefix(STATUS_PREFIX) != Some(a.member.as_str()) {
                return Err(SealError::Malformed(
                    "attestation for another member".into(),
                ));
            }
            self.attestations
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .offer(a);
        }
        Ok(Bytes::from(value))
    }

    /// `value` as stored under `key`: sealed by the right signer, or plain
    /// where nothing is required (or nothing is checked).
    fn seal(&self, bucket: Bucket, key: &str, value: Bytes) -> Result<Bytes> {
        let required = required(bucket, key);
        if required == Required::Nothing {
            return Ok(value);
        }
        match self.signers.pick(&required) {
            Some(signer) => signer
                .seal(bucket, key, &value, now())
                .map(Bytes::from)
                .ok_or_else(|| {
                    DirectoryError::Invalid(format!("{bucket} entry {key} is not UTF-8"))
                }),
            None if matches!(self.check, EntryCheck::Unchecked) => Ok(value),
            None => Err(DirectoryError::Invalid(format!(
                "writing {bucket} entry {key} needs {}",
                required.describe()
            ))),
        }
    }
}

/// A directory whose entries are sealed and checked; see the module doc.
pub struct SealedDirectory {
    inner: Arc<dyn Directory>,
    sealing: Arc<Sealing>,
    buckets: Vec<Arc<dyn Kv>>,
}

impl SealedDirectory {
    /// Wraps `inner`: entries are checked by `check` and written with
    /// `signers`.
    pub fn wrap(inner: Arc<dyn Directory>, check: EntryCheck, signers: Arc<Signers>) -> Arc<Self> {
        let sealing = Arc::new(Sealing {
            check,
            signers,
            attestations: Mutex::default(),
            loaded: OnceCell::new(),
            members: inner.kv(Bucket::Members),
            refused: AtomicU64::new(0),
        });
        let buckets = Bucket::ALL
            .iter()
            .map(|&bucket| {
                Arc::new(SealedKv {
                    bucket,
                    inner: inner.kv(bucket),
                    sealing: sealing.clone(),
                }) as Arc<dyn Kv>
            })
            .collect();
        Arc::new(Self {
            inner,
            sealing,
            buckets,
        })
    }

    /// How many stored entries were ignored for failing their check.
    pub fn refused(&self) -> u64 {
        self.sealing.refused.load(Ordering::Relaxed)
    }

    /// Signs again, with this directory's own signers, every stored entry
    /// that `member` signed and that still verifies (by compare-and-swap,
    /// so a concurrent change wins): before a revocation makes all of
    /// `member`'s signatures void, what it wrote while trusted is kept.
    /// Returns how many entries were signed again.
    pub async fn reseal(&self, member: &str) -> Result<usize> {
        let mut count = 0;
        for bucket in [
            Bucket::Members,
            Bucket::Global,
            Bucket::Credentials,
            Bucket::Pins,
            Bucket::Names,
        ] {
            let raw = self.inner.kv(bucket);
            for (key, entry) in raw.snapshot("").await?.entries {
                let signed_by_member = matches!(
                    self.sealing.check.open(bucket, &key, &entry.value, now()),
                    Ok((_, SignedBy::Member { ref id, .. })) if id == member
                );
                if !signed_by_member {
                    continue;
                }
                let Some(value) = self.sealing.open(bucket, &key, &entry.value) else {
                    continue;
                };
                let sealed = self.sealing.seal(bucket, &key, value)?;
                match raw.update(&key, sealed, entry.revision).await {
                    Ok(_) => count += 1,
                    Err(DirectoryError::WrongRevision | DirectoryError::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(count)
    }

    /// The signers, to hand a rotated key to.
    pub fn signers(&self) -> &Arc<Signers> {
        &self.sealing.signers
    }
}

#[async_trait]
impl Directory for SealedDirectory {
    fn namespace(&self) -> &str {
        self.inner.namespace()
    }

    fn kv(&self, bucket: Bucket) -> Arc<dyn Kv> {
        let index = Bucket::ALL.iter().position(|b| *b == bucket).unwrap_or(0);
        self.buckets[index].clone()
    }

    async fn publish_revocation(&self, payload: Bytes) -> Result<u64> {
        self.inner.publish_revocation(payload).await
    }

    async fn revocations_from(&self, after: u64) -> Result<RevocationStream> {
        self.inner.revocations_from(after).await
    }
}

struct SealedKv {
    bucket: Bucket,
    inner: Arc<dyn Kv>,
    sealing: Arc<Sealing>,
}

impl SealedKv {
    /// Whether reads of this bucket depend on attestations.
    fn checks_signers(&self) -> bool {
        !matches!(self.bucket, Bucket::Memberships)
            && !matches!(self.sealing.check, EntryCheck::Unchecked)
    }

    async fn ready(&self) -> Result<()> {
        if self.checks_signers() {
            self.sealing.ensure_attestations().await?;
        }
        Ok(())
    }
}

#[async_trait]
impl Kv for SealedKv {
    async fn get(&self, key: &str) -> Result<Option<Entry>> {
        self.ready().await?;
        Ok(self.inner.get(key).await?.and_then(|entry| {
            let value = self.sealing.open(self.bucket, key, &entry.value)?;
            Some(Entry {
                value,
                revision: entry.revision,
            })
        }))
    }

    /// Creates `key`; a stored value that fails its check counts as
    /// absent here too (as for `get`), so it is replaced — a forged entry
    /// cannot hold a key — by compare-and-swap against the forgery.
    async fn create(&self, key: &str, value: Bytes) -> Result<u64> {
        let sealed = self.sealing.seal(self.bucket, key, value)?;
        match self.inner.create(key, sealed.clone()).await {
            Err(DirectoryError::AlreadyExists) => {}
            other => return other,
        }
        self.ready().await?;
        let Some(stored) = self.inner.get(key).await? else {
            // Deleted meanwhile: try once more.
            return self.inner.create(key, sealed).await;
        };
        if self.sealing.open(self.bucket, key, &stored.value).is_some() {
            return Err(DirectoryError::AlreadyExists);
        }
        match self.inner.update(key, sealed, stored.revision).await {
            Err(DirectoryError::WrongRevision) => Err(DirectoryError::AlreadyExists),
            other => other,
        }
    }

    async fn update(&self, key: &str, value: Bytes, expected_revision: u64) -> Result<u64> {
        let sealed = self.sealing.seal(self.bucket, key, value)?;
        self.inner.update(key, sealed, expected_revision).await
    }

    async fn put(&self, key: &str, value: Bytes) -> Result<u64> {
        let sealed = self.sealing.seal(self.bucket, key, value)?;
        self.inner.put(key, sealed).await
    }

    async fn delete(&self, key: &str, expected_revision: Option<u64>) -> Result<u64> {
        self.inner.delete(key, expected_revision).await
    }

    async fn snapshot(&self, prefix: &str) -> Result<Snapshot> {
        self.ready().await?;
        let snapshot = self.inner.snapshot(prefix).await?;
        let entries = snapshot
            .entries
            .into_iter()
            .filter_map(|(key, entry)| {
                let value = self.sealing.open(self.bucket, &key, &entry.value)?;
                Some((
                    key,
                    Entry {
                        value,
                        revision: entry.revision,
                    },
                ))
            })
            .collect();
        Ok(Snapshot {
            entries,
            revision: snapshot.revision,
        })
    }

    async fn watch_from(&self, revision: u64) -> Result<ChangeStream> {
        self.ready().await?;
        let stream = self.inner.watch_from(revision).await?;
        let sealing = self.sealing.clone();
        let bucket = self.bucket;
        // A change that fails its check reads as a deletion: the bucket no
        // longer holds a valid value for the key, exactly as a reader
        // loading a snapshot now would find (and the revision still
        // advances, so waiting for it never hangs).
        Ok(Box::pin(stream.map(move |mut change| {
            if let Some(stored) = &change.value {
                change.value = sealing.open(bucket, &change.key, stored);
            }
            change
        })))
    }
}
