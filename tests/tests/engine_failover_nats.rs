//! The directory on a 3-node NATS JetStream cluster with every bucket and
//! the revocation stream at 3 replicas: under a steady load of writes
//! through both gateways (projects, each followed by a role grant), one
//! NATS node — the leader of the names bucket, which every project create
//! writes — is killed with SIGKILL. The clients reconnect to the other
//! nodes and the surviving two elect new leaders; requests fail only
//! during that election, each with Keystone's 503 (never a hang or a
//! 500), and no acknowledged write is lost. The killed node, restarted,
//! catches up (its streams reach the others' last sequence) and then
//! carries the quorum while another node is killed.
//!
//! Needs `KEYFED_TEST_PG`, a nats-server and the `keyfed` binary: run
//! through `scripts/test`.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyfed_tests::cluster::Cluster;
use keyfed_tests::Gateways;
use reqwest::Method;
use serde_json::{json, Value};

/// Load before the kill, and after it (longer than an election: NATS's
/// Raft election timeout is 4–9 s).
const BEFORE_KILL: Duration = Duration::from_secs(2);
const AFTER_KILL: Duration = Duration::from_secs(15);
/// Each worker's pause between two writes: a steady ~10 writes/s each.
const PACE: Duration = Duration::from_millis(100);
/// Requests fail only this long after the kill: the election, and the
/// clients' reconnection to another node (measured: 4.0–7.4 s).
const ELECTION_BOUND: Duration = Duration::from_secs(12);
/// So at most this many requests fail: what two workers send in
/// [`ELECTION_BOUND`] at their pace (each failure is a fast 503).
const MAX_FAILED: usize = 2 * 12_000 / 100;
/// No request may take longer than this (a hang).
const MAX_REQUEST: Duration = Duration::from_secs(8);

/// What the load saw.
#[derive(Default)]
struct Load {
    /// Acknowledged projects: (id, whether its grant was acknowledged too).
    acked: Vec<(String, bool)>,
    /// Failed requests: (time since start, what, status, body).
    failed: Vec<(Duration, String, u16, Value)>,
    /// The slowest request.
    slowest: Duration,
    attempts: usize,
}

/// `method path` on `gateway` with `token`: (status, JSON body); status 0
/// if no answer came.
async fn call(
    http: &reqwest::Client,
    gateway: &str,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut req = http
        .request(method, format!("{gateway}{path}"))
        .header("x-auth-token", token);
    if let Some(b) = body {
        req = req.json(b);
    }
    match req.send().await {
        Ok(r) => (r.status().as_u16(), r.json().await.unwrap_or(Value::Null)),
        Err(_) => (0, Value::Null),
    }
}

/// One worker: projects through `gateway`, each followed by a grant of
/// `role` to `user` on it, until `stop`.
async fn worker(
    (http, gateway): (reqwest::Client, String),
    (token, user, role): (String, String, String),
    start: Instant,
    stop: Arc<AtomicBool>,
    load: Arc<Mutex<Load>>,
) {
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let body = json!({"project": {"name": format!("load-{}-{n}", gateway.rsplit(':').next().unwrap_or_default())}});
        let sent = Instant::now();
        let created = call(
            &http,
            &gateway,
            Method::POST,
            "/v3/projects",
            &token,
            Some(&body),
        )
        .await;
        let mut took = sent.elapsed();
        let (status, body) = created;
        let mut outcome = None;
        if status == 201 {
            let id = body["project"]["id"].as_str().unwrap().to_owned();
            let path = format!("/v3/projects/{id}/users/{user}/roles/{role}");
            let sent = Instant::now();
            let (gstatus, gbody) = call(&http, &gateway, Method::PUT, &path, &token, None).await;
            took = took.max(sent.elapsed());
            outcome = Some((id, gstatus == 204, gstatus, gbody));
        }
        {
            let mut load = load.lock().unwrap();
            load.attempts += 1;
            load.slowest = load.slowest.max(took);
            let at = start.elapsed();
            match outcome {
                Some((id, granted, gstatus, gbody)) => {
                    if !granted {
                        load.failed
                            .push((at, format!("grant on {id}"), gstatus, gbody));
                    }
                    load.acked.push((id, granted));
                }
                None => load.failed.push((at, "create".into(), status, body)),
            }
        }
        tokio::time::sleep(PACE).await;
    }
}

