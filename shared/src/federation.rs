//! The federation's shared vocabulary: member records and the keys and
//! values every process reads from and writes to the directory buckets.
//! `docs/federation.md` describes the same contract in prose.
//!
//! | bucket | key | value |
//! |---|---|---|
//! | members | `<shard-id>` | [`Member`] (JSON) |
//! | pins | `project/<id>`, `user/<id>` | shard id (UTF-8) |
//! | names | `domain/<name>`, `role/<name>`, `project/<domain-id>/<name>`, `user/<domain-id>/<name>` | entity id (UTF-8) |
//! | memberships | `<user-id>` | JSON list of shard ids, sorted |
//! | global | `domain/<id>`, `role/<id>`, `implied/<prior>/<implied>`, `region/<id>`, `service/<id>`, `endpoint/<id>` | the entity (JSON, [`GlobalEntity`]) |
//!
//! The revocation stream carries [`crate::revocation::RevocationEvent`]s as JSON.

use crate::global::GlobalData;
use crate::ids::{DomainId, ProjectId, ShardId, UserId};
use crate::model::{Domain, Endpoint, ImpliedRole, Region, Role, Service};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

/// A member's lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberStatus {
    /// Registered, not yet taking tenants.
    Joining,
    /// Part of the placement ring.
    Active,
    /// Taking no new tenants; draining.
    Retiring,
    /// Empty; its key stays trusted until its last token expires.
    Retired,
}

/// A federation member (a shard), as recorded in the members bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: ShardId,
    /// Where gateways and peers reach the shard's API.
    pub url: String,
    /// Relative share of new tenants (≥ 1).
    pub weight: u32,
    pub status: MemberStatus,
    /// The `kid` its tokens carry.
    pub kid: String,
    /// Its Ed25519 public key, base64url without padding.
    pub public_key: String,
    /// Its signing certificates, issued under the federation CA. Where the
    /// federation has a CA, only keys certified here are trusted; several
    /// entries (each with its own `kid`) let a renewed key and the one it
    /// replaces verify side by side. Absent in records written before
    /// certificates existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<MemberCert>,
    /// For a retired member: unix seconds until which its keys stay trusted
    /// (its last token's expiry, allow-expired window included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_until: Option<i64>,
}

/// One signing certificate of a member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberCert {
    /// The `kid` of tokens signed with the certified key
    /// (`<member-id>.<serial>`).
    pub kid: String,
    /// The X.509 certificate, DER, base64url without padding.
    pub der: String,
    /// For a key replaced by a newer one: unix seconds after which no token
    /// it signed can still be valid (its last token's expiry plus the
    /// allow-expired window). Validators stop trusting it then, and the
    /// member removes the entry. Absent for a current key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retire_at: Option<i64>,
}

impl MemberCert {
    /// A certificate entry for `kid` from DER bytes.
    pub fn new(kid: impl Into<String>, der: &[u8]) -> Self {
        Self {
            kid: kid.into(),
            der: B64.encode(der),
            retire_at: None,
        }
    }

    /// The certificate's DER bytes.
    pub fn der_bytes(&self) -> Option<Vec<u8>> {
        B64.decode(&self.der).ok()
    }
}

impl Member {
    /// Encodes a public key for [`Member::public_key`].
    pub fn encode_key(key: &VerifyingKey) -> String {
        B64.encode(key.as_bytes())
    }

    /// Decodes [`Member::public_key`].
    pub fn verifying_key(&self) -> Option<VerifyingKey> {
        let bytes: [u8; 32] = B64.decode(&self.public_key).ok()?.try_into().ok()?;
        VerifyingKey::from_bytes(&bytes).ok()
    }

    /// Whether new tenants may be placed on it.
    pub fn in_ring(&self) -> bool {
        self.status == MemberStatus::Active
    }
}

/// The members-bucket key of member `id`'s status attestation.
pub fn status_key(id: &ShardId) -> String {
    format!("{STATUS_PREFIX}{id}")
}

/// The prefix of status attestations in the members bucket (member ids
/// never contain `/`, so no record key starts with it).
pub const STATUS_PREFIX: &str = "status/";

