#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use keyfed_directory::{Bucket, Directory};
use keyfed_shared::federation::MemberStatus;
use keyfed_shared::ids::ProjectId;
use keyfed_shared::revocation::{RevocationEvent, RevocationSubject};
use keyfed_shared::time::now_micros;
use keyfed_shared::token::{Signer, TokenError};
use tempfile::TempDir;

use super::*;
use crate::testutil::{
    assert_eventually, claims, default_domain, embedded, member, put_global, put_member, role,
    signer,
};

const HOUR: i64 = 3600 * MICROS;

pub(super) struct Fixture {
    _tmp: TempDir,
    dir: Arc<dyn Directory>,
    view: Arc<FederationView>,
    pub(super) validator: Validator,
}

/// Members s1 and s2 (active), the default domain and role `admin`.
pub(super) async fn fixture() -> Fixture {
    let (tmp, dir) = embedded();
    put_member(dir.as_ref(), &member("s1", MemberStatus::Active)).await;
    put_member(dir.as_ref(), &member("s2", MemberStatus::Active)).await;
    put_global(dir.as_ref(), &default_domain()).await;
    put_global(dir.as_ref(), &role("r-admin", "admin")).await;
    let view = FederationView::start(dir.clone()).await.unwrap();
    let revocations = Revocations::start(dir.clone());
    let config = ValidatorConfig {
        allow_expired_window_secs: 3600 * 2,
        ..ValidatorConfig::default()
    };
    let validator = Validator::new(view.clone(), revocations, &config);
    assert_eventually!(validator.ready());
    Fixture {
        _tmp: tmp,
        dir,
        view,
        validator,
    }
}

fn fresh_token(signer: &Signer) -> String {
    let now = now_micros();
    signer
        .sign(&claims(Some(ProjectId::new("p1")), now - 1, now + HOUR))
        .unwrap()
}

#[tokio::test]
async fn a_member_token_validates_and_is_cached() {
    let f = fixture().await;
    let token = fresh_token(&signer("s1"));
    let claims = f.validator.validate(&token, false).unwrap();
    assert_eq!(claims.user_name, "alice");
    let stats = f.validator.cache_stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (0, 1, 1));
    let again = f.validator.validate(&token, false).unwrap();
    assert_eq!(again, claims);
    assert_eq!(f.validator.cache_stats().hits, 1);
}

#[tokio::test]
async fn bad_tokens_are_rejected_without_touching_the_cache() {
    let f = fixture().await;
    let v = &f.validator;
    assert!(matches!(
        v.validate("garbage", false),
        Err(TokenError::Malformed(_))
    ));
    assert_eq!(
        v.validate(&fresh_token(&signer("s9")), false),
        Err(TokenError::UnknownSigner)
    );
    let impostor = Signer::new("s1.1", SigningKey::from_bytes(&[42; 32]));
    let forged = fresh_token(&impostor);
    assert_eq!(v.validate(&forged, false), Err(TokenError::BadSignature));
    // A bad signature is not cached: it fails again the same way.
    assert_eq!(v.validate(&forged, false), Err(TokenError::BadSignature));
    let stats = v.cache_stats();
    assert_eq!((stats.hits, stats.entries), (0, 0));
}

#[tokio::test]
async fn expiry_and_the_allow_expired_window() {
    let f = fixture().await;
    let v = &f.validator;
    let now = now_micros();
    let s1 = signer("s1");
    let expired = s1.sign(&claims(None, now - 2 * HOUR, now - HOUR)).unwrap();
    assert_eq!(v.validate(&expired, false), Err(TokenError::Expired));
    assert!(v.validate(&expired, true).is_ok(), "within the window");
    let long_gone = s1
        .sign(&claims(None, now - 4 * HOUR, now - 3 * HOUR))
        .unwrap();
    assert_eq!(v.validate(&long_gone, true), Err(TokenError::Expired));

    // A cached token is re-checked for expiry on every hit.
    let token = s1.sign(&claims(None, now - 1, now + HOUR)).unwrap();
    assert!(v.validate_at(&token, false, now).is_ok());
    let later = now + HOUR + 1;
    assert_eq!(
        v.validate_at(&token, false, later),
        Err(TokenError::Expired)
    );
    assert!(v.validate_at(&token, true, later).is_ok());
}

#[tokio::test]
async fn a_token_from_the_future_is_refused_and_revocable_ones_are_not() {
    let f = fixture().await;
    let v = &f.validator;
    let now = now_micros();
    let skew = DEFAULT_MAX_CLOCK_SKEW_SECS as i64 * MICROS;
    let s1 = signer("s1");
    let ahead = s1.sign(&claims(None, now + skew / 2, now + HOUR)).unwrap();
    assert!(v.validate(&ahead, false).is_ok(), "a clock a little ahead");
    let future = s1
        .sign(&claims(None, now + 10 * skew, now + 10 * skew + HOUR))
        .unwrap();
    assert_eq!(v.validate(&future, false), Err(TokenError::IssuedInFuture));
    assert_eq!(
        v.validate(&future, true),
        Err(TokenError::IssuedInFuture),
        "allow_expired does not let it in either"
    );
    // Once the clock reaches it (less the skew), it is a token like others.
    assert!(v.validate_at(&future, false, now + 9 * skew).is_ok());
}

