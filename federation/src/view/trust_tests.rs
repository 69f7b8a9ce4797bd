//! The view under a federation CA: only certified keys are trusted, within
//! their certificates' validity; renewal; retired members' keys expire.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use keyfed_pki::{signing_request, FederationCa};
use keyfed_shared::federation::{Member, MemberCert, MemberStatus};
use keyfed_shared::ids::ShardId;
use keyfed_shared::time::now_micros;

use super::{FederationView, Trust};
use crate::testutil::{assert_eventually, embedded, member, put_member, signing_key};

const DAY: i64 = 86_400;

fn now() -> i64 {
    now_micros() / 1_000_000
}

/// Member `id` certified by `ca` for kid `<id>.1`, issued at `at`.
fn certified(ca: &FederationCa, id: &str, at: i64, validity: i64) -> Member {
    let mut m = member(id, MemberStatus::Active);
    m.certificates = vec![cert(ca, id, &signing_key(id), "1", at, validity)];
    m
}

fn cert(
    ca: &FederationCa,
    id: &str,
    key: &SigningKey,
    serial: &str,
    at: i64,
    validity: i64,
) -> MemberCert {
    let csr = signing_request(id, key).unwrap();
    let der = ca.issue(&csr, id, at, validity).unwrap();
    MemberCert::new(format!("{id}.{serial}"), &der)
}

async fn view(
    ca: &FederationCa,
) -> (
    tempfile::TempDir,
    Arc<dyn keyfed_directory::Directory>,
    Arc<FederationView>,
) {
    let (tmp, raw) = embedded();
    let trust = Trust::Ca(Arc::new(ca.cert().clone()));
    let view = FederationView::start_with_trust(raw.clone(), trust)
        .await
        .unwrap();
    // The tests write as an issuer would: every entry sealed with the CA
    // key (the view checks certificates on top of that).
    (tmp, crate::testutil::as_issuer(raw, ca), view)
}

/// A certificate for `id` from a CA of the rogue's own making (same name
/// as the federation's).
fn self_signed(id: &str, key: &SigningKey) -> MemberCert {
    let rogue = FederationCa::generate("keyfed federation CA", now(), DAY).unwrap();
    cert(&rogue, id, key, "1", now(), DAY)
}

#[tokio::test]
async fn only_members_certified_by_the_ca_are_trusted() {
    let ca = FederationCa::generate("keyfed federation CA", now(), 365 * DAY).unwrap();
    let (_tmp, dir, view) = view(&ca).await;
    put_member(dir.as_ref(), &certified(&ca, "s1", now(), DAY)).await;
    // Registered, but certified by a CA of its own making.
    let mut rogue = member("s2", MemberStatus::Active);
    rogue.certificates = vec![self_signed("s2", &signing_key("s2"))];
    put_member(dir.as_ref(), &rogue).await;
    // Registered with no certificate at all.
    put_member(dir.as_ref(), &member("s3", MemberStatus::Active)).await;
    // Certified, but for another member's name.
    let mut thief = member("s4", MemberStatus::Active);
    thief.certificates = vec![cert(&ca, "s1", &signing_key("s4"), "1", now(), DAY)];
    thief.certificates[0].kid = "s4.1".into();
    put_member(dir.as_ref(), &thief).await;
    put_member(dir.as_ref(), &certified(&ca, "s5", now(), DAY)).await;

    assert_eventually!(view.key("s5.1").is_some());
    assert_eq!(view.key("s1.1"), Some(signing_key("s1").verifying_key()));
    for kid in ["s2.1", "s3.1", "s4.1"] {
        assert!(view.key(kid).is_none(), "{kid} must not be trusted");
    }
    // Untrusted records are not members at all: never placed on.
    let ids: Vec<_> = view.members().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["s1", "s5"].map(ShardId::new));
}

