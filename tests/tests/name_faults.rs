//! Names stay unique whatever fails during a create (issue: a hung shard
//! duplicated project names; a killed gateway leaked reservations). On
//! processes: two PostgreSQL shards, a gateway, nats-server with
//! authorisation. The shards run with failpoints that pause a create of
//! chosen names (`fp-…`) right after the name is reserved (before the
//! insert) or right after the commit (before the answer); at that moment
//! the test stops (SIGSTOP) or kills (SIGKILL) the owner, or kills the
//! gateway. The client may get a 503 — an unknown outcome — but then:
//!
//! - the name maps to at most one entity, and one that exists has its name
//!   reserved (a second create of it gets 409, whichever shard it lands
//!   on);
//! - a retry of the same request creates no second entity;
//! - a reservation whose create never happened is released (by the owner
//!   when it restarts, or when a create of the name asks it), so the name
//!   can be created again.
//!
//! Needs `KEYFED_TEST_PG`, a nats-server and the `keyfed` binary: run
//! through `scripts/test`.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use keyfed_tests::cluster::{Cluster, UPSTREAM_TIMEOUT};
use keyfed_tests::Gateways;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

/// How long a failpoint holds a create: long enough to act on the process.
const PAUSE_MS: u64 = 1_500;

fn failpoints() -> String {
    [
        "name.reserved=pause:PAUSE:project/default/fp-r-",
        "name.stored=pause:PAUSE:project/default/fp-s-",
        "name.reserved=pause:PAUSE:user/default/fp-r-",
        "name.stored=pause:PAUSE:user/default/fp-s-",
    ]
    .join(";")
    .replace("PAUSE", &PAUSE_MS.to_string())
}

async fn cluster() -> Cluster {
    Cluster::builder()
        .shards(2)
        .gateways(1)
        .shard_env("KEYFED_FAILPOINTS", &failpoints())
        .start()
        .await
        .unwrap()
}

/// What is created: a project, a user or a domain.
#[derive(Clone, Copy)]
enum Kind {
    Project,
    User,
    Domain,
}

impl Kind {
    fn member(self) -> &'static str {
        match self {
            Kind::Project => "project",
            Kind::User => "user",
            Kind::Domain => "domain",
        }
    }

    fn body(self, name: &str) -> Value {
        match self {
            Kind::Domain => json!({"domain": {"name": name}}),
            _ => json!({ self.member(): {"name": name, "domain_id": "default"} }),
        }
    }

    /// The names-index key of `name` (in domain `default`).
    fn key(self, name: &str) -> String {
        match self {
            Kind::Domain => format!("domain/{name}"),
            _ => format!("{}/default/{name}", self.member()),
        }
    }
}

/// A create sent through gateway 0 by a task of its own (the test meanwhile
/// acts on the processes).
fn spawn_create(f: &Cluster, admin: &str, kind: Kind, name: &str) -> JoinHandle<(u16, Value)> {
    let url = format!("{}/v3/{}s", f.gateway(0), kind.member());
    let (http, admin, body) = (f.http.clone(), admin.to_owned(), kind.body(name));
    tokio::spawn(async move {
        let answer = http
            .post(&url)
            .header("x-auth-token", admin)
            .json(&body)
            .send()
            .await;
        match answer {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            // The gateway itself died: no answer at all.
            Err(_) => (0, Value::Null),
        }
    })
}

/// The shard whose log shows `point` reached for `name`.
async fn paused_at(f: &Cluster, point: &str, kind: Kind, name: &str) -> usize {
    let key = format!("key=\"{}\"", kind.key(name));
    let mut found = None;
    f.wait_for(
        Duration::from_secs(20),
        &format!("a shard to reach {point} for {name}"),
        || {
            found = (0..f.shards.len()).find(|&i| {
                f.shard_log(i).lines().any(|l| {
                    l.contains("failpoint reached") && l.contains(point) && l.contains(&key)
                })
            });
            async move { found.is_some() }
        },
    )
    .await
    .unwrap();
    found.unwrap()
}

