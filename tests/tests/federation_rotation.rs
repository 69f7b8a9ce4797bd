//! Online certificate renewal and key rotation (real NATS, real
//! PostgreSQL, in-process shards and a gateway: `TestFederation`):
//!
//! - a non-issuer shard started with a short-lived certificate renews it
//!   online through the issuer (`POST /internal/v1/renew`), without a
//!   restart, with a NEW key (kid `<id>.2`, key file 0600 beside the first);
//! - a token it signed before the rotation still validates at the gateway
//!   afterwards; tokens issued after carry the new kid and validate;
//! - once the old key's retention (token lifetime + allow-expired window +
//!   the switch margin, shortened here) has passed, the old kid is dropped
//!   from the member record and from views, and its tokens no longer
//!   validate;
//! - a renewal request signed with a wrong key, replayed, or naming the
//!   retired kid is refused (401, Keystone-shaped); a non-issuer answers 404.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;
use keyfed_federation::lifecycle::renew::RenewRequest;
use keyfed_pki::{der_to_pem, signing_request};
use keyfed_shard::config::FederationConfig;
use keyfed_shared::ids::{ShardId, UserId};
use keyfed_tests::gateway::TestFederation;
use keyfed_tests::shard::TestShard;
use keyfed_tests::Gateways;
use reqwest::Method;
use serde_json::{json, Value};

fn now() -> i64 {
    keyfed_shared::time::now_micros() / 1_000_000
}