#[tokio::test]
async fn expired_certificates_are_not_trusted() {
    let ca = FederationCa::generate("keyfed federation CA", now() - 30 * DAY, 365 * DAY).unwrap();
    let (_tmp, dir, view) = view(&ca).await;
    put_member(dir.as_ref(), &certified(&ca, "old", now() - 20 * DAY, DAY)).await;
    put_member(dir.as_ref(), &certified(&ca, "s1", now(), DAY)).await;
    assert_eventually!(view.key("s1.1").is_some());
    assert!(view.key("old.1").is_none());
    // A certificate that expires while followed drops out by itself.
    put_member(dir.as_ref(), &certified(&ca, "brief", now() - 300, 302)).await;
    assert_eventually!(view.key("brief.1").is_some());
    assert_eventually!(view.key("brief.1").is_none(), Duration::from_secs(15));
}

#[tokio::test]
async fn a_renewed_key_and_the_old_one_both_verify() {
    let ca = FederationCa::generate("keyfed federation CA", now(), 365 * DAY).unwrap();
    let (_tmp, dir, view) = view(&ca).await;
    let mut m = certified(&ca, "s1", now(), DAY);
    put_member(dir.as_ref(), &m).await;
    assert_eventually!(view.key("s1.1").is_some());
    let new_key = SigningKey::from_bytes(&[42; 32]);
    m.certificates
        .push(cert(&ca, "s1", &new_key, "2", now(), 30 * DAY));
    m.kid = "s1.2".into();
    m.public_key = Member::encode_key(&new_key.verifying_key());
    put_member(dir.as_ref(), &m).await;
    assert_eventually!(view.key("s1.2") == Some(new_key.verifying_key()));
    assert_eq!(view.key("s1.1"), Some(signing_key("s1").verifying_key()));
}

#[tokio::test]
async fn a_rotated_out_key_is_dropped_at_its_retire_at() {
    let ca = FederationCa::generate("keyfed federation CA", now(), 365 * DAY).unwrap();
    let (_tmp, dir, view) = view(&ca).await;
    let mut m = certified(&ca, "s1", now(), DAY);
    m.certificates[0].retire_at = Some(now() + 3);
    let new_key = SigningKey::from_bytes(&[43; 32]);
    m.certificates
        .push(cert(&ca, "s1", &new_key, "2", now(), DAY));
    put_member(dir.as_ref(), &m).await;
    assert_eventually!(view.key("s1.1").is_some() && view.key("s1.2").is_some());
    assert_eventually!(view.key("s1.1").is_none(), Duration::from_secs(15));
    assert_eq!(view.key("s1.2"), Some(new_key.verifying_key()));
}

#[tokio::test]
async fn a_retired_members_keys_are_dropped_after_its_last_token() {
    let ca = FederationCa::generate("keyfed federation CA", now(), 365 * DAY).unwrap();
    let (_tmp, dir, view) = view(&ca).await;
    let mut m = certified(&ca, "s1", now(), DAY);
    m.status = MemberStatus::Retired;
    m.trusted_until = Some(now() + 3);
    put_member(dir.as_ref(), &m).await;
    assert_eventually!(view.key("s1.1").is_some());
    assert!(view.ring().is_none(), "a retired member takes no tenants");
    assert_eventually!(view.key("s1.1").is_none(), Duration::from_secs(15));
    assert!(view.member(&ShardId::new("s1")).is_some(), "still listed");
}

#[tokio::test]
async fn registry_trust_keeps_retired_keys_until_trusted_until() {
    let (_tmp, dir) = embedded();
    let view = FederationView::start(dir.clone()).await.unwrap();
    let mut m = member("s1", MemberStatus::Retired);
    m.trusted_until = Some(now() - 1);
    put_member(dir.as_ref(), &m).await;
    put_member(dir.as_ref(), &member("s2", MemberStatus::Retired)).await;
    assert_eventually!(view.key("s2.1").is_some());
    assert!(view.key("s1.1").is_none());
}
