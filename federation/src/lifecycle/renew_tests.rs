#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use keyfed_directory::{Bucket, Directory};
use keyfed_pki::{pem_to_der, signing_request, FederationCa};
use keyfed_shared::federation::{MemberCert, MemberStatus};

use super::renew::{renew, RenewRequest, MAX_SKEW_SECS};
use super::LifecycleError;
use crate::testutil::{embedded, member, signing_key};

pub(super) const NOW: i64 = 1_900_000_000;
pub(super) const DAY: i64 = 86_400;

pub(super) async fn setup() -> (
    tempfile::TempDir,
    std::sync::Arc<dyn Directory>,
    FederationCa,
) {
    let (tmp, dir) = embedded();
    let ca = FederationCa::generate("keyfed federation CA", NOW, 365 * DAY).unwrap();
    let mut m = member("s1", MemberStatus::Active);
    let csr = signing_request("s1", &signing_key("s1")).unwrap();
    m.certificates = vec![MemberCert::new(
        "s1.1",
        &ca.issue(&csr, "s1", NOW, DAY).unwrap(),
    )];
    let value = Bytes::from(serde_json::to_vec(&m).unwrap());
    dir.kv(Bucket::Members).put("s1", value).await.unwrap();
    (tmp, dir, ca)
}

fn request(current: &SigningKey, kid: &str, at: i64, nonce: u8) -> RenewRequest {
    let new_key = SigningKey::from_bytes(&[99; 32]);
    let csr = signing_request("s1", &new_key).unwrap();
    RenewRequest::signed("s1", kid, csr, current, at, [nonce; 16])
}

#[track_caller]
fn refused<T: std::fmt::Debug>(r: Result<T, LifecycleError>) {
    assert!(matches!(r, Err(LifecycleError::Refused)), "{r:?}");
}

#[tokio::test]
async fn renewal_needs_the_current_key_and_a_fresh_request() {
    let (_tmp, dir, ca) = setup().await;
    let d = dir.as_ref();
    let current = signing_key("s1");
    // Signed with another key, or naming an unknown kid or member: refused.
    refused(
        renew(
            d,
            &ca,
            &request(&signing_key("x"), "s1.1", NOW, 1),
            NOW,
            DAY,
        )
        .await,
    );
    refused(renew(d, &ca, &request(&current, "s1.7", NOW, 2), NOW, DAY).await);
    let mut stranger = request(&current, "s1.1", NOW, 3);
    stranger.shard_id = "s2".into();
    refused(renew(d, &ca, &stranger, NOW, DAY).await);
    // A field changed after signing: refused.
    let mut tampered = request(&current, "s1.1", NOW, 4);
    tampered.csr = signing_request("s1", &signing_key("y")).unwrap();
    refused(renew(d, &ca, &tampered, NOW, DAY).await);
    // Stale or future timestamps: refused.
    let stale = request(&current, "s1.1", NOW - MAX_SKEW_SECS - 1, 5);
    refused(renew(d, &ca, &stale, NOW, DAY).await);
    let future = request(&current, "s1.1", NOW + MAX_SKEW_SECS + 1, 6);
    refused(renew(d, &ca, &future, NOW, DAY).await);
    // The extremes too (found by the fuzz test: `i64::MIN` overflowed).
    for at in [i64::MIN, i64::MAX] {
        refused(renew(d, &ca, &request(&current, "s1.1", at, 10), NOW, DAY).await);
    }
    // A CSR for the current key itself: invalid.
    let csr = signing_request("s1", &current).unwrap();
    let same = RenewRequest::signed("s1", "s1.1", csr, &current, NOW, [7; 16]);
    let r = renew(d, &ca, &same, NOW, DAY).await;
    assert!(matches!(r, Err(LifecycleError::Invalid(_))), "{r:?}");
    // A good request: a certificate for the new key, naming s1.
    let good = request(&current, "s1.1", NOW, 8);
    let grant = renew(d, &ca, &good, NOW + 1, DAY).await.unwrap();
    let der = pem_to_der(&grant.certificate).unwrap();
    let signer = ca.cert().verify_signer(&der, "s1", NOW + 1).unwrap();
    assert_eq!(
        signer.key,
        SigningKey::from_bytes(&[99; 32]).verifying_key()
    );
    // Replayed: refused.
    refused(renew(d, &ca, &good, NOW + 2, DAY).await);
    // The current certificate expired: refused.
    refused(
        renew(
            d,
            &ca,
            &request(&current, "s1.1", NOW + DAY + 1, 9),
            NOW + DAY + 1,
            DAY,
        )
        .await,
    );
}

#[tokio::test]
async fn used_nonces_are_pruned_after_their_replay_window() {
    let (_tmp, dir, ca) = setup().await;
    let d = dir.as_ref();
    let current = signing_key("s1");
    renew(d, &ca, &request(&current, "s1.1", NOW, 7), NOW, DAY)
        .await
        .unwrap();
    let nonces = || async {
        d.kv(Bucket::Credentials)
            .snapshot("renew/")
            .await
            .unwrap()
            .entries
            .len()
    };
    assert_eq!(nonces().await, 1);
    // Within the window the nonce stays (a replay is refused)…
    assert_eq!(
        super::renew::prune_nonces(d, NOW + MAX_SKEW_SECS)
            .await
            .unwrap(),
        0
    );
    refused(renew(d, &ca, &request(&current, "s1.1", NOW, 7), NOW, DAY).await);
    // …after it, a renewal prunes it: its timestamp is refused anyway.
    let later = NOW + MAX_SKEW_SECS + 1;
    renew(d, &ca, &request(&current, "s1.1", later, 8), later, DAY)
        .await
        .unwrap();
    assert_eq!(nonces().await, 1, "only the fresh nonce is left");
    refused(renew(d, &ca, &request(&current, "s1.1", NOW, 7), later, DAY).await);
}
