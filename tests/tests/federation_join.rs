//! A shard joins a running federation (CA trust, real NATS, real
//! PostgreSQL, in-process shards and gateways: `TestFederation`), checked
//! through in-process hooks (the join endpoint, `enrol`, the ring, the
//! internal API, `admin::retire`):
//!
//! - the join endpoint answers Keystone-shaped errors: bad or missing
//!   token 401 (checked first), bad CSR 400, id taken 409; the join token
//!   cannot be used twice;
//! - a third shard enrols through a member (its key, a CSR, its
//!   certificate) and turns itself active once serving;
//! - every tenant that existed before keeps its owner (the ones the new
//!   ring assigns to the new shard are pinned); the new shard holds exactly
//!   the new tenants placed on it;
//! - tenant counts per member; the internal listing refuses a bad admin
//!   token; a member owning tenants cannot retire (and stays active), an
//!   empty one retires with `trusted_until` = now + the given keep, leaves
//!   the ring and takes no new tenants.
//!
//! The same lifecycle with real processes and the CLI — NATS stopped and
//! restarted, catalog changes, rogue signers, look-ups under bogus tokens —
//! is `federation_lifecycle.rs`.
#![allow(clippy::unwrap_used)]

use keyfed_tests::Gateways;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyfed_directory::{Directory, NatsDirectory};
use keyfed_federation::lifecycle::credentials;
use keyfed_pki::join_token::Purpose;
use keyfed_pki::signing_request;
use keyfed_shard::config::{FederationConfig, ShardConfig};
use keyfed_shard::federation::admin;
use keyfed_shared::federation::MemberStatus;
use keyfed_shared::ids::{ProjectId, ShardId};
use keyfed_tests::gateway::TestFederation;
use keyfed_tests::shard::TestShard;
use reqwest::Method;
use serde_json::{json, Value};

fn now() -> i64 {
    keyfed_shared::time::now_micros() / 1_000_000
}

async fn eventually<F: FnMut() -> bool>(what: &str, mut check: F) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_project(f: &TestFederation, g: usize, admin: &str, name: &str) -> ProjectId {
    let body = json!({"project": {"name": name, "domain_id": "default"}});
    let (status, body) = f
        .call(g, Method::POST, "/v3/projects", admin, Some(&body))
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    ProjectId::new(body["project"]["id"].as_str().unwrap())
}