/// A change of a member's status decided by an issuer (`keyfed shard
/// retire` and `revoke`), stored under `status/<id>` in the members bucket
/// and signed with the federation CA key — never by the member, which
/// writes only its own record. It overrides the record's own status:
/// `retiring` and `retired` win over whatever the record says; `active`
/// (a retirement given up) hands the status back to the record.
///
/// Attestations only move forward: a reader keeps the newest it saw (by
/// `at`), ignores older ones and deletions, and once a member is
/// `retired` accepts only `retired` with an earlier or equal
/// `trusted_until` — a retirement or revocation cannot be undone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusAttestation {
    /// The member it is about.
    pub member: ShardId,
    /// The status decided.
    pub status: MemberStatus,
    /// For `retired`: unix seconds until which its keys stay trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_until: Option<i64>,
    /// When it was decided, unix microseconds (orders attestations).
    pub at: i64,
    /// A revocation (`keyfed shard revoke`): the member is compromised or
    /// lost, so no signature of its keys counts any more, whenever it
    /// claims to have been made (what it wrote before is re-signed by the
    /// issuer that revokes it). A plain retirement trusts what it signed
    /// before its `trusted_until`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revoked: bool,
}

impl StatusAttestation {
    /// Whether `self` may replace `current` (see the type's doc).
    pub fn supersedes(&self, current: &StatusAttestation) -> bool {
        if self.at <= current.at {
            return false;
        }
        if current.status != MemberStatus::Retired {
            return true;
        }
        self.status == MemberStatus::Retired
            && self.trusted_until.unwrap_or(i64::MAX) <= current.trusted_until.unwrap_or(i64::MAX)
            && (self.revoked || !current.revoked)
    }

    /// `record` with this attestation's status applied.
    pub fn apply(&self, record: &mut Member) {
        match self.status {
            MemberStatus::Retiring | MemberStatus::Retired => {
                record.status = self.status;
                record.trusted_until = self.trusted_until;
            }
            MemberStatus::Joining | MemberStatus::Active => {}
        }
    }

    /// Whether a signature of the member made at `at` (unix seconds) is
    /// refused: any, once revoked; from its `trusted_until` on, once
    /// retired.
    pub fn refuses(&self, at: i64) -> bool {
        self.revoked || self.trusted_until().is_some_and(|until| at >= until)
    }

    /// Until when (unix seconds) the member's signatures are trusted:
    /// `Some` once retired.
    pub fn trusted_until(&self) -> Option<i64> {
        (self.status == MemberStatus::Retired).then(|| self.trusted_until.unwrap_or(i64::MAX))
    }
}

/// Keeps the newest attestation per member under the rules of
/// [`StatusAttestation`]; deletions are never applied.
#[derive(Clone, Debug, Default)]
pub struct Attestations {
    by_member: std::collections::HashMap<ShardId, StatusAttestation>,
}

impl Attestations {
    /// Records `a` if it supersedes what is known; returns whether it did.
    pub fn offer(&mut self, a: StatusAttestation) -> bool {
        match self.by_member.get(&a.member) {
            Some(current) if !a.supersedes(current) => false,
            _ => {
                self.by_member.insert(a.member.clone(), a);
                true
            }
        }
    }

    /// The attestation in force for `id`.
    pub fn get(&self, id: &ShardId) -> Option<&StatusAttestation> {
        self.by_member.get(id)
    }

    /// `record` with its attestation (if any) applied.
    pub fn effective(&self, mut record: Member) -> Member {
        if let Some(a) = self.by_member.get(&record.id) {
            a.apply(&mut record);
        }
        record
    }
}

/// The header carrying an admin call token (`keyfed status`, `retire`,
/// activation's tenant count) on the internal routes.
pub const ADMIN_TOKEN_HEADER: &str = "x-keyfed-admin-token";

/// The header on a create a gateway sends to another member than the
/// entity's ring owner because that owner is down: its value names the
/// owner. The member pins the new entity to itself and creates it.
pub const PLACE_INSTEAD_HEADER: &str = "x-keyfed-place-instead-of";

