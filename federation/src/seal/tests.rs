//! Sealed entries: what verifies, what is refused, and the sealed
//! directory ignoring forged writes whoever made them.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use keyfed_directory::{Bucket, Directory};
use keyfed_pki::{signing_request, FederationCa};
use keyfed_shared::federation::{status_key, MemberStatus, StatusAttestation};
use keyfed_shared::ids::ShardId;
use keyfed_shared::time::now_micros;

use super::*;
use crate::testutil::{embedded, signing_key};

fn now() -> i64 {
    now_micros() / 1_000_000
}

fn ca() -> FederationCa {
    FederationCa::generate("test CA", now(), 86_400).unwrap()
}

/// Member `id`'s signer, certified by `ca`.
fn member(ca: &FederationCa, id: &str) -> EntrySigner {
    let key: SigningKey = signing_key(id);
    let der = ca
        .issue(&signing_request(id, &key).unwrap(), id, now(), 86_400)
        .unwrap();
    EntrySigner::Member {
        kid: format!("{id}.1"),
        key,
        cert: Arc::new(der),
    }
}

fn check(ca: &FederationCa) -> EntryCheck {
    EntryCheck::new(Some(Arc::new(ca.cert().clone()))).unwrap()
}

fn ca_signer(ca: &FederationCa) -> EntrySigner {
    EntrySigner::Ca(ca.entry_signing_key().unwrap())
}

const ROLE: &[u8] = br#"{"id":"r1","name":"admin"}"#;

#[test]
fn a_sealed_entry_opens_only_where_and_as_it_was_written() {
    let ca = ca();
    let s1 = member(&ca, "s1");
    let sealed = s1.seal(Bucket::Global, "role/r1", ROLE, now()).unwrap();
    let (value, by) = check(&ca)
        .open(Bucket::Global, "role/r1", &sealed, now())
        .unwrap();
    assert_eq!(value, ROLE);
    assert!(matches!(by, SignedBy::Member { ref id, .. } if id == "s1"));
    // Moved to another key or bucket: refused.
    assert!(check(&ca)
        .open(Bucket::Global, "role/r2", &sealed, now())
        .is_err());
    assert!(check(&ca)
        .open(Bucket::Credentials, "role/r1", &sealed, now())
        .is_err());
    // Tampered value: refused.
    let tampered = String::from_utf8(sealed.clone())
        .unwrap()
        .replace("admin", "reader");
    assert!(matches!(
        check(&ca).open(Bucket::Global, "role/r1", tampered.as_bytes(), now()),
        Err(SealError::BadSignature)
    ));
    // Plain JSON, as a raw NATS publish would write it: refused.
    assert!(matches!(
        check(&ca).open(Bucket::Global, "role/r1", ROLE, now()),
        Err(SealError::NotSealed)
    ));
    // Signed by a member certified by another CA: refused.
    let rogue = member(&self::ca(), "s1");
    let forged = rogue.seal(Bucket::Global, "role/r1", ROLE, now()).unwrap();
    assert!(matches!(
        check(&ca).open(Bucket::Global, "role/r1", &forged, now()),
        Err(SealError::Certificate(_))
    ));
    // Signed in the future: refused.
    let later = s1
        .seal(Bucket::Global, "role/r1", ROLE, now() + 3_600)
        .unwrap();
    assert!(check(&ca)
        .open(Bucket::Global, "role/r1", &later, now())
        .is_err());
    // Without a CA nothing is checked, sealed or not.
    let unchecked = EntryCheck::new(None).unwrap();
    assert_eq!(
        unchecked
            .open(Bucket::Global, "role/r1", &sealed, now())
            .unwrap()
            .0,
        ROLE
    );
    assert_eq!(
        unchecked
            .open(Bucket::Global, "role/r1", ROLE, now())
            .unwrap()
            .0,
        ROLE
    );
    // The CA key verifies as the CA.
    let by_ca = ca_signer(&ca)
        .seal(Bucket::Global, "role/r1", ROLE, now())
        .unwrap();
    assert_eq!(
        check(&ca)
            .open(Bucket::Global, "role/r1", &by_ca, now())
            .unwrap()
            .1,
        SignedBy::Ca
    );
}

