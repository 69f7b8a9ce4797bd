//! The three followed buckets, each as a table that applies changes to
//! what it owns and publishes an immutable snapshot for readers.
//!
//! A malformed entry is logged and skipped: the table keeps the entry's
//! previous value (or nothing) and goes on with the next change.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::VerifyingKey;
use keyfed_directory::Bucket;
use keyfed_shared::federation::{
    global_data, Attestations, GlobalEntity, Member, StatusAttestation, STATUS_PREFIX,
};
use keyfed_shared::ids::{ProjectId, ShardId, UserId};
use keyfed_shared::ring::{Ring, MAX_WEIGHT};
use keyfed_shared::time::now_micros;

use super::trust::{Trust, TrustedKey};
use super::Shared;

/// A bucket's entries, owned by the task following it.
pub(crate) trait Table: Send + 'static {
    /// The bucket followed.
    const BUCKET: Bucket;

    /// Forgets every entry (before loading a snapshot).
    fn clear(&mut self);

    /// Applies one entry: a new value, or `None` when the key was deleted.
    fn apply(&mut self, key: &str, value: Option<&[u8]>);

    /// Publishes the current entries to readers.
    fn publish(&self, shared: &Shared);

    /// How often to republish with no change (for time-dependent tables).
    fn refresh_every(&self) -> Option<Duration> {
        None
    }
}

/// What readers see of the members bucket: one consistent snapshot.
#[derive(Debug, Default)]
pub(crate) struct Members {
    /// Every member not removed, whatever its status.
    pub(crate) by_id: HashMap<ShardId, Member>,
    /// Verification keys of every member not removed, by `kid`.
    pub(crate) keys: HashMap<String, VerifyingKey>,
    /// The placement ring over the active members; `None` while no member
    /// is active.
    pub(crate) ring: Option<Ring>,
}

/// A member record that passed the checks, with its decoded key.
pub(crate) struct Valid {
    pub(crate) member: Member,
    /// Every key the record offers under the trust policy, with its
    /// validity window (see [`super::trust`]).
    pub(crate) keys: Vec<TrustedKey>,
}

/// Decodes and checks a member record stored under `key`, and works out
/// the keys it offers under `trust`.
pub(crate) fn decode_member(key: &str, value: &[u8], trust: &Trust) -> Result<Valid, String> {
    let member: Member = serde_json::from_slice(value).map_err(|e| e.to_string())?;
    if member.id.as_str() != key {
        return Err(format!("record names member {:?}", member.id.as_str()));
    }
    // The kid is `<member-id>.<serial>`: a member can only sign as itself,
    // and two members can never claim the same kid.
    let serial = member
        .kid
        .strip_prefix(key)
        .and_then(|s| s.strip_prefix('.'));
    if serial.is_none_or(str::is_empty) {
        return Err(format!("kid {:?} is not `{key}.<serial>`", member.kid));
    }
    let verifying = member
        .verifying_key()
        .ok_or_else(|| "public key is not a base64url Ed25519 key".to_owned())?;
    // Under a CA, the record's current kid must be certified (time is
    // checked when keys are published).
    let keys = trust.keys(&member, verifying);
    if !keys.iter().any(|k| k.kid == member.kid) {
        return Err(format!("no trusted key for kid {:?}", member.kid));
    }
    Ok(Valid { member, keys })
}

/// The members bucket: key `<shard-id>`, value a [`Member`] as JSON, and
/// key `status/<shard-id>`, a [`StatusAttestation`] that overrides the
/// record's status (see its doc: attestations never go back, and a
/// deleted one is ignored).
#[derive(Default)]
pub(crate) struct MemberTable {
    entries: HashMap<String, Valid>,
    attestations: Attestations,
    trust: Trust,
}

impl MemberTable {
    /// An empty table trusting keys by `trust`.
    pub(crate) fn new(trust: Trust) -> Self {
        Self {
            entries: HashMap::new(),
            attestations: Attestations::default(),
            trust,
        }
    }

