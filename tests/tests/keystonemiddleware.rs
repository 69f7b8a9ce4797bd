//! An OpenStack-style service protected by the real keystonemiddleware
//! `auth_token` (tests/python/protected_app.py), validating tokens against a
//! running shard: a valid token passes with the right identity headers, a
//! bogus or revoked one is refused.
//!
//! Needs `KEYFED_PYVENV` and `KEYFED_TEST_PG`: run through `scripts/test`.

use anyhow::Context;
use keyfed_tests::python::ProtectedService;
use keyfed_tests::shard::TestShard;
use reqwest::StatusCode;
use serde_json::Value;

#[tokio::test]
async fn auth_token_middleware_accepts_valid_and_refuses_revoked_tokens() -> anyhow::Result<()> {
    let shard = TestShard::start().await?;
    let os = shard.openstack()?;
    let demo = os
        .json(&["project", "create", "--domain", "default", "demo"])
        .await?;
    let demo_id = demo["id"].as_str().context("project id")?.to_owned();
    os.run(&[
        "user",
        "create",
        "--domain",
        "default",
        "--password",
        "alice-secret",
        "alice",
    ])
    .await?;
    os.run(&[
        "role",
        "add",
        "--user",
        "alice",
        "--project",
        "demo",
        "member",
    ])
    .await?;

    let service = ProtectedService::start(&shard.url, &shard.admin_password).await?;
    let http = shard.http();
    let get = |token: Option<&str>| {
        let mut request = http.get(format!("{}/", service.url));
        if let Some(token) = token {
            request = request.header("X-Auth-Token", token);
        }
        request.send()
    };

    // A valid project-scoped token passes, carrying alice's identity.
    let alice = shard.token("alice", "alice-secret", "demo").await?;
    let response = get(Some(&alice.id)).await?;
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
    assert_eq!(seen["user_id"], alice.user_id.as_str(), "{seen}");
    assert_eq!(seen["user_name"], "alice", "{seen}");
    assert_eq!(seen["project_id"], demo_id.as_str(), "{seen}");
    assert_eq!(seen["project_name"], "demo", "{seen}");
    let roles = seen["roles"].as_str().unwrap_or_default();
    assert!(roles.split(',').any(|r| r == "member"), "{seen}");

    // No token, or a bogus one: auth_token's 401 pointing at the shard.
    for token in [None, Some("bogus-token")] {
        let response = get(token).await?;
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
            "token {token:?}\n--- protected_app.py log:\n{}",
            service.log_tail()
        );
        assert!(challenge.contains(&shard.url), "{challenge:?}");
    }

    // Revoked: refused at once (the middleware's token cache is off).
    let admin = shard.admin_token().await?;
    let revoke = http
        .delete(format!("{}/v3/auth/tokens", shard.url))
        .header("X-Auth-Token", &admin.id)
        .header("X-Subject-Token", &alice.id)
        .send()
        .await?;
    assert_eq!(revoke.status(), StatusCode::NO_CONTENT);
    let status = get(Some(&alice.id)).await?.status();
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "revoked token\n--- protected_app.py log:\n{}",
        service.log_tail()
    );

    // A fresh token for alice still passes.
    let again = shard.token("alice", "alice-secret", "demo").await?;
    let status = get(Some(&again.id)).await?.status();
    assert_eq!(
        status,
        StatusCode::OK,
        "--- protected_app.py log:\n{}",
        service.log_tail()
    );
    Ok(())
}