async fn eventually<F: FnMut() -> bool>(what: &str, limit: Duration, mut check: F) {
    let deadline = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `kid` in a token's JWS header.
fn kid(token: &str) -> String {
    let header = B64.decode(token.split('.').next().unwrap()).unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// `POST /internal/v1/renew` on `url`: (status, body).
async fn post_renew(url: &str, body: &RenewRequest) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/internal/v1/renew"))
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn assert_keystone_error(status: u16, body: &Value, code: u16) {
    assert_eq!(status, code, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

/// Creates users through gateway 0 until one is homed on `shard`; returns
/// its name (password = name).
async fn user_homed_on(f: &TestFederation, admin: &str, shard: &str) -> String {
    for i in 0..64 {
        let name = format!("rot-{i}");
        let body = json!({"user": {"name": name, "domain_id": "default", "password": name}});
        let (status, body) = f
            .call(0, Method::POST, "/v3/users", admin, Some(&body))
            .await
            .unwrap();
        assert_eq!(status, 201, "{body}");
        let id = UserId::new(body["user"]["id"].as_str().unwrap());
        if f.view.home_of_user(&id) == Some(ShardId::new(shard)) {
            return name;
        }
    }
    panic!("no user homed on {shard}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_lived_certificate_is_renewed_online_with_a_new_key() {
    let mut f = TestFederation::start(1).await.unwrap();
    let issuer_url = f.shard("shard-0").unwrap().url.clone();

    // shard-1: no CA key; a certificate valid 200 s (issued 300 s
    // backdated), so its last third begins ~33 s from now.
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("signing-key.pem");
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let pem = key.to_pkcs8_pem(Default::default()).unwrap();
    keyfed_pki::files::write_private(&key_file, pem.as_bytes()).unwrap();
    let csr = signing_request("shard-1", &key).unwrap();
    let der = f.ca.ca.issue(&csr, "shard-1", now(), 200).unwrap();
    let cert_file = keys.path().join("signing-key.crt");
    std::fs::write(&cert_file, der_to_pem(&der)).unwrap();
    let (nats, ca_cert) = (f.directory.clone(), f.ca.cert.clone());
    let kf = key_file.clone();
    let shard1 = TestShard::start_with(move |c| {
        c.shard.id = "shard-1".into();
        c.trust.ca_cert = Some(ca_cert);
        c.tokens.signing_key_file = kf;
        c.tokens.expiration_secs = 60;
        c.tokens.allow_expired_window_secs = 0;
        c.federation = Some(FederationConfig {
            advertise_url: c.public_url(),
            weight: 1,
            nats: Some(nats),
            embedded: None,
            name_audit_interval_secs: keyfed_shard::config::DEFAULT_NAME_AUDIT_INTERVAL_SECS,
        });
    })
    .await
    .unwrap();
    let shard1_url = shard1.url.clone();
    f.shards.push(Some(shard1));
    eventually("shard-1 in the ring", Duration::from_secs(20), || {
        f.view.key("shard-1.1").is_some() && f.view.members().len() == 2
    })
    .await;

    let admin = f.admin_token(0).await.unwrap();
    let name = user_homed_on(&f, &admin, "shard-1").await;
    let before = f.password_token(0, &name, &name, None).await.unwrap();
    assert_eq!(kid(&before), "shard-1.1", "signed before the rotation");
    assert_eq!(f.validate(0, &admin, &before).await.unwrap(), 200);

    // The rotation: a new key, certified by the issuer, in the record.
    eventually("shard-1 rotated", Duration::from_secs(90), || {
        f.view.key("shard-1.2").is_some()
    })
    .await;
    let new_key_file = keys.path().join("signing-key.2.pem");
    let new_pem = std::fs::read_to_string(&new_key_file).unwrap();
    let new_key = SigningKey::from_pkcs8_pem(&new_pem).unwrap();
    assert_eq!(f.view.key("shard-1.2"), Some(new_key.verifying_key()));
    assert_ne!(new_key.verifying_key(), key.verifying_key());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&new_key_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let record = f.view.member(&ShardId::new("shard-1")).unwrap();
    assert_eq!(record.kid, "shard-1.2");
    let kids: Vec<_> = record.certificates.iter().map(|c| c.kid.as_str()).collect();
    assert_eq!(kids, ["shard-1.2", "shard-1.1"]);
    assert!(record.certificates[1].retire_at.is_some());

    // Old and new tokens both validate during the overlap.
    assert_eq!(f.validate(0, &admin, &before).await.unwrap(), 200);
    let mut after = String::new();
    for _ in 0..100 {
        after = f.password_token(0, &name, &name, None).await.unwrap();
        if kid(&after) == "shard-1.2" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(kid(&after), "shard-1.2", "new tokens carry the new kid");
    assert_eq!(f.validate(0, &admin, &after).await.unwrap(), 200);

    // Renewal requests: a non-issuer 404; a wrong key, a replay 401.
    let fresh = || signing_request("shard-1", &SigningKey::generate(&mut rand::rngs::OsRng));
    let good = RenewRequest::signed(
        "shard-1",
        "shard-1.2",
        fresh().unwrap(),
        &new_key,
        now(),
        rand::random(),
    );
    let (status, body) = post_renew(&shard1_url, &good).await;
    assert_keystone_error(status, &body, 404);
    let forged = RenewRequest::signed(
        "shard-1",
        "shard-1.2",
        fresh().unwrap(),
        &key,
        now(),
        rand::random(),
    );
    let (status, body) = post_renew(&issuer_url, &forged).await;
    assert_keystone_error(status, &body, 401);
    let (status, body) = post_renew(&issuer_url, &good).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["certificate"]
        .as_str()
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    let (status, body) = post_renew(&issuer_url, &good).await;
    assert_keystone_error(status, &body, 401);

    // Retention: 60 s lifetime + no window + 15 s margin after the
    // rotation; then the old kid is gone from views and the record.
    eventually("old kid dropped", Duration::from_secs(90), || {
        f.view.key("shard-1.1").is_none()
    })
    .await;
    assert_eq!(f.validate(0, &admin, &before).await.unwrap(), 404);
    eventually("old certificate removed", Duration::from_secs(30), || {
        f.view
            .member(&ShardId::new("shard-1"))
            .is_some_and(|m| m.certificates.iter().all(|c| c.kid != "shard-1.1"))
    })
    .await;
    let stale = RenewRequest::signed(
        "shard-1",
        "shard-1.1",
        fresh().unwrap(),
        &key,
        now(),
        rand::random(),
    );
    let (status, body) = post_renew(&issuer_url, &stale).await;
    assert_keystone_error(status, &body, 401);
    // The new key keeps working.
    let later = f.password_token(0, &name, &name, None).await.unwrap();
    assert_eq!(kid(&later), "shard-1.2");
    assert_eq!(f.validate(0, &admin, &later).await.unwrap(), 200);
}
