//! A hung shard (SIGSTOP) costs its tenants one detection, not a timeout
//! per request: after `down_after_failures` (3) consecutive timeouts the
//! gateway marks the member down and answers its tenants' requests with
//! Keystone's 503 at once, while other tenants keep their latency; a probe
//! of the member's `/healthz` brings it back once it answers (SIGCONT).
//! Role-assignment queries scoped to a project or a user go only to the
//! shards that can hold them, so the hung shard fails only its own. And
//! while a member is down, new tenants the ring puts on it are created on
//! a live member instead (pinned there). On processes: two PostgreSQL
//! shards, a gateway, nats-server.
//!
//! Needs `KEYFED_TEST_PG`, a nats-server and the `keyfed` binary: run
//! through `scripts/test`.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use keyfed_tests::cluster::{Cluster, UPSTREAM_TIMEOUT};
use keyfed_tests::Gateways;
use reqwest::Method;

/// The median of `times`.
fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_shard_fails_fast_for_its_tenants_only() {
    let f = Cluster::builder()
        .shards(2)
        .gateways(1)
        .start()
        .await
        .unwrap();
    let admin = f.admin_token(0).await.unwrap();
    let ids = f
        .projects_on(&admin, &["shard-0", "shard-1"])
        .await
        .unwrap();
    let (alive, hung) = (
        format!("/v3/projects/{}", ids[0]),
        format!("/v3/projects/{}", ids[1]),
    );
    let down = "keyfed_gateway_member_down{shard=\"shard-1\"}";
    assert_eq!(f.metric_sum(0, down).await.unwrap(), 0.0);

    f.pause_shard(1).unwrap();
    // Detection: the first requests wait for the upstream timeout.
    let started = Instant::now();
    let (a, b, c) = tokio::join!(
        f.call(0, Method::GET, &hung, &admin, None),
        f.call(0, Method::GET, &hung, &admin, None),
        f.call(0, Method::GET, &hung, &admin, None),
    );
    for answer in [a, b, c] {
        let (status, body) = answer.unwrap();
        assert_eq!(status, 503, "{body}");
    }
    assert!(started.elapsed() >= UPSTREAM_TIMEOUT);
    assert_eq!(f.metric_sum(0, down).await.unwrap(), 1.0);

    // From then on: 503 at once for its tenants, normal service for others.
    let (mut hung_times, mut alive_times) = (Vec::new(), Vec::new());
    for _ in 0..20 {
        let started = Instant::now();
        let (status, body) = f.call(0, Method::GET, &hung, &admin, None).await.unwrap();
        hung_times.push(started.elapsed());
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], 503, "{body}");
        assert!(!body.to_string().contains("shard-"), "{body}");
        let started = Instant::now();
        let (status, body) = f.call(0, Method::GET, &alive, &admin, None).await.unwrap();
        alive_times.push(started.elapsed());
        assert_eq!(status, 200, "{body}");
    }
    let (hung_median, alive_median) = (median(hung_times), median(alive_times));
    println!("while shard-1 hangs: its tenant's 503 in {hung_median:?}, another tenant's 200 in {alive_median:?} (medians)");
    assert!(
        hung_median < Duration::from_millis(50),
        "503 took {hung_median:?}"
    );
    assert!(
        f.metric_sum(0, "keyfed_gateway_upstream_shed_total")
            .await
            .unwrap()
            >= 20.0
    );
    assert_eq!(
        f.metric_sum(0, "keyfed_gateway_member_down_transitions_total")
            .await
            .unwrap(),
        1.0
    );

    // Role assignments of a project, or of a user, are asked only where
    // they can live: the hung shard fails only the queries it could answer.
    let me = keyfed_tests::claims(&admin).user_id.to_string();
    for (query, expected) in [
        (format!("scope.project.id={}", ids[0]), 200),
        (format!("user.id={me}"), 200),
        (format!("scope.project.id={}", ids[1]), 503),
        (String::new(), 503),
    ] {
        let path = format!("/v3/role_assignments?{query}");
        let started = Instant::now();
        let (status, body) = f.call(0, Method::GET, &path, &admin, None).await.unwrap();
        assert_eq!(status, expected, "{path}: {body}");
        assert!(started.elapsed() < Duration::from_secs(1), "{path}");
    }

    // It answers again: the probe notices, its tenants are served again.
    f.resume_shard(1).unwrap();
    f.wait_for(Duration::from_secs(10), "shard-1 served again", || async {
        f.call(0, Method::GET, &hung, &admin, None)
            .await
            .is_ok_and(|(status, _)| status == 200)
    })
    .await
    .unwrap();
    assert_eq!(f.metric_sum(0, down).await.unwrap(), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_tenants_land_on_a_live_member_while_their_owner_is_down() {
    let mut f = Cluster::builder()
        .shards(2)
        .gateways(1)
        .start()
        .await
        .unwrap();
    let admin = f.admin_token(0).await.unwrap();
    f.kill_shard(1);
    // Detection: connect errors mark shard-1 down after a few creates
    // placed on it (each a Keystone 503, no entity made).
    let mut created = Vec::new();
    let mut failed = 0;
    for i in 0..30 {
        let body = serde_json::json!({"project": {"name": format!("outage-{i}")}});
        let (status, body) = f
            .call(0, Method::POST, "/v3/projects", &admin, Some(&body))
            .await
            .unwrap();
        match status {
            201 => created.push(body["project"]["id"].as_str().unwrap().to_owned()),
            503 => failed += 1,
            _ => panic!("{status}: {body}"),
        }
    }
    println!(
        "creates while shard-1 is down: {} created, {failed} refused",
        created.len()
    );
    assert!(failed <= 3, "{failed} creates failed after detection");
    assert_eq!(created.len() + failed, 30);
    // Every one of them lives on shard-0 — pinned there when the ring put
    // it on shard-1 — and is served.
    let ring_placed_on_1 = created
        .iter()
        .filter(|id| {
            f.view
                .ring()
                .is_some_and(|r| r.owner(id.as_str()).as_str() == "shard-1")
        })
        .count();
    assert!(ring_placed_on_1 > 0, "no create was for the down member");
    for id in &created {
        f.wait_for(
            Duration::from_secs(10),
            "the harness to see the pin",
            || async { f.owner_of_project(id).is_ok_and(|o| o == "shard-0") },
        )
        .await
        .unwrap();
        let (status, body) = f
            .call(0, Method::GET, &format!("/v3/projects/{id}"), &admin, None)
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }
    // Back up: they stay where they were made.
    f.restart_shard(1).await.unwrap();
    for id in &created {
        let (status, body) = f
            .call(0, Method::GET, &format!("/v3/projects/{id}"), &admin, None)
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        assert_eq!(f.owner_of_project(id).unwrap(), "shard-0");
    }
}