    fn attest(&mut self, key: &str, value: Option<&[u8]>) {
        let Some(value) = value else {
            tracing::warn!(key, "a status attestation was deleted; ignored");
            return;
        };
        match serde_json::from_slice::<StatusAttestation>(value) {
            Ok(a) if key.strip_prefix(STATUS_PREFIX) == Some(a.member.as_str()) => {
                let member = a.member.clone();
                if !self.attestations.offer(a) {
                    tracing::warn!(%member, "an older or reverting status attestation; ignored");
                }
            }
            Ok(_) => tracing::warn!(key, "status attestation for another member; ignored"),
            Err(error) => tracing::warn!(key, %error, "skipping malformed status attestation"),
        }
    }
}

/// How often the members table republishes with no change, so that
/// certificates and retired members' keys drop out when their time ends.
const KEY_EXPIRY_CHECK: Duration = Duration::from_secs(5);

impl Table for MemberTable {
    const BUCKET: Bucket = Bucket::Members;

    fn clear(&mut self) {
        // Attestations are kept: a snapshot without one must not undo it.
        self.entries.clear();
    }

    fn apply(&mut self, key: &str, value: Option<&[u8]>) {
        if key.starts_with(STATUS_PREFIX) {
            return self.attest(key, value);
        }
        let Some(value) = value else {
            self.entries.remove(key);
            return;
        };
        match decode_member(key, value, &self.trust) {
            Ok(valid) => {
                self.entries.insert(key.to_owned(), valid);
            }
            Err(reason) => {
                tracing::warn!(member = key, %reason, "skipping malformed member record")
            }
        }
    }

    fn publish(&self, shared: &Shared) {
        let now = now_micros() / 1_000_000;
        let effective: Vec<Member> = self
            .entries
            .values()
            .map(|v| self.attestations.effective(v.member.clone()))
            .collect();
        let mut active = Vec::new();
        for member in &effective {
            if !member.in_ring() {
                continue;
            }
            if (1..=MAX_WEIGHT).contains(&member.weight) {
                active.push((member.id.clone(), member.weight));
            } else {
                tracing::warn!(member = %member.id, weight = member.weight, "active member left out of the ring: weight out of range");
            }
        }
        let ring = match Ring::new(&active) {
            Ok(ring) => Some(ring),
            Err(error) => {
                tracing::warn!(%error, "no placement ring");
                None
            }
        };
        let members = Members {
            keys: self
                .entries
                .values()
                .flat_map(|v| {
                    let cap = self
                        .attestations
                        .get(&v.member.id)
                        .and_then(StatusAttestation::trusted_until)
                        .unwrap_or(i64::MAX);
                    v.keys.iter().filter(move |k| k.valid_at(now) && now < cap)
                })
                .map(|k| (k.kid.clone(), k.key))
                .collect(),
            by_id: effective.into_iter().map(|m| (m.id.clone(), m)).collect(),
            ring,
        };
        shared.members.store(Arc::new(members));
    }

    fn refresh_every(&self) -> Option<Duration> {
        Some(KEY_EXPIRY_CHECK)
    }
}

/// What readers see of the pins bucket.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pins {
    pub(crate) projects: HashMap<ProjectId, ShardId>,
    pub(crate) users: HashMap<UserId, ShardId>,
}

/// The pins bucket: keys `project/<id>` and `user/<id>`, value the shard id
/// as UTF-8. Other keys (moves in flight) are not pins and are ignored.
#[derive(Default)]
pub(crate) struct PinTable {
    pins: Pins,
}

/// A pin key, split.
enum PinKey<'a> {
    Project(&'a str),
    User(&'a str),
}

fn pin_key(key: &str) -> Option<PinKey<'_>> {
    if let Some(id) = key.strip_prefix("project/") {
        Some(PinKey::Project(id))
    } else {
        key.strip_prefix("user/").map(PinKey::User)
    }
}