/// Node `i`'s streams of namespace `ns`: name → last sequence.
fn stream_sequences(f: &Cluster, i: usize, ns: &str) -> Option<Vec<(String, u64)>> {
    let (status, body) = f
        .nats()
        .monitor(i, "/jsz?accounts=true&streams=true")
        .ok()?;
    if status != 200 {
        return None;
    }
    let jsz: Value = serde_json::from_str(&body).ok()?;
    let mut out: Vec<(String, u64)> = jsz["account_details"]
        .as_array()?
        .iter()
        .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
        .filter(|s| s["name"].as_str().is_some_and(|n| n.contains(ns)))
        .map(|s| {
            let name = s["name"].as_str().unwrap_or_default().to_owned();
            (name, s["state"]["last_seq"].as_u64().unwrap_or(0))
        })
        .collect();
    out.sort();
    Some(out)
}

/// The node leading stream `stream`, as node `i` sees it.
fn leader_of(f: &Cluster, i: usize, stream: &str) -> Option<usize> {
    let (_, body) = f
        .nats()
        .monitor(i, "/jsz?accounts=true&streams=true")
        .ok()?;
    let jsz: Value = serde_json::from_str(&body).ok()?;
    let leader = jsz["account_details"]
        .as_array()?
        .iter()
        .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
        .find(|s| s["name"] == stream)?["cluster"]["leader"]
        .as_str()?
        .to_owned();
    (0..f.nats().len()).find(|&n| f.nats().node_name(n) == leader)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nats_node_costs_only_the_election_and_loses_no_write() {
    let started = Instant::now();
    let mut f = Cluster::builder()
        .nats_cluster(3)
        .shards(3)
        .gateways(2)
        .start()
        .await
        .unwrap();
    eprintln!(
        "federation on a 3-node NATS cluster up in {:?}",
        started.elapsed()
    );
    assert_eq!(f.directory.replicas, 3);
    let token = f.admin_token(0).await.unwrap();
    let role = f.id_by_name(0, &token, "roles", "member").await.unwrap();
    let user = f.id_by_name(0, &token, "users", "admin").await.unwrap();
    let ns = f.directory.namespace.clone();
    let names_stream = format!("KV_{ns}_names");
    // Every stream of the namespace is on all three nodes.
    for i in 0..3 {
        let streams = stream_sequences(&f, i, &ns).unwrap();
        assert!(streams.len() >= 5, "node {i} holds {streams:?}");
    }

    let load = Arc::new(Mutex::new(Load::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..2)
        .map(|g| {
            let ids = (token.clone(), user.clone(), role.clone());
            tokio::spawn(worker(
                (f.http.clone(), f.gateway(g).to_owned()),
                ids,
                start,
                stop.clone(),
                load.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(BEFORE_KILL).await;
    let before = load.lock().unwrap().acked.len();
    assert!(before > 0, "no write succeeded before the kill");

    // Kill the node leading the names bucket: every project create writes it.
    let victim = leader_of(&f, 0, &names_stream).unwrap_or(0);
    let killed_at = start.elapsed();
    f.kill_nats_node(victim);
    eprintln!("killed NATS node n{victim} (leader of {names_stream}) at {killed_at:?}");
    tokio::time::sleep(AFTER_KILL).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let load = Arc::try_unwrap(load).ok().unwrap().into_inner().unwrap();

    let failed = &load.failed;
    let window = failed
        .iter()
        .map(|(at, ..)| *at)
        .max()
        .map(|last| last.saturating_sub(killed_at));
    let grants = failed.iter().filter(|f| f.1.starts_with("grant")).count();
    eprintln!(
        "NATS node kill: {} of {} attempts failed ({grants} of them grants; {} projects \
         acknowledged, {} before the kill); last failure {window:?} after the kill; slowest \
         request {:?}",
        failed.len(),
        load.attempts,
        load.acked.len(),
        before,
        load.slowest
    );
    for (at, what, status, body) in failed {
        assert!(
            *at >= killed_at,
            "{what} failed before the kill: {status} {body}"
        );
        assert_eq!(status, &503, "{what} at {at:?}: {body}");
        assert_eq!(body["error"]["code"], 503, "{what}: {body}");
        assert!(body["error"]["message"].is_string(), "{what}: {body}");
    }
    assert!(
        failed.len() <= MAX_FAILED,
        "{} requests failed",
        failed.len()
    );
    let window = window.unwrap_or_default();
    assert!(
        window <= ELECTION_BOUND,
        "requests failed until {window:?} after the kill"
    );
    assert!(
        load.slowest < MAX_REQUEST,
        "a request took {:?}",
        load.slowest
    );
    let after_kill = load.acked.len() - before;
    assert!(after_kill > 0, "no write succeeded after the kill");

    // The killed node rejoins and catches up with the others.
    f.restart_nats_node(victim).unwrap();
    let peer = (victim + 1) % 3;
    let caught_up = f
        .wait_for(
            Duration::from_secs(30),
            "the restarted node to catch up",
            || {
                let (f, ns) = (&f, &ns);
                async move {
                    let mine = stream_sequences(f, victim, ns);
                    mine.is_some() && mine == stream_sequences(f, peer, ns)
                }
            },
        )
        .await
        .unwrap();
    eprintln!("n{victim} restarted and caught up in {caught_up:?}");

    // It now carries the quorum with the third node while another is
    // down: the names bucket's leader, if it is not the restarted node, so
    // a new leader must be elected with the restarted node's vote (Raft
    // elects only an up-to-date log).
    let leader = leader_of(&f, peer, &names_stream).filter(|&l| l != victim);
    let peer = leader.unwrap_or(peer);
    f.kill_nats_node(peer);
    let body = json!({"project": {"name": "after-rejoin"}});
    let since = Instant::now();
    let rejoined = loop {
        let created = f
            .call(1, Method::POST, "/v3/projects", &token, Some(&body))
            .await;
        if let Ok((201, b)) = created {
            break b["project"]["id"].as_str().unwrap().to_owned();
        }
        assert!(
            since.elapsed() < Duration::from_secs(25),
            "no write with the restarted node in the quorum: {created:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let served = since.elapsed();
    let which = if leader.is_some() {
        "the names leader"
    } else {
        "a follower"
    };
    eprintln!(
        "with n{peer} ({which}) down, n{victim} in the quorum: a write served after {served:?}"
    );

    // No acknowledged write is lost: every project readable through every
    // gateway, every acknowledged grant in place.
    let mut acked = load.acked.clone();
    acked.push((rejoined, false));
    for g in 0..2 {
        for (id, granted) in &acked {
            let (status, body) = f
                .call(g, Method::GET, &format!("/v3/projects/{id}"), &token, None)
                .await
                .unwrap();
            assert_eq!(status, 200, "project {id} through gateway {g}: {body}");
            if *granted {
                let path = format!("/v3/projects/{id}/users/{user}/roles/{role}");
                let (status, body) = f.call(g, Method::GET, &path, &token, None).await.unwrap();
                assert_eq!(status, 204, "grant on {id} through gateway {g}: {body}");
            }
        }
    }
    eprintln!(
        "{} acknowledged projects read back through both gateways; total {:?}",
        acked.len(),
        started.elapsed()
    );
}
