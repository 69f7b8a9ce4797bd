//! The NATS directory against a real nats-server, spawned per test on a free
//! port (see `keyfed_directory::testing`): the conformance suite, namespace
//! isolation, retention of revocations, and behaviour across outages.

#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use keyfed_directory::testing::NatsServer;
use keyfed_directory::{conformance, Bucket, Directory, DirectoryError, NatsConfig, NatsDirectory};

/// The call timeout in the outage tests.
const SHORT_TIMEOUT: Duration = Duration::from_millis(500);

/// How long recovery after a restart may take.
const RECOVERY: Duration = Duration::from_secs(30);

fn start_server() -> NatsServer {
    NatsServer::start().unwrap_or_else(|error| panic!("cannot start nats-server: {error}"))
}

fn config(server: &NatsServer, namespace: &str) -> NatsConfig {
    NatsConfig {
        namespace: namespace.to_owned(),
        ..NatsConfig::new(server.url())
    }
}

fn outage_config(server: &NatsServer, namespace: &str) -> NatsConfig {
    NatsConfig {
        timeout_ms: u64::try_from(SHORT_TIMEOUT.as_millis()).unwrap(),
        reconnect_max_delay_ms: 200,
        ..config(server, namespace)
    }
}

/// Retries `call` while the directory is unavailable, up to [`RECOVERY`].
async fn eventually<T, F, Fut>(mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DirectoryError>>,
{
    let deadline = Instant::now() + RECOVERY;
    loop {
        match call().await {
            Ok(value) => return value,
            Err(DirectoryError::Unavailable(reason)) if Instant::now() < deadline => {
                tracing::debug!(%reason, "still unavailable");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("did not recover: {error}"),
        }
    }
}

/// Asserts that `call` fails with `Unavailable` within the timeout (plus
/// scheduling slack) instead of hanging.
async fn assert_unavailable<T>(what: &str, call: impl Future<Output = Result<T, DirectoryError>>) {
    let started = Instant::now();
    let result = tokio::time::timeout(SHORT_TIMEOUT * 4, call)
        .await
        .unwrap_or_else(|_| panic!("{what} hung while NATS was down"))
        .map(|_| "a value");
    let elapsed = started.elapsed();
    assert!(
        matches!(result, Err(DirectoryError::Unavailable(_))),
        "{what} while NATS was down: {result:?}"
    );
    assert!(
        elapsed < SHORT_TIMEOUT + Duration::from_millis(500),
        "{what} took {elapsed:?}"
    );
}

#[tokio::test]
async fn conforms() {
    let server = start_server();
    let directory = NatsDirectory::connect(&config(&server, "conformance"))
        .await
        .unwrap();
    conformance::run_all(&directory).await;
}

#[tokio::test]
async fn namespaces_on_one_server_are_isolated() {
    let server = start_server();
    let a = NatsDirectory::connect(&config(&server, "fed-a"))
        .await
        .unwrap();
    let b = NatsDirectory::connect(&config(&server, "fed_b"))
        .await
        .unwrap();
    conformance::namespace_isolation(&a, &b).await;
}

#[tokio::test]
async fn revocations_older_than_the_max_age_are_dropped() {
    let server = start_server();
    let short = NatsConfig {
        revocation_max_age_secs: 1,
        ..config(&server, "aging")
    };
    let directory = NatsDirectory::connect(&short).await.unwrap();
    directory
        .publish_revocation(Bytes::from_static(b"old"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let fresh = directory
        .publish_revocation(Bytes::from_static(b"fresh"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut events = directory.revocations_from(0).await.unwrap();
        let first = events.next().await.unwrap();
        if first.sequence == fresh {
            assert_eq!(first.payload.as_ref(), b"fresh");
            break;
        }
        assert!(Instant::now() < deadline, "the old event was never dropped");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn watches_resume_after_a_restart_and_calls_fail_fast_meanwhile() {
    let mut server = start_server();
    let directory = NatsDirectory::connect(&outage_config(&server, "outage"))
        .await
        .unwrap();
    let kv = directory.kv(Bucket::Global);
    let before = kv.put("before", Bytes::from_static(b"1")).await.unwrap();
    let mut watch = kv.watch_from(0).await.unwrap();
    assert_eq!(watch.next().await.unwrap().revision, before);
    let published = directory
        .publish_revocation(Bytes::from_static(b"r1"))
        .await
        .unwrap();
    let mut revocations = directory.revocations_from(0).await.unwrap();
    assert_eq!(revocations.next().await.unwrap().sequence, published);

    server.stop();
    let value = || Bytes::from_static(b"during");
    assert_unavailable("get", kv.get("before")).await;
    assert_unavailable("put", kv.put("during-put", value())).await;
    assert_unavailable("create", kv.create("during-create", value())).await;
    assert_unavailable("update", kv.update("before", value(), before)).await;
    assert_unavailable("delete", kv.delete("before", Some(before))).await;
    assert_unavailable("snapshot", kv.snapshot("")).await;
    assert_unavailable("watch_from", kv.watch_from(0)).await;
    assert_unavailable("publish", directory.publish_revocation(value())).await;
    assert_unavailable("revocations_from", directory.revocations_from(0)).await;
    assert!(!directory.is_connected());

    server.restart().unwrap();
    let after = eventually(|| kv.put("after", Bytes::from_static(b"2"))).await;
    // The open watch resumes and delivers the new change, in order; writes
    // that timed out during the outage may or may not have been applied.
    let mut previous = before;
    loop {
        let change = tokio::time::timeout(RECOVERY, watch.next())
            .await
            .expect("the watch did not resume")
            .unwrap();
        assert!(change.revision > previous, "revision order");
        previous = change.revision;
        if change.revision >= after {
            assert_eq!(change.revision, after);
            assert_eq!(change.key, "after");
            assert_eq!(change.value.as_deref(), Some(&b"2"[..]));
            break;
        }
        // A timed-out attempt may have been delivered after reconnecting.
        assert!(
            change.key.starts_with("during") || ["before", "after"].contains(&change.key.as_str()),
            "{change:?}"
        );
    }

    let sequence = eventually(|| directory.publish_revocation(Bytes::from_static(b"r2"))).await;
    loop {
        let event = tokio::time::timeout(RECOVERY, revocations.next())
            .await
            .expect("the revocation stream did not resume")
            .unwrap();
        if event.sequence >= sequence {
            assert_eq!(event.sequence, sequence);
            assert_eq!(event.payload.as_ref(), b"r2");
            break;
        }
        assert!(
            [&b"during"[..], b"r2"].contains(&event.payload.as_ref()),
            "{event:?}"
        );
    }
}

#[tokio::test]
async fn a_directory_started_while_nats_is_down_works_once_it_is_up() {
    let mut server = start_server();
    server.stop();
    let started = Instant::now();
    let directory = NatsDirectory::connect(&outage_config(&server, "late"))
        .await
        .unwrap();
    assert!(
        started.elapsed() < SHORT_TIMEOUT,
        "connect waited for the server"
    );
    let kv = directory.kv(Bucket::Members);
    assert_unavailable("get before the first connection", kv.get("m")).await;

    server.restart().unwrap();
    // `put`, not `create`: a timed-out attempt may still be applied later.
    let revision = eventually(|| kv.put("m", Bytes::from_static(b"member"))).await;
    let entry = kv.get("m").await.unwrap().unwrap();
    assert_eq!(entry.revision, revision);
    let snapshot = kv.snapshot("").await.unwrap();
    assert_eq!(snapshot.revision, revision);
}
