//! Faults under running gateway processes, with real processes killed and
//! restarted:
//!
//! - a shard process killed: requests for its tenants get a Keystone 503
//!   within the upstream timeouts, everything else keeps working, and once
//!   the process is started again (same database, same port) service
//!   resumes without restarting any gateway;
//! - nats-server killed: the gateways keep validating tokens and routing
//!   from what they hold (token rescopes included; logins by name resolve
//!   through the shards), while writes that need the directory fail with a
//!   Keystone 503 within the directory timeout, and once NATS is back (same
//!   port, same JetStream store) they resync: a revocation made during the
//!   outage, and revocations, projects and global data created after it,
//!   are seen by both gateways.
//!
//! Needs `KEYFED_TEST_PG`, a nats-server and the `keyfed` binary: run
//! through `scripts/test`.
#![allow(clippy::unwrap_used)]

use keyfed_tests::Gateways;
use std::time::{Duration, Instant};

use keyfed_tests::cluster::{Cluster, CONNECT_TIMEOUT, DIRECTORY_TIMEOUT, UPSTREAM_TIMEOUT};
use reqwest::Method;
use serde_json::{json, Value};

/// A Keystone-shaped 503 that names no shard.
fn assert_keystone_503(status: u16, body: &Value, what: &str) {
    assert_eq!(status, 503, "{what}: {body}");
    assert_eq!(body["error"]["code"], 503, "{what}: {body}");
    assert!(body["error"]["title"].is_string(), "{what}: {body}");
    assert!(body["error"]["message"].is_string(), "{what}: {body}");
    assert!(!body.to_string().contains("shard-"), "{what}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_shard_costs_only_its_tenants_until_it_returns() {
    let mut f = Cluster::builder()
        .shards(3)
        .gateways(1)
        .start()
        .await
        .unwrap();
    let admin = f.admin_token(0).await.unwrap();
    let ids = f
        .projects_on(&admin, &["shard-1", "shard-2"])
        .await
        .unwrap();
    let (doomed, alive) = (ids[0].clone(), ids[1].clone());
    // The admin may scope tokens to both.
    let member = f.id_by_name(0, &admin, "roles", "member").await.unwrap();
    let me = f.id_by_name(0, &admin, "users", "admin").await.unwrap();
    for project in [&doomed, &alive] {
        let grant = format!("/v3/projects/{project}/users/{me}/roles/{member}");
        let (status, body) = f.call(0, Method::PUT, &grant, &admin, None).await.unwrap();
        assert_eq!(status, 204, "{body}");
    }
    let bound = UPSTREAM_TIMEOUT + CONNECT_TIMEOUT;

    f.kill_shard(1);

    let start = Instant::now();
    let (status, body) = f
        .call(
            0,
            Method::GET,
            &format!("/v3/projects/{doomed}"),
            &admin,
            None,
        )
        .await
        .unwrap();
    let took = start.elapsed();
    assert_keystone_503(status, &body, "GET a project of the killed shard");
    assert!(took < bound, "503 after {took:?}, bound {bound:?}");
    println!("503 for the killed shard's tenant after {took:?}");
    // Scoping a token to its project fails the same way.
    let start = Instant::now();
    let (status, _, body) = f.rescope(0, &admin, &doomed).await.unwrap();
    assert_keystone_503(status, &body, "rescope to the killed shard's project");
    assert!(start.elapsed() < bound, "{:?}", start.elapsed());
    // A fan-out touching the killed shard fails as a whole, Keystone-shaped.
    let (status, body) = f
        .call(0, Method::GET, "/v3/projects", &admin, None)
        .await
        .unwrap();
    assert_keystone_503(status, &body, "GET /v3/projects");

    // Everything else keeps working: the other tenants, validation (no
    // shard needed), a new login at the admin's home shard.
    let (status, body) = f
        .call(
            0,
            Method::GET,
            &format!("/v3/projects/{alive}"),
            &admin,
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(f.validate(0, &admin, &admin).await.unwrap(), 200);
    let fresh = f.admin_token(0).await.unwrap();
    let (status, _, body) = f.rescope(0, &fresh, &alive).await.unwrap();
    assert_eq!(status, 201, "{body}");
    assert!(
        f.metric_sum(0, "keyfed_gateway_upstream_errors_total")
            .await
            .unwrap()
            >= 1.0
    );

    // The same process comes back on its database and port; the gateway
    // serves its tenants again without a restart.
    f.restart_shard(1).await.unwrap();
    let resumed = f
        .wait_for(
            Duration::from_secs(10),
            "the doomed project again",
            || async {
                let r = f
                    .call(
                        0,
                        Method::GET,
                        &format!("/v3/projects/{doomed}"),
                        &admin,
                        None,
                    )
                    .await;
                matches!(r, Ok((200, _)))
            },
        )
        .await
        .unwrap();
    println!("the restarted shard's tenant served {resumed:?} after it was ready");
    let (status, _, body) = f.rescope(0, &fresh, &doomed).await.unwrap();
    assert_eq!(status, 201, "{body}");
    let (status, body) = f
        .call(0, Method::GET, "/v3/projects", &admin, None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let listed = body["projects"].as_array().unwrap();
    for id in [&doomed, &alive] {
        assert!(listed.iter().any(|p| p["id"] == id.as_str()), "{id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_gateways_serve_from_what_they_hold_and_resync() {
    let mut f = Cluster::builder()
        .shards(3)
        .gateways(2)
        .start()
        .await
        .unwrap();
    let admin = f.admin_token(0).await.unwrap();

    // Before the outage: a project, a user with a role on it, tokens.
    let (status, body) = f
        .call(
            0,
            Method::POST,
            "/v3/projects",
            &admin,
            Some(&json!({"project": {"name": "before"}})),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let project = body["project"]["id"].as_str().unwrap().to_owned();
    let (status, body) = f
        .call(
            0,
            Method::POST,
            "/v3/users",
            &admin,
            Some(&json!({"user": {"name": "dave", "password": "dave-secret"}})),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let dave = body["user"]["id"].as_str().unwrap().to_owned();
    let (_, roles) = f
        .call(0, Method::GET, "/v3/roles?name=member", &admin, None)
        .await
        .unwrap();
    let member = roles["roles"][0]["id"].as_str().unwrap().to_owned();
    let grant = format!("/v3/projects/{project}/users/{dave}/roles/{member}");
    let (status, body) = f.call(0, Method::PUT, &grant, &admin, None).await.unwrap();
    assert_eq!(status, 204, "{body}");
    let unscoped = f
        .password_token(0, "dave", "dave-secret", None)
        .await
        .unwrap();
    let kept = f
        .password_token(0, "dave", "dave-secret", Some("before"))
        .await
        .unwrap();
    let revoked_during = f
        .password_token(0, "dave", "dave-secret", Some("before"))
        .await
        .unwrap();
    let revoked_after = f
        .password_token(0, "dave", "dave-secret", Some("before"))
        .await
        .unwrap();

    f.stop_nats();

    // Both gateways keep validating and routing from what they hold.
    for g in [0, 1] {
        for token in [&admin, &kept, &revoked_after] {
            assert_eq!(f.validate(g, &admin, token).await.unwrap(), 200, "gw {g}");
        }
        let (status, body) = f
            .call(
                g,
                Method::GET,
                &format!("/v3/projects/{project}"),
                &kept,
                None,
            )
            .await
            .unwrap();
        assert_eq!(status, 200, "gateway {g}: {body}");
        let (status, _, body) = f.rescope(g, &unscoped, &project).await.unwrap();
        assert_eq!(status, 201, "rescope at gateway {g}: {body}");
    }
    // Writes that need the directory fail clearly, within its timeout.
    let bound = 2 * DIRECTORY_TIMEOUT + Duration::from_secs(1);
    let start = Instant::now();
    let (status, body) = f
        .call(
            0,
            Method::POST,
            "/v3/projects",
            &admin,
            Some(&json!({"project": {"name": "during"}})),
        )
        .await
        .unwrap();
    assert_keystone_503(status, &body, "project creation without NATS");
    assert!(start.elapsed() < bound, "{:?}", start.elapsed());
    let start = Instant::now();
    let (status, body) = f
        .call(
            1,
            Method::POST,
            "/v3/roles",
            &admin,
            Some(&json!({"role": {"name": "during"}})),
        )
        .await
        .unwrap();
    assert_keystone_503(status, &body, "role creation without NATS");
    assert!(start.elapsed() < bound, "{:?}", start.elapsed());
    // Logins by name still work: without the names index the gateway asks
    // the shards, and only the user's home (and the project's owner) can
    // answer. A wrong password is still refused.
    let start = Instant::now();
    for g in [0, 1] {
        f.password_token(g, "dave", "dave-secret", None)
            .await
            .unwrap_or_else(|e| panic!("unscoped login by name at gateway {g}: {e:#}"));
        f.password_token(g, "dave", "dave-secret", Some("before"))
            .await
            .unwrap_or_else(|e| panic!("scoped login by names at gateway {g}: {e:#}"));
    }
    println!("4 logins by name without NATS took {:?}", start.elapsed());
    let (status, _, body) = f
        .auth(
            1,
            &json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": "dave", "domain": {"name": "Default"}, "password": "wrong"}}}}}),
        )
        .await
        .unwrap();
    assert_eq!(status, 401, "wrong password without NATS: {body}");
    assert_eq!(body["error"]["code"], 401, "{body}");
    // A revocation goes to the signing shard, which keeps it for later.
    let r = f
        .http
        .delete(format!("{}/v3/auth/tokens", f.gateway(1)))
        .header("x-auth-token", &admin)
        .header("x-subject-token", &revoked_during)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);

    f.restart_nats().unwrap();
    let returned = Instant::now();

    // The outage's revocation reaches both gateways.
    for g in [0, 1] {
        f.wait_for(
            Duration::from_secs(30),
            &format!("gateway {g} to learn the outage's revocation"),
            || async { f.validate(g, &admin, &revoked_during).await.ok() == Some(404) },
        )
        .await
        .unwrap();
    }
    println!(
        "the outage's revocation reached both gateways {:?} after NATS returned",
        returned.elapsed()
    );
    // Writes work again once the processes have reconnected, and the name
    // refused during the outage is free again (its reservation, sent while
    // NATS was down, may land when it returns: the gateway undoes it).
    let created = loop {
        let (status, body) = f
            .call(
                0,
                Method::POST,
                "/v3/projects",
                &admin,
                Some(&json!({"project": {"name": "during"}})),
            )
            .await
            .unwrap();
        match status {
            201 => break body,
            409 | 503 if returned.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            _ => panic!("creating a project after NATS returned: {status} {body}"),
        }
    };
    println!(
        "project creation worked again {:?} after NATS returned",
        returned.elapsed()
    );
    let after = created["project"]["id"].as_str().unwrap().to_owned();
    let (status, body) = f
        .call(
            1,
            Method::GET,
            &format!("/v3/projects/{after}"),
            &admin,
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "created at A, read at once at B: {body}");

    // A revocation made after the return reaches both gateways.
    let r = f
        .http
        .delete(format!("{}/v3/auth/tokens", f.gateway(0)))
        .header("x-auth-token", &admin)
        .header("x-subject-token", &revoked_after)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    for g in [0, 1] {
        let took = f
            .wait_for(
                Duration::from_secs(5),
                &format!("gateway {g} to learn a new revocation"),
                || async { f.validate(g, &admin, &revoked_after).await.ok() == Some(404) },
            )
            .await
            .unwrap();
        println!("revocation after the return reached gateway {g} in {took:?}");
        assert_eq!(f.validate(g, &admin, &kept).await.unwrap(), 200);
    }

    // Global data created after the return: a role made through A, granted
    // and put in a token, is named by both gateways' validators.
    let (status, body) = f
        .call(
            0,
            Method::POST,
            "/v3/roles",
            &admin,
            Some(&json!({"role": {"name": "auditor"}})),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let auditor = body["role"]["id"].as_str().unwrap().to_owned();
    let grant = format!("/v3/projects/{project}/users/{dave}/roles/{auditor}");
    let (status, body) = f.call(1, Method::PUT, &grant, &admin, None).await.unwrap();
    assert_eq!(status, 204, "{body}");
    let token = f
        .password_token(1, "dave", "dave-secret", Some("before"))
        .await
        .unwrap();
    for g in [0, 1] {
        let took = f
            .wait_for(
                Duration::from_secs(5),
                &format!("gateway {g} to name the new role"),
                || async {
                    let r = f
                        .http
                        .get(format!("{}/v3/auth/tokens", f.gateway(g)))
                        .header("x-auth-token", &admin)
                        .header("x-subject-token", &token)
                        .send()
                        .await;
                    let Ok(r) = r else { return false };
                    let body: Value = r.json().await.unwrap_or(Value::Null);
                    body["token"]["roles"]
                        .as_array()
                        .is_some_and(|roles| roles.iter().any(|r| r["name"] == "auditor"))
                },
            )
            .await
            .unwrap();
        println!("gateway {g} named the new role after {took:?}");
    }
}
