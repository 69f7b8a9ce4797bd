#![allow(clippy::unwrap_used)]

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;

use super::*;
use crate::conformance;
use crate::kv::Change;

fn config(path: &std::path::Path, namespace: &str) -> EmbeddedConfig {
    EmbeddedConfig {
        namespace: namespace.to_owned(),
        ..EmbeddedConfig::new(path)
    }
}

#[tokio::test]
async fn conforms() {
    let dir = tempfile::tempdir().unwrap();
    let directory = EmbeddedDirectory::open(&config(dir.path(), "conformance")).unwrap();
    conformance::run_all(&directory).await;
}

#[tokio::test]
async fn namespaces_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let a = EmbeddedDirectory::open(&config(dir.path(), "a")).unwrap();
    let b = EmbeddedDirectory::open(&config(dir.path(), "b")).unwrap();
    conformance::namespace_isolation(&a, &b).await;

    let other = tempfile::tempdir().unwrap();
    let c = EmbeddedDirectory::open(&config(other.path(), "c")).unwrap();
    conformance::namespace_isolation(&a, &c).await;
}

#[tokio::test]
async fn state_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, deleted, sequence) = {
        let directory = EmbeddedDirectory::open(&config(dir.path(), "durable")).unwrap();
        let kv = directory.kv(Bucket::Members);
        let kept = kv.put("shard-1", Bytes::from_static(b"url")).await.unwrap();
        kv.put("shard-2", Bytes::from_static(b"x")).await.unwrap();
        let deleted = kv.delete("shard-2", None).await.unwrap();
        let sequence = directory
            .publish_revocation(Bytes::from_static(b"revoked"))
            .await
            .unwrap();
        (kept, deleted, sequence)
    };

    let directory = EmbeddedDirectory::open(&config(dir.path(), "durable")).unwrap();
    let kv = directory.kv(Bucket::Members);
    let entry = kv.get("shard-1").await.unwrap().unwrap();
    assert_eq!((entry.value.as_ref(), entry.revision), (&b"url"[..], kept));
    assert_eq!(kv.get("shard-2").await.unwrap(), None);
    let snapshot = kv.snapshot("").await.unwrap();
    assert_eq!(snapshot.revision, deleted, "the revision counter survives");
    assert!(kv.put("shard-3", Bytes::new()).await.unwrap() > deleted);

    // Deletions survive too: a watch from the start still reports them.
    let mut watch = kv.watch_from(0).await.unwrap();
    let first: Vec<Change> = watch.by_ref().take(2).collect().await;
    assert_eq!(first[1].key, "shard-2");
    assert_eq!(first[1].value, None);

    let mut events = directory.revocations_from(0).await.unwrap();
    let event = events.next().await.unwrap();
    assert_eq!(
        (event.sequence, event.payload.as_ref()),
        (sequence, &b"revoked"[..])
    );
    let next = directory.publish_revocation(Bytes::new()).await.unwrap();
    assert_eq!(next, sequence + 1, "sequences continue after a restart");
}

/// A watcher that falls further behind than its channel holds re-reads the
/// bucket and still converges, in revision order.
#[tokio::test]
async fn a_lagging_watcher_converges() {
    let dir = tempfile::tempdir().unwrap();
    let directory = EmbeddedDirectory::open(&config(dir.path(), "lag")).unwrap();
    let kv = directory.kv(Bucket::Pins);
    let mut watch = kv.watch_from(0).await.unwrap();
    let mut last = 0;
    for round in 0..5 {
        for key in 0..10 {
            last = kv
                .put(&format!("k{key}"), Bytes::from(format!("{round}")))
                .await
                .unwrap();
        }
    }
    let mut seen = std::collections::BTreeMap::new();
    let mut previous = 0;
    while previous < last {
        let change = tokio::time::timeout(Duration::from_secs(5), watch.next())
            .await
            .unwrap()
            .unwrap();
        assert!(change.revision > previous, "revision order");
        previous = change.revision;
        seen.insert(change.key, change.value.unwrap());
    }
    assert_eq!(seen.len(), 10);
    assert!(seen.values().all(|v| v.as_ref() == b"4"), "{seen:?}");
}

#[tokio::test]
async fn old_revocations_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let short = EmbeddedConfig {
        revocation_max_age_secs: 1,
        ..config(dir.path(), "aging")
    };
    let directory = EmbeddedDirectory::open(&short).unwrap();
    directory
        .publish_revocation(Bytes::from_static(b"old"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let fresh = directory
        .publish_revocation(Bytes::from_static(b"fresh"))
        .await
        .unwrap();
    let mut events = directory.revocations_from(0).await.unwrap();
    let first = events.next().await.unwrap();
    assert_eq!(
        (first.sequence, first.payload.as_ref()),
        (fresh, &b"fresh"[..])
    );
}

#[tokio::test]
async fn invalid_configs_and_corrupt_state_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bad = config(dir.path(), "../escape");
    assert!(matches!(
        EmbeddedDirectory::open(&bad),
        Err(DirectoryError::Invalid(_))
    ));
    let ns = dir.path().join("broken");
    std::fs::create_dir_all(&ns).unwrap();
    std::fs::write(ns.join("pins.json"), b"[]").unwrap();
    let error = EmbeddedDirectory::open(&config(dir.path(), "broken")).unwrap_err();
    assert!(error.to_string().contains("pins.json"), "{error}");
}
