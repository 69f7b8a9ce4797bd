//! The federation view against a real NATS (a nats-server spawned per test,
//! see `keyfed_directory::testing`): it converges after writes, keeps
//! answering from what it holds while NATS is down, and catches up with
//! changes made after NATS comes back.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ed25519_dalek::SigningKey;
use keyfed_directory::testing::NatsServer;
use keyfed_directory::{Bucket, Directory, DirectoryError, NatsConfig, NatsDirectory};
use keyfed_federation::FederationView;
use keyfed_shared::federation::{GlobalEntity, Member, MemberStatus};
use keyfed_shared::ids::{DomainId, ProjectId, ShardId};
use keyfed_shared::model::Domain;

/// How long propagation, or recovery after a restart, may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// Polls `cond` until it holds, for at most [`PATIENCE`].
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Retries a directory write while NATS is (still) unavailable.
async fn retry<T, F, Fut>(mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DirectoryError>>,
{
    let deadline = Instant::now() + PATIENCE;
    loop {
        match call().await {
            Ok(value) => return value,
            Err(DirectoryError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("directory call failed: {error}"),
        }
    }
}

fn member(id: &str, status: MemberStatus) -> Member {
    let key = SigningKey::from_bytes(&[id.len() as u8; 32]).verifying_key();
    Member {
        id: ShardId::new(id),
        url: format!("http://{id}.invalid"),
        weight: 1,
        status,
        kid: format!("{id}.1"),
        public_key: Member::encode_key(&key),
        certificates: vec![],
        trusted_until: None,
    }
}

async fn put_member(dir: &dyn Directory, m: &Member) {
    let kv = dir.kv(Bucket::Members);
    let value = Bytes::from(serde_json::to_vec(m).unwrap());
    retry(|| kv.put(m.id.as_str(), value.clone())).await;
}

fn domain(name: &str) -> GlobalEntity {
    GlobalEntity::Domain(Domain {
        id: DomainId::new("default"),
        name: name.into(),
        description: String::new(),
        enabled: true,
    })
}

async fn put_global(dir: &dyn Directory, entity: &GlobalEntity) {
    let kv = dir.kv(Bucket::Global);
    let (key, value) = (entity.key(), Bytes::from(entity.to_bytes()));
    retry(|| kv.put(&key, value.clone())).await;
}

fn ring_ids(view: &FederationView) -> Vec<String> {
    view.ring()
        .map(|r| r.shards().map(|(id, _)| id.to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_follows_nats_across_an_outage() {
    let mut server = NatsServer::start().unwrap_or_else(|e| panic!("no nats-server: {e}"));
    let config = NatsConfig {
        namespace: "gwview".into(),
        timeout_ms: 500,
        reconnect_max_delay_ms: 200,
        ..NatsConfig::new(server.url())
    };
    let dir: Arc<dyn Directory> = Arc::new(NatsDirectory::connect(&config).await.unwrap());
    put_member(dir.as_ref(), &member("s1", MemberStatus::Active)).await;
    put_global(dir.as_ref(), &domain("Default")).await;

    let view = FederationView::start(dir.clone()).await.unwrap();
    assert!(view.ready());
    assert_eq!(ring_ids(&view), ["s1"]);

    // Converges after writes.
    put_member(dir.as_ref(), &member("s22", MemberStatus::Active)).await;
    let pins = dir.kv(Bucket::Pins);
    retry(|| pins.put("project/pinned", Bytes::from_static(b"s22"))).await;
    eventually("second member in the ring", || {
        ring_ids(&view) == ["s1", "s22"]
    })
    .await;
    eventually("pin applied", || {
        view.owner_of_project(&ProjectId::new("pinned")) == Some(ShardId::new("s22"))
    })
    .await;
    let before = view.revisions();

    // NATS down: the view answers from what it holds.
    server.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(view.ready());
    assert_eq!(ring_ids(&view), ["s1", "s22"]);
    assert!(view.key("s22.1").is_some());
    assert_eq!(
        view.owner_of_project(&ProjectId::new("pinned")),
        Some(ShardId::new("s22"))
    );
    assert_eq!(
        view.global().domain_name(&DomainId::new("default")),
        "Default"
    );

    // NATS back: a change written now reaches the view.
    server.restart().unwrap();
    put_member(dir.as_ref(), &member("s1", MemberStatus::Retired)).await;
    put_global(dir.as_ref(), &domain("Renamed")).await;
    retry(|| pins.put("project/pinned", Bytes::from_static(b"s1"))).await;
    eventually("retirement applied", || ring_ids(&view) == ["s22"]).await;
    eventually("domain renamed", || {
        view.global().domain_name(&DomainId::new("default")) == "Renamed"
    })
    .await;
    eventually("pin moved", || {
        view.owner_of_project(&ProjectId::new("pinned")) == Some(ShardId::new("s1"))
    })
    .await;
    assert!(view.key("s1.1").is_some(), "retired keys stay trusted");
    let after = view.revisions();
    assert!(after
        .iter()
        .zip(before)
        .all(|(a, b)| a.revision > b.revision));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_view_starts_not_ready_while_nats_is_down_and_loads_when_it_is_up() {
    let mut server = NatsServer::start().unwrap_or_else(|e| panic!("no nats-server: {e}"));
    let config = NatsConfig {
        namespace: "gwlate".into(),
        timeout_ms: 500,
        reconnect_max_delay_ms: 200,
        ..NatsConfig::new(server.url())
    };
    let dir: Arc<dyn Directory> = Arc::new(NatsDirectory::connect(&config).await.unwrap());
    put_member(dir.as_ref(), &member("s1", MemberStatus::Active)).await;
    server.stop();

    let view = FederationView::start(dir.clone()).await.unwrap();
    assert!(!view.ready());
    assert!(view.owner_of_project(&ProjectId::new("p")).is_none());

    server.restart().unwrap();
    eventually("snapshot loaded after NATS came back", || view.ready()).await;
    assert_eq!(ring_ids(&view), ["s1"]);
    put_member(dir.as_ref(), &member("s22", MemberStatus::Active)).await;
    eventually("watch follows", || ring_ids(&view) == ["s1", "s22"]).await;
}
