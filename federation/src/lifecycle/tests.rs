#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use keyfed_directory::Bucket;
use keyfed_pki::join_token::Purpose;
use keyfed_pki::tls_request::tls_request;
use keyfed_pki::{pem_to_der, signing_request, FederationCa, MemberKind};
use keyfed_shared::federation::{Member, MemberStatus};
use keyfed_shared::ids::ShardId;

use super::admit::{admit, JoinRequest};
use super::credentials::{check_admin_token, consume_join_token, issue, revoke};
use super::lease;
use super::LifecycleError;
use crate::testutil::{assert_eventually, embedded, signing_key};
use crate::view::{FederationView, Trust};

const NOW: i64 = 1_900_000_000;

fn request(id: &str, token: &str) -> JoinRequest {
    JoinRequest {
        shard_id: id.into(),
        csr: signing_request(id, &signing_key(id)).unwrap(),
        advertise_url: format!("http://{id}.invalid/"),
        weight: 2,
        join_token: token.into(),
        tls_csr: None,
    }
}

#[tokio::test]
async fn a_join_token_is_single_use_and_expires() {
    let (_tmp, dir) = embedded();
    let token = issue(dir.as_ref(), Purpose::Join, NOW, 600).await.unwrap();
    assert!(matches!(
        check_admin_token(dir.as_ref(), &token, NOW).await,
        Err(LifecycleError::Refused)
    ));
    consume_join_token(dir.as_ref(), &token, NOW + 10)
        .await
        .unwrap();
    assert!(matches!(
        consume_join_token(dir.as_ref(), &token, NOW + 11).await,
        Err(LifecycleError::Refused)
    ));
    let late = issue(dir.as_ref(), Purpose::Join, NOW, 600).await.unwrap();
    assert!(matches!(
        consume_join_token(dir.as_ref(), &late, NOW + 600).await,
        Err(LifecycleError::Refused)
    ));
    // Issuing prunes the expired record.
    issue(dir.as_ref(), Purpose::Join, NOW + 601, 600)
        .await
        .unwrap();
    let left = dir.kv(Bucket::Credentials).snapshot("join/").await.unwrap();
    assert_eq!(left.entries.len(), 1);
    // Garbage and forged secrets are refused alike.
    for bad in ["", "garbage", &format!("{}x", &late[..late.len() - 1])] {
        assert!(matches!(
            consume_join_token(dir.as_ref(), bad, NOW).await,
            Err(LifecycleError::Refused)
        ));
    }
}

#[tokio::test]
async fn of_concurrent_joins_with_one_token_exactly_one_wins() {
    let (_tmp, dir) = embedded();
    let token = issue(dir.as_ref(), Purpose::Join, NOW, 600).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (dir, token) = (dir.clone(), token.clone());
            tokio::spawn(async move { consume_join_token(dir.as_ref(), &token, NOW).await })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap().is_ok() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}

#[tokio::test]
async fn admin_tokens_verify_until_revoked() {
    let (_tmp, dir) = embedded();
    let token = issue(dir.as_ref(), Purpose::Admin, NOW, 60).await.unwrap();
    check_admin_token(dir.as_ref(), &token, NOW).await.unwrap();
    check_admin_token(dir.as_ref(), &token, NOW + 1)
        .await
        .unwrap();
    assert!(consume_join_token(dir.as_ref(), &token, NOW).await.is_err());
    revoke(dir.as_ref(), &token, Purpose::Admin).await.unwrap();
    assert!(check_admin_token(dir.as_ref(), &token, NOW).await.is_err());
}