/// `POST /internal/v1/join` on `url` with a raw body: (status, body).
async fn post_join(url: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{url}/internal/v1/join"))
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn assert_keystone_error(status: u16, body: &Value, code: u16) {
    assert_eq!(status, code, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["title"].is_string(), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

/// A config for enrolling `id` with keys in `dir`.
fn joiner_config(f: &TestFederation, id: &str, dir: &std::path::Path) -> ShardConfig {
    let mut c = ShardConfig::default();
    c.shard.id = id.into();
    c.tokens.signing_key_file = dir.join("signing-key.pem");
    c.trust.ca_cert = Some(f.ca.cert.clone());
    c.federation = Some(FederationConfig {
        // Replaced by the shard's real URL when it registers.
        advertise_url: "http://127.0.0.1:9".into(),
        weight: 1,
        nats: Some(f.directory.clone()),
        embedded: None,
        name_audit_interval_secs: keyfed_shard::config::DEFAULT_NAME_AUDIT_INTERVAL_SECS,
    });
    c
}

/// Starts the shard `joiner` enrolled (its certificate at `cert`).
async fn start_joined(
    f: &TestFederation,
    joiner: &ShardConfig,
    cert: std::path::PathBuf,
) -> TestShard {
    let nats = f.directory.clone();
    let id = joiner.shard.id.clone();
    let (ca_cert, key_file) = (f.ca.cert.clone(), joiner.tokens.signing_key_file.clone());
    TestShard::start_with(move |c| {
        c.shard.id = id;
        c.bootstrap = None;
        c.tokens.signing_key_file = key_file;
        c.trust.ca_cert = Some(ca_cert);
        c.trust.certificate = Some(cert);
        c.federation = Some(FederationConfig {
            advertise_url: c.public_url(),
            weight: 1,
            nats: Some(nats),
            embedded: None,
            name_audit_interval_secs: keyfed_shard::config::DEFAULT_NAME_AUDIT_INTERVAL_SECS,
        });
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_joins_takes_new_tenants_and_existing_ones_stay_put() {
    let f = TestFederation::start_with(2, 2).await.unwrap();
    let admin = f.admin_token(0).await.unwrap();
    let raw: Arc<dyn Directory> = Arc::new(NatsDirectory::connect(&f.directory).await.unwrap());
    let dir = f.ca.issuer_directory(raw).unwrap();

    // Tenants that exist before the join, and where they live.
    let mut before = BTreeMap::new();
    for i in 0..24 {
        let p = create_project(&f, i % 2, &admin, &format!("before-{i}")).await;
        before.insert(p.clone(), f.view.owner_of_project(&p).unwrap());
    }

    // The join endpoint refuses bad input, Keystone-shaped.
    let issuer = f.shard("shard-0").unwrap().url.clone();
    let key_dir = tempfile::tempdir().unwrap();
    let token = credentials::issue(dir.as_ref(), Purpose::Join, now(), 600)
        .await
        .unwrap();
    let key = keyfed_shard::keys::load_or_create(&key_dir.path().join("probe.pem")).unwrap();
    let request = |id: &str, csr: String, token: &str| {
        json!({"shard_id": id, "csr": csr, "advertise_url": "http://127.0.0.1:9",
               "weight": 1, "join_token": token})
    };
    let (status, body) = post_join(
        &issuer,
        &request(
            "shard-2",
            signing_request("shard-2", &key).unwrap(),
            "bogus",
        ),
    )
    .await;
    assert_keystone_error(status, &body, 401);
    let (status, body) = post_join(&issuer, &request("shard-2", "not a csr".into(), &token)).await;
    assert_keystone_error(status, &body, 400);
    let (status, body) = post_join(
        &issuer,
        &request("shard-2", signing_request("shard-9", &key).unwrap(), &token),
    )
    .await;
    assert_keystone_error(status, &body, 400);
    let (status, body) = post_join(
        &issuer,
        &request("shard-1", signing_request("shard-1", &key).unwrap(), &token),
    )
    .await;
    assert_keystone_error(status, &body, 409);
    // Without a token, nothing else about the request is judged.
    let (status, body) = post_join(&issuer, &json!({"shard_id": "x"})).await;
    assert_keystone_error(status, &body, 401);
    let (status, body) = post_join(&issuer, &json!({"shard_id": "x", "join_token": token})).await;
    assert_keystone_error(status, &body, 400);

    // shard-2 enrols with the (still unspent) token, then starts.
    let joiner = joiner_config(&f, "shard-2", key_dir.path());
    let cert = keyfed_shard::federation::enrol::enrol(&joiner, &issuer, &token)
        .await
        .unwrap();
    let record = f.view.member(&ShardId::new("shard-2"));
    assert!(
        record
            .as_ref()
            .is_none_or(|m| m.status == MemberStatus::Joining),
        "{record:?}"
    );
    // The token is spent.
    let again = joiner_config(&f, "shard-3", &key_dir.path().join("3"));
    let err = keyfed_shard::federation::enrol::enrol(&again, &issuer, &token)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");

    let third = start_joined(&f, &joiner, cert).await;
    let s2 = ShardId::new("shard-2");
    eventually("shard-2 active", || {
        f.view
            .member(&s2)
            .is_some_and(|m| m.status == MemberStatus::Active && m.url == third.url)
    })
    .await;
    eventually("the ring has three members", || {
        f.view.ring().is_some_and(|r| r.shards().len() == 3)
    })
    .await;

    // Existing tenants keep their owner (some only by a pin) and work
    // through both gateways.
    let ring = f.view.ring().unwrap();
    let pinned = before
        .keys()
        .filter(|p| ring.owner(p.as_str()) == &s2)
        .count();
    assert!(
        pinned > 0,
        "no existing project hashes to shard-2; pick more"
    );
    for (p, owner) in &before {
        assert_eq!(f.view.owner_of_project(p).as_ref(), Some(owner), "{p}");
        for g in 0..2 {
            let (status, body) = f
                .call(g, Method::GET, &format!("/v3/projects/{p}"), &admin, None)
                .await
                .unwrap();
            assert_eq!(status, 200, "gateway {g}, {p}: {body}");
        }
    }

    // New tenants land on shard-2 through both gateways.
    let mut landed = [0usize; 2];
    for i in 0..40 {
        let g = i % 2;
        let p = create_project(&f, g, &admin, &format!("after-{i}")).await;
        if f.view.owner_of_project(&p).as_ref() == Some(&s2) {
            landed[g] += 1;
            let (status, body) = f
                .call(
                    1 - g,
                    Method::GET,
                    &format!("/v3/projects/{p}"),
                    &admin,
                    None,
                )
                .await
                .unwrap();
            assert_eq!(status, 200, "{body}");
        }
    }
    assert!(landed[0] > 0 && landed[1] > 0, "{landed:?}");
    let listed: Value = reqwest::Client::new()
        .get(format!("{}/v3/projects", third.url))
        .header("x-auth-token", &admin)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["projects"].as_array().unwrap().len(),
        landed[0] + landed[1],
        "shard-2 holds exactly the new tenants placed on it"
    );

    // Tenant counts per member, from each member's internal API.
    let http = reqwest::Client::new();
    let members = f.view.members();
    let counts: BTreeMap<ShardId, (usize, usize)> =
        admin::tenant_counts(dir.as_ref(), &http, &members)
            .await
            .unwrap()
            .into_iter()
            .map(|(id, c)| (id, c.unwrap()))
            .collect();
    assert_eq!(counts[&s2].0, landed[0] + landed[1]);
    let total: usize = counts.values().map(|c| c.0).sum();
    assert_eq!(
        total,
        1 + before.len() + 40,
        "admin + before + after: {counts:?}"
    );
    assert_eq!(counts[&ShardId::new("shard-0")].1, 1, "the admin user only");
    let listing = reqwest::Client::new()
        .get(format!("{}/internal/v1/tenants", third.url))
        .header("x-keyfed-admin-token", "garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(listing.status().as_u16(), 401);

    // A member owning tenants cannot retire, and stays active.
    let keep = 3600 + 172_800;
    let refused = admin::retire(dir.as_ref(), &http, &s2, keep).await;
    assert!(
        matches!(refused, Err(admin::RetireError::NotEmpty { .. })),
        "{refused:?}"
    );
    assert_eq!(f.view.member(&s2).unwrap().status, MemberStatus::Active);

    // An empty one retires: joined, active, no tenant placed on it.
    let token = credentials::issue(dir.as_ref(), Purpose::Join, now(), 600)
        .await
        .unwrap();
    let fourth_config = joiner_config(&f, "shard-3", &key_dir.path().join("s3"));
    let cert = keyfed_shard::federation::enrol::enrol(&fourth_config, &issuer, &token)
        .await
        .unwrap();
    let fourth = start_joined(&f, &fourth_config, cert).await;
    let s3 = ShardId::new("shard-3");
    eventually("shard-3 active", || {
        f.view
            .member(&s3)
            .is_some_and(|m| m.status == MemberStatus::Active)
    })
    .await;
    let retired = admin::retire(dir.as_ref(), &http, &s3, keep).await.unwrap();
    assert_eq!(retired.status, MemberStatus::Retired);
    let until = retired.trusted_until.unwrap();
    assert!(
        (now() + keep - 60..=now() + keep).contains(&until),
        "{until}"
    );
    eventually("shard-3 out of the ring", || {
        f.view
            .ring()
            .is_some_and(|r| r.weight(&s3).is_none() && r.shards().len() == 3)
    })
    .await;
    for i in 0..10 {
        let p = create_project(&f, i % 2, &admin, &format!("late-{i}")).await;
        assert_ne!(f.view.owner_of_project(&p).as_ref(), Some(&s3));
    }
    drop(fourth);

    drop(third);
}
