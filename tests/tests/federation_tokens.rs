//! Shards federated over a real NATS: each registers its member record and
//! signing key in the directory, trusts every member's tokens, and a
//! revocation made on one shard reaches the other shards and the gateway's
//! offline validator through the revocation stream.
#![allow(clippy::unwrap_used)]

use keyfed_directory::testing::NatsServer;
use keyfed_directory::{Directory, NatsConfig, NatsDirectory};
use keyfed_federation::{FederationView, Revocations, Validator, ValidatorConfig};
use keyfed_shard::config::FederationConfig;
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

async fn federated_shard(id: &str, nats: &NatsConfig) -> TestShard {
    let nats = nats.clone();
    let id = id.to_owned();
    TestShard::start_with(move |c| {
        c.shard.id = id;
        c.federation = Some(FederationConfig {
            advertise_url: c.public_url(),
            weight: 1,
            nats: Some(nats),
            embedded: None,
        });
    })
    .await
    .unwrap()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_validate_across_members_and_revocations_propagate() {
    let nats = NatsServer::start().unwrap();
    let namespace = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let config = nats_config(&nats.url(), &namespace);
    let a = federated_shard("shard-a", &config).await;
    let b = federated_shard("shard-b", &config).await;

    // The gateway side: the federation view and the offline validator.
    let dir: Arc<dyn Directory> = Arc::new(NatsDirectory::connect(&config).await.unwrap());
    let view = FederationView::start(dir.clone()).await.unwrap();
    let validator = Validator::new(
        view.clone(),
        Revocations::start(dir),
        &ValidatorConfig::default(),
    );

    let a_token = a.admin_token().await.unwrap();
    let b_token = b.admin_token().await.unwrap();

    // Both members are registered, with their advertised URLs.
    eventually(Duration::from_secs(10), "members registered", || async {
        view.members().len() == 2
    })
    .await;
    let member = view
        .member(&keyfed_shared::ids::ShardId::new("shard-a"))
        .unwrap();
    assert_eq!(member.url, a.url);

    // A token signed by shard A validates on shard B and in the gateway.
    eventually(Duration::from_secs(10), "B trusts A's key", || async {
        validate_on(&b, &b_token.id, &a_token.id).await == 200
    })
    .await;
    let claims = validator.validate(&a_token.id, false).unwrap();
    assert_eq!(claims.user_id.as_str(), a_token.user_id);

    // A rogue token (unknown signer) is refused everywhere.
    assert_eq!(
        validate_on(
            &b,
            &b_token.id,
            "eyJhbGciOiJFZERTQSIsImtpZCI6InJvZ3VlLjEifQ.e30.AAAA"
        )
        .await,
        404
    );

    // Revoking on A reaches B and the gateway validator through NATS.
    let r = a
        .http()
        .delete(format!("{}/v3/auth/tokens", a.url))
        .header("x-auth-token", &a_token.id)
        .header("x-subject-token", &a_token.id)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let to_gateway = eventually(
        Duration::from_secs(5),
        "gateway sees the revocation",
        || async { validator.validate(&a_token.id, false).is_err() },
    )
    .await;
    let to_b = eventually(
        Duration::from_secs(5),
        "shard B sees the revocation",
        || async { validate_on(&b, &b_token.id, &a_token.id).await == 404 },
    )
    .await;
    println!("revocation propagation: gateway validator {to_gateway:?}, shard B {to_b:?}");
    // B's own token is unaffected.
    assert_eq!(validate_on(&b, &b_token.id, &b_token.id).await, 200);
    let body: Value = b
        .http()
        .get(format!("{}/v3/auth/tokens", b.url))
        .header("x-auth-token", &b_token.id)
        .header("x-subject-token", &b_token.id)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["token"]["user"]["name"], "admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_starts_while_nats_is_down_and_registers_later() {
    let mut nats = NatsServer::start().unwrap();
    let namespace = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let config = nats_config(&nats.url(), &namespace);
    nats.stop();
    // The shard serves as a standalone Keystone meanwhile.
    let a = federated_shard("shard-a", &config).await;
    let token = a.admin_token().await.unwrap();
    assert_eq!(validate_on(&a, &token.id, &token.id).await, 200);
    nats.restart().unwrap();
    let dir: Arc<dyn Directory> = Arc::new(NatsDirectory::connect(&config).await.unwrap());
    let view = FederationView::start(dir).await.unwrap();
    eventually(
        Duration::from_secs(20),
        "member registered after NATS returned",
        || async { view.key("shard-a.1").is_some() },
    )
    .await;
}