#[tokio::test]
async fn a_revocation_reaches_a_cached_token_within_a_second() {
    let f = fixture().await;
    let token = fresh_token(&signer("s2"));
    let claims = f.validator.validate(&token, false).unwrap();
    assert!(f.validator.validate(&token, false).is_ok());
    assert_eq!(f.validator.cache_stats().hits, 1);
    let event = RevocationEvent {
        subject: RevocationSubject::AuditId(claims.audit_ids[0].clone()),
        issued_before: now_micros() + 1,
        expires_at: now_micros() / MICROS + 7200,
    };
    f.dir
        .publish_revocation(Bytes::from(serde_json::to_vec(&event).unwrap()))
        .await
        .unwrap();
    assert_eventually!(
        f.validator.validate(&token, false) == Err(TokenError::Revoked),
        Duration::from_secs(1)
    );
    // Other tokens of the same user are untouched.
    assert!(f
        .validator
        .validate(&fresh_token(&signer("s2")), false)
        .is_ok());
}

#[tokio::test]
async fn retired_members_stay_trusted_removed_ones_do_not() {
    let f = fixture().await;
    let token = fresh_token(&signer("s2"));
    assert!(f.validator.validate(&token, false).is_ok());
    put_member(f.dir.as_ref(), &member("s2", MemberStatus::Retired)).await;
    assert_eventually!(f.view.ring().is_some_and(|r| r.shards().len() == 1));
    assert!(f.validator.validate(&token, false).is_ok());
    f.dir.kv(Bucket::Members).delete("s2", None).await.unwrap();
    assert_eventually!(f.validator.validate(&token, false) == Err(TokenError::UnknownSigner));
}

#[tokio::test]
async fn the_body_names_global_entities() {
    let f = fixture().await;
    let token = fresh_token(&signer("s1"));
    let claims = f.validator.validate(&token, false).unwrap();
    let body = f.validator.token_body(&claims, true);
    let t = &body["token"];
    assert_eq!(t["user"]["domain"]["name"], "Default");
    assert_eq!(t["project"]["domain"]["name"], "Default");
    assert_eq!(t["roles"][0]["name"], "admin");
    assert!(t["catalog"].is_array());
    assert_eq!(body, keystone_body(&claims, &f.view.global(), true));

    // A role renamed in the directory shows in the next body.
    put_global(f.dir.as_ref(), &role("r-admin", "root")).await;
    assert_eventually!(
        f.validator.token_body(&claims, false)["token"]["roles"][0]["name"] == "root"
    );
}

#[tokio::test]
async fn rendered_bodies_are_reused_until_global_data_changes() {
    let f = fixture().await;
    let token = fresh_token(&signer("s1"));
    let first = f.validator.validate_token(&token, false).await.unwrap();
    let with = f.validator.body(&first, true);
    let without = f.validator.body(&first, false);
    assert_ne!(with, without);
    assert_eq!(
        with.as_ref(),
        f.validator
            .token_body_bytes(first.claims(), true)
            .as_slice()
    );
    let again = f.validator.validate_token(&token, false).await.unwrap();
    assert_eq!(
        f.validator.body(&again, true).as_ptr(),
        with.as_ptr(),
        "the cached body is reused, not rendered again"
    );
    assert_eq!(f.validator.body(&again, false).as_ptr(), without.as_ptr());

    put_global(f.dir.as_ref(), &role("r-admin", "root")).await;
    assert_eventually!({
        let valid = f.validator.validate_token(&token, false).await.unwrap();
        let body = f.validator.body(&valid, true);
        body.as_ref()
            == f.validator
                .token_body_bytes(valid.claims(), true)
                .as_slice()
            && body != with
    });
}

#[tokio::test]
async fn a_server_certificate_must_name_the_member_at_its_address() {
    let f = fixture().await;
    let now = now_micros() / MICROS;
    let ca = keyfed_pki::FederationCa::init(&f._tmp.path().join("ca"), "test", now, 3600).unwrap();
    let der = |kind, id: &str| {
        let hosts = [format!("{id}.invalid")];
        let pem = ca.issue_tls(kind, id, &hosts, now, 3600).unwrap().cert_pem;
        keyfed_pki::pem_to_der(&pem).unwrap()
    };
    let s1 = der(keyfed_pki::MemberKind::Shard, "s1");
    assert!(f.view.serves_at(&s1, "s1.invalid"));
    assert!(
        f.view.serves_at(&s1, "S1.Invalid"),
        "host names compare without case"
    );
    assert!(
        !f.view.serves_at(&s1, "s2.invalid"),
        "s1's certificate at s2's address"
    );
    let stranger = der(keyfed_pki::MemberKind::Shard, "s9");
    assert!(!f.view.serves_at(&stranger, "s9.invalid"), "no such member");
    let gateway = der(keyfed_pki::MemberKind::Gateway, "s1");
    assert!(
        !f.view.serves_at(&gateway, "s1.invalid"),
        "a gateway's certificate"
    );
}
