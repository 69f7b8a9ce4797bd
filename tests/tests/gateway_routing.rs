//! Two gateway processes in front of three shard processes (each on its own
//! PostgreSQL database) over a real nats-server: token issue, placement of
//! new projects, a user with roles on projects on three shards logging in
//! once at gateway A and rescoping to each at A and at B (and the
//! `openstack` CLI doing the same), a project created through gateway A
//! usable at once through B, fan-out listings, revocation reaching the
//! gateway's validator, and errors answered without any upstream call.
//!
//! Needs `KEYFED_TEST_PG`, `KEYFED_PYVENV`, a nats-server and the `keyfed`
//! binary: run through `scripts/test`.
#![allow(clippy::unwrap_used)]

use keyfed_tests::Gateways;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use keyfed_tests::cluster::Cluster;
use reqwest::Method;
use serde_json::{json, Value};

async fn create_project(f: &Cluster, g: usize, token: &str, name: &str) -> String {
    let (status, body) = f
        .call(
            g,
            Method::POST,
            "/v3/projects",
            token,
            Some(&json!({"project": {"name": name}})),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    body["project"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_endpoint_in_front_of_three_shards() {
    let f = Cluster::builder()
        .shards(3)
        .gateways(2)
        .start()
        .await
        .unwrap();
    let admin = f.admin_token(0).await.unwrap();

    // Version discovery points at the gateway.
    let v: Value = f
        .http
        .get(format!("{}/v3", f.gateway(0)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["version"]["links"][0]["href"],
        format!("{}/v3/", f.gateway(0))
    );

    // Projects land where the ring says, until three shards own one.
    let mut projects: Vec<(String, String)> = Vec::new();
    let mut owners = BTreeSet::new();
    for i in 0..30 {
        let id = create_project(&f, 0, &admin, &format!("tenant-{i}")).await;
        assert_eq!(id.len(), 32);
        let owner = f.owner_of_project(&id).unwrap();
        // The owning shard has it.
        let shard = f.shard(&owner).unwrap();
        let r = f
            .http
            .get(format!("{}/v3/projects/{id}", shard.url))
            .header("x-auth-token", &admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "project {id} on {owner}");
        if owners.insert(owner.to_string()) {
            projects.push((id, owner.to_string()));
        }
        if owners.len() == 3 {
            break;
        }
    }
    assert_eq!(owners.len(), 3, "projects must land on three shards");

    // A duplicate name is refused federation-wide.
    let (status, body) = f
        .call(
            0,
            Method::POST,
            "/v3/projects",
            &admin,
            Some(&json!({"project": {"name": "tenant-0"}})),
        )
        .await
        .unwrap();
    assert_eq!(status, 409, "{body}");

    // (b) Usable at once through the other gateway.
    for (id, _) in &projects {
        let (status, body) = f
            .call(1, Method::GET, &format!("/v3/projects/{id}"), &admin, None)
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }

    // A user, granted `member` on the three projects.
    let (status, body) = f
        .call(0, Method::POST, "/v3/users", &admin,
            Some(&json!({"user": {"name": "alice", "password": "alice-secret", "domain_id": "default"}})))
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let alice = body["user"]["id"].as_str().unwrap().to_owned();
    let (status, roles) = f
        .call(0, Method::GET, "/v3/roles?name=member", &admin, None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{roles}");
    let member = roles["roles"][0]["id"].as_str().unwrap().to_owned();
    for (id, owner) in &projects {
        let (status, body) = f
            .call(
                0,
                Method::PUT,
                &format!("/v3/projects/{id}/users/{alice}/roles/{member}"),
                &admin,
                None,
            )
            .await
            .unwrap();
        assert_eq!(status, 204, "grant on {id} ({owner}): {body}");
    }

    // Log in once at gateway A; rescope to each project by token, at A and
    // at B; each scoped token validates at both gateways.
    let unscoped = f
        .password_token(0, "alice", "alice-secret", None)
        .await
        .unwrap();
    for (id, owner) in &projects {
        for g in [0, 1] {
            let (status, token, body) = f.rescope(g, &unscoped, id).await.unwrap();
            assert_eq!(
                status, 201,
                "rescope to {id} on {owner} at gateway {g}: {body}"
            );
            assert_eq!(body["token"]["project"]["id"], id.as_str());
            let token = token.unwrap();
            for v in [0, 1] {
                assert_eq!(f.validate(v, &admin, &token).await.unwrap(), 200);
            }
        }
    }
    // Password straight to a project on another shard than alice's home:
    // the `openstack` CLI through gateway B.
    let gateway_b = f.keystone(1).unwrap();
    for (id, owner) in &projects {
        let (_, b) = f
            .call(0, Method::GET, &format!("/v3/projects/{id}"), &admin, None)
            .await
            .unwrap();
        let name = b["project"]["name"].as_str().unwrap().to_owned();
        let token = gateway_b
            .openstack_as("alice", "alice-secret", &name)
            .unwrap()
            .json(&["token", "issue"])
            .await
            .unwrap();
        assert_eq!(
            token["project_id"].as_str(),
            Some(id.as_str()),
            "{name} on {owner}: {token}"
        );
    }

    // Fan-out listings.
    let (status, list) = f
        .call(0, Method::GET, "/v3/projects", &admin, None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{list}");
    let ids: BTreeSet<&str> = list["projects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    for (id, _) in &projects {
        assert!(ids.contains(id.as_str()), "{id} missing from {list}");
    }
    assert_eq!(
        list["links"]["self"],
        format!("{}/v3/projects", f.gateway(0))
    );
    let (status, mine) = f
        .call(
            0,
            Method::GET,
            &format!("/v3/users/{alice}/projects"),
            &unscoped,
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["projects"].as_array().unwrap().len(), 3, "{mine}");
    let (status, users) = f
        .call(0, Method::GET, "/v3/users", &admin, None)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let alices = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["id"] == alice.as_str())
        .count();
    assert_eq!(alices, 1, "{users}");

    // Delete releases the name.
    let (id0, _) = &projects[0];
    let (status, _) = f
        .call(
            0,
            Method::DELETE,
            &format!("/v3/projects/{id0}"),
            &admin,
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 204);
    let name0 = "tenant-0";
    let again = create_project(&f, 1, &admin, name0).await;
    assert_ne!(&again, id0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_and_local_errors() {
    let f = Cluster::builder()
        .shards(2)
        .gateways(1)
        .start()
        .await
        .unwrap();
    let admin = f.admin_token(0).await.unwrap();
    let subject = f.admin_token(0).await.unwrap();
    let validate = |token: String| {
        let f = &f;
        let admin = admin.clone();
        async move {
            f.http
                .get(format!("{}/v3/auth/tokens", f.gateway(0)))
                .header("x-auth-token", admin)
                .header("x-subject-token", token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(validate(subject.clone()).await, 200);

    // (d) Garbage and malformed input: Keystone errors, no upstream call.
    let before = f
        .metric_sum(0, "keyfed_gateway_upstream_requests_total")
        .await
        .unwrap();
    assert_eq!(validate("garbage".into()).await, 404);
    let r = f
        .http
        .get(format!("{}/v3/auth/tokens", f.gateway(0)))
        .header("x-auth-token", "nonsense")
        .header("x-subject-token", &subject)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert!(r.headers().contains_key("x-openstack-request-id"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], 401, "{body}");
    for bad in [
        "{",
        "[]",
        r#"{"auth": {}}"#,
        r#"{"auth": {"identity": {"methods": ["password"]}}}"#,
    ] {
        let r = f
            .http
            .post(format!("{}/v3/auth/tokens", f.gateway(0)))
            .header("content-type", "application/json")
            .body(bad)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], 400, "{body}");
    }
    let (status, _, _) = f
        .auth(
            0,
            &json!({"auth": {"identity": {"methods": ["token"], "token": {"id": "garbage"}}}}),
        )
        .await
        .unwrap();
    assert_eq!(status, 401);
    let (status, _) = f
        .call(
            0,
            Method::POST,
            "/v3/projects",
            "garbage",
            Some(&json!({"project": {"name": "x"}})),
        )
        .await
        .unwrap();
    assert_eq!(status, 401);
    let (status, _) = f
        .call(
            0,
            Method::POST,
            "/v3/projects",
            &admin,
            Some(&json!({"project": 5})),
        )
        .await
        .unwrap();
    assert_eq!(status, 400);
    let (status, body) = f
        .call(0, Method::GET, "/v3/nonsense", &admin, None)
        .await
        .unwrap();
    assert_eq!(status, 404, "{body}");
    let after = f
        .metric_sum(0, "keyfed_gateway_upstream_requests_total")
        .await
        .unwrap();
    assert_eq!(before, after, "no request may reach a shard");

    // (c) A token revoked on a shard fails through the gateway within 1 s.
    let shard0 = f.shard("shard-0").unwrap();
    let r = f
        .http
        .delete(format!("{}/v3/auth/tokens", shard0.url))
        .header("x-auth-token", &admin)
        .header("x-subject-token", &subject)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let start = Instant::now();
    while validate(subject.clone()).await != 404 {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "revocation not seen within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!("revocation reached the gateway in {:?}", start.elapsed());

    // Revocation through the gateway goes to the signer.
    let other = f.admin_token(0).await.unwrap();
    let r = f
        .http
        .delete(format!("{}/v3/auth/tokens", f.gateway(0)))
        .header("x-auth-token", &admin)
        .header("x-subject-token", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    let start = Instant::now();
    while validate(other.clone()).await != 404 {
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "revocation not seen within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