/// Keys of the pins bucket.
pub mod pin_key {
    use super::*;
    /// A project's pin.
    pub fn project(id: &ProjectId) -> String {
        format!("project/{id}")
    }
    /// A user's pin.
    pub fn user(id: &UserId) -> String {
        format!("user/{id}")
    }
}

/// Keys and values of the memberships bucket: per user, the shards that
/// hold the user's role assignments.
pub mod membership {
    use super::*;
    use std::collections::BTreeSet;

    /// The key of `user`'s entry.
    pub fn key(user: &UserId) -> String {
        user.to_string()
    }

    /// The value: a JSON list of shard ids, sorted, without duplicates.
    pub fn encode(shards: &BTreeSet<ShardId>) -> Vec<u8> {
        serde_json::to_vec(shards).unwrap_or_default()
    }

    /// Decodes a value written by [`encode`].
    pub fn decode(value: &[u8]) -> Result<BTreeSet<ShardId>, serde_json::Error> {
        serde_json::from_slice(value)
    }
}

/// Keys of the names bucket.
pub mod name_key {
    use super::*;
    /// A domain name.
    pub fn domain(name: &str) -> String {
        format!("domain/{name}")
    }
    /// A global role name.
    pub fn role(name: &str) -> String {
        format!("role/{name}")
    }
    /// A project name within its domain.
    pub fn project(domain: &DomainId, name: &str) -> String {
        format!("project/{domain}/{name}")
    }
    /// A user name within its domain.
    pub fn user(domain: &DomainId, name: &str) -> String {
        format!("user/{domain}/{name}")
    }
}

/// One entry of the global bucket.
#[derive(Clone, Debug, PartialEq)]
pub enum GlobalEntity {
    Domain(Domain),
    Role(Role),
    Implied(ImpliedRole),
    Region(Region),
    Service(Service),
    Endpoint(Endpoint),
}

/// Why a global entry could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("bad global entry {key}: {reason}")]
pub struct GlobalDecodeError {
    pub key: String,
    pub reason: String,
}

impl GlobalEntity {
    /// The key it is stored under.
    pub fn key(&self) -> String {
        match self {
            GlobalEntity::Domain(d) => format!("domain/{}", d.id),
            GlobalEntity::Role(r) => format!("role/{}", r.id),
            GlobalEntity::Implied(i) => format!("implied/{}/{}", i.prior, i.implied),
            GlobalEntity::Region(r) => format!("region/{}", r.id),
            GlobalEntity::Service(s) => format!("service/{}", s.id),
            GlobalEntity::Endpoint(e) => format!("endpoint/{}", e.id),
        }
    }

    /// The JSON value stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        let v = match self {
            GlobalEntity::Domain(x) => serde_json::to_vec(x),
            GlobalEntity::Role(x) => serde_json::to_vec(x),
            GlobalEntity::Implied(x) => serde_json::to_vec(x),
            GlobalEntity::Region(x) => serde_json::to_vec(x),
            GlobalEntity::Service(x) => serde_json::to_vec(x),
            GlobalEntity::Endpoint(x) => serde_json::to_vec(x),
        };
        v.unwrap_or_default()
    }

    /// Decodes an entry from its key and value.
    pub fn decode(key: &str, value: &[u8]) -> Result<Self, GlobalDecodeError> {
        let err = |reason: String| GlobalDecodeError {
            key: key.to_owned(),
            reason,
        };
        let kind = key.split('/').next().unwrap_or_default();
        let parsed = match kind {
            "domain" => serde_json::from_slice(value).map(GlobalEntity::Domain),
            "role" => serde_json::from_slice(value).map(GlobalEntity::Role),
            "implied" => serde_json::from_slice(value).map(GlobalEntity::Implied),
            "region" => serde_json::from_slice(value).map(GlobalEntity::Region),
            "service" => serde_json::from_slice(value).map(GlobalEntity::Service),
            "endpoint" => serde_json::from_slice(value).map(GlobalEntity::Endpoint),
            other => return Err(err(format!("unknown kind {other:?}"))),
        };
        let entity = parsed.map_err(|e| err(e.to_string()))?;
        if entity.key() != key {
            return Err(err("key does not match the entity".into()));
        }
        Ok(entity)
    }
}

