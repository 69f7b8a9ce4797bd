//! Signer look-ups through a directory double that counts the members
//! bucket's `get`s, can hold them at a gate, and can freeze the members
//! watch (so a member written after start is seen only by a look-up).

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use ed25519_dalek::SigningKey;
use keyfed_directory::{
    Bucket, ChangeStream, Directory, Entry, Kv, Result as DirResult, RevocationStream, Snapshot,
};
use keyfed_shared::federation::MemberStatus;
use keyfed_shared::ids::ProjectId;
use keyfed_shared::time::now_micros;
use keyfed_shared::token::{Signer, TokenError};
use tempfile::TempDir;
use tokio::sync::Semaphore;

use super::*;
use crate::testutil::{
    assert_eventually, claims, default_domain, embedded, member, put_global, put_member, role,
    signer,
};

const HOUR: i64 = 3600 * MICROS;

/// The double's switches and counter, shared with the test.
#[derive(Default)]
struct Controls {
    /// `get`s on the members bucket.
    member_gets: AtomicUsize,
    /// When set, each members `get` takes a permit first.
    gate: Option<Arc<Semaphore>>,
    /// When set, the members watch never delivers a change.
    freeze_watch: bool,
}

struct Counting {
    inner: Arc<dyn Directory>,
    controls: Arc<Controls>,
}

struct CountingKv {
    inner: Arc<dyn Kv>,
    controls: Arc<Controls>,
}

#[async_trait]
impl Directory for Counting {
    fn namespace(&self) -> &str {
        self.inner.namespace()
    }
    fn kv(&self, bucket: Bucket) -> Arc<dyn Kv> {
        let inner = self.inner.kv(bucket);
        if bucket != Bucket::Members {
            return inner;
        }
        Arc::new(CountingKv {
            inner,
            controls: self.controls.clone(),
        })
    }
    async fn publish_revocation(&self, payload: Bytes) -> DirResult<u64> {
        self.inner.publish_revocation(payload).await
    }
    async fn revocations_from(&self, after: u64) -> DirResult<RevocationStream> {
        self.inner.revocations_from(after).await
    }
}

#[async_trait]
impl Kv for CountingKv {
    async fn get(&self, key: &str) -> DirResult<Option<Entry>> {
        // Record look-ups are counted; the status attestation read beside
        // a found record is part of the same look-up.
        if !key.starts_with(keyfed_shared::federation::STATUS_PREFIX) {
            self.controls.member_gets.fetch_add(1, Ordering::SeqCst);
        }
        if let Some(gate) = &self.controls.gate {
            let _permit = gate.acquire().await;
        }
        self.inner.get(key).await
    }
    async fn create(&self, key: &str, value: Bytes) -> DirResult<u64> {
        self.inner.create(key, value).await
    }
    async fn update(&self, key: &str, value: Bytes, rev: u64) -> DirResult<u64> {
        self.inner.update(key, value, rev).await
    }
    async fn put(&self, key: &str, value: Bytes) -> DirResult<u64> {
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &str, rev: Option<u64>) -> DirResult<u64> {
        self.inner.delete(key, rev).await
    }
    async fn snapshot(&self, prefix: &str) -> DirResult<Snapshot> {
        self.inner.snapshot(prefix).await
    }
    async fn watch_from(&self, revision: u64) -> DirResult<ChangeStream> {
        if self.controls.freeze_watch {
            return Ok(Box::pin(futures::stream::pending()));
        }
        self.inner.watch_from(revision).await
    }
}

struct Fixture {
    _tmp: TempDir,
    /// The real directory behind the double (writes here are not counted).
    dir: Arc<dyn Directory>,
    controls: Arc<Controls>,
    validator: Arc<Validator>,
}

impl Fixture {
    fn gets(&self) -> usize {
        self.controls.member_gets.load(Ordering::SeqCst)
    }
}