/// The ids of the entities named `name` (through the gateway).
async fn named(f: &Cluster, admin: &str, kind: Kind, name: &str) -> Vec<String> {
    let path = format!("/v3/{}s?name={name}", kind.member());
    let (status, body) = f.call(0, Method::GET, &path, admin, None).await.unwrap();
    assert_eq!(status, 200, "{path}: {body}");
    body[format!("{}s", kind.member())]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn create(f: &Cluster, admin: &str, kind: Kind, name: &str) -> (u16, Value) {
    let path = format!("/v3/{}s", kind.member());
    f.call(0, Method::POST, &path, admin, Some(&kind.body(name)))
        .await
        .unwrap()
}

/// The name is held by exactly one entity: one exists, and creating the
/// name again (several times, so both shards are asked) gets 409.
async fn held_once(f: &Cluster, admin: &str, kind: Kind, name: &str) {
    let ids = named(f, admin, kind, name).await;
    assert_eq!(ids.len(), 1, "{name}: {ids:?}\n{}", f.logs());
    for _ in 0..4 {
        let (status, body) = create(f, admin, kind, name).await;
        assert_eq!(status, 409, "{name} created twice: {body}\n{}", f.logs());
        assert_eq!(body["error"]["code"], 409, "{body}");
    }
    assert_eq!(named(f, admin, kind, name).await, ids, "{name}");
}

fn assert_unknown_outcome(status: u16, body: &Value, what: &str) {
    assert_eq!(status, 503, "{what}: {body}");
    assert_eq!(body["error"]["code"], 503, "{what}: {body}");
}

/// A create whose owner hangs (SIGSTOP) past the gateway's timeout at
/// `point`: 503, then the owner resumes and finishes it; the name is the
/// new entity's alone, and the client's retry gets 409.
async fn hung_owner(f: &Cluster, admin: &str, kind: Kind, point: &str, name: &str) {
    let create_call = spawn_create(f, admin, kind, name);
    let owner = paused_at(f, point, kind, name).await;
    f.pause_shard(owner).unwrap();
    let (status, body) = create_call.await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    f.resume_shard(owner).unwrap();
    assert_unknown_outcome(status, &body, name);
    // The owner finishes the create it had in hand.
    f.wait_for(
        Duration::from_secs(20),
        &format!("{name} to be created after the owner resumed"),
        || async { named(f, admin, kind, name).await.len() == 1 },
    )
    .await
    .unwrap();
    held_once(f, admin, kind, name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_owner_never_leaves_a_name_twice() {
    let f = cluster().await;
    let admin = f.admin_token(0).await.unwrap();
    assert!(UPSTREAM_TIMEOUT < Duration::from_millis(PAUSE_MS) * 2);
    hung_owner(&f, &admin, Kind::Project, "name.reserved", "fp-r-hung-p").await;
    hung_owner(&f, &admin, Kind::Project, "name.stored", "fp-s-hung-p").await;
    hung_owner(&f, &admin, Kind::User, "name.reserved", "fp-r-hung-u").await;
    hung_owner(&f, &admin, Kind::User, "name.stored", "fp-s-hung-u").await;
    // Nothing had to be repaired, and no two entities share a name.
    let conflicts = "keyfed_shard_name_repairs_total{repair=\"conflict\"}";
    for i in 0..f.shards.len() {
        let text = reqwest::get(format!("{}/metrics", f.shards[i].admin_url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(
            keyfed_tests::through::metric_family_sum(&text, conflicts),
            0.0
        );
    }
}

/// A create whose owner is killed at `point`: 503; while the owner is down
/// a create of the name cannot be decided (503, never a second entity);
/// once it is back, the name is the entity's if it was stored, and free
/// again if it was not.
async fn killed_owner(f: &mut Cluster, admin: &str, kind: Kind, point: &str, name: &str) {
    let create_call = spawn_create(f, admin, kind, name);
    let owner = paused_at(f, point, kind, name).await;
    f.kill_shard(owner);
    let (status, body) = create_call.await.unwrap();
    assert_unknown_outcome(status, &body, name);
    // While the owner is down nobody else may take the name.
    for _ in 0..3 {
        let (status, body) = create(f, admin, kind, name).await;
        assert!(matches!(status, 503 | 409), "{name}: {status} {body}");
    }
    f.restart_shard(owner).await.unwrap();
    // The gateway marked it down meanwhile: its probe notices it is back.
    f.wait_for(
        Duration::from_secs(10),
        "the gateway to serve every shard",
        || async {
            f.call(0, Method::GET, "/v3/projects", admin, None)
                .await
                .is_ok_and(|(status, _)| status == 200)
        },
    )
    .await
    .unwrap();
    if point == "name.stored" {
        held_once(f, admin, kind, name).await;
        return;
    }
    // The create never happened: the name is free again (the restarted
    // owner's audit, or the reclaim a new create asks for, releases it).
    assert!(named(f, admin, kind, name).await.is_empty());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = create(f, admin, kind, name).await;
        if status == 201 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} still not creatable: {status} {body}\n{}",
            f.logs()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    held_once(f, admin, kind, name).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_owner_leaves_no_duplicate_and_no_orphan() {
    let mut f = cluster().await;
    let admin = f.admin_token(0).await.unwrap();
    killed_owner(
        &mut f,
        &admin,
        Kind::Project,
        "name.reserved",
        "fp-r-kill-p",
    )
    .await;
    killed_owner(&mut f, &admin, Kind::Project, "name.stored", "fp-s-kill-p").await;
    killed_owner(&mut f, &admin, Kind::User, "name.reserved", "fp-r-kill-u").await;
    killed_owner(&mut f, &admin, Kind::User, "name.stored", "fp-s-kill-u").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_with_creates_in_flight_leaks_no_name() {
    let mut f = cluster().await;
    let admin = f.admin_token(0).await.unwrap();
    let creates: Vec<_> = [
        (Kind::Project, "fp-r-gw-p"),
        (Kind::User, "fp-r-gw-u"),
        (Kind::Project, "fp-s-gw-p"),
    ]
    .into_iter()
    .map(|(kind, name)| (kind, name, spawn_create(&f, &admin, kind, name)))
    .collect();
    for (kind, name, _) in &creates {
        let point = if name.starts_with("fp-r") {
            "name.reserved"
        } else {
            "name.stored"
        };
        paused_at(&f, point, *kind, name).await;
    }
    f.kill_gateway(0);
    for (_, name, call) in creates {
        let (status, _) = call.await.unwrap();
        assert_eq!(status, 0, "{name}: the gateway died before answering");
    }
    f.restart_gateway(0).await.unwrap();
    // The owners finished what they had in hand; each name is held once.
    for (kind, name) in [
        (Kind::Project, "fp-r-gw-p"),
        (Kind::User, "fp-r-gw-u"),
        (Kind::Project, "fp-s-gw-p"),
    ] {
        f.wait_for(
            Duration::from_secs(20),
            &format!("{name} to exist"),
            || async { named(&f, &admin, kind, name).await.len() == 1 },
        )
        .await
        .unwrap();
        held_once(&f, &admin, kind, name).await;
    }
    // A name whose create the gateway never sent is free.
    let (status, body) = create(&f, &admin, Kind::Project, "gw-never-sent").await;
    assert_eq!(status, 201, "{body}");
}

/// Renames domain `id` to `name` through gateway 0: the status.
async fn rename(f: &Cluster, admin: &str, id: &str, name: &str) -> u16 {
    let body = json!({"domain": {"name": name}});
    let path = format!("/v3/domains/{id}");
    f.call(0, Method::PATCH, &path, admin, Some(&body))
        .await
        .unwrap()
        .0
}

/// Domain names (reserved by whichever shard takes the write, with no
/// owner to ask) are audited by one member: a reservation left by a shard
/// killed between reserving the name and writing the domain is released
/// after two audits, and a writer stalled past that finds its name gone
/// and undoes its domain. Audits every 2 s here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_domain_names_are_released_and_a_stalled_writer_undoes_itself() {
    let failpoints = [
        "global.reserved=pause:60000:domain/fp-gk-",
        "global.reserved=pause:7000:domain/fp-gu-",
    ]
    .join(";");
    let mut f = Cluster::builder()
        .shards(2)
        .gateways(1)
        .shard_env("KEYFED_FAILPOINTS", &failpoints)
        .name_audit_interval_secs(2)
        .start()
        .await
        .unwrap();
    let admin = f.admin_token(0).await.unwrap();
    let (_, body) = create(&f, &admin, Kind::Domain, "spare").await;
    let spare = body["domain"]["id"].as_str().unwrap().to_owned();
    // Killed with the name reserved and no domain written.
    let pending = spawn_create(&f, &admin, Kind::Domain, "fp-gk-1");
    let i = paused_at(&f, "global.reserved", Kind::Domain, "fp-gk-1").await;
    f.kill_shard(i);
    let _ = pending.await;
    f.restart_shard(i).await.unwrap();
    assert!(named(&f, &admin, Kind::Domain, "fp-gk-1").await.is_empty());
    // The name is usable again once the audit released it (a rename
    // reserves it without the failpoint of a create).
    f.wait_for(
        Duration::from_secs(20),
        "the orphaned name to be released",
        || async { rename(&f, &admin, &spare, "fp-gk-1").await == 200 },
    )
    .await
    .unwrap();
    assert_eq!(
        named(&f, &admin, Kind::Domain, "fp-gk-1").await,
        std::slice::from_ref(&spare)
    );

    // Stalled past two audits: the name is released under the writer, which
    // undoes its domain when it resumes.
    let (status, _) = spawn_create(&f, &admin, Kind::Domain, "fp-gu-1")
        .await
        .unwrap();
    assert_eq!(status, 503, "the gateway gave up on the stalled create");
    let i = paused_at(&f, "global.reserved", Kind::Domain, "fp-gu-1").await;
    f.wait_for(
        Duration::from_secs(20),
        "the writer to undo its domain",
        || async {
            f.shard_log(i)
                .contains("name reservation lost during a global create")
        },
    )
    .await
    .unwrap();
    f.wait_for(
        Duration::from_secs(10),
        "the undone domain to be gone",
        || async { named(&f, &admin, Kind::Domain, "fp-gu-1").await.is_empty() },
    )
    .await
    .unwrap();
    f.wait_for(Duration::from_secs(10), "the name to be free", || async {
        rename(&f, &admin, &spare, "fp-gu-1").await == 200
    })
    .await
    .unwrap();
}
