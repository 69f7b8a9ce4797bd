//! Shards federated over a real NATS: each registers its member record and
//! signing key in the directory, trusts every member's tokens, and a
//! revocation made on one shard reaches the other shards and the gateway's
//! offline validator through the revocation stream.
#![allow(clippy::unwrap_used)]

use keyfed_directory::testing::NatsServer;
use keyfed_directory::{Directory, NatsConfig, NatsDirectory};
use keyfed_federation::{FederationView, Revocations, Validator, ValidatorConfig};
use keyfed_tests::gateway::TestCa;
use keyfed_tests::shard::TestShard;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn nats_config(url: &str, namespace: &str) -> NatsConfig {
    NatsConfig {
        namespace: namespace.to_owned(),
        timeout_ms: 1_000,
        ..NatsConfig::new(url)
    }
}

/// A shard of the federation on `nats`, an issuer of `ca`.
async fn federated_shard(id: &str, nats: &NatsConfig, ca: &TestCa) -> TestShard {
    ca.federated_shard(id, nats).await.unwrap()
}

/// `GET /v3/auth/tokens` on `shard` for `subject`, as `shard`'s admin.
async fn validate_on(shard: &TestShard, admin: &str, subject: &str) -> u16 {
    shard
        .http()
        .get(format!("{}/v3/auth/tokens", shard.url))
        .header("x-auth-token", admin)
        .header("x-subject-token", subject)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Polls `check` until it is true, failing after `limit`; returns the wait.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn revoke_on(shard: &TestShard, caller: &str, subject: &str) {
    let r = shard
        .http()
        .delete(format!("{}/v3/auth/tokens", shard.url))
        .header("x-auth-token", caller)
        .header("x-subject-token", subject)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_global_data_trust_each_other_and_propagate_revocations() {
    let nats = NatsServer::start().unwrap();
    let namespace = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let config = nats_config(&nats.url(), &namespace);
    let ca = TestCa::new().unwrap();
    let a = federated_shard("shard-a", &config, &ca).await;
    let b = federated_shard("shard-b", &config, &ca).await;

    // The gateway side: the federation view and the offline validator.
    let dir: Arc<dyn Directory> = Arc::new(NatsDirectory::connect(&config).await.unwrap());
    let view = FederationView::start_with_trust(dir.clone(), ca.trust())
        .await
        .unwrap();
    let validator = Validator::new(
        view.clone(),
        Revocations::start(dir),
        &ValidatorConfig::default(),
    );

    // The admin was bootstrapped once, on the first member.
    let caller = a.admin_token().await.unwrap();
    let subject = a.admin_token().await.unwrap();
    assert!(
        b.admin_token().await.is_err(),
        "the admin must live on one member only"
    );

    eventually(Duration::from_secs(10), "members registered", || async {
        view.members().len() == 2
    })
    .await;
    let member = view
        .member(&keyfed_shared::ids::ShardId::new("shard-a"))
        .unwrap();
    assert_eq!(member.url, a.url);

    // A token signed by shard A validates on shard B (B looks A's key up
    // if its view has not caught up), with the same roles once B holds A's
    // global data: both members hold the one set.
    let validated = || async {
        let r = b
            .http()
            .get(format!("{}/v3/auth/tokens", b.url))
            .header("x-auth-token", &caller.id)
            .header("x-subject-token", &subject.id)
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<Value>().await.unwrap_or_default(),
        )
    };
    let role_names = |body: &Value| -> Vec<String> {
        body["token"]["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| r["name"].as_str().map(str::to_owned))
            .collect()
    };
    eventually(
        Duration::from_secs(10),
        "B trusts A's key and roles",
        || async {
            let (status, body) = validated().await;
            let roles = role_names(&body);
            status == 200
                && roles.iter().any(|r| r == "admin")
                && roles.iter().any(|r| r == "reader")
        },
    )
    .await;
    let (_, body) = validated().await;
    assert_eq!(body["token"]["catalog"][0]["type"], "identity", "{body}");
    let claims = validator.validate(&subject.id, false).unwrap();
    assert_eq!(claims.user_id.as_str(), subject.user_id);

    // A role created through B is read back at once on B and reaches A.
    let r = b
        .http()
        .post(format!("{}/v3/roles", b.url))
        .header("x-auth-token", &caller.id)
        .json(&serde_json::json!({"role": {"name": "auditor"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let role_id = r.json::<Value>().await.unwrap()["role"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let on_b = b
        .http()
        .get(format!("{}/v3/roles/{role_id}", b.url))
        .header("x-auth-token", &caller.id)
        .send()
        .await
        .unwrap();
    assert_eq!(on_b.status().as_u16(), 200);
    eventually(Duration::from_secs(5), "the role reaches A", || async {
        let r = a
            .http()
            .get(format!("{}/v3/roles/{role_id}", a.url))
            .header("x-auth-token", &caller.id)
            .send()
            .await
            .unwrap();
        r.status().as_u16() == 200
    })
    .await;
    // Its name is now taken federation-wide.
    let dup = a
        .http()
        .post(format!("{}/v3/roles", a.url))
        .header("x-auth-token", &caller.id)
        .json(&serde_json::json!({"role": {"name": "auditor"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(dup.status().as_u16(), 409);

    // A rogue token (unknown signer) is refused.
    assert_eq!(
        validate_on(
            &b,
            &caller.id,
            "eyJhbGciOiJFZERTQSIsImtpZCI6InJvZ3VlLjEifQ.e30.AAAA"
        )
        .await,
        404
    );

    // Revoking on A reaches B and the gateway validator through NATS.
    revoke_on(&a, &caller.id, &subject.id).await;
    let to_gateway = eventually(
        Duration::from_secs(5),
        "gateway sees the revocation",
        || async { validator.validate(&subject.id, false).is_err() },
    )
    .await;
    let to_b = eventually(
        Duration::from_secs(5),
        "shard B sees the revocation",
        || async { validate_on(&b, &caller.id, &subject.id).await == 404 },
    )
    .await;
    println!("revocation propagation: gateway validator {to_gateway:?}, shard B {to_b:?}");
    assert_eq!(validate_on(&b, &caller.id, &caller.id).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_members_keep_serving_and_resync() {
    let mut nats = NatsServer::start().unwrap();
    let namespace = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let config = nats_config(&nats.url(), &namespace);
    let ca = TestCa::new().unwrap();
    let a = federated_shard("shard-a", &config, &ca).await;
    let b = federated_shard("shard-b", &config, &ca).await;
    let caller = a.admin_token().await.unwrap();
    eventually(Duration::from_secs(10), "B trusts A's key", || async {
        validate_on(&b, &caller.id, &caller.id).await == 200
    })
    .await;

    nats.stop();
    // Both keep issuing and validating from what they hold.
    let subject = a.admin_token().await.unwrap();
    assert_eq!(validate_on(&b, &caller.id, &subject.id).await, 200);
    // A revocation made during the outage is kept and delivered later.
    revoke_on(&a, &caller.id, &subject.id).await;
    assert_eq!(validate_on(&a, &caller.id, &subject.id).await, 404);
    assert_eq!(validate_on(&b, &caller.id, &subject.id).await, 200);

    nats.restart().unwrap();
    let delay = eventually(
        Duration::from_secs(30),
        "B learns the outage's revocation",
        || async { validate_on(&b, &caller.id, &subject.id).await == 404 },
    )
    .await;
    println!("revocation delivered {delay:?} after NATS returned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_create_only_what_they_own_and_stub_users_for_grants() {
    let nats = NatsServer::start().unwrap();
    let namespace = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let config = nats_config(&nats.url(), &namespace);
    let ca = TestCa::new().unwrap();
    let a = federated_shard("shard-a", &config, &ca).await;
    let b = federated_shard("shard-b", &config, &ca).await;
    let dir: Arc<dyn Directory> = Arc::new(NatsDirectory::connect(&config).await.unwrap());
    let view = FederationView::start_with_trust(dir, ca.trust())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(10),
        "both members in the ring",
        || async { view.ring().is_some_and(|r| r.shards().len() == 2) },
    )
    .await;
    let admin = a.admin_token().await.unwrap();
    let b_id = keyfed_shared::ids::ShardId::new("shard-b");
    let owned_by_b = (0..1000)
        .map(|_| keyfed_shared::ids::ProjectId::generate())
        .find(|p| view.owner_of_project(p).as_ref() == Some(&b_id))
        .unwrap();
    let create = |shard: &TestShard| {
        shard
            .http()
            .post(format!("{}/v3/projects", shard.url))
            .header("x-auth-token", &admin.id)
            .json(&serde_json::json!({"project": {"id": owned_by_b.as_str(), "name": "on-b"}}))
            .send()
    };
    // B's shard may wait a moment until its own view has both members.
    eventually(Duration::from_secs(10), "B accepts its project", || async {
        create(&b).await.unwrap().status().as_u16() == 201
    })
    .await;
    // A refuses to create a project the federation places on B, saying why
    // in a form the gateway acts on (it retries at the new owner).
    let refused = create(&a).await.unwrap();
    assert_eq!(refused.status().as_u16(), 409);
    assert_eq!(
        refused.headers()[keyfed_shared::error::REFUSAL_HEADER],
        "not-owner"
    );

    // Granting A's admin a role on B's project creates a stub of the user on B.
    let member = b
        .http()
        .get(format!("{}/v3/roles?name=member", b.url))
        .header("x-auth-token", &admin.id)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["roles"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let grant = b
        .http()
        .put(format!(
            "{}/v3/projects/{}/users/{}/roles/{member}",
            b.url, owned_by_b, admin.user_id
        ))
        .header("x-auth-token", &admin.id)
        .send()
        .await
        .unwrap();
    assert_eq!(grant.status().as_u16(), 204);

    // One login at A, rescoped at B to B's project.
    let unscoped = a
        .http()
        .post(format!("{}/v3/auth/tokens", a.url))
        .json(&serde_json::json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": a.admin_password}}}, "scope": "unscoped"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(unscoped.status().as_u16(), 201);
    let unscoped = unscoped.headers()["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let rescoped = b
        .http()
        .post(format!("{}/v3/auth/tokens", b.url))
        .json(&serde_json::json!({"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}},
            "scope": {"project": {"id": owned_by_b.as_str()}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(rescoped.status().as_u16(), 201);
    let body: Value = rescoped.json().await.unwrap();
    assert_eq!(body["token"]["project"]["name"], "on-b");
    let roles: Vec<&str> = body["token"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        roles.contains(&"member") && roles.contains(&"reader"),
        "{body}"
    );
}
