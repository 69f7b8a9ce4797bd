//! An OpenStack-style service protected by the real keystonemiddleware
//! `auth_token` (tests/python/protected_app.py): a valid token passes with
//! the right identity headers, a missing, bogus or revoked one is refused.
//! Once against a standalone shard (service user: the bootstrap admin), once
//! against a gateway process in front of three shard processes, with a
//! service user created through the gateway.
//!
//! Needs `KEYFED_PYVENV`, `KEYFED_TEST_PG`, a nats-server and the `keyfed`
//! binary: run through `scripts/test`.
#![allow(clippy::unwrap_used)]

use anyhow::Context;
use keyfed_tests::cluster::Cluster;
use keyfed_tests::keystone::Keystone;
use keyfed_tests::python::ProtectedService;
use keyfed_tests::shard::TestShard;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Creates `name` through `ks` as `admin`; returns its id.
async fn create(ks: &Keystone, admin: &str, kind: &str, body: Value) -> anyhow::Result<String> {
    let (status, body) = ks
        .call(Method::POST, &format!("/v3/{kind}s"), admin, Some(&body))
        .await?;
    anyhow::ensure!(status == 201, "creating a {kind}: {status} {body}");
    Ok(body[kind]["id"].as_str().context("id")?.to_owned())
}

/// Grants `role` (an id) to `user` on `project`.
async fn grant(
    ks: &Keystone,
    admin: &str,
    project: &str,
    user: &str,
    role: &str,
) -> anyhow::Result<()> {
    let path = format!("/v3/projects/{project}/users/{user}/roles/{role}");
    let (status, body) = ks.call(Method::PUT, &path, admin, None).await?;
    anyhow::ensure!(status == 204, "grant: {status} {body}");
    Ok(())
}

async fn role_id(ks: &Keystone, admin: &str, name: &str) -> anyhow::Result<String> {
    let (status, body) = ks
        .call(Method::GET, &format!("/v3/roles?name={name}"), admin, None)
        .await?;
    anyhow::ensure!(status == 200, "{body}");
    Ok(body["roles"][0]["id"]
        .as_str()
        .with_context(|| format!("no role {name}: {body}"))?
        .to_owned())
}

/// The checks, against the service in front of `ks`. A revocation must be
/// seen within `revocation_within` (zero: at once).
async fn check_auth_token(
    ks: &Keystone,
    service: &ProtectedService,
    revocation_within: Duration,
) -> anyhow::Result<()> {
    let admin = ks.admin_token().await?.id;
    let demo = create(ks, &admin, "project", json!({"project": {"name": "demo"}})).await?;
    let alice = create(
        ks,
        &admin,
        "user",
        json!({"user": {"name": "alice", "password": "alice-secret"}}),
    )
    .await?;
    grant(
        ks,
        &admin,
        &demo,
        &alice,
        &role_id(ks, &admin, "member").await?,
    )
    .await?;

    let get = |token: Option<&str>| {
        let mut request = ks.http().get(format!("{}/", service.url));
        if let Some(token) = token {
            request = request.header("X-Auth-Token", token);
        }
        request.send()
    };

    // A valid project-scoped token passes, carrying alice's identity.
    let token = ks.token("alice", "alice-secret", "demo").await?;
    let response = get(Some(&token.id)).await?;
    let status = response.status();
    let body = response.text().await?;
    assert_eq!(
        status,
        StatusCode::OK,
        "{body}\n--- protected_app.py log:\n{}",
        service.log_tail()
    );
    let seen: Value = serde_json::from_str(&body)?;
    assert_eq!(seen["identity_status"], "Confirmed", "{seen}");
    assert_eq!(seen["user_id"], alice.as_str(), "{seen}");
    assert_eq!(seen["user_name"], "alice", "{seen}");
    assert_eq!(seen["project_id"], demo.as_str(), "{seen}");
    assert_eq!(seen["project_name"], "demo", "{seen}");
    let roles = seen["roles"].as_str().unwrap_or_default();
    assert!(roles.split(',').any(|r| r == "member"), "{seen}");

    // No token, or a bogus one: auth_token's 401 pointing at the endpoint.
    for bad in [None, Some("bogus-token")] {
        let response = get(bad).await?;
        let status = response.status();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "token {bad:?}\n--- protected_app.py log:\n{}",
            service.log_tail()
        );
        assert!(challenge.contains(&ks.url), "{challenge:?}");
    }

    // Revoked: refused (the middleware's token cache is off).
    let revoke = ks
        .http()
        .delete(format!("{}/v3/auth/tokens", ks.url))
        .header("X-Auth-Token", &admin)
        .header("X-Subject-Token", &token.id)
        .send()
        .await?;
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    let start = Instant::now();
    loop {
        let status = get(Some(&token.id)).await?.status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            start.elapsed() <= revocation_within,
            "revoked token answered {status} after {:?}\n--- protected_app.py log:\n{}",
            start.elapsed(),
            service.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A fresh token for alice still passes.
    let again = ks.token("alice", "alice-secret", "demo").await?;
    let status = get(Some(&again.id)).await?.status();
    assert_eq!(
        status,
        StatusCode::OK,
        "--- protected_app.py log:\n{}",
        service.log_tail()
    );
    Ok(())
}

#[tokio::test]
async fn auth_token_middleware_against_a_shard() -> anyhow::Result<()> {
    let shard = TestShard::start().await?;
    let service = ProtectedService::start(&shard.url, &shard.admin_password).await?;
    check_auth_token(shard.keystone(), &service, Duration::ZERO).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_token_middleware_against_the_gateway() {
    let f = Cluster::builder()
        .shards(3)
        .gateways(1)
        .start()
        .await
        .unwrap();
    let ks = f.keystone(0).unwrap();
    let admin = ks.admin_token().await.unwrap().id;

    // The service's own user and project, made through the gateway as an
    // operator would.
    let project = create(
        &ks,
        &admin,
        "project",
        json!({"project": {"name": "service"}}),
    )
    .await
    .unwrap();
    let user = create(
        &ks,
        &admin,
        "user",
        json!({"user": {"name": "glance", "password": "glance-secret"}}),
    )
    .await
    .unwrap();
    // The `service` role exists: bootstrap creates it, as Keystone's does.
    let (status, roles) = ks
        .call(Method::GET, "/v3/roles?name=service", &admin, None)
        .await
        .unwrap();
    assert_eq!(status, 200, "{roles}");
    let role = roles["roles"][0]["id"].as_str().unwrap().to_owned();
    grant(&ks, &admin, &project, &user, &role).await.unwrap();

    let service = ProtectedService::start_as(&ks.url, "glance", "glance-secret", "service")
        .await
        .unwrap();
    // A revocation made through the gateway is seen there at once.
    check_auth_token(&ks, &service, Duration::ZERO)
        .await
        .unwrap();
}
