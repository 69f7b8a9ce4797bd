//! The policy's regression suite: Keystone's default policy (secure RBAC,
//! scope enforcement on), persona by persona and operation by operation,
//! through a gateway over two shard processes. Each row is one request and
//! the status Keystone's policy files (`keystone/common/policies/*.py`)
//! give each persona; then the security review's escalations, by name.
//!
//! Personas, in column order: system admin and reader; admin, manager,
//! member and reader of domain `d2` (domain-scoped); admin, manager,
//! member and reader of project `p2` in `d2` (project-scoped); a service
//! (role `service` on `p2`); a user of `d2` with no role (unscoped).
//!
//! Needs `KEYFED_TEST_PG`, `KEYFED_PYVENV`, a nats-server and the `keyfed`
//! binary: run through `scripts/test`.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Instant;

use keyfed_tests::cluster::Cluster;
use keyfed_tests::Gateways;
use reqwest::Method;
use serde_json::{json, Value};

const PASSWORD: &str = "policy-secret-1";

/// (name, role, scope) per column.
const PERSONAS: [(&str, &str, Scope); 12] = [
    ("sa", "admin", Scope::System),
    ("sr", "reader", Scope::System),
    ("da", "admin", Scope::Domain),
    ("dm", "manager", Scope::Domain),
    ("dme", "member", Scope::Domain),
    ("dr", "reader", Scope::Domain),
    ("pa", "admin", Scope::Project),
    ("pm", "manager", Scope::Project),
    ("pme", "member", Scope::Project),
    ("pr", "reader", Scope::Project),
    ("svc", "service", Scope::Project),
    ("none", "", Scope::Unscoped),
];

#[derive(Clone, Copy)]
enum Scope {
    System,
    Domain,
    Project,
    Unscoped,
}

/// The statuses per persona, in [`PERSONAS`] order.
type Expect = [u16; 12];

/// `ok` for the personas named in `who`, `no` (403) for the others.
fn only(who: &[&str], ok: u16) -> Expect {
    PERSONAS.map(|(name, _, _)| if who.contains(&name) { ok } else { 403 })
}

const ADMINS: &[&str] = &["sa", "pa"];
const ADMINS_AND_SYSTEM_READER: &[&str] = &["sa", "sr", "pa"];
const ANY_ADMIN: &[&str] = &["sa", "da", "pa"];
const ANY_ADMIN_AND_SYSTEM_READER: &[&str] = &["sa", "sr", "da", "pa"];
const DOMAIN_READERS: &[&str] = &["sa", "sr", "da", "dm", "dme", "dr", "pa"];
const DOMAIN_MANAGERS: &[&str] = &["sa", "da", "dm", "pa"];
const EVERYONE_SCOPED: &[&str] = &[
    "sa", "sr", "da", "dm", "dme", "dr", "pa", "pm", "pme", "pr", "svc",
];
const EVERYONE: &[&str] = &[
    "sa", "sr", "da", "dm", "dme", "dr", "pa", "pm", "pme", "pr", "svc", "none",
];

/// Who validates another user's token: admins, system readers, services.
const VALIDATORS: &[&str] = &["sa", "sr", "da", "pa", "svc"];

/// One request: method, path and body templates, and the expected statuses.
/// `{n}` is the persona's name (for unique names), `{self}` its user id;
/// the other placeholders are the fixtures of [`Fixtures::fill`].
struct Row {
    method: Method,
    path: &'static str,
    body: Option<&'static str>,
    expect: Expect,
}

fn row(method: Method, path: &'static str, body: Option<&'static str>, expect: Expect) -> Row {
    Row {
        method,
        path,
        body,
        expect,
    }
}

