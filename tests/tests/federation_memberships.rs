//! The membership index and the federated token's shard set, over real
//! NATS and PostgreSQL: a user with 500 memberships over three shards logs
//! in once and gets a token under 1 KiB that lists and rescopes to all of
//! them; the index names exactly the shards holding the user's roles and
//! loses a shard with its last role; listings ask only those shards; a
//! grant made while the directory is down reaches the index when it is back.
#![allow(clippy::unwrap_used)]

use keyfed_tests::Gateways;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyfed_directory::testing::NatsServer;
use keyfed_directory::{Bucket, Directory, Kv, NatsConfig, NatsDirectory};
use keyfed_federation::{FederationView, Revocations, Validator, ValidatorConfig};
use keyfed_shared::federation::membership;
use keyfed_shared::ids::{ProjectId, ShardId, UserId};
use keyfed_tests::gateway::{TestFederation, TestGateway};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::task::JoinSet;

/// Requests in flight at once when creating many entities.
const CONCURRENCY: usize = 16;

/// Calls to one Keystone endpoint with one token; cheap to clone into tasks.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("x-auth-token", &self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn create(&self, kind: &str, body: Value) -> String {
        let (status, body) = self
            .send(Method::POST, &format!("/v3/{kind}s"), Some(body))
            .await;
        assert_eq!(status, 201, "create {kind}: {body}");
        body[kind]["id"].as_str().unwrap().to_owned()
    }

    async fn user(&self, name: &str, password: &str) -> UserId {
        let body = json!({"user": {"name": name, "password": password, "domain_id": "default"}});
        UserId::new(self.create("user", body).await)
    }

    async fn project(&self, name: &str) -> ProjectId {
        ProjectId::new(
            self.create("project", json!({"project": {"name": name}}))
                .await,
        )
    }

    async fn role_id(&self, name: &str) -> String {
        let (status, roles) = self
            .send(Method::GET, &format!("/v3/roles?name={name}"), None)
            .await;
        assert_eq!(status, 200, "{roles}");
        roles["roles"][0]["id"].as_str().unwrap().to_owned()
    }

    async fn grant(&self, project: &ProjectId, user: &UserId, role: &str) {
        let path = format!("/v3/projects/{project}/users/{user}/roles/{role}");
        let (status, body) = self.send(Method::PUT, &path, None).await;
        assert_eq!(status, 204, "grant on {project}: {body}");
    }

    async fn revoke(&self, project: &ProjectId, user: &UserId, role: &str) {
        let path = format!("/v3/projects/{project}/users/{user}/roles/{role}");
        let (status, body) = self.send(Method::DELETE, &path, None).await;
        assert_eq!(status, 204, "revoke on {project}: {body}");
    }

    /// The ids of a project listing, checking they come sorted.
    async fn project_ids(&self, path: &str) -> Vec<String> {
        let (status, list) = self.send(Method::GET, path, None).await;
        assert_eq!(status, 200, "{path}: {list}");
        let ids: Vec<String> = list["projects"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_str().unwrap().to_owned())
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "{path} is sorted by id");
        ids
    }
}

/// Runs `f` on every item, `CONCURRENCY` at a time; outputs in input order.
async fn concurrently<I, O, F, Fut>(items: Vec<I>, f: F) -> Vec<O>
where
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(I) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = O> + Send + 'static,
{
    let queue = Arc::new(Mutex::new(
        items.into_iter().enumerate().collect::<Vec<_>>(),
    ));
    let mut workers = JoinSet::new();
    for _ in 0..CONCURRENCY {
        let (queue, f) = (queue.clone(), f.clone());
        workers.spawn(async move {
            let mut done = Vec::new();
            loop {
                let next = queue.lock().unwrap().pop();
                let Some((i, item)) = next else {
                    return done;
                };
                done.push((i, f(item).await));
            }
        });
    }
    let mut all = Vec::new();
    while let Some(done) = workers.join_next().await {
        all.extend(done.unwrap());
    }
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, o)| o).collect()
}

