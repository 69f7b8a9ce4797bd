//! Handler tests through the router, without sockets, on the embedded store.
#![allow(clippy::unwrap_used)]

use crate::config::{BootstrapConfig, ShardConfig, StorageKind};
use crate::server::{app, build};
use crate::state::AppState;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

mod domain_roles;
mod fuzz;

struct TestApp {
    app: Router,
    state: AppState,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl TestApp {
    async fn new() -> Self {
        Self::with_config(|_, _| {}).await
    }

    /// A shard whose config `adjust` changes (given the test's directory).
    async fn with_config(adjust: impl FnOnce(&mut ShardConfig, &std::path::Path)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ShardConfig::default();
        config.storage.kind = StorageKind::Embedded;
        config.storage.path = dir.path().join("store");
        config.tokens.signing_key_file = dir.path().join("key.pem");
        config.password.memory_kib = 64;
        config.password.iterations = 1;
        config.server.public_url = Some("http://keystone.test:5000".into());
        config.server.insecure_plain_http = true;
        config.bootstrap = Some(BootstrapConfig {
            admin_password: Some("secret".into()),
            ..BootstrapConfig::default()
        });
        adjust(&mut config, dir.path());
        let state = build(config).await.unwrap();
        Self {
            app: app(state.clone()),
            state,
            _dir: dir,
        }
    }

    async fn raw(&self, req: Request<Body>) -> Reply {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("x-auth-token", t);
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        self.raw(req.unwrap()).await
    }

    async fn login(&self, user: &str, password: &str, scope: Value) -> Reply {
        let body = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": "default"}, "password": password}}}, "scope": scope}});
        self.call(Method::POST, "/v3/auth/tokens", None, Some(body))
            .await
    }

    async fn admin_token(&self) -> String {
        let r = self
            .login(
                "admin",
                "secret",
                json!({"project": {"name": "admin", "domain": {"name": "Default"}}}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.headers["x-subject-token"].to_str().unwrap().to_owned()
    }
}

fn assert_keystone_error(r: &Reply, status: u16) {
    assert_eq!(r.status.as_u16(), status, "{}", r.body);
    assert_eq!(r.body["error"]["code"], status, "{}", r.body);
    assert!(r.body["error"]["title"].is_string(), "{}", r.body);
    assert!(r.body["error"]["message"].is_string(), "{}", r.body);
}

#[tokio::test]
async fn version_discovery() {
    let t = TestApp::new().await;
    let r = t.call(Method::GET, "/", None, None).await;
    assert_eq!(r.status, StatusCode::MULTIPLE_CHOICES);
    assert_eq!(r.body["versions"]["values"][0]["id"], "v3.14");
    let r = t.call(Method::GET, "/v3", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["version"]["status"], "stable");
    assert!(r.headers.contains_key("x-openstack-request-id"));
}

#[tokio::test]
async fn password_login_validate_and_revoke() {
    let t = TestApp::new().await;
    let r = t
        .login(
            "admin",
            "secret",
            json!({"project": {"name": "admin", "domain": {"id": "default"}}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let token = r.headers["x-subject-token"].to_str().unwrap().to_owned();
    assert!(token.len() <= 600, "{} bytes", token.len());
    let tok = &r.body["token"];
    assert_eq!(tok["user"]["name"], "admin");
    assert_eq!(tok["user"]["domain"]["name"], "Default");
    assert_eq!(tok["project"]["name"], "admin");
    let roles: Vec<&str> = tok["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for role in ["admin", "member", "reader"] {
        assert!(roles.contains(&role), "{roles:?}");
    }
    assert_eq!(tok["catalog"][0]["type"], "identity");
    assert_eq!(tok["catalog"][0]["endpoints"].as_array().unwrap().len(), 3);

    let mut req = Request::get("/v3/auth/tokens?nocatalog")
        .header("x-auth-token", &token)
        .header("x-subject-token", &token);
    let r = t.raw(req.body(Body::empty()).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body["token"].get("catalog").is_none());
    req = Request::head("/v3/auth/tokens")
        .header("x-auth-token", &token)
        .header("x-subject-token", &token);
    assert_eq!(
        t.raw(req.body(Body::empty()).unwrap()).await.status,
        StatusCode::OK
    );

    let req = Request::delete("/v3/auth/tokens")
        .header("x-auth-token", &token)
        .header("x-subject-token", &token);
    assert_eq!(
        t.raw(req.body(Body::empty()).unwrap()).await.status,
        StatusCode::NO_CONTENT
    );
    let r = t
        .call(Method::GET, "/v3/projects", Some(&token), None)
        .await;
    assert_keystone_error(&r, 401);
    assert!(r.headers.contains_key("www-authenticate"));
}

#[tokio::test]
async fn wrong_password_and_unknown_user_look_the_same() {
    let t = TestApp::new().await;
    let a = t.login("admin", "nope", json!("unscoped")).await;
    let b = t.login("ghost", "nope", json!("unscoped")).await;
    assert_keystone_error(&a, 401);
    assert_keystone_error(&b, 401);
    assert_eq!(a.body, b.body);
}

#[tokio::test]
async fn bad_input_gets_keystone_errors() {
    let t = TestApp::new().await;
    let token = t.admin_token().await;
    let post = |body: &'static str, ct: &'static str| {
        Request::post("/v3/projects")
            .header("x-auth-token", token.clone())
            .header("content-type", ct)
            .body(Body::from(body))
            .unwrap()
    };
    assert_keystone_error(&t.raw(post("{not json", "application/json")).await, 400);
    assert_keystone_error(&t.raw(post("[]", "application/json")).await, 400);
    assert_keystone_error(
        &t.raw(post(r#"{"project": {"name": 5}}"#, "application/json"))
            .await,
        400,
    );
    assert_keystone_error(
        &t.raw(post(r#"{"project": {}}"#, "application/json")).await,
        400,
    );
    assert_keystone_error(
        &t.raw(post(
            r#"{"project": {"name": "x", "enabled": "yes"}}"#,
            "application/json",
        ))
        .await,
        400,
    );
    assert_keystone_error(
        &t.raw(post("name=x", "application/x-www-form-urlencoded"))
            .await,
        415,
    );
    let huge = format!(
        r#"{{"project": {{"name": "x", "description": "{}"}}}}"#,
        "a".repeat(keyfed_http::server_config::DEFAULT_MAX_BODY_BYTES + 1)
    );
    let req = Request::post("/v3/projects")
        .header("x-auth-token", &token)
        .header("content-type", "application/json")
        .body(Body::from(huge))
        .unwrap();
    assert_keystone_error(&t.raw(req).await, 413);
    let req = Request::get("/v3/projects")
        .header("x-auth-token", &token)
        .header("x-padding", "p".repeat(20_000))
        .body(Body::empty())
        .unwrap();
    assert_keystone_error(&t.raw(req).await, 431);
    assert_keystone_error(
        &t.call(Method::GET, "/v3/projects", Some("garbage"), None)
            .await,
        401,
    );
    assert_keystone_error(
        &t.call(Method::GET, "/v3/projects", Some("a.b.c"), None)
            .await,
        401,
    );
    assert_keystone_error(&t.call(Method::GET, "/v3/projects", None, None).await, 401);
    let r = t.call(Method::POST, "/v3/auth/tokens", None, Some(json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "admin", "domain": {"id": "default"}, "password": "secret"}}}, "scope": {"galaxy": {"id": "x"}}}}))).await;
    assert_keystone_error(&r, 400);
    assert_keystone_error(
        &t.call(Method::GET, "/v3/nowhere", Some(&token), None).await,
        404,
    );
    assert_keystone_error(
        &t.call(Method::PUT, "/v3/projects", Some(&token), None)
            .await,
        405,
    );
    assert_keystone_error(
        &t.call(Method::GET, "/v3/groups", Some(&token), None).await,
        501,
    );
    assert_keystone_error(
        &t.call(Method::GET, "/v3/OS-TRUST/trusts", Some(&token), None)
            .await,
        501,
    );
    assert_keystone_error(
        &t.call(Method::GET, "/v3/projects/missing", Some(&token), None)
            .await,
        404,
    );
}

#[tokio::test]
async fn project_and_user_lifecycle_with_policy() {
    let t = TestApp::new().await;
    let admin = t.admin_token().await;
    let r = t
        .call(
            Method::POST,
            "/v3/projects",
            Some(&admin),
            Some(json!({"project": {"name": "demo", "domain_id": "default"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let project = r.body["project"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        r.body["project"]["links"]["self"],
        format!("http://keystone.test:5000/v3/projects/{project}")
    );
    let dup = t
        .call(
            Method::POST,
            "/v3/projects",
            Some(&admin),
            Some(json!({"project": {"name": "demo"}})),
        )
        .await;
    assert_keystone_error(&dup, 409);

    let r = t
        .call(
            Method::POST,
            "/v3/users",
            Some(&admin),
            Some(json!({"user": {"name": "alice", "password": "pw1", "email": "a@example.org"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["user"]["email"], "a@example.org");
    assert!(r.body["user"].get("password").is_none());
    let alice = r.body["user"]["id"].as_str().unwrap().to_owned();

    let scope = json!({"project": {"id": project}});
    assert_keystone_error(&t.login("alice", "pw1", scope.clone()).await, 401);
    let member = t.state.global().role_by_name("member").unwrap().id.clone();
    let r = t
        .call(
            Method::PUT,
            &format!("/v3/projects/{project}/users/{alice}/roles/{member}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = t.login("alice", "pw1", scope.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let alice_token = r.headers["x-subject-token"].to_str().unwrap().to_owned();

    // A member reads itself and its project, but manages nothing.
    assert_eq!(
        t.call(
            Method::GET,
            &format!("/v3/users/{alice}"),
            Some(&alice_token),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        t.call(
            Method::GET,
            &format!("/v3/projects/{project}"),
            Some(&alice_token),
            None
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_keystone_error(
        &t.call(Method::GET, "/v3/users", Some(&alice_token), None)
            .await,
        403,
    );
    assert_keystone_error(
        &t.call(
            Method::POST,
            "/v3/projects",
            Some(&alice_token),
            Some(json!({"project": {"name": "x"}})),
        )
        .await,
        403,
    );
    let r = t
        .call(
            Method::GET,
            &format!("/v3/users/{alice}/projects"),
            Some(&alice_token),
            None,
        )
        .await;
    assert_eq!(r.body["projects"][0]["id"], project);

    // Effective assignments with names expand member ⇒ reader.
    let r = t
        .call(
            Method::GET,
            &format!("/v3/role_assignments?user.id={alice}&effective&include_names=True"),
            Some(&admin),
            None,
        )
        .await;
    let names: Vec<&str> = r.body["role_assignments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["role"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{}", r.body);
    assert!(names.contains(&"member") && names.contains(&"reader"));
    assert_eq!(r.body["role_assignments"][0]["user"]["name"], "alice");
    assert_eq!(
        r.body["role_assignments"][0]["scope"]["project"]["name"],
        "demo"
    );

    // Changing one's password revokes one's tokens.
    let r = t
        .call(
            Method::POST,
            &format!("/v3/users/{alice}/password"),
            Some(&alice_token),
            Some(json!({"user": {"password": "pw2", "original_password": "pw1"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert_keystone_error(
        &t.call(
            Method::GET,
            &format!("/v3/users/{alice}"),
            Some(&alice_token),
            None,
        )
        .await,
        401,
    );
    assert_keystone_error(&t.login("alice", "pw1", scope.clone()).await, 401);
    let r = t.login("alice", "pw2", scope.clone()).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let alice_token = r.headers["x-subject-token"].to_str().unwrap().to_owned();

    // Disabling the project revokes its tokens; deleting the user too.
    let r = t
        .call(
            Method::PATCH,
            &format!("/v3/projects/{project}"),
            Some(&admin),
            Some(json!({"project": {"enabled": false}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_keystone_error(
        &t.call(
            Method::GET,
            &format!("/v3/users/{alice}"),
            Some(&alice_token),
            None,
        )
        .await,
        401,
    );
    assert_eq!(
        t.call(
            Method::DELETE,
            &format!("/v3/users/{alice}"),
            Some(&admin),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_keystone_error(
        &t.call(
            Method::GET,
            &format!("/v3/users/{alice}"),
            Some(&admin),
            None,
        )
        .await,
        404,
    );
    assert_eq!(
        t.call(
            Method::DELETE,
            &format!("/v3/projects/{project}"),
            Some(&admin),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn rescope_with_token_method_and_system_scope() {
    let t = TestApp::new().await;
    let r = t.login("admin", "secret", json!("unscoped")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert!(r.body["token"].get("roles").is_none());
    let unscoped = r.headers["x-subject-token"].to_str().unwrap().to_owned();
    let r = t
        .call(Method::GET, "/v3/auth/projects", Some(&unscoped), None)
        .await;
    assert_eq!(r.body["projects"][0]["name"], "admin");
    let r = t
        .call(Method::GET, "/v3/auth/system", Some(&unscoped), None)
        .await;
    assert_eq!(r.body["system"][0]["all"], true);

    let body = json!({"auth": {"identity": {"methods": ["token"], "token": {"id": unscoped}}, "scope": {"system": {"all": true}}}});
    let r = t
        .call(Method::POST, "/v3/auth/tokens", None, Some(body))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["token"]["system"]["all"], true);
    assert_eq!(r.body["token"]["methods"], json!(["token", "password"]));
    assert_eq!(r.body["token"]["audit_ids"].as_array().unwrap().len(), 2);
    let system = r.headers["x-subject-token"].to_str().unwrap().to_owned();
    assert_eq!(
        t.call(Method::GET, "/v3/users", Some(&system), None)
            .await
            .status,
        StatusCode::OK
    );
    let r = t
        .call(Method::GET, "/v3/auth/catalog", Some(&system), None)
        .await;
    assert_eq!(r.body["catalog"][0]["type"], "identity");
    assert_keystone_error(
        &t.call(Method::GET, "/v3/auth/catalog", Some(&unscoped), None)
            .await,
        403,
    );
}

#[tokio::test]
async fn catalog_changes_reach_new_tokens() {
    let t = TestApp::new().await;
    let admin = t.admin_token().await;
    let r = t
        .call(
            Method::POST,
            "/v3/services",
            Some(&admin),
            Some(json!({"service": {"type": "compute", "name": "nova"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let service = r.body["service"]["id"].as_str().unwrap().to_owned();
    let r = t.call(Method::POST, "/v3/endpoints", Some(&admin), Some(json!({"endpoint": {"service_id": service, "interface": "public", "url": "http://nova:8774/v2.1", "region_id": "RegionOne"}}))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["endpoint"]["region"], "RegionOne");
    let r = t
        .login(
            "admin",
            "secret",
            json!({"project": {"name": "admin", "domain": {"id": "default"}}}),
        )
        .await;
    let types: Vec<&str> = r.body["token"]["catalog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["type"].as_str().unwrap())
        .collect();
    assert!(types.contains(&"compute"), "{types:?}");
    let bad = t.call(Method::POST, "/v3/endpoints", Some(&admin), Some(json!({"endpoint": {"service_id": service, "interface": "sideways", "url": "http://x"}}))).await;
    assert_keystone_error(&bad, 400);
    let r = t
        .call(Method::DELETE, "/v3/regions/RegionOne", Some(&admin), None)
        .await;
    assert_keystone_error(&r, 409);
}

#[tokio::test]
async fn bootstrap_is_idempotent() {
    let t = TestApp::new().await;
    let before = t
        .state
        .store
        .list_users(&Default::default())
        .await
        .unwrap()
        .len();
    let b = t.state.config.bootstrap.clone().unwrap();
    crate::bootstrap::run(&t.state, &b).await.unwrap();
    crate::bootstrap::run(&t.state, &b).await.unwrap();
    assert_eq!(
        t.state
            .store
            .list_users(&Default::default())
            .await
            .unwrap()
            .len(),
        before
    );
    // admin, manager, member, reader, service; admin ⇒ manager ⇒ member ⇒
    // reader, as keystone-manage bootstrap leaves them.
    let roles = t.state.store.list_roles().await.unwrap();
    let mut names: Vec<&str> = roles.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["admin", "manager", "member", "reader", "service"]);
    let name = |id: &keyfed_shared::ids::RoleId| {
        roles
            .iter()
            .find(|r| r.id == *id)
            .map(|r| r.name.clone())
            .unwrap()
    };
    let mut rules: Vec<(String, String)> = t
        .state
        .store
        .list_implied_roles()
        .await
        .unwrap()
        .iter()
        .map(|i| (name(&i.prior), name(&i.implied)))
        .collect();
    rules.sort();
    let expected = [
        ("admin", "manager"),
        ("manager", "member"),
        ("member", "reader"),
    ]
    .map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert_eq!(rules, expected);
    assert_eq!(t.state.store.list_endpoints().await.unwrap().len(), 3);
}

#[tokio::test]
async fn expired_tokens_need_allow_expired() {
    let t = TestApp::new().await;
    let admin = t.admin_token().await;
    let mut claims = t.state.validate(&admin, false).await.unwrap();
    let now = keyfed_shared::time::now_micros();
    claims.issued_at = now - 7_200_000_000;
    claims.expires_at = now - 3_600_000_000;
    let expired = t.state.sign(&claims).unwrap();
    let get = |query: &'static str| {
        Request::get(format!("/v3/auth/tokens{query}"))
            .header("x-auth-token", admin.clone())
            .header("x-subject-token", expired.clone())
            .body(Body::empty())
            .unwrap()
    };
    assert_keystone_error(&t.raw(get("")).await, 404);
    let r = t.raw(get("?allow_expired=1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["token"]["user"]["name"], "admin");
    assert_keystone_error(
        &t.call(Method::GET, "/v3/projects", Some(&expired), None)
            .await,
        401,
    );
}

#[tokio::test]
async fn domain_and_system_grants() {
    let t = TestApp::new().await;
    let admin = t.admin_token().await;
    let r = t
        .call(
            Method::POST,
            "/v3/users",
            Some(&admin),
            Some(json!({"user": {"name": "ops", "password": "pw"}})),
        )
        .await;
    let ops = r.body["user"]["id"].as_str().unwrap().to_owned();
    let reader = t.state.global().role_by_name("reader").unwrap().id.clone();
    let system_path = format!("/v3/system/users/{ops}/roles/{reader}");
    assert_eq!(
        t.call(Method::HEAD, &system_path, Some(&admin), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        t.call(Method::PUT, &system_path, Some(&admin), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        t.call(Method::HEAD, &system_path, Some(&admin), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let domain_path = format!("/v3/domains/default/users/{ops}/roles/{reader}");
    assert_eq!(
        t.call(Method::PUT, &domain_path, Some(&admin), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let r = t
        .call(
            Method::GET,
            &format!("/v3/domains/default/users/{ops}/roles"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.body["roles"][0]["name"], "reader");

    // A system reader reads but cannot write.
    let r = t.login("ops", "pw", json!({"system": {"all": true}})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let ops_token = r.headers["x-subject-token"].to_str().unwrap().to_owned();
    assert_eq!(
        t.call(Method::GET, "/v3/users", Some(&ops_token), None)
            .await
            .status,
        StatusCode::OK
    );
    assert_keystone_error(
        &t.call(
            Method::POST,
            "/v3/users",
            Some(&ops_token),
            Some(json!({"user": {"name": "x"}})),
        )
        .await,
        403,
    );
    let r = t
        .login("ops", "pw", json!({"domain": {"name": "Default"}}))
        .await;
    assert_eq!(r.body["token"]["domain"]["id"], "default");

    // Removing the system role revokes the system token.
    assert_eq!(
        t.call(Method::DELETE, &system_path, Some(&admin), None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_keystone_error(
        &t.call(Method::GET, "/v3/users", Some(&ops_token), None)
            .await,
        401,
    );
    assert_keystone_error(
        &t.call(Method::DELETE, &system_path, Some(&admin), None)
            .await,
        404,
    );
    let r = t
        .call(
            Method::GET,
            &format!("/v3/role_assignments?scope.system=all&user.id={ops}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        r.body["role_assignments"].as_array().unwrap().len(),
        0,
        "{}",
        r.body
    );
}

#[tokio::test]
async fn nul_bytes_and_region_cycles_are_client_errors() {
    let t = TestApp::new().await;
    let admin = t.admin_token().await;
    let r = t
        .call(
            Method::POST,
            "/v3/projects",
            Some(&admin),
            Some(json!({"project": {"name": "a\u{0}b"}})),
        )
        .await;
    assert_keystone_error(&r, 400);
    let r = t.login("ad\u{0}min", "secret", json!("unscoped")).await;
    assert_keystone_error(&r, 400);
    let r = t
        .call(
            Method::POST,
            "/v3/regions",
            Some(&admin),
            Some(json!({"region": {"id": "A"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = t
        .call(
            Method::POST,
            "/v3/regions",
            Some(&admin),
            Some(json!({"region": {"id": "B", "parent_region_id": "A"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = t
        .call(
            Method::PATCH,
            "/v3/regions/A",
            Some(&admin),
            Some(json!({"region": {"parent_region_id": "B"}})),
        )
        .await;
    assert_keystone_error(&r, 400);
    let r = t
        .call(
            Method::POST,
            "/v3/regions",
            Some(&admin),
            Some(json!({"region": {"id": "C", "parent_region_id": "C"}})),
        )
        .await;
    assert_keystone_error(&r, 400);
    let reader = t.state.global().role_by_name("reader").unwrap().id.clone();
    let member = t.state.global().role_by_name("member").unwrap().id.clone();
    let admin_role = t.state.global().role_by_name("admin").unwrap().id.clone();
    // A cycle (member already implies reader) is a conflict…
    let r = t
        .call(
            Method::PUT,
            &format!("/v3/roles/{reader}/implies/{member}"),
            Some(&admin),
            None,
        )
        .await;
    assert_keystone_error(&r, 409);
    // …and no role may imply admin, as Keystone's prohibited_implied_role.
    let r = t
        .call(
            Method::PUT,
            &format!("/v3/roles/{member}/implies/{admin_role}"),
            Some(&admin),
            None,
        )
        .await;
    assert_keystone_error(&r, 403);
}

#[tokio::test]
async fn metrics_count_requests_by_route_and_validations() {
    let t = TestApp::new().await;
    let admin = t.admin_token().await;
    t.call(Method::GET, "/v3/projects/nope", Some(&admin), None)
        .await;
    t.call(Method::GET, "/v3/projects", Some("garbage"), None)
        .await;
    // Not on the public listener: a Keystone 404 there.
    let r = t
        .raw(Request::get("/metrics").body(Body::empty()).unwrap())
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let resp = crate::api::admin_router(t.state.clone())
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(
        text.contains(r#"route="/v3/projects/{id}",method="GET",status="404"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"route="/v3/auth/tokens",method="POST",status="201"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"keyfed_shard_token_validations_total{outcome="malformed"} 1"#),
        "{text}"
    );
}