#[tokio::test]
async fn an_admitted_shard_is_recorded_joining_and_trusted_by_ca_views() {
    let (_tmp, raw) = embedded();
    let now = keyfed_shared::time::now_micros() / 1_000_000;
    let ca = FederationCa::generate("keyfed federation CA", now, 3650 * 86_400).unwrap();
    let view =
        FederationView::start_with_trust(raw.clone(), Trust::Ca(Arc::new(ca.cert().clone())))
            .await
            .unwrap();
    let dir = crate::testutil::as_issuer(raw, &ca);
    let token = issue(dir.as_ref(), Purpose::Join, now, 600).await.unwrap();
    let grant = admit(dir.as_ref(), &ca, &request("s3", &token), now, 86_400)
        .await
        .unwrap();
    assert_eq!(grant.kid, "s3.1");
    assert_eq!(grant.ca_certificate, ca.cert().pem());
    let signer = ca
        .cert()
        .verify_signer(&pem_to_der(&grant.certificate).unwrap(), "s3", now)
        .unwrap();
    assert_eq!(signer.key, signing_key("s3").verifying_key());
    let entry = dir.kv(Bucket::Members).get("s3").await.unwrap().unwrap();
    let member: Member = serde_json::from_slice(&entry.value).unwrap();
    assert_eq!(member.status, MemberStatus::Joining);
    assert_eq!(member.url, "http://s3.invalid");
    assert_eq!(member.weight, 2);
    assert_eventually!(view.key("s3.1") == Some(signing_key("s3").verifying_key()));
    assert!(view.ring().is_none(), "joining members take no tenants yet");
    assert!(view.member(&ShardId::new("s3")).is_some());

    // The token is spent; an existing id is refused before any token is.
    let again = admit(dir.as_ref(), &ca, &request("s4", &token), now, 86_400).await;
    assert!(matches!(again, Err(LifecycleError::Refused)), "{again:?}");
    let fresh = issue(dir.as_ref(), Purpose::Join, now, 600).await.unwrap();
    let dup = admit(dir.as_ref(), &ca, &request("s3", &fresh), now, 86_400).await;
    assert!(matches!(dup, Err(LifecycleError::Conflict(_))), "{dup:?}");
    // s3 holds the join lease until it is active: s5 waits, token unspent.
    let busy = admit(dir.as_ref(), &ca, &request("s5", &fresh), now, 86_400).await;
    assert!(
        matches!(&busy, Err(LifecycleError::Busy(m)) if m.contains("\"s3\" is joining")),
        "{busy:?}"
    );
    assert!(lease::release(dir.as_ref(), "s3").await.unwrap());
    // A CSR for another shard is refused and does not spend the token.
    let mut wrong = request("s5", &fresh);
    wrong.csr = signing_request("s6", &signing_key("s5")).unwrap();
    let bad = admit(dir.as_ref(), &ca, &wrong, now, 86_400).await;
    assert!(matches!(bad, Err(LifecycleError::Invalid(_))), "{bad:?}");
    let mut bad_url = request("s5", &fresh);
    bad_url.advertise_url = "ftp://x".into();
    assert!(matches!(
        admit(dir.as_ref(), &ca, &bad_url, now, 86_400).await,
        Err(LifecycleError::Invalid(_))
    ));
    // A TLS CSR for another member is refused, the token unspent; one
    // for the shard gets a TLS certificate for its advertised host.
    let tls_key = keyfed_pki::tls_request::generate_tls_key().unwrap();
    let mut wrong_tls = request("s5", &fresh);
    wrong_tls.tls_csr = Some(tls_request(MemberKind::Shard, "s6", &tls_key).unwrap());
    assert!(matches!(
        admit(dir.as_ref(), &ca, &wrong_tls, now, 86_400).await,
        Err(LifecycleError::Invalid(_))
    ));
    let mut with_tls = request("s5", &fresh);
    with_tls.tls_csr = Some(tls_request(MemberKind::Shard, "s5", &tls_key).unwrap());
    let grant = admit(dir.as_ref(), &ca, &with_tls, now, 86_400)
        .await
        .unwrap();
    assert!(lease::release(dir.as_ref(), "s5").await.unwrap());
    let tls = pem_to_der(&grant.tls_certificate.unwrap()).unwrap();
    let key = ca
        .cert()
        .verify_member_tls(&tls, MemberKind::Shard, "s5", now)
        .unwrap();
    let pair = rcgen_key(&tls_key);
    assert_eq!(key, pair);
    assert!(grant_has_no_tls_without_csr(&ca, dir.as_ref(), now).await);
}