/// The shards `user`'s membership index entry names.
async fn index_entry(index: &dyn Kv, user: &UserId) -> Option<BTreeSet<ShardId>> {
    let entry = index.get(&membership::key(user)).await.unwrap()?;
    Some(membership::decode(&entry.value).unwrap())
}

/// Polls `check` until it holds, failing after `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn gateway_client(f: &TestFederation, token: &str) -> Client {
    Client {
        http: f.http.clone(),
        base: f.gateway(0).to_owned(),
        token: token.to_owned(),
    }
}

/// A rescope of `token` to `project` through gateway 0: the scoped body.
async fn rescope(f: &TestFederation, token: &str, project: &ProjectId) -> Value {
    let (status, scoped, body) = f
        .auth(
            0,
            &json!({"auth": {
                "identity": {"methods": ["token"], "token": {"id": token}},
                "scope": {"project": {"id": project}}}}),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "rescope to {project}: {body}");
    assert!(scoped.is_some());
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_login_covers_500_memberships_over_three_shards() {
    let f = TestFederation::start(3).await.unwrap();
    let admin = gateway_client(&f, &f.admin_token(0).await.unwrap());
    let member = admin.role_id("member").await;
    let bob = admin.user("bob", "bob-secret").await;

    let started = Instant::now();
    let names: Vec<String> = (0..500).map(|i| format!("tenant-{i:03}")).collect();
    let projects = concurrently(names, {
        let admin = admin.clone();
        move |name| {
            let admin = admin.clone();
            async move { admin.project(&name).await }
        }
    })
    .await;
    let created = started.elapsed();
    concurrently(projects.clone(), {
        let (admin, bob, member) = (admin.clone(), bob.clone(), member.clone());
        move |project| {
            let (admin, bob, member) = (admin.clone(), bob.clone(), member.clone());
            async move { admin.grant(&project, &bob, &member).await }
        }
    })
    .await;
    println!(
        "500 projects created in {created:?}, 500 grants in {:?}",
        started.elapsed() - created
    );

    let owners: BTreeMap<&ProjectId, ShardId> = projects
        .iter()
        .map(|p| (p, f.view.owner_of_project(p).unwrap()))
        .collect();
    let holding: BTreeSet<ShardId> = owners.values().cloned().collect();
    assert_eq!(holding.len(), 3, "the projects spread over three shards");

    // The membership index names the three shards.
    let dir: Arc<dyn Directory> = Arc::new(NatsDirectory::connect(&f.directory).await.unwrap());
    let index = dir.kv(Bucket::Memberships);
    eventually(Duration::from_secs(10), "index entry", || async {
        index_entry(index.as_ref(), &bob).await.as_ref() == Some(&holding)
    })
    .await;

    // One login: a small token referring to the shards.
    let unscoped = f
        .password_token(0, "bob", "bob-secret", None)
        .await
        .unwrap();
    println!(
        "unscoped token of a user with 500 memberships on 3 shards: {} bytes",
        unscoped.len()
    );
    assert!(unscoped.len() <= 1024, "{} bytes", unscoped.len());
    let validator = Validator::new(
        f.view.clone(),
        Revocations::start(dir.clone()),
        &ValidatorConfig::default(),
    );
    eventually(Duration::from_secs(10), "validator ready", || async {
        validator.ready()
    })
    .await;
    let claims = validator.validate(&unscoped, false).unwrap();
    let mut expected: BTreeSet<ShardId> = holding.clone();
    expected.extend(f.view.home_of_user(&bob));
    assert_eq!(
        claims.shard_set.iter().cloned().collect::<BTreeSet<_>>(),
        expected,
        "the token refers to the user's shards"
    );

    // Listed from every shard, as Keystone would: all 500, sorted.
    let mut all: Vec<String> = projects.iter().map(|p| p.to_string()).collect();
    all.sort();
    let as_bob = gateway_client(&f, &unscoped);
    assert_eq!(as_bob.project_ids("/v3/auth/projects").await, all);
    assert_eq!(
        as_bob
            .project_ids(&format!("/v3/users/{bob}/projects"))
            .await,
        all
    );

    // The one token rescopes to a project on each shard.
    for shard in &holding {
        let (project, _) = owners.iter().find(|(_, s)| *s == shard).unwrap();
        let body = rescope(&f, &unscoped, project).await;
        assert_eq!(body["token"]["project"]["id"], project.as_str());
    }
}

/// `keyfed_gateway_upstream_requests_total` for one shard.
async fn asked(f: &TestFederation, shard: &ShardId) -> f64 {
    f.gateways[0]
        .metric_sum(&format!(
            "keyfed_gateway_upstream_requests_total{{shard=\"{shard}\"}}"
        ))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_names_exactly_the_shards_holding_roles() {
    let f = TestFederation::start(3).await.unwrap();
    let admin = gateway_client(&f, &f.admin_token(0).await.unwrap());
    let member = admin.role_id("member").await;
    let carol = admin.user("carol", "carol-secret").await;
    let home = f.view.home_of_user(&carol).unwrap();

    // A project on carol's home and two on another shard.
    let mut by_shard: BTreeMap<ShardId, Vec<ProjectId>> = BTreeMap::new();
    for i in 0.. {
        let p = admin.project(&format!("p-{i}")).await;
        by_shard
            .entry(f.view.owner_of_project(&p).unwrap())
            .or_default()
            .push(p);
        let others = by_shard
            .iter()
            .filter(|(s, ps)| **s != home && ps.len() >= 2)
            .count();
        if by_shard.get(&home).is_some_and(|ps| !ps.is_empty()) && others >= 1 {
            break;
        }
        assert!(i < 200, "the ring never placed the projects needed");
    }
    let at_home = by_shard[&home][0].clone();
    let (other, on_other) = by_shard
        .iter()
        .find(|(s, ps)| **s != home && ps.len() >= 2)
        .map(|(s, ps)| (s.clone(), ps[..2].to_vec()))
        .unwrap();
    let third = f
        .view
        .members()
        .into_iter()
        .map(|m| m.id)
        .find(|s| *s != home && *s != other)
        .unwrap();
    for p in [&at_home, &on_other[0], &on_other[1]] {
        admin.grant(p, &carol, &member).await;
    }

    let dir = NatsDirectory::connect(&f.directory).await.unwrap();
    let index = dir.kv(Bucket::Memberships);
    let both: BTreeSet<ShardId> = [home.clone(), other.clone()].into_iter().collect();
    eventually(Duration::from_secs(10), "home and other", || async {
        index_entry(index.as_ref(), &carol).await.as_ref() == Some(&both)
    })
    .await;

    // Her listings ask her two shards only.
    let token = f
        .password_token(0, "carol", "carol-secret", None)
        .await
        .unwrap();
    let as_carol = gateway_client(&f, &token);
    let before = (asked(&f, &other).await, asked(&f, &third).await);
    let mut expected: Vec<String> = [&at_home, &on_other[0], &on_other[1]]
        .iter()
        .map(|p| p.to_string())
        .collect();
    expected.sort();
    assert_eq!(as_carol.project_ids("/v3/auth/projects").await, expected);
    // An admin asking about her uses the index alone.
    let path = format!("/v3/users/{carol}/projects");
    assert_eq!(admin.project_ids(&path).await, expected);
    let after = (asked(&f, &other).await, asked(&f, &third).await);
    assert_eq!(after.0, before.0 + 2.0, "her shards are asked");
    assert_eq!(after.1, before.1, "a shard without her roles is not asked");

    // One role gone on `other`: the entry stays; the last one: it goes.
    admin.revoke(&on_other[0], &carol, &member).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(index_entry(index.as_ref(), &carol).await, Some(both));
    admin.revoke(&on_other[1], &carol, &member).await;
    let only_home: BTreeSet<ShardId> = [home.clone()].into_iter().collect();
    eventually(Duration::from_secs(10), "other removed", || async {
        index_entry(index.as_ref(), &carol).await.as_ref() == Some(&only_home)
    })
    .await;
    assert_eq!(
        as_carol.project_ids("/v3/auth/projects").await,
        vec![at_home.to_string()]
    );

    // Deleting the last project she has a role on empties the entry.
    let (status, body) = admin
        .send(Method::DELETE, &format!("/v3/projects/{at_home}"), None)
        .await;
    assert_eq!(status, 204, "{body}");
    eventually(Duration::from_secs(10), "entry deleted", || async {
        index_entry(index.as_ref(), &carol).await.is_none()
    })
    .await;
    assert!(as_carol.project_ids("/v3/auth/projects").await.is_empty());
}

/// Pending outbox rows for `user` in a shard's database.
async fn outbox_rows(database: &str, user: &UserId) -> i64 {
    let config: tokio_postgres::Config = database.parse().unwrap();
    let client = keyfed_tests::pg::connect(&config).await.unwrap();
    client
        .query_one(
            "SELECT count(*) FROM membership_outbox WHERE user_id = $1",
            &[&user.as_str()],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_made_while_the_directory_is_down_reaches_the_index() {
    let mut nats = NatsServer::start().unwrap();
    let namespace = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let config = NatsConfig {
        namespace,
        timeout_ms: 1_000,
        ..NatsConfig::new(nats.url())
    };
    let ca = keyfed_tests::gateway::TestCa::new().unwrap();
    let mut shards = BTreeMap::new();
    for id in ["shard-0", "shard-1"] {
        let shard = ca.federated_shard(id, &config).await.unwrap();
        shards.insert(ShardId::new(id), shard);
    }
    let view = FederationView::start(Arc::new(NatsDirectory::connect(&config).await.unwrap()))
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "members registered", || async {
        view.members().len() == 2
    })
    .await;
    let gateway = TestGateway::start_with_ca(&config, &ca).await.unwrap();
    let admin_token = shards[&ShardId::new("shard-0")]
        .admin_token()
        .await
        .unwrap()
        .id;
    let admin = Client {
        http: reqwest::Client::new(),
        base: gateway.url.clone(),
        token: admin_token.clone(),
    };
    let member = admin.role_id("member").await;
    let dave = admin.user("dave", "dave-secret").await;
    let project = admin.project("outage").await;
    let owner = view.owner_of_project(&project).unwrap();
    let shard = &shards[&owner];
    // The owner must trust shard-0's token and reach dave's home.
    let on_owner = Client {
        http: reqwest::Client::new(),
        base: shard.url.clone(),
        token: admin_token,
    };
    eventually(
        Duration::from_secs(20),
        "owner trusts the admin",
        || async {
            on_owner
                .send(Method::GET, "/v3/auth/projects", None)
                .await
                .0
                == 200
        },
    )
    .await;

    nats.stop();
    on_owner.grant(&project, &dave, &member).await;
    // Stored with its outbox row; the index could not be told.
    assert_eq!(outbox_rows(&shard.database, &dave).await, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        outbox_rows(&shard.database, &dave).await,
        1,
        "kept while the directory is down"
    );

    nats.restart().unwrap();
    let dir = NatsDirectory::connect(&config).await.unwrap();
    let index = dir.kv(Bucket::Memberships);
    let expected: BTreeSet<ShardId> = [owner.clone()].into_iter().collect();
    let start = Instant::now();
    eventually(
        Duration::from_secs(30),
        "delivered after the outage",
        || async {
            matches!(index.get(&membership::key(&dave)).await, Ok(Some(e))
            if membership::decode(&e.value).ok().as_ref() == Some(&expected))
        },
    )
    .await;
    println!("outbox delivered {:?} after NATS returned", start.elapsed());
    eventually(Duration::from_secs(10), "outbox row removed", || async {
        outbox_rows(&shard.database, &dave).await == 0
    })
    .await;
}