fn decode_shard(value: &[u8]) -> Result<ShardId, String> {
    let id = std::str::from_utf8(value).map_err(|_| "shard id is not UTF-8".to_owned())?;
    if id.is_empty() || id.trim() != id {
        return Err(format!("bad shard id {id:?}"));
    }
    Ok(ShardId::new(id))
}

impl Table for PinTable {
    const BUCKET: Bucket = Bucket::Pins;

    fn clear(&mut self) {
        self.pins = Pins::default();
    }

    fn apply(&mut self, key: &str, value: Option<&[u8]>) {
        let Some(entity) = pin_key(key) else {
            tracing::trace!(key, "not a pin");
            return;
        };
        let shard = match value.map(decode_shard) {
            None => None,
            Some(Ok(shard)) => Some(shard),
            Some(Err(reason)) => {
                tracing::warn!(key, %reason, "skipping malformed pin");
                return;
            }
        };
        match (entity, shard) {
            (PinKey::Project(id), Some(s)) => {
                self.pins.projects.insert(ProjectId::new(id), s);
            }
            (PinKey::Project(id), None) => {
                self.pins.projects.remove(&ProjectId::new(id));
            }
            (PinKey::User(id), Some(s)) => {
                self.pins.users.insert(UserId::new(id), s);
            }
            (PinKey::User(id), None) => {
                self.pins.users.remove(&UserId::new(id));
            }
        }
    }

    fn publish(&self, shared: &Shared) {
        shared.pins.store(Arc::new(self.pins.clone()));
    }
}

/// The global bucket: domains, roles, implications and the catalog.
#[derive(Default)]
pub(crate) struct GlobalTable {
    entries: HashMap<String, GlobalEntity>,
}

impl Table for GlobalTable {
    const BUCKET: Bucket = Bucket::Global;

    fn clear(&mut self) {
        self.entries.clear();
    }

    fn apply(&mut self, key: &str, value: Option<&[u8]>) {
        let Some(value) = value else {
            self.entries.remove(key);
            return;
        };
        match GlobalEntity::decode(key, value) {
            Ok(entity) => {
                self.entries.insert(key.to_owned(), entity);
            }
            Err(error) => tracing::warn!(%error, "skipping malformed global entry"),
        }
    }

    fn publish(&self, shared: &Shared) {
        let data = global_data(self.entries.values().cloned());
        shared.global.store(Arc::new(data));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_member_t(key: &str, value: &[u8]) -> Result<Valid, String> {
        decode_member(key, value, &Trust::Registry)
    }

    #[test]
    fn member_records_are_checked() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key();
        let record = |id: &str, kid: &str, public_key: String| {
            serde_json::to_vec(&serde_json::json!({
                "id": id, "url": "http://x", "weight": 1, "status": "active",
                "kid": kid, "public_key": public_key,
            }))
            .unwrap_or_default()
        };
        let good = Member::encode_key(&key);
        assert!(decode_member_t("s1", &record("s1", "s1.1", good.clone())).is_ok());
        assert!(decode_member_t("s1", &record("s2", "s2.1", good.clone())).is_err());
        assert!(decode_member_t("s1", &record("s1", "s2.1", good.clone())).is_err());
        assert!(decode_member_t("s1", &record("s1", "s1.", good.clone())).is_err());
        assert!(decode_member_t("s1", &record("s1", "s10.1", good)).is_err());
        assert!(decode_member_t("s1", &record("s1", "s1.1", "AAAA".into())).is_err());
        assert!(decode_member_t("s1", b"{").is_err());
    }

    #[test]
    fn pins_are_decoded() {
        assert!(matches!(pin_key("project/p"), Some(PinKey::Project("p"))));
        assert!(matches!(pin_key("user/u"), Some(PinKey::User("u"))));
        assert!(pin_key("move/p").is_none());
        assert_eq!(decode_shard(b"s1").ok(), Some(ShardId::new("s1")));
        assert!(decode_shard(b"").is_err());
        assert!(decode_shard(b" s1").is_err());
        assert!(decode_shard(&[0xff]).is_err());
    }
}
