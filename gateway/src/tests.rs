//! The gateway's own answers through the router, without sockets or shards:
//! an embedded directory with no members.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use keyfed_directory::{EmbeddedConfig, EmbeddedDirectory};
use serde_json::Value;
use tower::ServiceExt;

use crate::config::GatewayConfig;
use crate::server::{admin_app, app};
use crate::state::Gateway;

/// The public and the admin listener's applications of one gateway.
async fn gateway_and_admin(dir: &tempfile::TempDir) -> (axum::Router, axum::Router) {
    let directory = Arc::new(EmbeddedDirectory::open(&EmbeddedConfig::new(dir.path())).unwrap());
    let mut config = GatewayConfig::default();
    config.server.public_url = Some("https://id.example.com".into());
    let state = Gateway::start(config, directory).await.unwrap();
    (app(state.clone()), admin_app(state))
}

async fn send(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let r = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = r.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    (
        parts.status,
        parts.headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn answers_alone_with_keystone_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let (app, admin) = gateway_and_admin(&dir).await;
    let (status, headers, body) = send(&app, get("/")).await;
    assert_eq!(status, StatusCode::MULTIPLE_CHOICES);
    assert!(headers.contains_key("x-openstack-request-id"));
    assert_eq!(
        body["versions"]["values"][0]["links"][0]["href"],
        "https://id.example.com/v3/"
    );
    assert_eq!(send(&app, get("/healthz")).await.0, StatusCode::OK);

    let (status, headers, body) = send(&app, get("/v3/auth/tokens")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key("www-authenticate"));
    assert_eq!(body["error"]["title"], "Unauthorized");

    let bad = Request::post("/v3/auth/tokens")
        .body(Body::from("{not json"))
        .unwrap();
    let (status, _, body) = send(&app, bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], 400);

    let (status, _, body) = send(&app, get("/v3/nothing-here")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], 404);

    // No member: requests that need a shard are 503, Keystone-shaped.
    let (status, _, body) = send(&app, get("/v3/domains")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["error"]["code"], 503);

    let big = Request::post("/v3/auth/tokens")
        .header("x-filler", "x".repeat(20_000))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, big).await.0, StatusCode::from_u16(431).unwrap());

    // Metrics on the admin listener only; health on both.
    let (status, _, body) = send(&app, get("/metrics")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], 404);
    assert_eq!(send(&admin, get("/metrics")).await.0, StatusCode::OK);
    assert_eq!(send(&admin, get("/healthz")).await.0, StatusCode::OK);
    assert_eq!(send(&admin, get("/v3")).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_unknown_signer_is_looked_up_once_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (app, admin) = gateway_and_admin(&dir).await;
    // Well formed, `kid` ghost.1 (no such member), expiring in 2100; the
    // signature is never checked, as no key is known for it.
    let token = concat!(
        "eyJhbGciOiJFZERTQSIsImtpZCI6Imdob3N0LjEifQ.",
        "eyJleHAiOjQxMDI0NDQ4MDAwMDAwMDB9.",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    );
    for _ in 0..5 {
        let req = Request::get("/v3/auth/tokens")
            .header("x-auth-token", token)
            .header("x-subject-token", token)
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, req).await.0, StatusCode::UNAUTHORIZED);
    }
    let r = admin.oneshot(get("/metrics")).await.unwrap();
    let text = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    let text = String::from_utf8(text.to_vec()).unwrap();
    assert!(text.contains("keyfed_gateway_signer_lookups 1\n"), "{text}");
    assert!(
        text.contains("keyfed_gateway_unknown_signer_cache_hits 4\n"),
        "{text}"
    );
}
