#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use keyfed_directory::{
    Bucket, ChangeStream, Directory, DirectoryError, Entry, Kv, RevocationStream, Snapshot,
};
use keyfed_shared::federation::{GlobalEntity, MemberStatus};
use keyfed_shared::ids::{DomainId, ProjectId, RoleId, ShardId, UserId};

use super::*;
use crate::testutil::{
    assert_eventually, default_domain, embedded, member, put_global, put_member, role,
};

fn ring_ids(view: &FederationView) -> Vec<String> {
    view.ring()
        .map(|r| r.shards().map(|(id, _)| id.to_string()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_ring_and_keys_follow_the_members() {
    let (_tmp, dir) = embedded();
    put_member(dir.as_ref(), &member("s1", MemberStatus::Active)).await;
    put_member(dir.as_ref(), &member("s2", MemberStatus::Active)).await;
    put_member(dir.as_ref(), &member("s0", MemberStatus::Joining)).await;
    let view = FederationView::start(dir.clone()).await.unwrap();
    assert!(view.ready());
    assert_eq!(ring_ids(&view), ["s1", "s2"]);
    assert!(
        view.key("s0.1").is_some(),
        "a joining member's key is trusted"
    );
    assert!(view.revisions().iter().all(|r| r.loaded));
    let members_rev = view.revisions()[0].revision;

    put_member(dir.as_ref(), &member("s3", MemberStatus::Active)).await;
    assert_eventually!(ring_ids(&view) == ["s1", "s2", "s3"]);
    assert!(view.key("s3.1").is_some());
    assert!(view.revisions()[0].revision > members_rev);

    put_member(dir.as_ref(), &member("s1", MemberStatus::Retired)).await;
    assert_eventually!(ring_ids(&view) == ["s2", "s3"]);
    assert!(
        view.key("s1.1").is_some(),
        "a retired member's key stays trusted"
    );
    let s1 = view.member(&ShardId::new("s1")).unwrap();
    assert_eq!(s1.status, MemberStatus::Retired);

    dir.kv(Bucket::Members).delete("s1", None).await.unwrap();
    assert_eventually!(view.key("s1.1").is_none());
    assert!(view.member(&ShardId::new("s1")).is_none());
    let ids: Vec<_> = view.members().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["s0", "s2", "s3"].map(ShardId::new));
    assert!(
        view.key("s2.2").is_none(),
        "only the recorded kid is trusted"
    );
}

#[tokio::test]
async fn malformed_entries_are_skipped() {
    let (_tmp, dir) = embedded();
    let members = dir.kv(Bucket::Members);
    members.put("bad", Bytes::from_static(b"{")).await.unwrap();
    let mut liar = member("s2", MemberStatus::Active);
    liar.kid = "s1.1".into();
    members
        .put("s2", Bytes::from(serde_json::to_vec(&liar).unwrap()))
        .await
        .unwrap();
    put_member(dir.as_ref(), &member("s1", MemberStatus::Active)).await;
    let pins = dir.kv(Bucket::Pins);
    pins.put("project/p1", Bytes::from_static(&[0xff]))
        .await
        .unwrap();
    pins.put("move/p1", Bytes::from_static(b"{}"))
        .await
        .unwrap();
    let global = dir.kv(Bucket::Global);
    global
        .put("role/x", Bytes::from_static(b"[]"))
        .await
        .unwrap();
    put_global(dir.as_ref(), &role("r1", "admin")).await;

    let view = FederationView::start(dir.clone()).await.unwrap();
    assert!(view.ready());
    assert_eq!(ring_ids(&view), ["s1"]);
    assert!(view.member(&ShardId::new("s2")).is_none());
    assert_eq!(
        view.owner_of_project(&ProjectId::new("p1")),
        Some(ShardId::new("s1"))
    );
    assert_eq!(view.global().roles.len(), 1);

    // A malformed update leaves the previous record in place.
    members
        .put("s1", Bytes::from_static(b"garbage"))
        .await
        .unwrap();
    put_member(dir.as_ref(), &member("s3", MemberStatus::Active)).await;
    assert_eventually!(view.member(&ShardId::new("s3")).is_some());
    assert!(view.key("s1.1").is_some());
}

#[tokio::test]
async fn pins_override_the_ring() {
    let (_tmp, dir) = embedded();
    put_member(dir.as_ref(), &member("s1", MemberStatus::Active)).await;
    put_member(dir.as_ref(), &member("s2", MemberStatus::Active)).await;
    let view = FederationView::start(dir.clone()).await.unwrap();
    let ring = view.ring().unwrap();
    let project = (0..)
        .map(|i| ProjectId::new(format!("p{i}")))
        .find(|p| ring.owner(p.as_str()).as_str() == "s1")
        .unwrap();
    let user = (0..)
        .map(|i| UserId::new(format!("u{i}")))
        .find(|u| ring.owner(u.as_str()).as_str() == "s1")
        .unwrap();
    assert_eq!(view.owner_of_project(&project), Some(ShardId::new("s1")));
    assert_eq!(view.home_of_user(&user), Some(ShardId::new("s1")));

    let pins = dir.kv(Bucket::Pins);
    pins.put(&format!("project/{project}"), Bytes::from_static(b"s2"))
        .await
        .unwrap();
    pins.put(&format!("user/{user}"), Bytes::from_static(b"s2"))
        .await
        .unwrap();
    assert_eventually!(view.owner_of_project(&project) == Some(ShardId::new("s2")));
    assert_eventually!(view.home_of_user(&user) == Some(ShardId::new("s2")));

    pins.delete(&format!("project/{project}"), None)
        .await
        .unwrap();
    assert_eventually!(view.owner_of_project(&project) == Some(ShardId::new("s1")));
    assert_eq!(view.home_of_user(&user), Some(ShardId::new("s2")));

    // With no active member only pins place anything.
    put_member(dir.as_ref(), &member("s1", MemberStatus::Retiring)).await;
    put_member(dir.as_ref(), &member("s2", MemberStatus::Retiring)).await;
    assert_eventually!(view.ring().is_none());
    assert_eq!(view.owner_of_project(&project), None);
    assert_eq!(view.home_of_user(&user), Some(ShardId::new("s2")));
}

#[tokio::test]
async fn global_data_follows_the_global_bucket() {
    let (_tmp, dir) = embedded();
    put_global(dir.as_ref(), &default_domain()).await;
    let view = FederationView::start(dir.clone()).await.unwrap();
    let default = DomainId::new("default");
    assert_eq!(view.global().domain_name(&default), "Default");

    put_global(dir.as_ref(), &role("r1", "admin")).await;
    assert_eventually!(view.global().role_by_name("admin").is_some());
    put_global(dir.as_ref(), &role("r1", "superuser")).await;
    assert_eventually!(view.global().role_by_name("superuser").is_some());
    assert!(view.global().role_by_name("admin").is_none());

    let key = GlobalEntity::Domain(keyfed_shared::model::Domain {
        id: default.clone(),
        name: String::new(),
        description: String::new(),
        enabled: true,
    })
    .key();
    dir.kv(Bucket::Global).delete(&key, None).await.unwrap();
    assert_eventually!(view.global().domains.is_empty());
    assert!(view.global().roles.contains_key(&RoleId::new("r1")));
}

#[tokio::test]
async fn dropping_the_view_stops_its_followers() {
    let (_tmp, dir) = embedded();
    let view = FederationView::start(dir).await.unwrap();
    let shared = view.shared_weak();
    drop(view);
    assert_eventually!(shared.upgrade().is_none());
}

/// A directory whose bucket snapshots fail with `error` a number of times
/// before reaching the embedded directory behind it.
struct Flaky {
    inner: Arc<dyn Directory>,
    failures_left: Arc<AtomicUsize>,
    error: DirectoryError,
}

struct FlakyKv {
    inner: Arc<dyn Kv>,
    failures_left: Arc<AtomicUsize>,
    error: DirectoryError,
}

#[async_trait]
impl Directory for Flaky {
    fn namespace(&self) -> &str {
        self.inner.namespace()
    }
    fn kv(&self, bucket: Bucket) -> Arc<dyn Kv> {
        Arc::new(FlakyKv {
            inner: self.inner.kv(bucket),
            failures_left: self.failures_left.clone(),
            error: self.error.clone(),
        })
    }
    async fn publish_revocation(&self, payload: Bytes) -> keyfed_directory::Result<u64> {
        self.inner.publish_revocation(payload).await
    }
    async fn revocations_from(&self, after: u64) -> keyfed_directory::Result<RevocationStream> {
        self.inner.revocations_from(after).await
    }
}

#[async_trait]
impl Kv for FlakyKv {
    async fn get(&self, key: &str) -> keyfed_directory::Result<Option<Entry>> {
        self.inner.get(key).await
    }
    async fn create(&self, key: &str, value: Bytes) -> keyfed_directory::Result<u64> {
        self.inner.create(key, value).await
    }
    async fn update(&self, key: &str, value: Bytes, rev: u64) -> keyfed_directory::Result<u64> {
        self.inner.update(key, value, rev).await
    }
    async fn put(&self, key: &str, value: Bytes) -> keyfed_directory::Result<u64> {
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &str, rev: Option<u64>) -> keyfed_directory::Result<u64> {
        self.inner.delete(key, rev).await
    }
    async fn snapshot(&self, prefix: &str) -> keyfed_directory::Result<Snapshot> {
        let left = self.failures_left.load(Ordering::SeqCst);
        if left > 0 {
            self.failures_left.store(left - 1, Ordering::SeqCst);
            return Err(self.error.clone());
        }
        self.inner.snapshot(prefix).await
    }
    async fn watch_from(&self, revision: u64) -> keyfed_directory::Result<ChangeStream> {
        self.inner.watch_from(revision).await
    }
}

#[tokio::test]
async fn an_unreachable_directory_starts_the_view_not_ready() {
    let (_tmp, dir) = embedded();
    put_member(dir.as_ref(), &member("s1", MemberStatus::Active)).await;
    let flaky = Arc::new(Flaky {
        inner: dir,
        failures_left: Arc::new(AtomicUsize::new(6)),
        error: DirectoryError::Unavailable("down".into()),
    });
    let view = FederationView::start(flaky).await.unwrap();
    assert!(!view.ready());
    assert!(view.key("s1.1").is_none());
    assert_eventually!(view.ready(), Duration::from_secs(10));
    assert!(view.key("s1.1").is_some());
}

#[tokio::test]
async fn a_permanent_directory_error_fails_the_start() {
    let (_tmp, dir) = embedded();
    let flaky = Arc::new(Flaky {
        inner: dir,
        failures_left: Arc::new(AtomicUsize::new(usize::MAX)),
        error: DirectoryError::Invalid("bad namespace".into()),
    });
    let error = FederationView::start(flaky).await.unwrap_err();
    assert!(matches!(
        error,
        ViewError::Directory(DirectoryError::Invalid(_))
    ));
}