/// Every resource of the shard's API; grants before the checks that read
/// them.
#[rustfmt::skip]
fn matrix() -> Vec<Row> {
    use Method as M;
    vec![
        // Domains.
        row(M::GET, "/v3/domains", None, only(DOMAIN_READERS, 200)),
        row(M::GET, "/v3/domains/{d2}", None, only(EVERYONE_SCOPED, 200)),
        row(M::GET, "/v3/domains/default", None, only(ANY_ADMIN_AND_SYSTEM_READER, 200)),
        row(M::POST, "/v3/domains", Some(r#"{"domain": {"name": "dom-{n}"}}"#), only(ADMINS, 201)),
        row(M::PATCH, "/v3/domains/default", Some(r#"{"domain": {"description": "by {n}"}}"#), only(ADMINS, 200)),
        row(M::DELETE, "/v3/domains/{missing}", None, only(ADMINS, 404)),
        // Projects.
        row(M::GET, "/v3/projects", None, only(DOMAIN_READERS, 200)),
        row(M::GET, "/v3/projects/{p2}", None, only(EVERYONE_SCOPED, 200)),
        row(M::GET, "/v3/projects/{admin_project}", None, only(ANY_ADMIN_AND_SYSTEM_READER, 200)),
        row(M::POST, "/v3/projects", Some(r#"{"project": {"name": "p-{n}", "domain_id": "{d2}"}}"#), only(DOMAIN_MANAGERS, 201)),
        row(M::POST, "/v3/projects", Some(r#"{"project": {"name": "p-{n}", "domain_id": "default"}}"#), only(ANY_ADMIN, 201)),
        row(M::PATCH, "/v3/projects/{p2}", Some(r#"{"project": {"description": "by {n}"}}"#), only(DOMAIN_MANAGERS, 200)),
        row(M::DELETE, "/v3/projects/{missing}", None, only(ANY_ADMIN, 404)),
        // Users.
        row(M::GET, "/v3/users", None, only(DOMAIN_READERS, 200)),
        row(M::GET, "/v3/users/{victim}", None, only(DOMAIN_READERS, 200)),
        row(M::GET, "/v3/users/{victim_default}", None, only(ANY_ADMIN_AND_SYSTEM_READER, 200)),
        row(M::GET, "/v3/users/{self}", None, only(EVERYONE, 200)),
        row(M::GET, "/v3/users/{self}/projects", None, only(EVERYONE, 200)),
        row(M::GET, "/v3/users/{victim}/projects", None, only(DOMAIN_READERS, 200)),
        row(M::POST, "/v3/users", Some(r#"{"user": {"name": "u-{n}", "domain_id": "{d2}"}}"#), only(DOMAIN_MANAGERS, 201)),
        row(M::POST, "/v3/users", Some(r#"{"user": {"name": "u-{n}", "domain_id": "default"}}"#), only(ANY_ADMIN, 201)),
        row(M::PATCH, "/v3/users/{victim}", Some(r#"{"user": {"description": "by {n}"}}"#), only(DOMAIN_MANAGERS, 200)),
        row(M::PATCH, "/v3/users/{victim_default}", Some(r#"{"user": {"description": "by {n}"}}"#), only(ANY_ADMIN, 200)),
        row(M::DELETE, "/v3/users/{missing}", None, only(ANY_ADMIN, 404)),
        // Roles and implied roles.
        row(M::GET, "/v3/roles", None, only(&["sa", "sr", "da", "dm", "pa"], 200)),
        row(M::GET, "/v3/roles/{member}", None, only(&["sa", "sr", "da", "dm", "pa", "pm"], 200)),
        row(M::GET, "/v3/roles/{admin}", None, only(ANY_ADMIN_AND_SYSTEM_READER, 200)),
        row(M::POST, "/v3/roles", Some(r#"{"role": {"name": "role-{n}"}}"#), only(ADMINS, 201)),
        row(M::PATCH, "/v3/roles/{missing}", Some(r#"{"role": {"description": "x"}}"#), only(ADMINS, 404)),
        row(M::GET, "/v3/role_inferences", None, only(ADMINS_AND_SYSTEM_READER, 200)),
        row(M::GET, "/v3/roles/{admin}/implies", None, only(ADMINS_AND_SYSTEM_READER, 200)),
        row(M::GET, "/v3/roles/{admin}/implies/{manager}", None, only(ADMINS_AND_SYSTEM_READER, 200)),
        row(M::PUT, "/v3/roles/{admin}/implies/{manager}", None, only(ADMINS, 201)),
        // Grants on a project of d2, on d2, and on the system.
        row(M::PUT, "/v3/projects/{p2}/users/{victim}/roles/{member}", None, only(DOMAIN_MANAGERS, 204)),
        row(M::PUT, "/v3/projects/{p2}/users/{victim}/roles/{admin}", None, only(ANY_ADMIN, 204)),
        row(M::PUT, "/v3/projects/{p2}/users/{victim_default}/roles/{member}", None, only(ANY_ADMIN, 204)),
        row(M::GET, "/v3/projects/{p2}/users/{victim}/roles/{member}", None, only(DOMAIN_READERS, 204)),
        row(M::GET, "/v3/projects/{p2}/users/{victim}/roles", None, only(DOMAIN_READERS, 200)),
        row(M::DELETE, "/v3/projects/{p2}/users/{victim}/roles/{reader}", None, only(DOMAIN_MANAGERS, 404)),
        row(M::PUT, "/v3/domains/{d2}/users/{victim}/roles/{reader}", None, only(DOMAIN_MANAGERS, 204)),
        row(M::GET, "/v3/domains/{d2}/users/{victim}/roles", None, only(DOMAIN_READERS, 200)),
        row(M::GET, "/v3/system/users/{victim}/roles", None, only(ADMINS_AND_SYSTEM_READER, 200)),
        row(M::PUT, "/v3/system/users/{victim}/roles/{reader}", None, only(ADMINS, 204)),
        row(M::GET, "/v3/system/users/{victim}/roles/{reader}", None, only(ADMINS_AND_SYSTEM_READER, 204)),
        row(M::GET, "/v3/role_assignments", None, only(DOMAIN_READERS, 200)),
        // Regions, services, endpoints.
        row(M::GET, "/v3/regions", None, only(EVERYONE, 200)),
        row(M::POST, "/v3/regions", Some(r#"{"region": {"id": "region-{n}"}}"#), only(ADMINS, 201)),
        row(M::GET, "/v3/services", None, only(ADMINS_AND_SYSTEM_READER, 200)),
        row(M::GET, "/v3/services/{identity}", None, only(ADMINS_AND_SYSTEM_READER, 200)),
        row(M::POST, "/v3/services", Some(r#"{"service": {"type": "svc-{n}"}}"#), only(ADMINS, 201)),
        row(M::GET, "/v3/endpoints", None, only(ADMINS_AND_SYSTEM_READER, 200)),
        row(M::POST, "/v3/endpoints", Some( r#"{"endpoint": {"service_id": "{identity}", "interface": "public", "url": "https://evil.example/{n}"}}"#),
            only(ADMINS, 201),
        ),
    ]
}

/// What the rows refer to.
struct Fixtures {
    values: HashMap<&'static str, String>,
}

impl Fixtures {
    fn fill(&self, template: &str, persona: &str, me: &str) -> String {
        let mut out = template.replace("{n}", persona).replace("{self}", me);
        for (k, v) in &self.values {
            out = out.replace(&format!("{{{k}}}"), v);
        }
        out
    }
}

/// A persona's user and token.
struct Persona {
    name: &'static str,
    user_id: String,
    token: String,
}

async fn call(
    f: &Cluster,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    f.call(0, method, path, token, body).await.unwrap()
}

/// A new unscoped token of user `id`.
async fn fresh_token(f: &Cluster, id: &str) -> String {
    token(f, id, None).await.0
}

async fn created(f: &Cluster, token: &str, path: &str, body: Value, key: &str) -> String {
    let (status, body) = call(f, Method::POST, path, token, Some(&body)).await;
    assert_eq!(status, 201, "POST {path}: {body}");
    body[key]["id"].as_str().unwrap().to_owned()
}

async fn put(f: &Cluster, token: &str, path: &str) {
    let (status, body) = call(f, Method::PUT, path, token, None).await;
    assert_eq!(status, 204, "PUT {path}: {body}");
}

async fn role_id(f: &Cluster, token: &str, name: &str) -> String {
    let (status, body) = call(
        f,
        Method::GET,
        &format!("/v3/roles?name={name}"),
        token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["roles"][0]["id"].as_str().unwrap().to_owned()
}

/// A password token for user `id` with `scope` (JSON, or `None` unscoped).
async fn token(f: &Cluster, id: &str, scope: Option<Value>) -> (String, Value) {
    let mut auth = json!({"identity": {"methods": ["password"], "password": {"user": {
        "id": id, "password": PASSWORD}}}});
    if let Some(s) = scope {
        auth["scope"] = s;
    }
    let (status, token, body) = f.auth(0, &json!({ "auth": auth })).await.unwrap();
    assert_eq!(status, 201, "token for {id}: {body}");
    (token.unwrap(), body)
}

struct World {
    f: Cluster,
    admin: String,
    fixtures: Fixtures,
    personas: Vec<Persona>,
}

async fn world() -> World {
    let f = Cluster::builder()
        .shards(2)
        .gateways(1)
        .start()
        .await
        .unwrap();
    let admin = f.admin_token(0).await.unwrap();
    let d2 = created(
        &f,
        &admin,
        "/v3/domains",
        json!({"domain": {"name": "d2"}}),
        "domain",
    )
    .await;
    let p2 = created(
        &f,
        &admin,
        "/v3/projects",
        json!({"project": {"name": "p2", "domain_id": d2}}),
        "project",
    )
    .await;
    let user = |name: &str, domain: &str| json!({"user": {"name": name, "domain_id": domain, "password": PASSWORD}});
    let victim = created(&f, &admin, "/v3/users", user("victim", &d2), "user").await;
    let victim_default = created(&f, &admin, "/v3/users", user("victim", "default"), "user").await;
    let (_, projects) = call(&f, Method::GET, "/v3/projects?name=admin", &admin, None).await;
    let admin_project = projects["projects"][0]["id"].as_str().unwrap().to_owned();
    let (_, services) = call(&f, Method::GET, "/v3/services?type=identity", &admin, None).await;
    let identity = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "identity")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut roles = HashMap::new();
    for name in ["admin", "manager", "member", "reader", "service"] {
        roles.insert(name, role_id(&f, &admin, name).await);
    }

    let mut personas = Vec::new();
    for (name, role, scope) in PERSONAS {
        let id = created(&f, &admin, "/v3/users", user(name, &d2), "user").await;
        let (on, scope) = match scope {
            Scope::System => ("system".to_owned(), json!({"system": {"all": true}})),
            Scope::Domain => (format!("domains/{d2}"), json!({"domain": {"id": d2}})),
            Scope::Project => (format!("projects/{p2}"), json!({"project": {"id": p2}})),
            Scope::Unscoped => (String::new(), Value::Null),
        };
        if let Some(role) = roles.get(role) {
            put(&f, &admin, &format!("/v3/{on}/users/{id}/roles/{role}")).await;
        }
        let scope = (!scope.is_null()).then_some(scope);
        let (token, _) = token(&f, &id, scope).await;
        personas.push(Persona {
            name,
            user_id: id,
            token,
        });
    }
    let mut values: HashMap<&'static str, String> = HashMap::new();
    values.insert("d2", d2);
    values.insert("p2", p2);
    values.insert("victim", victim);
    values.insert("victim_default", victim_default);
    values.insert("admin_project", admin_project);
    values.insert("identity", identity);
    values.insert("missing", "0123456789abcdef0123456789abcdef".to_owned());
    for (name, id) in roles {
        values.insert(name, id);
    }
    World {
        f,
        admin,
        fixtures: Fixtures { values },
        personas,
    }
}

/// One federation, tokens issued once per persona: the matrix, then the
/// review's escalations (which change grants, so they come last).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_default_policy() {
    let w = world().await;
    every_persona_gets_keystones_answer_for_every_operation(&w).await;
    domain_scoped_lists_are_confined_to_the_domain(&w).await;
    a_domain_admin_does_not_become_system_admin(&w).await;
    a_domain_specific_role_named_admin_grants_nothing(&w).await;
}

async fn every_persona_gets_keystones_answer_for_every_operation(w: &World) {
    let started = Instant::now();
    let mut wrong = Vec::new();
    let mut requests = 0;
    for r in matrix() {
        for (p, expected) in w.personas.iter().zip(r.expect) {
            let path = w.fixtures.fill(r.path, p.name, &p.user_id);
            let body = r.body.map(|b| {
                serde_json::from_str::<Value>(&w.fixtures.fill(b, p.name, &p.user_id)).unwrap()
            });
            let (status, answer) =
                call(&w.f, r.method.clone(), &path, &p.token, body.as_ref()).await;
            requests += 1;
            if status != expected {
                wrong.push(format!(
                    "{} {} {path} as {}: {status}, Keystone {expected} ({answer})",
                    r.method, r.path, p.name
                ));
            }
        }
    }
    // Tokens: validating (GET) one's own and another's (the admin's),
    // checking (HEAD) another's, revoking another's (a fresh one of the
    // victim's each time).
    let victim = &w.fixtures.values["victim"];
    for (column, p) in w.personas.iter().enumerate() {
        let others = fresh_token(&w.f, victim).await;
        let cells = [
            ("GET own", Method::GET, &p.token, only(EVERYONE, 200)),
            (
                "GET another's",
                Method::GET,
                &w.admin,
                only(VALIDATORS, 200),
            ),
            (
                "HEAD another's",
                Method::HEAD,
                &w.admin,
                only(ANY_ADMIN_AND_SYSTEM_READER, 200),
            ),
            (
                "DELETE another's",
                Method::DELETE,
                &others,
                only(ANY_ADMIN, 204),
            ),
        ];
        for (what, method, subject, expect) in cells {
            let status =
                w.f.token_request(0, method, &p.token, subject)
                    .await
                    .unwrap();
            let expected = expect[column];
            requests += 1;
            if status != expected {
                wrong.push(format!(
                    "{what} token as {}: {status}, Keystone {expected}",
                    p.name
                ));
            }
        }
    }
    eprintln!("{requests} requests in {:?}", started.elapsed());
    assert!(
        wrong.is_empty(),
        "{} cells differ from Keystone:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

fn persona<'a>(w: &'a World, name: &str) -> &'a Persona {
    w.personas.iter().find(|p| p.name == name).unwrap()
}

/// A domain reader lists its domain's projects, users, domain and role
/// assignments, and nothing of any other domain.
async fn domain_scoped_lists_are_confined_to_the_domain(w: &World) {
    let dr = persona(w, "dr");
    let d2 = &w.fixtures.values["d2"];
    let list = |path: &'static str, key: &'static str| async move {
        let (status, body) = call(&w.f, Method::GET, path, &dr.token, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        body[key].as_array().unwrap().clone()
    };
    let projects = list("/v3/projects", "projects").await;
    assert!(
        projects.iter().all(|p| p["domain_id"] == *d2),
        "{projects:?}"
    );
    assert!(projects.iter().any(|p| p["id"] == w.fixtures.values["p2"]));
    let users = list("/v3/users", "users").await;
    assert!(users.iter().all(|u| u["domain_id"] == *d2), "{users:?}");
    assert!(users.len() > PERSONAS.len(), "{users:?}");
    let domains = list("/v3/domains", "domains").await;
    assert_eq!(domains.len(), 1, "{domains:?}");
    assert_eq!(domains[0]["id"], *d2);
    let in_d2: Vec<&Value> = projects.iter().map(|p| &p["id"]).collect();
    let assignments = list("/v3/role_assignments", "role_assignments").await;
    assert!(!assignments.is_empty());
    for a in &assignments {
        let scope = &a["scope"];
        assert!(
            scope["domain"]["id"] == *d2 || in_d2.contains(&&scope["project"]["id"]),
            "{a}"
        );
    }
}

/// The security review's table: a domain admin of d2 against Keystone.
async fn a_domain_admin_does_not_become_system_admin(w: &World) {
    let da = persona(w, "da");
    let v = |k: &str| w.fixtures.values[k].clone();
    let me = &da.user_id;
    let cases: [(Method, String, Option<Value>, u16); 8] = [
        (
            Method::POST,
            "/v3/domains".into(),
            Some(json!({"domain": {"name": "evil"}})),
            403,
        ),
        (
            Method::PATCH,
            "/v3/domains/default".into(),
            Some(json!({"domain": {"description": "evil"}})),
            403,
        ),
        (
            Method::POST,
            "/v3/services".into(),
            Some(json!({"service": {"type": "evil"}})),
            403,
        ),
        (
            Method::POST,
            "/v3/endpoints".into(),
            Some(
                json!({"endpoint": {"service_id": v("identity"), "interface": "public", "url": "https://evil.example"}}),
            ),
            403,
        ),
        (
            Method::POST,
            "/v3/roles".into(),
            Some(json!({"role": {"name": "evil"}})),
            403,
        ),
        (
            Method::PUT,
            format!("/v3/system/users/{me}/roles/{}", v("admin")),
            None,
            403,
        ),
        // Keystone's admin role is global on the scopes these accept
        // (`rule:admin_required`, scope types system, domain, project):
        // its policy files answer 204 and 200 here, and so does keyfed.
        (
            Method::PUT,
            format!(
                "/v3/projects/{}/users/{me}/roles/{}",
                v("admin_project"),
                v("admin")
            ),
            None,
            204,
        ),
        (Method::GET, "/v3/users?domain_id=default".into(), None, 200),
    ];
    for (method, path, body, expected) in cases {
        let (status, answer) = call(&w.f, method.clone(), &path, &da.token, body.as_ref()).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
    }
    // The domain-scoped list is confined to d2, whatever the filter.
    let (_, users) = call(
        &w.f,
        Method::GET,
        "/v3/users?domain_id=default",
        &da.token,
        None,
    )
    .await;
    let users = users["users"].as_array().unwrap();
    assert!(users.iter().all(|u| u["domain_id"] == v("d2")), "{users:?}");
    // The system grant did not happen.
    let (status, _) = call(
        &w.f,
        Method::GET,
        &format!("/v3/system/users/{me}/roles/{}", v("admin")),
        &w.admin,
        None,
    )
    .await;
    assert_eq!(status, 404);
}

/// A d2-specific role named `admin` is no admin anywhere.
async fn a_domain_specific_role_named_admin_grants_nothing(w: &World) {
    let v = |k: &str| w.fixtures.values[k].clone();
    let fake = created(
        &w.f,
        &w.admin,
        "/v3/roles",
        json!({"role": {"name": "admin", "domain_id": v("d2")}}),
        "role",
    )
    .await;
    // It implies the global `member`, which tokens then carry.
    let (status, body) = call(
        &w.f,
        Method::PUT,
        &format!("/v3/roles/{fake}/implies/{}", v("member")),
        &w.admin,
        None,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let holder = persona(w, "none");
    // Granted outside its domain: refused as Keystone refuses it.
    let (status, body) = call(
        &w.f,
        Method::PUT,
        &format!(
            "/v3/projects/{}/users/{}/roles/{fake}",
            v("admin_project"),
            holder.user_id
        ),
        &w.admin,
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], 403);
    let (status, _) = call(
        &w.f,
        Method::PUT,
        &format!("/v3/system/users/{}/roles/{fake}", holder.user_id),
        &w.admin,
        None,
    )
    .await;
    assert_eq!(status, 400);
    // Within its domain it is granted, and the token shows only `member`.
    put(
        &w.f,
        &w.admin,
        &format!(
            "/v3/projects/{}/users/{}/roles/{fake}",
            v("p2"),
            holder.user_id
        ),
    )
    .await;
    let (token, body) = token(
        &w.f,
        &holder.user_id,
        Some(json!({"project": {"id": v("p2")}})),
    )
    .await;
    let mut names: Vec<&str> = body["token"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["member", "reader"]);
    let (_, validated) = w.f.validate_body(0, &w.admin, &token).await.unwrap();
    assert_eq!(validated["token"]["roles"], body["token"]["roles"]);
    // And it makes no admin.
    let (status, _) = call(
        &w.f,
        Method::POST,
        "/v3/users",
        &token,
        Some(&json!({"user": {"name": "made-by-fake-admin", "domain_id": v("d2")}})),
    )
    .await;
    assert_eq!(status, 403);
}
