//! A shard on a PostgreSQL primary with a synchronous streaming standby,
//! its store connection string naming both
//! (`host=a,b port=p1,p2 target_session_attrs=read-write`). Under a steady
//! load of project creates through the gateway, the primary is stopped
//! (immediate: a crash to its clients) and the standby promoted, as
//! Patroni would after detecting the failure. The shard, never restarted, drops its dead pooled
//! connections and opens new ones on the new primary; meanwhile requests
//! fail with Keystone's 503 (never a hang or a 500). The unavailability
//! window — from the stop to the first successful write — is printed and
//! bounded, and no acknowledged write is lost.
//!
//! Needs `KEYFED_TEST_PG`, PostgreSQL's server binaries, a nats-server and
//! the `keyfed` binary: run through `scripts/test`.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyfed_tests::cluster::Cluster;
use keyfed_tests::pg_standby::{PgStandbyPair, DATABASE};
use keyfed_tests::Gateways;
use reqwest::Method;
use serde_json::{json, Value};

/// How long the primary stays down before the standby is promoted: the
/// failure detection of Patroni or an operator (seconds to tens of
/// seconds in production). Meanwhile only the read-only standby answers,
/// and the store refuses it (`target_session_attrs=read-write`).
const DETECTION: Duration = Duration::from_secs(2);
/// Writes must succeed again within this long after the primary stops.
const WINDOW_BOUND: Duration = Duration::from_secs(30);
/// Pause between two writes of the load.
const PACE: Duration = Duration::from_millis(50);
/// No request may take longer than this (a hang).
const MAX_REQUEST: Duration = Duration::from_secs(12);

/// One write of the load: when it was sent (since the start), how long it
/// took, its status and body.
struct Attempt {
    sent: Duration,
    took: Duration,
    status: u16,
    body: Value,
}

/// Creates projects through `gateway` until `stop`, recording every attempt.
async fn load(
    (http, gateway, token): (reqwest::Client, String, String),
    start: Instant,
    stop: Arc<AtomicBool>,
    attempts: Arc<Mutex<Vec<Attempt>>>,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = json!({"project": {"name": format!("load-{n}")}});
        let sent = start.elapsed();
        let answer = http
            .post(format!("{gateway}/v3/projects"))
            .header("x-auth-token", &token)
            .json(&body)
            .send()
            .await;
        let (status, body) = match answer {
            Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
            Err(_) => (0, Value::Null),
        };
        let took = start.elapsed() - sent;
        attempts.lock().unwrap().push(Attempt {
            sent,
            took,
            status,
            body,
        });
        tokio::time::sleep(PACE).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_standby_takes_over_without_restarting_the_shard() {
    let started = Instant::now();
    let pair = PgStandbyPair::start().await.unwrap();
    eprintln!(
        "primary :{} with a synchronous standby :{} up in {:?}",
        pair.ports.0,
        pair.ports.1,
        started.elapsed()
    );
    let f = Cluster::builder()
        .shards(1)
        .gateways(1)
        .shard_store(0, &pair.url())
        .start()
        .await
        .unwrap();
    let token = f.admin_token(0).await.unwrap();

    let attempts = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let worker = tokio::spawn(load(
        (f.http.clone(), f.gateway(0).to_owned(), token.clone()),
        start,
        stop.clone(),
        attempts.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;

    let stopped_at = start.elapsed();
    pair.stop_primary().unwrap();
    tokio::time::sleep(DETECTION).await;
    let promoting = start.elapsed() - stopped_at;
    pair.promote_standby().unwrap();
    let promoted = start.elapsed() - stopped_at;
    eprintln!(
        "primary stopped at {stopped_at:?}; standby promoted from {promoting:?} to {promoted:?} later"
    );

    // The first write sent after the stop that succeeds ends the window.
    let first_success = || {
        attempts
            .lock()
            .unwrap()
            .iter()
            .find(|a| a.sent >= stopped_at && a.status == 201)
            .map(|a| a.sent + a.took)
    };
    let deadline = Instant::now() + WINDOW_BOUND + MAX_REQUEST;
    let back = loop {
        if let Some(at) = first_success() {
            break at;
        }
        if Instant::now() > deadline {
            panic!("no write succeeded after the failover\n{}", pair.logs());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // A little steady load on the new primary.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    worker.await.unwrap();

    let attempts = Arc::try_unwrap(attempts)
        .ok()
        .unwrap()
        .into_inner()
        .unwrap();
    let window = back - stopped_at;
    let failed: Vec<&Attempt> = attempts.iter().filter(|a| a.status != 201).collect();
    let slowest = attempts.iter().map(|a| a.took).max().unwrap_or_default();
    eprintln!(
        "PostgreSQL failover: writes unavailable for {window:?} after the primary stopped \
         ({} of {} writes failed, slowest {slowest:?})",
        failed.len(),
        attempts.len()
    );
    assert!(window <= WINDOW_BOUND, "writes came back after {window:?}");
    eprintln!(
        "  of which {:?} after `pg_ctl promote` began (before it: the detection delay)",
        window.saturating_sub(promoting)
    );
    assert!(slowest < MAX_REQUEST, "a request took {slowest:?}");
    for a in &failed {
        assert_eq!(a.status, 503, "a write at {:?}: {}", a.sent, a.body);
        assert_eq!(a.body["error"]["code"], 503, "{}", a.body);
        assert!(a.body["error"]["message"].is_string(), "{}", a.body);
        assert!(a.sent + a.took >= stopped_at, "failed before the stop");
    }

    // No acknowledged write is lost, and the shard writes to the new
    // primary: every acknowledged project is readable through the gateway
    // and present in the promoted server's tables.
    let acked: Vec<String> = attempts
        .iter()
        .filter(|a| a.status == 201)
        .map(|a| a.body["project"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(acked.len() > 2, "too few writes: {}", acked.len());
    for id in &acked {
        let (status, body) = f
            .call(0, Method::GET, &format!("/v3/projects/{id}"), &token, None)
            .await
            .unwrap();
        assert_eq!(status, 200, "project {id}: {body}");
    }
    let new_primary = pair.connect(pair.ports.1, DATABASE).await.unwrap();
    let row = new_primary
        .query_one(
            "SELECT count(*) FROM projects WHERE id = ANY($1)",
            &[&acked],
        )
        .await
        .unwrap();
    assert_eq!(
        row.get::<_, i64>(0),
        acked.len() as i64,
        "projects missing on the new primary"
    );
    eprintln!(
        "{} acknowledged projects read back; total {:?}",
        acked.len(),
        started.elapsed()
    );
}
