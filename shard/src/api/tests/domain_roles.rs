//! Domain-specific roles stay in their domain: granted only there, never in
//! tokens themselves (only the global roles they imply), and never
//! matched by policy.

use super::{assert_keystone_error, TestApp};
use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

/// Creates a `kind` (`domain`, `project`, ...) with `attrs`; its id.
async fn create(t: &TestApp, token: &str, kind: &str, attrs: Value) -> String {
    let path = format!("/v3/{kind}s");
    let body = json!({ kind: attrs });
    let r = t.call(Method::POST, &path, Some(token), Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body[kind]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_domain_specific_role_is_granted_within_its_domain_only() {
    let t = TestApp::new().await;
    let admin = t.admin_token().await;
    let d2 = create(&t, &admin, "domain", json!({"name": "d2"})).await;
    let d3 = create(&t, &admin, "domain", json!({"name": "d3"})).await;
    let p2 = create(
        &t,
        &admin,
        "project",
        json!({"name": "p2", "domain_id": d2}),
    )
    .await;
    let p3 = create(
        &t,
        &admin,
        "project",
        json!({"name": "p3", "domain_id": d3}),
    )
    .await;
    let user = create(
        &t,
        &admin,
        "user",
        json!({"name": "holder", "password": "pw"}),
    )
    .await;
    let fake = create(
        &t,
        &admin,
        "role",
        json!({"name": "admin", "domain_id": d2}),
    )
    .await;
    // Keystone answers 403 on a project (here also on a domain) of another
    // domain and 400 on the system.
    for (on, status) in [
        (format!("projects/{p3}"), 403),
        (format!("domains/{d3}"), 403),
        ("system".to_owned(), 400),
        (format!("domains/{d2}"), 204),
        (format!("projects/{p2}"), 204),
    ] {
        let path = format!("/v3/{on}/users/{user}/roles/{fake}");
        let r = t.call(Method::PUT, &path, Some(&admin), None).await;
        if status == 204 {
            assert_eq!(r.status, StatusCode::NO_CONTENT, "{path}: {}", r.body);
        } else {
            assert_keystone_error(&r, status);
        }
    }

    // Implying no global role, it grants no access at all.
    let scope = json!({"project": {"id": p2}});
    let r = t.login("holder", "pw", scope.clone()).await;
    assert_keystone_error(&r, 401);

    // Implying `member`, the token carries `member` and `reader` only.
    let member = t.state.global().role_by_name("member").unwrap().id.clone();
    let r = t
        .call(
            Method::PUT,
            &format!("/v3/roles/{fake}/implies/{member}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = t.login("holder", "pw", scope).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let mut names: Vec<&str> = r.body["token"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["member", "reader"]);
    let token = r.headers["x-subject-token"].to_str().unwrap().to_owned();
    let r = t
        .call(
            Method::POST,
            "/v3/users",
            Some(&token),
            Some(json!({"user": {"name": "nope", "domain_id": d2}})),
        )
        .await;
    assert_keystone_error(&r, 403);
    // Effective assignments list the global roles it implies, not itself.
    let r = t
        .call(
            Method::GET,
            &format!("/v3/role_assignments?user.id={user}&scope.project.id={p2}&effective"),
            Some(&admin),
            None,
        )
        .await;
    let roles: Vec<&str> = r.body["role_assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["role"]["id"].as_str().unwrap())
        .collect();
    assert!(!roles.contains(&fake.as_str()), "{roles:?}");
    assert!(roles.contains(&member.as_str()), "{roles:?}");
}
