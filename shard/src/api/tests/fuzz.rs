//! Fuzz tests of every body the shard accepts: generated bodies (entity
//! bodies with wrong types, missing and extra fields, nulls, huge and
//! unicode strings, deep nesting, bytes that are not JSON, wrong content
//! types) sent through the router to every route that takes one, with
//! hostile path parameters and credentials. No answer is a 500, and every
//! error is Keystone's `{"error": {"code", "title", "message"}}` with
//! `code` equal to the status.
//!
//! [`BODY_ROUTES`] lists the routes; `every_body_route_is_fuzzed` fails
//! when a module under `src/api/` declares a POST, PUT, PATCH or `any`
//! route the list lacks (or the list names one no longer declared).

use super::super::unsupported::PREFIXES as BODY_ROUTES_UNSUPPORTED;
use super::TestApp;
use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use keyfed_shared::fuzzing::{
    auth_request, body_bytes, config, entity_body, hostile_string, json_value, Mutation,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::ServiceExt;

/// What a route's body looks like, for the generator.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// `POST /v3/auth/tokens`.
    Auth,
    /// `{"<member>": {fields...}}`.
    Entity(&'static str, &'static [&'static str]),
    /// A flat object of these fields (internal requests).
    Flat(&'static [&'static str]),
    /// Keystone sends none; anything goes.
    Any,
}

const PROJECT: &[&str] = super::super::projects::KNOWN;
const USER: &[&str] = super::super::users::KNOWN;
const PASSWORD: &[&str] = &["password", "original_password"];
const DOMAIN: &[&str] = &["name", "description", "enabled", "options", "tags", "id"];
const ROLE: &[&str] = &["name", "domain_id", "description", "options", "id"];
const REGION: &[&str] = &["id", "description", "parent_region_id"];
const SERVICE: &[&str] = &["type", "name", "description", "enabled", "id"];
const ENDPOINT: &[&str] = &[
    "interface",
    "service_id",
    "region_id",
    "region",
    "url",
    "enabled",
    "id",
];
const JOIN: &[&str] = &[
    "shard_id",
    "csr",
    "advertise_url",
    "weight",
    "join_token",
    "tls_csr",
];
const RENEW: &[&str] = &["shard_id", "kid", "csr", "timestamp", "nonce", "signature"];

/// Every route that takes a body (method, path template, body shape),
/// but the unsupported APIs' (any method, 501), which are fuzzed from
/// their own list.
const BODY_ROUTES: &[(&str, &str, Shape)] = &[
    ("POST", "/v3/auth/tokens", Shape::Auth),
    ("POST", "/v3/projects", Shape::Entity("project", PROJECT)),
    (
        "PATCH",
        "/v3/projects/{id}",
        Shape::Entity("project", PROJECT),
    ),
    ("POST", "/v3/users", Shape::Entity("user", USER)),
    ("PATCH", "/v3/users/{id}", Shape::Entity("user", USER)),
    (
        "POST",
        "/v3/users/{id}/password",
        Shape::Entity("user", PASSWORD),
    ),
    ("POST", "/v3/domains", Shape::Entity("domain", DOMAIN)),
    ("PATCH", "/v3/domains/{id}", Shape::Entity("domain", DOMAIN)),
    ("POST", "/v3/roles", Shape::Entity("role", ROLE)),
    ("PATCH", "/v3/roles/{id}", Shape::Entity("role", ROLE)),
    ("PUT", "/v3/roles/{id}/implies/{implied}", Shape::Any),
    (
        "PUT",
        "/v3/projects/{target}/users/{user}/roles/{role}",
        Shape::Any,
    ),
    (
        "PUT",
        "/v3/domains/{target}/users/{user}/roles/{role}",
        Shape::Any,
    ),
    ("PUT", "/v3/system/users/{user}/roles/{role}", Shape::Any),
    ("POST", "/v3/regions", Shape::Entity("region", REGION)),
    ("PATCH", "/v3/regions/{id}", Shape::Entity("region", REGION)),
    ("POST", "/v3/services", Shape::Entity("service", SERVICE)),
    (
        "PATCH",
        "/v3/services/{id}",
        Shape::Entity("service", SERVICE),
    ),
    ("POST", "/v3/endpoints", Shape::Entity("endpoint", ENDPOINT)),
    (
        "PATCH",
        "/v3/endpoints/{id}",
        Shape::Entity("endpoint", ENDPOINT),
    ),
    ("POST", "/internal/v1/join", Shape::Flat(JOIN)),
    ("POST", "/internal/v1/renew", Shape::Flat(RENEW)),
    ("POST", "/internal/v1/close", Shape::Flat(&["seconds"])),
    (
        "POST",
        "/internal/v1/names/reclaim",
        Shape::Flat(&["key", "id"]),
    ),
];

const WORDS: &[&str] = &[
    "admin",
    "member",
    "reader",
    "default",
    "Default",
    "public",
    "internal",
    "identity",
    "RegionOne",
    "http://keystone.test:5000/v3",
    "fuzz-user",
    "fuzz-password",
];

fn shape_body(shape: Shape) -> BoxedStrategy<Value> {
    match shape {
        Shape::Auth => auth_request(),
        Shape::Entity(member, fields) => entity_body(member, fields, WORDS),
        Shape::Flat(fields) => prop_oneof![
            3 => keyfed_shared::fuzzing::shaped_object(fields, WORDS).prop_map(Value::Object),
            1 => json_value(fields, WORDS),
        ]
        .boxed(),
        Shape::Any => json_value(&["name", "id"], WORDS),
    }
}

/// The entities path parameters name: created once, then hit by every
/// case (so handlers get past their look-ups).
struct Ids {
    token: String,
    by_param: Vec<(&'static str, Vec<String>)>,
    /// On a federated issuer: valid join tokens, so join requests get
    /// past the token check to their other fields.
    join_tokens: Vec<String>,
}

async fn created(t: &TestApp, token: &str, path: &str, body: Value) -> String {
    let r = t.call(Method::POST, path, Some(token), Some(body)).await;
    assert!(r.status.is_success(), "{path}: {}", r.body);
    let member = r.body.as_object().and_then(|o| o.values().next()).unwrap();
    member["id"].as_str().unwrap().to_owned()
}

async fn fixture(t: &TestApp) -> Ids {
    let token = t.admin_token().await;
    let tk = token.as_str();
    let mut made = Vec::new();
    for (path, body) in [
        ("/v3/domains", json!({"domain": {"name": "fuzz"}})),
        ("/v3/projects", json!({"project": {"name": "fuzz-project"}})),
        (
            "/v3/users",
            json!({"user": {"name": "fuzz-user", "password": "fuzz-password"}}),
        ),
        ("/v3/roles", json!({"role": {"name": "fuzz-role"}})),
        ("/v3/roles", json!({"role": {"name": "fuzz-implied"}})),
        ("/v3/regions", json!({"region": {"id": "fuzz-region"}})),
        (
            "/v3/services",
            json!({"service": {"type": "fuzz", "name": "fuzz"}}),
        ),
    ] {
        made.push(created(t, tk, path, body).await);
    }
    let [domain, project, user, role, implied, _, service] = made.clone().try_into().unwrap();
    let endpoint =
        json!({"endpoint": {"interface": "public", "service_id": service, "url": "http://fuzz"}});
    made.push(created(t, tk, "/v3/endpoints", endpoint).await);
    let entities = made;
    let by_param = vec![
        ("id", entities),
        ("implied", vec![implied, role.clone()]),
        ("target", vec![project, domain]),
        ("user", vec![user]),
        ("role", vec![role]),
    ];
    let mut join_tokens = Vec::new();
    if let Some(f) = &t.state.federation {
        let now = keyfed_shared::time::now_micros() / 1_000_000;
        for _ in 0..3 {
            let issued = keyfed_federation::lifecycle::credentials::issue(
                f.directory.as_ref(),
                keyfed_pki::join_token::Purpose::Join,
                now,
                3_600,
            );
            join_tokens.push(issued.await.unwrap());
        }
    }
    Ids {
        token,
        by_param,
        join_tokens,
    }
}

/// `body` with, mostly, a valid join token (when there are any).
fn with_join_token(body: BoxedStrategy<Value>, tokens: &[String]) -> BoxedStrategy<Value> {
    if tokens.is_empty() {
        return body;
    }
    (
        body,
        prop::option::weighted(0.75, prop::sample::select(tokens.to_vec())),
    )
        .prop_map(|(mut body, token)| {
            if let (Value::Object(obj), Some(token)) = (&mut body, token) {
                obj.insert("join_token".into(), Value::String(token));
            }
            body
        })
        .boxed()
}

/// A path segment: an entity's id, a hostile string percent-encoded, or
/// raw escapes (bad UTF-8, encoded separators and dots).
fn segment(ids: Vec<String>) -> BoxedStrategy<String> {
    const RAW: &[&str] = &[
        "%FF", "%C0%AF", "%00", "..", ".", "%2e%2e", "a%2Fb", "%", "%zz", "%E2%82",
    ];
    prop_oneof![
        4 => prop::sample::select(ids),
        1 => hostile_string(WORDS).prop_map(|s| encode(&s)),
        1 => prop::sample::select(RAW).prop_map(str::to_owned),
    ]
    .boxed()
}

/// Percent-encodes all but unreserved characters.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `template` with each `{param}` replaced by the next of `segments`.
fn fill(template: &str, segments: &[String]) -> String {
    let mut out = String::new();
    let mut next = segments.iter();
    for part in template.split('/').skip(1) {
        out.push('/');
        if part.starts_with('{') {
            out.push_str(next.next().map_or("x", String::as_str));
        } else {
            out.push_str(part);
        }
    }
    out
}

/// One generated request.
#[derive(Debug)]
struct Case {
    method: Method,
    path: String,
    body: Vec<u8>,
    content_type: Option<&'static str>,
    token: Option<String>,
}

fn cases(ids: &Ids) -> BoxedStrategy<Case> {
    let content_type = prop_oneof![
        8 => Just(Some("application/json")),
        1 => Just(None),
        1 => prop::sample::select(&[
            "text/plain",
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/jsonx",
            "multipart/form-data; boundary=x",
            "",
        ][..]).prop_map(Some),
    ];
    let admin = ids.token.clone();
    let token = prop_oneof![
        8 => Just(Some(admin.clone())),
        1 => Just(None),
        1 => hostile_string(WORDS).prop_map(Some),
        1 => Mutation::any().prop_map(move |m| Some(m.apply_str(&admin))),
    ];
    let params: Vec<String> = ids
        .by_param
        .iter()
        .map(|(name, _)| format!("{{{name}}}"))
        .collect();
    let routes: Vec<BoxedStrategy<(Method, String, Value)>> = BODY_ROUTES
        .iter()
        .map(|&(method, template, shape)| {
            let segments: Vec<BoxedStrategy<String>> = template
                .split('/')
                .filter(|p| p.starts_with('{'))
                .map(|p| {
                    let i = params.iter().position(|q| q == p).unwrap();
                    segment(ids.by_param[i].1.clone())
                })
                .collect();
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let body = match shape {
                Shape::Flat(JOIN) => with_join_token(shape_body(shape), &ids.join_tokens),
                _ => shape_body(shape),
            };
            (segments, body)
                .prop_map(move |(segs, body)| (method.clone(), fill(template, &segs), body))
                .boxed()
        })
        .chain(std::iter::once(
            (
                prop::sample::select(BODY_ROUTES_UNSUPPORTED),
                prop::sample::select(&[Method::POST, Method::PUT, Method::PATCH][..]),
                json_value(&["name", "id"], WORDS),
                segment(vec!["x".into()]),
            )
                .prop_map(|(prefix, method, body, seg)| {
                    (
                        method,
                        format!("{}/{seg}", fill(prefix, std::slice::from_ref(&seg))),
                        body,
                    )
                })
                .boxed(),
        ))
        .collect();
    let route = prop::strategy::Union::new(routes);
    (route, any::<bool>(), content_type, token)
        .prop_flat_map(|((method, path, json), as_is, content_type, token)| {
            let bytes = if as_is {
                Just(json.to_string().into_bytes()).boxed()
            } else {
                body_bytes(Just(json).boxed())
            };
            (Just((method, path, content_type, token)), bytes)
        })
        .prop_map(|((method, path, content_type, token), body)| Case {
            method,
            path,
            body,
            content_type,
            token,
        })
        .boxed()
}

/// Sends `case`; `Err` describes a non-Keystone answer.
async fn send(t: &TestApp, case: &Case) -> Result<(), String> {
    let mut req = Request::builder()
        .method(case.method.clone())
        .uri(&case.path);
    if let Some(ct) = case.content_type {
        req = req.header("content-type", ct);
    }
    if let Some(token) = &case.token {
        if axum::http::HeaderValue::from_str(token).is_ok() {
            req = req.header("x-auth-token", token);
        }
    }
    let Ok(req) = req.body(Body::from(case.body.clone())) else {
        return Ok(()); // not a request a client could send (bad URI)
    };
    let resp = t.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    if status.as_u16() == 500 {
        return Err(format!("500: {}", String::from_utf8_lossy(&bytes)));
    }
    if status.is_success() {
        return Ok(());
    }
    let body: Value = serde_json::from_slice(&bytes).map_err(|_| {
        format!(
            "{status} with a body that is not JSON: {:?}",
            String::from_utf8_lossy(&bytes)
        )
    })?;
    let error = &body["error"];
    let keystone = error["code"] == status.as_u16()
        && error["title"].is_string()
        && error["message"].is_string();
    if keystone {
        Ok(())
    } else {
        Err(format!(
            "{status} with a body that is not Keystone's: {body}"
        ))
    }
}

/// A federated shard on an embedded directory, holding the CA (an
/// issuer): its internal routes parse their bodies instead of answering
/// 404.
async fn issuer() -> TestApp {
    TestApp::with_config(|config, dir| {
        let now = keyfed_shared::time::now_micros() / 1_000_000;
        keyfed_pki::FederationCa::init(&dir.join("ca"), "fuzz", now - 60, 86_400).unwrap();
        let (cert, key) = keyfed_pki::ca::ca_paths(&dir.join("ca"));
        config.trust.ca_cert = Some(cert);
        config.trust.ca_key = Some(key);
        config.federation = Some(crate::config::FederationConfig {
            advertise_url: "http://s1.invalid".into(),
            weight: 1,
            nats: None,
            embedded: Some(keyfed_directory::EmbeddedConfig::new(dir.join("directory"))),
            name_audit_interval_secs: crate::config::DEFAULT_NAME_AUDIT_INTERVAL_SECS,
        });
    })
    .await
}

fn run_cases(app: impl std::future::Future<Output = TestApp>, cases_default: u32) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = rt.block_on(app);
    let ids = rt.block_on(fixture(&t));
    proptest!(config(cases_default), |(case in cases(&ids))| {
        let answer = rt.block_on(send(&t, &case));
        prop_assert!(answer.is_ok(), "{} {}: {}", case.method, case.path, answer.unwrap_err());
    });
}

/// What the fuzz test found, kept as plain cases: path parameters that
/// are not UTF-8 once decoded (axum's rejection was a text/plain 400),
/// and a join body over the limit (a text/plain 413).
#[tokio::test]
async fn fuzz_findings_are_keystone_errors() {
    let t = TestApp::new().await;
    let token = t.admin_token().await;
    let cases = [
        (Method::PUT, "/v3/roles/%FF/implies/x".to_owned(), 404),
        (Method::PATCH, "/v3/projects/%C0%AF".to_owned(), 404),
        (Method::GET, "/v3/users/%E2%82".to_owned(), 404),
        (Method::POST, "/internal/v1/join".to_owned(), 413),
    ];
    for (method, path, status) in cases {
        let case = Case {
            method,
            path,
            body: vec![b' '; keyfed_http::server_config::DEFAULT_MAX_BODY_BYTES + 1],
            content_type: Some("application/json"),
            token: Some(token.clone()),
        };
        let req = Request::builder()
            .method(case.method.clone())
            .uri(&case.path)
            .header("x-auth-token", &token)
            .body(Body::from(case.body.clone()))
            .unwrap();
        assert_eq!(t.raw(req).await.status.as_u16(), status, "{case:?}");
        send(&t, &case).await.unwrap();
    }
}

#[test]
fn fuzz_every_body_route() {
    run_cases(TestApp::new(), 2048);
}

#[test]
fn fuzz_every_body_route_of_a_federated_issuer() {
    run_cases(issuer(), 512);
}

/// The `.route(...)` calls of `source`: (path literal or `None` for a
/// computed path, methods that take a body).
fn declared_routes(source: &str) -> Vec<(Option<String>, Vec<&'static str>)> {
    let mut found = Vec::new();
    for (at, _) in source.match_indices(".route(") {
        let args = &source[at + ".route(".len()..];
        let mut depth = 1;
        let end = args
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map_or(args.len(), |(i, _)| i);
        let args = args[..end].trim_start();
        let path = args
            .strip_prefix('"')
            .and_then(|rest| rest.split_once('"'))
            .map(|(p, _)| p.to_owned());
        let methods = [
            ("post(", "POST"),
            ("put(", "PUT"),
            ("patch(", "PATCH"),
            ("any(", "ANY"),
        ]
        .into_iter()
        .filter(|(call, _)| {
            args.match_indices(call)
                .any(|(i, _)| !args[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'))
        })
        .map(|(_, m)| m)
        .collect();
        found.push((path, methods));
    }
    found
}

#[test]
fn every_body_route_is_fuzzed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    let mut declared = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "rs") || path.ends_with("tests.rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        for (route, methods) in declared_routes(&source) {
            for method in methods {
                match &route {
                    Some(route) => declared.push((method, route.clone())),
                    // Computed paths: the unsupported APIs alone (any
                    // method), fuzzed from their list.
                    None => assert!(
                        path.ends_with("unsupported.rs") && method == "ANY",
                        "{}: a computed route path; list its routes for the fuzz test",
                        path.display()
                    ),
                }
            }
        }
    }
    for (method, route) in &declared {
        assert!(
            BODY_ROUTES
                .iter()
                .any(|(m, r, _)| m == method && r == route),
            "{method} {route} takes a body but is not in BODY_ROUTES (shard/src/api/tests/fuzz.rs)"
        );
    }
    for (method, route, _) in BODY_ROUTES {
        assert!(
            declared.iter().any(|(m, r)| m == method && r == route),
            "{method} {route} is in BODY_ROUTES but no longer declared"
        );
    }
}