fn attestation(id: &str, status: MemberStatus, until: Option<i64>) -> Bytes {
    Bytes::from(
        serde_json::to_vec(&StatusAttestation {
            member: ShardId::new(id),
            status,
            trusted_until: until,
            at: now_micros(),
            revoked: false,
        })
        .unwrap(),
    )
}

#[tokio::test]
async fn the_sealed_directory_ignores_forgeries_whoever_wrote_them() {
    let ca = ca();
    let (_tmp, raw) = embedded();
    let s1 = SealedDirectory::wrap(
        raw.clone(),
        check(&ca),
        Arc::new(Signers::new(Some(member(&ca, "s1")), None)),
    );
    let issuer = SealedDirectory::wrap(
        raw.clone(),
        check(&ca),
        Arc::new(Signers::new(Some(member(&ca, "s2")), Some(ca_signer(&ca)))),
    );
    let global = s1.kv(Bucket::Global);
    let mut watch = global.watch_from(0).await.unwrap();
    // What a member writes reads back plain, everywhere.
    global
        .create("role/r1", Bytes::from_static(ROLE))
        .await
        .unwrap();
    let read = issuer.kv(Bucket::Global).get("role/r1").await.unwrap();
    assert_eq!(read.unwrap().value, ROLE);
    assert_eq!(watch.next().await.unwrap().value.unwrap(), ROLE);
    // A raw write (anyone reaching NATS) is ignored by every reader.
    raw.kv(Bucket::Global)
        .put("implied/member/admin", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert!(global.get("implied/member/admin").await.unwrap().is_none());
    let snapshot = global.snapshot("").await.unwrap();
    assert_eq!(snapshot.entries.len(), 1, "{snapshot:?}");
    global
        .put("role/r2", Bytes::from_static(br#"{"id":"r2"}"#))
        .await
        .unwrap();
    let forged = watch.next().await.unwrap();
    assert_eq!(
        (forged.key.as_str(), forged.value),
        ("implied/member/admin", None),
        "a watcher sees the forgery as no value"
    );
    assert_eq!(watch.next().await.unwrap().key, "role/r2");
    assert!(s1.refused() >= 2, "counted: {}", s1.refused());
    // A member can write its own record, not another's; only the CA
    // writes status attestations and join tokens.
    let members = s1.kv(Bucket::Members);
    members
        .put("s1", Bytes::from_static(br#"{"id":"s1"}"#))
        .await
        .unwrap();
    assert!(members
        .put("s2", Bytes::from_static(br#"{"id":"s2"}"#))
        .await
        .is_err());
    let key = status_key(&ShardId::new("s1"));
    assert!(members
        .put(&key, attestation("s1", MemberStatus::Active, None))
        .await
        .is_err());
    assert!(s1
        .kv(Bucket::Credentials)
        .put("join/0123", Bytes::from_static(b"{}"))
        .await
        .is_err());
    issuer
        .kv(Bucket::Credentials)
        .put("join/0123", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    assert!(s1
        .kv(Bucket::Credentials)
        .get("join/0123")
        .await
        .unwrap()
        .is_some());
    // A member's own seal on another member's record, copied in raw, is
    // refused.
    let forged = member(&ca, "s1")
        .seal(Bucket::Members, "s2", br#"{"id":"s2"}"#, now())
        .unwrap();
    raw.kv(Bucket::Members)
        .put("s2", Bytes::from(forged))
        .await
        .unwrap();
    assert!(issuer
        .kv(Bucket::Members)
        .get("s2")
        .await
        .unwrap()
        .is_none());
    // Revoked: s1's signatures from its trusted_until on are refused, by
    // a reader that learns it from the directory.
    issuer
        .kv(Bucket::Members)
        .put(&key, attestation("s1", MemberStatus::Retired, Some(now())))
        .await
        .unwrap();
    let fresh = SealedDirectory::wrap(raw.clone(), check(&ca), Arc::new(Signers::default()));
    global
        .put("role/r3", Bytes::from_static(br#"{"id":"r3"}"#))
        .await
        .unwrap();
    assert!(fresh
        .kv(Bucket::Global)
        .get("role/r3")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn a_revoked_member_signs_nothing_and_what_it_wrote_is_kept() {
    let ca = ca();
    let (_tmp, raw) = embedded();
    let s1_signer = member(&ca, "s1");
    let s1 = SealedDirectory::wrap(
        raw.clone(),
        check(&ca),
        Arc::new(Signers::new(Some(s1_signer.clone()), None)),
    );
    let issuer = SealedDirectory::wrap(
        raw.clone(),
        check(&ca),
        Arc::new(Signers::new(Some(member(&ca, "s2")), Some(ca_signer(&ca)))),
    );
    s1.kv(Bucket::Global)
        .create("role/r1", Bytes::from_static(ROLE))
        .await
        .unwrap();
    s1.kv(Bucket::Members)
        .put("s1", Bytes::from_static(br#"{"id":"s1"}"#))
        .await
        .unwrap();
    // The revoking issuer signs again what s1 wrote, then revokes it.
    assert_eq!(issuer.reseal("s1").await.unwrap(), 2);
    let mut revoked: StatusAttestation =
        serde_json::from_slice(&attestation("s1", MemberStatus::Retired, Some(now()))).unwrap();
    revoked.revoked = true;
    issuer
        .kv(Bucket::Members)
        .put(
            &status_key(&ShardId::new("s1")),
            Bytes::from(serde_json::to_vec(&revoked).unwrap()),
        )
        .await
        .unwrap();
    // A fresh reader: what s1 wrote is kept; what it signs now, even
    // claiming an earlier time, is refused.
    let reader = SealedDirectory::wrap(raw.clone(), check(&ca), Arc::new(Signers::default()));
    let global = reader.kv(Bucket::Global);
    assert_eq!(global.get("role/r1").await.unwrap().unwrap().value, ROLE);
    assert!(reader
        .kv(Bucket::Members)
        .get("s1")
        .await
        .unwrap()
        .is_some());
    let backdated = s1_signer
        .seal(Bucket::Global, "role/r9", br#"{"id":"r9"}"#, now() - 3_600)
        .unwrap();
    raw.kv(Bucket::Global)
        .put("role/r9", Bytes::from(backdated))
        .await
        .unwrap();
    assert!(global.get("role/r9").await.unwrap().is_none());
    // A revocation never turns back into a retirement or activity.
    let mut softer = revoked.clone();
    softer.at += 1;
    softer.revoked = false;
    assert!(!softer.supersedes(&revoked));
}

#[tokio::test]
async fn forged_pins_and_names_are_ignored_and_cannot_hold_a_key() {
    let ca = ca();
    let (_tmp, raw) = embedded();
    let s1 = SealedDirectory::wrap(
        raw.clone(),
        check(&ca),
        Arc::new(Signers::new(Some(member(&ca, "s1")), None)),
    );
    // What a member writes is sealed and reads back plain.
    let names = s1.kv(Bucket::Names);
    names
        .create("user/default/alice", Bytes::from_static(b"u1"))
        .await
        .unwrap();
    let stored = raw
        .kv(Bucket::Names)
        .get("user/default/alice")
        .await
        .unwrap()
        .unwrap();
    assert!(stored.value.starts_with(b"{\"sealed\""));
    assert_eq!(
        names
            .get("user/default/alice")
            .await
            .unwrap()
            .unwrap()
            .value,
        &b"u1"[..]
    );
    // Raw writes of a pin and a name: absent to readers, counted.
    raw.kv(Bucket::Pins)
        .put("project/p1", Bytes::from_static(b"s9"))
        .await
        .unwrap();
    raw.kv(Bucket::Names)
        .put("user/default/bob", Bytes::from_static(b"evil"))
        .await
        .unwrap();
    assert!(s1
        .kv(Bucket::Pins)
        .get("project/p1")
        .await
        .unwrap()
        .is_none());
    assert!(names.get("user/default/bob").await.unwrap().is_none());
    assert_eq!(names.snapshot("user/").await.unwrap().entries.len(), 1);
    assert!(s1.refused() >= 2);
    // A forgery does not hold its key: a signed create replaces it, and a
    // genuine entry still wins over a second create.
    names
        .create("user/default/bob", Bytes::from_static(b"u2"))
        .await
        .unwrap();
    assert_eq!(
        names.get("user/default/bob").await.unwrap().unwrap().value,
        &b"u2"[..]
    );
    assert!(matches!(
        names
            .create("user/default/bob", Bytes::from_static(b"u3"))
            .await,
        Err(keyfed_directory::DirectoryError::AlreadyExists)
    ));
}
