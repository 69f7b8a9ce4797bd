//! Members found by a direct directory look-up before the members watch
//! delivered them (a shard that joined moments ago).
//!
//! [`FederationView::look_up_member`] reads one member record straight from
//! the members bucket and, when it is valid, remembers the keys it offers
//! under the view's trust policy (see `trust`), each with the bucket
//! revision that wrote the record. Such a key is trusted only until the
//! members follower has applied that revision: from then on the followed
//! snapshot is authoritative (it holds the same record, a newer one, or
//! none if the member was removed since), and the discovered entry is
//! dropped. So the map holds at most the members the watch has not caught
//! up with, and a removal is never masked.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};

use ed25519_dalek::VerifyingKey;
use keyfed_directory::{Bucket, DirectoryError};
use keyfed_shared::federation::{status_key, MemberStatus, StatusAttestation};
use keyfed_shared::ids::ShardId;
use keyfed_shared::time::now_micros;

use super::tables::decode_member;
use super::{FederationView, Shared};

/// A key found by a direct look-up.
#[derive(Clone, Copy, Debug)]
struct Discovered {
    key: VerifyingKey,
    /// The members-bucket revision of the record it came from.
    revision: u64,
}

/// Keys found by direct look-ups, by `kid`; see the module doc.
#[derive(Debug, Default)]
pub(crate) struct DiscoveredKeys {
    keys: Mutex<HashMap<String, Discovered>>,
}

/// What a direct look-up of a member found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberLookup {
    /// A valid record whose keys are now trusted.
    Found {
        /// The `kid`s of the keys it offers now under the trust policy
        /// (they may not include the one asked about).
        kids: Vec<String>,
    },
    /// No record, or a malformed one.
    Absent,
}

impl Shared {
    /// The last members-bucket revision the follower applied.
    fn members_revision(&self) -> u64 {
        self.progress(Bucket::Members)
            .revision
            .load(Ordering::Acquire)
    }

    /// A discovered key for `kid` that the watch has not caught up with.
    pub(crate) fn discovered_key(&self, kid: &str) -> Option<VerifyingKey> {
        let mut keys = self
            .discovered
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = *keys.get(kid)?;
        if entry.revision > self.members_revision() {
            return Some(entry.key);
        }
        keys.remove(kid);
        None
    }

    fn discover(&self, kid: String, key: VerifyingKey, revision: u64) {
        if revision <= self.members_revision() {
            return;
        }
        self.discovered
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(kid, Discovered { key, revision });
    }
}

impl FederationView {
    /// Reads `member`'s record straight from the directory (one `get` on
    /// the members bucket) and trusts its key until the watch catches up
    /// (see the module doc). Callers bound how often this happens.
    pub async fn look_up_member(&self, member: &ShardId) -> Result<MemberLookup, DirectoryError> {
        let Some(entry) = self.members_kv.get(member.as_str()).await? else {
            return Ok(MemberLookup::Absent);
        };
        let cap = self.retired_cap(member).await?;
        match decode_member(member.as_str(), &entry.value, &self.shared.trust) {
            Ok(valid) => {
                let now = now_micros() / 1_000_000;
                let mut kids = Vec::new();
                let usable = |k: &super::trust::TrustedKey| k.valid_at(now) && now < cap;
                for trusted in valid.keys.into_iter().filter(usable) {
                    self.shared
                        .discover(trusted.kid.clone(), trusted.key, entry.revision);
                    kids.push(trusted.kid);
                }
                Ok(MemberLookup::Found { kids })
            }
            Err(reason) => {
                tracing::warn!(%member, %reason, "looked-up member record is malformed");
                Ok(MemberLookup::Absent)
            }
        }
    }

    /// Until when `member`'s keys may be trusted by the status attestations
    /// known to the view and stored in the directory (`i64::MAX` if it was
    /// never retired): a look-up never revives a revoked member.
    async fn retired_cap(&self, member: &ShardId) -> Result<i64, DirectoryError> {
        let known = self
            .member(member)
            .filter(|m| m.status == MemberStatus::Retired)
            .map(|m| m.trusted_until.unwrap_or(i64::MAX));
        let stored = match self.members_kv.get(&status_key(member)).await? {
            Some(entry) => serde_json::from_slice::<StatusAttestation>(&entry.value)
                .ok()
                .filter(|a| a.member == *member)
                .and_then(|a| a.trusted_until()),
            None => None,
        };
        Ok(known.into_iter().chain(stored).min().unwrap_or(i64::MAX))
    }
}
