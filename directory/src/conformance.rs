//! The behaviour every directory backend must show, as a test suite.
//!
//! [`run_all`] exercises one directory; [`namespace_isolation`] needs two
//! directories in different namespaces of the same backend. Each run uses
//! keys and payloads under a fresh prefix, so runs may share a directory
//! with other runs and with earlier data. Failures panic with a message
//! naming the broken property.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::StreamExt;

use crate::directory::{Bucket, Directory, RevocationStream};
use crate::error::DirectoryError;
use crate::kv::{Change, ChangeStream, Entry, Kv};

/// Longest wait for a watched change or event.
const WAIT: Duration = Duration::from_secs(10);

/// Racing writers in [`concurrent_updates`].
const RACERS: usize = 20;

/// A prefix unique to this run (time plus a process-wide counter).
fn run_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("run{nanos}-{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

fn b(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn change(key: &str, value: Option<&str>, revision: u64) -> Change {
    Change {
        key: key.to_owned(),
        value: value.map(b),
        revision,
    }
}

/// The next change whose key starts with `prefix`.
async fn next_change(stream: &mut ChangeStream, prefix: &str) -> Change {
    loop {
        let change = tokio::time::timeout(WAIT, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no change under {prefix:?} within {WAIT:?}"))
            .expect("a watch stream ended");
        if change.key.starts_with(prefix) {
            return change;
        }
    }
}

async fn next_changes(stream: &mut ChangeStream, prefix: &str, n: usize) -> Vec<Change> {
    let mut changes = Vec::with_capacity(n);
    for _ in 0..n {
        changes.push(next_change(stream, prefix).await);
    }
    changes
}

/// The next revocation event whose payload starts with `tag`, as
/// (sequence, payload).
async fn next_event(stream: &mut RevocationStream, tag: &str) -> (u64, String) {
    loop {
        let event = tokio::time::timeout(WAIT, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no revocation tagged {tag:?} within {WAIT:?}"))
            .expect("the revocation stream ended");
        let payload = String::from_utf8_lossy(&event.payload).into_owned();
        if payload.starts_with(tag) {
            return (event.sequence, payload);
        }
    }
}

/// Runs every single-directory check against `dir`.
pub async fn run_all(dir: &dyn Directory) {
    let run = run_id();
    let kv = dir.kv(Bucket::Global);
    create_and_get(&*kv, &run).await;
    compare_and_swap(&*kv, &run).await;
    concurrent_updates(&*kv, &run).await;
    delete_with_cas(&*kv, &run).await;
    snapshot_by_prefix(&*kv, &run).await;
    watch_delivers_changes_in_order(&*kv, &run).await;
    buckets_are_separate(dir, &run).await;
    revocation_stream(dir, &run).await;
}

/// `create` stores only new keys; `get` returns value and revision; keys
/// with any characters work; empty keys are invalid.
pub async fn create_and_get(kv: &dyn Kv, run: &str) {
    let key = format!("{run}/create/ü key.with*odd>chars");
    assert_eq!(kv.get(&key).await.unwrap(), None, "absent key");
    let revision = kv.create(&key, b("v1")).await.unwrap();
    assert!(revision > 0, "revisions start above 0");
    let expected = Entry {
        value: b("v1"),
        revision,
    };
    assert_eq!(kv.get(&key).await.unwrap(), Some(expected.clone()));
    assert_eq!(
        kv.create(&key, b("v2")).await,
        Err(DirectoryError::AlreadyExists),
        "create over a live key"
    );
    assert_eq!(kv.get(&key).await.unwrap(), Some(expected), "unchanged");
    assert!(matches!(kv.get("").await, Err(DirectoryError::Invalid(_))));
    assert!(matches!(
        kv.put("", b("x")).await,
        Err(DirectoryError::Invalid(_))
    ));
}

/// `update` is a compare-and-swap on the revision.
pub async fn compare_and_swap(kv: &dyn Kv, run: &str) {
    let key = format!("{run}/cas");
    let first = kv.put(&key, b("a")).await.unwrap();
    let second = kv.update(&key, b("b"), first).await.unwrap();
    assert!(second > first, "revisions grow");
    assert_eq!(
        kv.update(&key, b("c"), first).await,
        Err(DirectoryError::WrongRevision),
        "stale update"
    );
    let current = kv.get(&key).await.unwrap().unwrap();
    assert_eq!((current.value, current.revision), (b("b"), second));

    let missing = format!("{run}/cas-missing");
    assert_eq!(
        kv.update(&missing, b("x"), second).await,
        Err(DirectoryError::NotFound),
        "update of a key that never existed"
    );
    let created = kv.update(&missing, b("x"), 0).await.unwrap();
    assert!(created > second, "revision 0 means 'never written'");
    let third = kv.put(&key, b("d")).await.unwrap();
    assert!(third > created, "put takes the next revision");
}

/// Of many updates racing with the same expected revision, exactly one wins.
pub async fn concurrent_updates(kv: &dyn Kv, run: &str) {
    let key = format!("{run}/race");
    let start = kv.put(&key, b("start")).await.unwrap();
    let attempts = (0..RACERS).map(|i| {
        let key = key.clone();
        async move {
            (
                i,
                kv.update(&key, Bytes::from(format!("w{i}")), start).await,
            )
        }
    });
    let results = futures::future::join_all(attempts).await;
    let winners: Vec<(usize, u64)> = results
        .iter()
        .filter_map(|(i, result)| result.as_ref().ok().map(|revision| (*i, *revision)))
        .collect();
    assert_eq!(winners.len(), 1, "exactly one winner: {results:?}");
    for (_, result) in &results {
        if let Err(error) = result {
            assert_eq!(
                error,
                &DirectoryError::WrongRevision,
                "losers see a conflict"
            );
        }
    }
    let (winner, revision) = winners[0];
    let stored = kv.get(&key).await.unwrap().unwrap();
    assert_eq!(stored.value, Bytes::from(format!("w{winner}")));
    assert_eq!(stored.revision, revision);
}

/// `delete` with an expected revision is a compare-and-swap too.
pub async fn delete_with_cas(kv: &dyn Kv, run: &str) {
    let key = format!("{run}/delete");
    let first = kv.put(&key, b("a")).await.unwrap();
    let second = kv.put(&key, b("b")).await.unwrap();
    assert_eq!(
        kv.delete(&key, Some(first)).await,
        Err(DirectoryError::WrongRevision),
        "stale delete"
    );
    assert!(
        kv.get(&key).await.unwrap().is_some(),
        "stale delete kept the key"
    );
    let deleted = kv.delete(&key, Some(second)).await.unwrap();
    assert!(deleted > second, "a deletion takes a revision");
    assert_eq!(kv.get(&key).await.unwrap(), None);
    assert_eq!(
        kv.delete(&key, Some(second)).await,
        Err(DirectoryError::NotFound),
        "CAS delete of a deleted key"
    );
    let recreated = kv.create(&key, b("again")).await.unwrap();
    assert!(recreated > deleted, "create after delete");
    let absent = format!("{run}/delete-absent");
    kv.delete(&absent, None).await.unwrap();
    assert_eq!(kv.get(&absent).await.unwrap(), None);
}

/// `snapshot` returns the live entries under a prefix, sorted, with a
/// revision covering every write before it.
pub async fn snapshot_by_prefix(kv: &dyn Kv, run: &str) {
    let base = format!("{run}/snap/");
    let mut expected = Vec::new();
    for name in ["a", "b", "sub/c", "ü.x y"] {
        let key = format!("{base}{name}");
        let revision = kv.put(&key, b(name)).await.unwrap();
        expected.push((
            key,
            Entry {
                value: b(name),
                revision,
            },
        ));
    }
    kv.put(&format!("{run}/snap-sibling"), b("outside"))
        .await
        .unwrap();
    let gone = format!("{base}gone");
    kv.put(&gone, b("x")).await.unwrap();
    let last = kv.delete(&gone, None).await.unwrap();

    let snapshot = kv.snapshot(&base).await.unwrap();
    assert_eq!(snapshot.entries, expected, "live entries under the prefix");
    assert!(
        snapshot.revision >= last,
        "snapshot revision covers the writes"
    );

    let sub = kv.snapshot(&format!("{base}sub/")).await.unwrap();
    assert_eq!(sub.entries, expected[2..3].to_vec());
    let none = kv.snapshot(&format!("{run}/nothing/")).await.unwrap();
    assert!(none.entries.is_empty());
    assert!(none.revision >= last);
    let all = kv.snapshot("").await.unwrap();
    assert!(
        all.entries.len() > expected.len(),
        "the sibling is in the full snapshot"
    );
}

/// A watch delivers every later change in revision order, deletions
/// included; a watch from an older revision delivers the newest change of
/// each key changed since.
pub async fn watch_delivers_changes_in_order(kv: &dyn Kv, run: &str) {
    let base = format!("{run}/watch/");
    let (a, bk, c) = (format!("{base}a"), format!("{base}b"), format!("{base}c.ü"));
    let start = kv.snapshot(&base).await.unwrap().revision;
    let mut live = kv.watch_from(start).await.unwrap();

    let put_a = kv.put(&a, b("1")).await.unwrap();
    let put_b = kv.put(&bk, b("2")).await.unwrap();
    let del_a = kv.delete(&a, None).await.unwrap();
    let put_c = kv.put(&c, b("3")).await.unwrap();
    let upd_b = kv.update(&bk, b("4"), put_b).await.unwrap();
    let expected = vec![
        change(&a, Some("1"), put_a),
        change(&bk, Some("2"), put_b),
        change(&a, None, del_a),
        change(&c, Some("3"), put_c),
        change(&bk, Some("4"), upd_b),
    ];
    assert_eq!(
        next_changes(&mut live, &base, 5).await,
        expected,
        "live watch"
    );

    let mut late = kv.watch_from(start).await.unwrap();
    let newest = vec![
        change(&a, None, del_a),
        change(&c, Some("3"), put_c),
        change(&bk, Some("4"), upd_b),
    ];
    assert_eq!(
        next_changes(&mut late, &base, 3).await,
        newest,
        "watch from the past"
    );

    let mut middle = kv.watch_from(del_a).await.unwrap();
    assert_eq!(
        next_changes(&mut middle, &base, 2).await,
        newest[1..].to_vec()
    );

    let mut tail = kv.watch_from(upd_b).await.unwrap();
    let d = format!("{base}d");
    let put_d = kv.put(&d, b("5")).await.unwrap();
    assert_eq!(
        next_change(&mut tail, &base).await,
        change(&d, Some("5"), put_d)
    );
    assert_eq!(
        next_change(&mut live, &base).await,
        change(&d, Some("5"), put_d)
    );
}

/// Buckets are separate key spaces with separate watches.
pub async fn buckets_are_separate(dir: &dyn Directory, run: &str) {
    let key = format!("{run}/bucket");
    let global = dir.kv(Bucket::Global);
    let pins = dir.kv(Bucket::Pins);
    let mut pin_watch = pins
        .watch_from(pins.snapshot("").await.unwrap().revision)
        .await
        .unwrap();
    global.put(&key, b("global")).await.unwrap();
    assert_eq!(pins.get(&key).await.unwrap(), None, "other bucket");
    let pin_revision = pins.put(&key, b("pin")).await.unwrap();
    assert_eq!(
        next_change(&mut pin_watch, run).await,
        change(&key, Some("pin"), pin_revision),
        "a bucket's watch sees only its bucket"
    );
    assert_eq!(global.get(&key).await.unwrap().unwrap().value, b("global"));
}

/// Revocation events get increasing sequences and replay from a sequence.
pub async fn revocation_stream(dir: &dyn Directory, run: &str) {
    let tag = format!("{run}/rev/");
    let mut sequences = Vec::new();
    for i in 1..=3 {
        let payload = format!("{tag}{i}");
        sequences.push(dir.publish_revocation(b(&payload)).await.unwrap());
    }
    assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");

    let mut from_first = dir.revocations_from(sequences[0]).await.unwrap();
    assert_eq!(
        next_event(&mut from_first, &tag).await,
        (sequences[1], format!("{tag}2"))
    );
    assert_eq!(
        next_event(&mut from_first, &tag).await,
        (sequences[2], format!("{tag}3"))
    );
    let fourth = dir.publish_revocation(b(&format!("{tag}4"))).await.unwrap();
    assert!(fourth > sequences[2]);
    assert_eq!(
        next_event(&mut from_first, &tag).await,
        (fourth, format!("{tag}4"))
    );

    let mut everything = dir.revocations_from(0).await.unwrap();
    assert_eq!(
        next_event(&mut everything, &tag).await,
        (sequences[0], format!("{tag}1"))
    );
}

/// Two directories in different namespaces of one backend share nothing.
pub async fn namespace_isolation(a: &dyn Directory, b_dir: &dyn Directory) {
    assert_ne!(a.namespace(), b_dir.namespace(), "needs two namespaces");
    let run = run_id();
    let key = format!("{run}/isolated");
    let (kv_a, kv_b) = (a.kv(Bucket::Names), b_dir.kv(Bucket::Names));
    kv_a.create(&key, b("a")).await.unwrap();
    assert_eq!(
        kv_b.get(&key).await.unwrap(),
        None,
        "key leaked across namespaces"
    );
    assert!(kv_b.snapshot(&run).await.unwrap().entries.is_empty());
    kv_b.create(&key, b("b")).await.unwrap();
    assert_eq!(kv_a.get(&key).await.unwrap().unwrap().value, b("a"));

    let tag = format!("{run}/iso/");
    a.publish_revocation(b(&format!("{tag}a"))).await.unwrap();
    b_dir
        .publish_revocation(b(&format!("{tag}b")))
        .await
        .unwrap();
    let mut events = b_dir.revocations_from(0).await.unwrap();
    let (_, payload) = next_event(&mut events, &tag).await;
    assert_eq!(
        payload,
        format!("{tag}b"),
        "revocation leaked across namespaces"
    );
}
