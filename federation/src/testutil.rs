//! Helpers shared by the unit tests: an embedded directory in a temporary
//! directory, member records with their signing keys, global entries,
//! claims, and `assert_eventually!` for state that propagates.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use keyfed_directory::{Bucket, Directory, EmbeddedConfig, EmbeddedDirectory};
use keyfed_shared::federation::{GlobalEntity, Member, MemberStatus};
use keyfed_shared::ids::{AuditId, DomainId, ProjectId, RoleId, ShardId, UserId};
use keyfed_shared::model::{Domain, Role};
use keyfed_shared::token::{Claims, Scope, Signer};
use tempfile::TempDir;

/// Polls `$cond` every 5 ms until it holds, panicking after `$within`
/// (default 5 s).
macro_rules! assert_eventually {
    ($cond:expr) => {
        assert_eventually!($cond, std::time::Duration::from_secs(5))
    };
    ($cond:expr, $within:expr) => {{
        let within: std::time::Duration = $within;
        let deadline = std::time::Instant::now() + within;
        loop {
            if $cond {
                break;
            }
            if std::time::Instant::now() >= deadline {
                panic!("not true within {within:?}: {}", stringify!($cond));
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }};
}
pub(crate) use assert_eventually;

/// An embedded directory in a fresh temporary directory (keep the guard).
pub(crate) fn embedded() -> (TempDir, Arc<dyn Directory>) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = EmbeddedDirectory::open(&EmbeddedConfig::new(tmp.path())).unwrap();
    (tmp, Arc::new(dir))
}

/// The signing key of test member `id` (derived from its name).
pub(crate) fn signing_key(id: &str) -> SigningKey {
    let mut seed = [7u8; 32];
    for (i, b) in id.bytes().enumerate() {
        seed[i % 32] ^= b;
    }
    SigningKey::from_bytes(&seed)
}

/// Test member `id`'s token signer (kid `<id>.1`).
pub(crate) fn signer(id: &str) -> Signer {
    Signer::new(format!("{id}.1"), signing_key(id))
}

/// Test member `id`'s record.
pub(crate) fn member(id: &str, status: MemberStatus) -> Member {
    Member {
        id: ShardId::new(id),
        url: format!("http://{id}.invalid"),
        weight: 1,
        status,
        kid: format!("{id}.1"),
        public_key: Member::encode_key(&signing_key(id).verifying_key()),
        certificates: vec![],
        trusted_until: None,
    }
}

/// Writes a member record.
pub(crate) async fn put_member(dir: &dyn Directory, member: &Member) {
    let value = Bytes::from(serde_json::to_vec(member).unwrap());
    dir.kv(Bucket::Members)
        .put(member.id.as_str(), value)
        .await
        .unwrap();
}

/// Writes a global entry.
pub(crate) async fn put_global(dir: &dyn Directory, entity: &GlobalEntity) {
    dir.kv(Bucket::Global)
        .put(&entity.key(), Bytes::from(entity.to_bytes()))
        .await
        .unwrap();
}

/// The default domain, named `Default`.
pub(crate) fn default_domain() -> GlobalEntity {
    GlobalEntity::Domain(Domain {
        id: DomainId::new("default"),
        name: "Default".into(),
        description: String::new(),
        enabled: true,
    })
}

/// A global role.
pub(crate) fn role(id: &str, name: &str) -> GlobalEntity {
    GlobalEntity::Role(Role {
        id: RoleId::new(id),
        name: name.into(),
        domain_id: None,
        description: None,
    })
}

/// Claims of user `alice` in the default domain, scoped to `project` (or
/// unscoped), holding role `r-admin`, valid from `issued_at` to
/// `expires_at` (unix microseconds).
pub(crate) fn claims(project: Option<ProjectId>, issued_at: i64, expires_at: i64) -> Claims {
    Claims {
        user_id: UserId::new("alice-id"),
        user_name: "alice".into(),
        user_domain_id: DomainId::new("default"),
        methods: vec!["password".into()],
        issued_at,
        expires_at,
        audit_ids: vec![AuditId::generate()],
        scope: match project {
            Some(id) => Scope::Project {
                id,
                name: "demo".into(),
                domain_id: DomainId::new("default"),
            },
            None => Scope::Unscoped,
        },
        roles: vec![RoleId::new("r-admin")],
        shard_set: vec![],
    }
}

/// `raw` as an issuer holding `ca` writes it: entries sealed with the CA
/// key, and checked under it.
pub(crate) fn as_issuer(
    raw: Arc<dyn Directory>,
    ca: &keyfed_pki::FederationCa,
) -> Arc<dyn Directory> {
    crate::seal::SealedDirectory::wrap(
        raw,
        crate::seal::EntryCheck::new(Some(Arc::new(ca.cert().clone()))).unwrap(),
        Arc::new(crate::seal::Signers::new(
            None,
            Some(crate::seal::EntrySigner::Ca(
                ca.entry_signing_key().unwrap(),
            )),
        )),
    )
}
