//! The relay over the embedded store and directory, with a directory double
//! that can be taken down.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::store::embedded::EmbeddedStore;
use async_trait::async_trait;
use bytes::Bytes;
use keyfed_directory::{Bucket, ChangeStream, Directory, EmbeddedConfig, EmbeddedDirectory};
use keyfed_directory::{Entry, Snapshot};
use keyfed_shared::ids::{DomainId, ProjectId, RoleId};
use keyfed_shared::model::{Assignment, Domain, Project, Role, Target, User};
use keyfed_shared::revocation::{RevocationEvent, RevocationSubject};
use std::time::Instant;

/// A bucket that fails every call while `down`, and counts the calls.
struct Flaky {
    inner: Arc<dyn Kv>,
    down: AtomicBool,
    calls: AtomicU64,
}

impl Flaky {
    fn check(&self) -> Result<(), DirectoryError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            Err(DirectoryError::Unavailable("down for the test".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Kv for Flaky {
    async fn get(&self, key: &str) -> keyfed_directory::Result<Option<Entry>> {
        self.check()?;
        self.inner.get(key).await
    }
    async fn create(&self, key: &str, value: Bytes) -> keyfed_directory::Result<u64> {
        self.check()?;
        self.inner.create(key, value).await
    }
    async fn update(&self, key: &str, value: Bytes, rev: u64) -> keyfed_directory::Result<u64> {
        self.check()?;
        self.inner.update(key, value, rev).await
    }
    async fn put(&self, key: &str, value: Bytes) -> keyfed_directory::Result<u64> {
        self.check()?;
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &str, rev: Option<u64>) -> keyfed_directory::Result<u64> {
        self.check()?;
        self.inner.delete(key, rev).await
    }
    async fn snapshot(&self, prefix: &str) -> keyfed_directory::Result<Snapshot> {
        self.check()?;
        self.inner.snapshot(prefix).await
    }
    async fn watch_from(&self, revision: u64) -> keyfed_directory::Result<ChangeStream> {
        self.check()?;
        self.inner.watch_from(revision).await
    }
}

/// A store with one project and one role, and a memberships bucket.
struct Fixture {
    _dirs: (tempfile::TempDir, tempfile::TempDir),
    store: Arc<dyn Store>,
    index: Arc<Flaky>,
    domain: DomainId,
    project: ProjectId,
    role: RoleId,
}

impl Fixture {
    async fn new() -> Self {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(a.path()).unwrap());
        let dir = EmbeddedDirectory::open(&EmbeddedConfig::new(b.path())).unwrap();
        let index = Arc::new(Flaky {
            inner: dir.kv(Bucket::Memberships),
            down: AtomicBool::new(false),
            calls: AtomicU64::new(0),
        });
        let domain = Domain {
            id: DomainId::generate(),
            name: "d".into(),
            description: String::new(),
            enabled: true,
        };
        store.create_domain(&domain).await.unwrap();
        let project = Project {
            id: ProjectId::generate(),
            name: "p".into(),
            domain_id: domain.id.clone(),
            description: String::new(),
            enabled: true,
            tags: vec![],
            extra: Default::default(),
        };
        store.create_project(&project).await.unwrap();
        let role = Role {
            id: RoleId::generate(),
            name: "member".into(),
            domain_id: None,
            description: None,
        };
        store.create_role(&role).await.unwrap();
        Self {
            _dirs: (a, b),
            store,
            index,
            domain: domain.id,
            project: project.id,
            role: role.id,
        }
    }

    /// A new user granted the role on the project.
    async fn granted_user(&self) -> UserId {
        let user = User {
            id: UserId::generate(),
            name: format!("u-{}", UserId::generate()),
            domain_id: self.domain.clone(),
            enabled: true,
            default_project_id: None,
            extra: Default::default(),
        };
        self.store.create_user(&user, None).await.unwrap();
        assert!(self.store.grant(&self.assignment(&user.id)).await.unwrap());
        user.id
    }

    fn assignment(&self, user: &UserId) -> Assignment {
        Assignment {
            user_id: user.clone(),
            target: Target::Project(self.project.clone()),
            role_id: self.role.clone(),
        }
    }

    async fn shards(&self, user: &UserId) -> BTreeSet<ShardId> {
        shards_of(self.index.inner.as_ref(), user).await.unwrap()
    }

    fn start(&self, me: &str) -> (Arc<Relay>, tokio::task::JoinHandle<()>) {
        let relay = Arc::new(Relay::default());
        let index: Arc<dyn Kv> = self.index.clone();
        let task = tokio::spawn(
            relay
                .clone()
                .run(self.store.clone(), index, ShardId::new(me)),
        );
        (relay, task)
    }
}

fn set(ids: &[&str]) -> BTreeSet<ShardId> {
    ids.iter().copied().map(ShardId::new).collect()
}

fn revoke_marker() -> RevocationEvent {
    RevocationEvent {
        subject: RevocationSubject::User(UserId::generate()),
        issued_before: 0,
        expires_at: i64::MAX / 2,
    }
}

/// Polls `check` for up to five seconds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn entries_left_before_start_are_delivered_at_start() {
    let f = Fixture::new().await;
    // Written while no relay ran (as after a crash).
    let user = f.granted_user().await;
    assert_eq!(f.store.outbox_pending(10).await.unwrap().len(), 1);
    assert!(f.shards(&user).await.is_empty());

    let (_relay, task) = f.start("shard-a");
    eventually("delivered at start", || async {
        f.shards(&user).await == set(&["shard-a"])
    })
    .await;
    eventually("entry removed", || async {
        f.store.outbox_pending(10).await.unwrap().is_empty()
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn a_directory_outage_keeps_entries_until_delivered() {
    let f = Fixture::new().await;
    let (relay, task) = f.start("shard-a");
    f.index.down.store(true, Ordering::SeqCst);
    let user = f.granted_user().await;
    relay.poke();
    // The relay keeps trying, and keeps the entry.
    let before = f.index.calls.load(Ordering::SeqCst);
    eventually("retried", || async {
        f.index.calls.load(Ordering::SeqCst) >= before + 2
    })
    .await;
    assert_eq!(f.store.outbox_pending(10).await.unwrap().len(), 1);
    assert!(
        !relay.flush(Duration::from_secs(1)).await,
        "no flush while failing"
    );

    f.index.down.store(false, Ordering::SeqCst);
    eventually("delivered after the outage", || async {
        f.shards(&user).await == set(&["shard-a"])
    })
    .await;
    eventually("entry removed", || async {
        f.store.outbox_pending(10).await.unwrap().is_empty()
    })
    .await;
    task.abort();
}

#[tokio::test]
async fn the_last_role_gone_takes_the_shard_out_without_touching_others() {
    let f = Fixture::new().await;
    let user = f.granted_user().await;
    // Another shard already lists the user.
    set_membership(f.index.as_ref(), &user, &ShardId::new("shard-b"), true)
        .await
        .unwrap();
    let (relay, task) = f.start("shard-a");
    assert!(relay.flush(Duration::from_secs(5)).await);
    assert_eq!(f.shards(&user).await, set(&["shard-a", "shard-b"]));

    assert!(f
        .store
        .revoke_grant(&f.assignment(&user), &revoke_marker())
        .await
        .unwrap());
    assert!(relay.flush(Duration::from_secs(5)).await);
    assert_eq!(f.shards(&user).await, set(&["shard-b"]));

    // The last shard out deletes the entry.
    set_membership(f.index.as_ref(), &user, &ShardId::new("shard-b"), false)
        .await
        .unwrap();
    assert_eq!(f.index.inner.get(user.as_str()).await.unwrap(), None);
    task.abort();
}

#[tokio::test]
async fn shards_writing_one_entry_at_once_all_land() {
    let f = Fixture::new().await;
    let user = UserId::generate();
    let shards: Vec<ShardId> = (0..8).map(|i| ShardId::new(format!("s{i}"))).collect();
    let writes = shards.iter().map(|s| {
        let index = f.index.clone();
        let (user, s) = (user.clone(), s.clone());
        tokio::spawn(async move { set_membership(index.as_ref(), &user, &s, true).await })
    });
    for w in writes.collect::<Vec<_>>() {
        w.await.unwrap().unwrap();
    }
    assert_eq!(f.shards(&user).await, shards.into_iter().collect());
}

#[tokio::test]
async fn flush_waits_for_a_pass_that_saw_the_write() {
    let f = Fixture::new().await;
    let (relay, task) = f.start("shard-a");
    for _ in 0..5 {
        let user = f.granted_user().await;
        assert!(relay.flush(Duration::from_secs(5)).await);
        assert_eq!(f.shards(&user).await, set(&["shard-a"]), "read your write");
    }
    task.abort();
}

#[tokio::test]
async fn reindex_restores_lost_entries_and_drops_stale_ones() {
    let f = Fixture::new().await;
    let holder = f.granted_user().await;
    let (_relay, task) = f.start("shard-a");
    eventually("delivered", || async {
        f.shards(&holder).await == set(&["shard-a"])
    })
    .await;
    task.abort();

    // The index loses the holder's entry, and gains a stale one naming this
    // shard for a user with no assignment here (plus another shard, kept).
    let index = f.index.inner.as_ref();
    index.delete(&membership::key(&holder), None).await.unwrap();
    let stale = UserId::generate();
    index
        .put(
            &membership::key(&stale),
            membership::encode(&set(&["shard-a", "shard-b"])).into(),
        )
        .await
        .unwrap();

    let queued = reindex(f.store.as_ref(), index, &ShardId::new("shard-a"))
        .await
        .unwrap();
    assert_eq!(queued, 2, "the holder and the stale user");
    let (_relay, task) = f.start("shard-a");
    eventually("the holder's entry restored", || async {
        f.shards(&holder).await == set(&["shard-a"])
    })
    .await;
    eventually("the stale entry cleaned, the other shard kept", || async {
        f.shards(&stale).await == set(&["shard-b"])
    })
    .await;
    task.abort();
}