/// The raw public key of a PKCS#8 PEM Ed25519 key.
fn rcgen_key(pem: &str) -> Vec<u8> {
    use ed25519_dalek::pkcs8::DecodePrivateKey;
    ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
        .unwrap()
        .verifying_key()
        .to_bytes()
        .to_vec()
}

async fn grant_has_no_tls_without_csr(
    ca: &FederationCa,
    dir: &dyn keyfed_directory::Directory,
    now: i64,
) -> bool {
    let token = issue(dir, Purpose::Join, now, 600).await.unwrap();
    let grant = admit(dir, ca, &request("s7", &token), now, 86_400)
        .await
        .unwrap();
    grant.tls_certificate.is_none()
}

#[tokio::test]
async fn of_concurrent_lease_takers_one_wins_and_an_expired_lease_is_taken_over() {
    let (_tmp, dir) = embedded();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let dir = dir.clone();
            tokio::spawn(async move {
                lease::acquire(dir.as_ref(), &format!("j{i}"), NOW, 60)
                    .await
                    .map(|()| i)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(i) => winners.push(i),
            Err(lease::LeaseError::Held { holder, expires_at }) => {
                assert!(holder.starts_with('j'), "{holder}");
                assert_eq!(expires_at, NOW + 60);
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let holder = format!("j{}", winners[0]);
    let other = if winners[0] == 0 { "j1" } else { "j0" };
    // The holder renews; another cannot take it before it expires, nor
    // release it.
    lease::acquire(dir.as_ref(), &holder, NOW + 30, 60)
        .await
        .unwrap();
    assert!(lease::acquire(dir.as_ref(), other, NOW + 89, 60)
        .await
        .is_err());
    assert!(!lease::release(dir.as_ref(), other).await.unwrap());
    // Expired (a crashed joiner): taken over; the old holder cannot
    // release the new one's lease.
    lease::acquire(dir.as_ref(), other, NOW + 90, 60)
        .await
        .unwrap();
    assert!(!lease::release(dir.as_ref(), &holder).await.unwrap());
    assert!(lease::acquire(dir.as_ref(), &holder, NOW + 91, 60)
        .await
        .is_err());
    assert!(lease::release(dir.as_ref(), other).await.unwrap());
    lease::acquire(dir.as_ref(), &holder, NOW + 92, 60)
        .await
        .unwrap();
}

#[tokio::test]
async fn of_two_concurrent_admissions_one_waits_with_its_token_unspent() {
    let (_tmp, dir) = embedded();
    let now = keyfed_shared::time::now_micros() / 1_000_000;
    let ca = Arc::new(FederationCa::generate("keyfed federation CA", now, 86_400).unwrap());
    let mut tasks = Vec::new();
    for id in ["a1", "a2"] {
        let token = issue(dir.as_ref(), Purpose::Join, now, 600).await.unwrap();
        let (dir, ca) = (dir.clone(), ca.clone());
        tasks.push(tokio::spawn(async move {
            let outcome = admit(dir.as_ref(), &ca, &request(id, &token), now, 86_400).await;
            (id, token, outcome)
        }));
    }
    let mut admitted = Vec::new();
    let mut waiting = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (id, _, Ok(_)) => admitted.push(id),
            (id, token, Err(LifecycleError::Busy(m))) => {
                assert!(m.contains("one at a time"), "{m}");
                waiting.push((id, token));
            }
            (id, _, Err(e)) => panic!("{id}: {e}"),
        }
    }
    assert_eq!((admitted.len(), waiting.len()), (1, 1));
    let (id, token) = waiting.pop().unwrap();
    assert!(dir.kv(Bucket::Members).get(id).await.unwrap().is_none());
    // Once the first is active (its lease released), the second is
    // admitted with the same token.
    assert!(lease::release(dir.as_ref(), admitted[0]).await.unwrap());
    admit(dir.as_ref(), &ca, &request(id, &token), now, 86_400)
        .await
        .unwrap();
}