/// Member s1 (active), the default domain and role `admin`; the validator
/// reads the directory through the counting double.
async fn fixture(controls: Controls, config: ValidatorConfig) -> Fixture {
    let (tmp, dir) = embedded();
    put_member(dir.as_ref(), &member("s1", MemberStatus::Active)).await;
    put_global(dir.as_ref(), &default_domain()).await;
    put_global(dir.as_ref(), &role("r-admin", "admin")).await;
    let controls = Arc::new(controls);
    let counting: Arc<dyn Directory> = Arc::new(Counting {
        inner: dir.clone(),
        controls: controls.clone(),
    });
    let view = FederationView::start(counting.clone()).await.unwrap();
    let validator = Validator::new(view, Revocations::start(counting), &config);
    assert_eventually!(validator.ready());
    Fixture {
        _tmp: tmp,
        dir,
        controls,
        validator: Arc::new(validator),
    }
}

fn fresh_token(signer: &Signer) -> String {
    let now = now_micros();
    signer
        .sign(&claims(Some(ProjectId::new("p1")), now - 1, now + HOUR))
        .unwrap()
}

/// `n` distinct well-formed tokens naming `signer`'s kid: one signed token
/// whose signature is altered in one character (the signer is unknown, so
/// the signature is never checked; what matters is that each is new).
fn variants(signer: &Signer, n: usize) -> Vec<String> {
    let token = fresh_token(signer);
    let sig_start = token.rfind('.').unwrap() + 1;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let tokens: Vec<String> = (0..n)
        .map(|i| {
            let mut bytes = token.clone().into_bytes();
            let at = sig_start + i % 80;
            let old = bytes[at];
            bytes[at] = alphabet
                .iter()
                .copied()
                .filter(|c| *c != old)
                .nth(i / 80)
                .unwrap();
            String::from_utf8(bytes).unwrap()
        })
        .collect();
    assert_eq!(tokens.iter().collect::<HashSet<_>>().len(), n);
    tokens
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tokens_from_a_hundred_unknown_signers_cost_at_most_a_hundred_lookups() {
    let f = fixture(Controls::default(), ValidatorConfig::default()).await;
    let mut tasks = Vec::new();
    for s in 0..100 {
        let bogus = Signer::new(
            format!("bogus-{s}.1"),
            SigningKey::from_bytes(&[s as u8; 32]),
        );
        for token in variants(&bogus, 100) {
            let validator = f.validator.clone();
            tasks.push(tokio::spawn(async move {
                validator.validate_token(&token, false).await
            }));
        }
    }
    assert_eq!(tasks.len(), 10_000);
    for task in tasks {
        assert_eq!(task.await.unwrap().err(), Some(TokenError::UnknownSigner));
    }
    let gets = f.gets();
    assert!((1..=100).contains(&gets), "{gets} look-ups");
    let stats = f.validator.lookup_stats();
    assert_eq!(stats.lookups, gets as u64);
    assert_eq!(stats.negative_entries, gets);
    // Within the window, every signer is answered from memory.
    for s in 0..100 {
        let bogus = Signer::new(
            format!("bogus-{s}.1"),
            SigningKey::from_bytes(&[s as u8; 32]),
        );
        let token = fresh_token(&bogus);
        let outcome = f.validator.validate_token(&token, false).await;
        assert_eq!(outcome.err(), Some(TokenError::UnknownSigner));
    }
    assert!(f.gets() <= 100, "{} look-ups", f.gets());
}

#[tokio::test]
async fn malformed_expired_and_badly_signed_tokens_cause_no_lookup() {
    let config = ValidatorConfig {
        allow_expired_window_secs: 3600,
        ..ValidatorConfig::default()
    };
    let f = fixture(Controls::default(), config).await;
    let v = &f.validator;
    let now = now_micros();
    let ghost = signer("ghost");
    let expired = ghost
        .sign(&claims(None, now - 3 * HOUR, now - 2 * HOUR))
        .unwrap();
    let no_serial = Signer::new("ghost", SigningKey::from_bytes(&[3; 32]));
    let odd_kid = Signer::new("gh/ost.1", SigningKey::from_bytes(&[3; 32]));
    let impostor = Signer::new("s1.1", SigningKey::from_bytes(&[42; 32]));
    let cases = [
        ("garbage", "garbage".to_owned(), true),
        ("expired", expired.clone(), false),
        ("expired, past the window", expired, true),
        ("kid without serial", fresh_token(&no_serial), false),
        ("kid with a slash", fresh_token(&odd_kid), false),
        ("bad signature, known signer", fresh_token(&impostor), false),
    ];
    for (what, token, allow_expired) in cases {
        assert!(
            v.validate_token(&token, allow_expired).await.is_err(),
            "{what}"
        );
        assert_eq!(f.gets(), 0, "{what} caused a look-up");
    }
    assert_eq!(
        v.validate_token(&fresh_token(&impostor), false).await.err(),
        Some(TokenError::BadSignature)
    );
    assert_eq!(v.lookup_stats(), LookupStats::default());
}

#[tokio::test]
async fn a_member_the_watch_has_not_delivered_is_found_by_a_lookup() {
    let controls = Controls {
        freeze_watch: true,
        ..Controls::default()
    };
    let f = fixture(controls, ValidatorConfig::default()).await;
    put_member(f.dir.as_ref(), &member("s3", MemberStatus::Joining)).await;
    let token = fresh_token(&signer("s3"));
    assert_eq!(
        f.validator.validate(&token, false).err(),
        Some(TokenError::UnknownSigner),
        "the synchronous path never looks up"
    );
    assert_eq!(f.gets(), 0);
    let valid = f.validator.validate_token(&token, false).await.unwrap();
    assert_eq!(valid.claims().user_name, "alice");
    assert_eq!(f.gets(), 1);
    // The key is now trusted: other tokens of s3 validate with no look-up,
    // and so does the synchronous path.
    let other = fresh_token(&signer("s3"));
    assert!(f.validator.validate_token(&other, false).await.is_ok());
    assert!(f.validator.validate(&other, false).is_ok());
    assert_eq!(f.gets(), 1);
    // A forgery naming s3 is a bad signature, not a new look-up.
    let forged = fresh_token(&Signer::new("s3.1", SigningKey::from_bytes(&[9; 32])));
    assert_eq!(
        f.validator.validate_token(&forged, false).await.err(),
        Some(TokenError::BadSignature)
    );
    assert_eq!(f.gets(), 1);
}

/// What a shard calls (it checks keys itself): the same look-up, under
/// the same conditions and bounds.
#[tokio::test]
async fn look_up_signer_finds_a_new_member_under_the_same_bounds() {
    let controls = Controls {
        freeze_watch: true,
        ..Controls::default()
    };
    let f = fixture(controls, ValidatorConfig::default()).await;
    let v = &f.validator;
    let now = now_micros();
    let late = signer("s4");
    let expired = late
        .sign(&claims(None, now - 3 * HOUR, now - 2 * HOUR))
        .unwrap();
    let odd_kid = Signer::new("s/4.1", SigningKey::from_bytes(&[3; 32]));
    for (what, token) in [
        ("garbage", "garbage".to_owned()),
        ("expired", expired),
        ("kid with a slash", fresh_token(&odd_kid)),
    ] {
        assert!(!v.look_up_signer(&token, false).await, "{what}");
    }
    assert_eq!(f.gets(), 0, "none of them was looked up");
    assert!(
        v.look_up_signer(&fresh_token(&signer("s1")), false).await,
        "a known signer"
    );
    assert_eq!(f.gets(), 0);

    let token = fresh_token(&late);
    assert!(!v.look_up_signer(&token, false).await, "not registered yet");
    assert_eq!(f.gets(), 1);
    assert!(!v.look_up_signer(&token, false).await, "the negative cache");
    assert_eq!(f.gets(), 1);
    put_member(f.dir.as_ref(), &member("s5", MemberStatus::Joining)).await;
    assert!(v.look_up_signer(&fresh_token(&signer("s5")), false).await);
    assert_eq!(f.gets(), 2);
    assert!(v.view.key("s5.1").is_some(), "its key is trusted now");
}

#[tokio::test]
async fn another_lookup_happens_after_the_negative_ttl() {
    let controls = Controls {
        freeze_watch: true,
        ..Controls::default()
    };
    let config = ValidatorConfig {
        unknown_signer_ttl_ms: 300,
        ..ValidatorConfig::default()
    };
    let f = fixture(controls, config).await;
    let token = fresh_token(&signer("late"));
    for _ in 0..5 {
        let outcome = f.validator.validate_token(&token, false).await;
        assert_eq!(outcome.err(), Some(TokenError::UnknownSigner));
    }
    assert_eq!(f.gets(), 1);
    assert_eq!(f.validator.lookup_stats().negative_hits, 4);
    // The member registers; within the TTL it is still unknown here.
    put_member(f.dir.as_ref(), &member("late", MemberStatus::Active)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(f.validator.validate_token(&token, false).await.is_ok());
    assert_eq!(f.gets(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_validations_share_one_lookup() {
    let gate = Arc::new(Semaphore::new(0));
    let controls = Controls {
        gate: Some(gate.clone()),
        ..Controls::default()
    };
    let f = fixture(controls, ValidatorConfig::default()).await;
    let tokens = variants(&signer("ghost"), 50);
    let tasks: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let validator = f.validator.clone();
            tokio::spawn(async move { validator.validate_token(&token, false).await })
        })
        .collect();
    // Every validation waits on the one look-up held at the gate.
    assert_eventually!(f.validator.lookups.waiting("ghost") == 50);
    gate.add_permits(100);
    for task in tasks {
        assert_eq!(task.await.unwrap().err(), Some(TokenError::UnknownSigner));
    }
    assert_eq!(f.gets(), 1);
}

#[tokio::test]
async fn lookups_in_flight_are_bounded() {
    let gate = Arc::new(Semaphore::new(0));
    let controls = Controls {
        gate: Some(gate.clone()),
        ..Controls::default()
    };
    let config = ValidatorConfig {
        max_signer_lookups_in_flight: 2,
        ..ValidatorConfig::default()
    };
    let f = fixture(controls, config).await;
    let mut held = Vec::new();
    for name in ["g1", "g2"] {
        let validator = f.validator.clone();
        let token = fresh_token(&signer(name));
        held.push(tokio::spawn(async move {
            validator.validate_token(&token, false).await
        }));
    }
    assert_eventually!(f.gets() == 2);
    let third = f
        .validator
        .validate_token(&fresh_token(&signer("g3")), false)
        .await;
    assert_eq!(third.err(), Some(TokenError::UnknownSigner));
    assert_eq!(f.validator.lookup_stats().shed, 1);
    gate.add_permits(10);
    for task in held {
        assert!(task.await.unwrap().is_err());
    }
    assert_eq!(f.gets(), 2);
}

#[tokio::test]
async fn lookups_can_be_disabled() {
    for config in [
        ValidatorConfig {
            unknown_signer_capacity: 0,
            ..ValidatorConfig::default()
        },
        ValidatorConfig {
            max_signer_lookups_in_flight: 0,
            ..ValidatorConfig::default()
        },
    ] {
        let controls = Controls {
            freeze_watch: true,
            ..Controls::default()
        };
        let f = fixture(controls, config).await;
        put_member(f.dir.as_ref(), &member("s3", MemberStatus::Active)).await;
        let token = fresh_token(&signer("s3"));
        let outcome = f.validator.validate_token(&token, false).await;
        assert_eq!(outcome.err(), Some(TokenError::UnknownSigner));
        assert_eq!(f.gets(), 0);
    }
}
