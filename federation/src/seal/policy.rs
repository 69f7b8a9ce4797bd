//! Which directory entries must be signed, and by whom.
//!
//! | bucket | key | signed by |
//! |---|---|---|
//! | members | `<id>` | member `<id>` itself, or the CA (an issuer admitting it) |
//! | members | `status/<id>` | the CA only (retire, revoke) |
//! | global | every key | any member, or the CA |
//! | credentials | `join/<id>` | the CA only (issuers create join tokens) |
//! | credentials | `admin/<id>` | any member, or the CA |
//! | credentials | `renew/…`, `lease/…` | nobody (a forgery only refuses a renewal or delays a join) |
//! | pins | every key | any member, or the CA (a pin routes a tenant) |
//! | names | every key | any member, or the CA (a name routes a login; owners reserve, gateways only read) |
//! | memberships | every key | nobody: NATS permissions only (a forgery only adds or hides shards a role-assignment query asks) |
//!
//! Deletions are never signed: removing an entry grants nothing (a deleted
//! status attestation is ignored by readers that saw it).

use keyfed_directory::Bucket;
use keyfed_shared::federation::STATUS_PREFIX;

/// Who must sign an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Required {
    /// Stored plain.
    Nothing,
    /// The federation CA key.
    Ca,
    /// That member's own key, or the CA key.
    MemberOrCa(String),
    /// Any member's key, or the CA key.
    AnyMemberOrCa,
}

impl Required {
    /// For error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Required::Nothing => "no signature".into(),
            Required::Ca => "the federation CA key (an issuer's config, [trust] ca_key)".into(),
            Required::MemberOrCa(id) => {
                format!("member {id}'s signing key or the federation CA key")
            }
            Required::AnyMemberOrCa => "a member's signing key or the federation CA key".into(),
        }
    }
}

/// Who must sign `key` of `bucket`; see the module doc.
pub(crate) fn required(bucket: Bucket, key: &str) -> Required {
    match bucket {
        Bucket::Members if key.starts_with(STATUS_PREFIX) => Required::Ca,
        Bucket::Members => Required::MemberOrCa(key.to_owned()),
        Bucket::Global => Required::AnyMemberOrCa,
        Bucket::Credentials if key.starts_with("join/") => Required::Ca,
        Bucket::Credentials if key.starts_with("admin/") => Required::AnyMemberOrCa,
        Bucket::Pins | Bucket::Names => Required::AnyMemberOrCa,
        Bucket::Credentials | Bucket::Memberships => Required::Nothing,
    }
}