/// Builds a global-data snapshot from global entries.
pub fn global_data(entries: impl IntoIterator<Item = GlobalEntity>) -> GlobalData {
    let (mut domains, mut roles, mut rules) = (vec![], vec![], vec![]);
    let (mut regions, mut services, mut endpoints) = (vec![], vec![], vec![]);
    for e in entries {
        match e {
            GlobalEntity::Domain(x) => domains.push(x),
            GlobalEntity::Role(x) => roles.push(x),
            GlobalEntity::Implied(x) => rules.push(x),
            GlobalEntity::Region(x) => regions.push(x),
            GlobalEntity::Service(x) => services.push(x),
            GlobalEntity::Endpoint(x) => endpoints.push(x),
        }
    }
    GlobalData::new(domains, roles, rules, regions, services, endpoints)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::ids::RoleId;

    #[test]
    fn global_entries_round_trip() {
        let d = GlobalEntity::Domain(Domain {
            id: DomainId::new("default"),
            name: "Default".into(),
            description: String::new(),
            enabled: true,
        });
        assert_eq!(d.key(), "domain/default");
        assert_eq!(GlobalEntity::decode(&d.key(), &d.to_bytes()).unwrap(), d);
        assert!(GlobalEntity::decode("domain/other", &d.to_bytes()).is_err());
        assert!(GlobalEntity::decode("galaxy/x", b"{}").is_err());
        let g = global_data([d]);
        assert_eq!(g.domain_name(&DomainId::new("default")), "Default");
    }

    #[test]
    fn no_stored_rule_makes_a_role_imply_admin() {
        let role = |id: &str, name: &str| {
            GlobalEntity::Role(Role {
                id: RoleId::new(id),
                name: name.into(),
                domain_id: None,
                description: None,
            })
        };
        let rule = |prior: &str, implied: &str| {
            GlobalEntity::Implied(ImpliedRole {
                prior: RoleId::new(prior),
                implied: RoleId::new(implied),
            })
        };
        let g = global_data([
            role("a", "admin"),
            role("m", "member"),
            role("r", "reader"),
            rule("a", "m"),
            rule("m", "r"),
            rule("r", "a"),
        ]);
        let ids = |v: Vec<RoleId>| v.into_iter().map(|r| r.to_string()).collect::<Vec<_>>();
        assert_eq!(ids(g.effective_roles([&RoleId::new("r")])), ["r"]);
        assert_eq!(ids(g.effective_roles([&RoleId::new("a")])), ["a", "m", "r"]);
    }

    #[test]
    fn membership_values_are_sorted_json_lists() {
        let set: std::collections::BTreeSet<ShardId> = ["shard-2", "shard-0"]
            .into_iter()
            .map(ShardId::new)
            .collect();
        let value = membership::encode(&set);
        assert_eq!(value, br#"["shard-0","shard-2"]"#);
        assert_eq!(membership::decode(&value).unwrap(), set);
        assert!(membership::decode(b"{}").is_err());
        assert_eq!(membership::key(&UserId::new("u1")), "u1");
    }

    #[test]
    fn member_key_round_trip() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
        let m = Member {
            id: ShardId::new("s1"),
            url: "http://127.0.0.1:1".into(),
            weight: 1,
            status: MemberStatus::Active,
            kid: "s1.1".into(),
            public_key: Member::encode_key(&key),
            certificates: vec![],
            trusted_until: None,
        };
        assert_eq!(m.verifying_key().unwrap(), key);
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains("\"status\":\"active\""));
        assert!(
            !json.contains("certificates"),
            "old readers see old records"
        );
        let mut renewed = m.clone();
        renewed.certificates = vec![
            MemberCert::new("s1.1", b"der"),
            MemberCert::new("s1.2", b"new"),
        ];
        let back: Member = serde_json::from_str(&serde_json::to_string(&renewed).unwrap()).unwrap();
        assert_eq!(back, renewed);
        assert_eq!(back.certificates[1].der_bytes().unwrap(), b"new");
    }
}
