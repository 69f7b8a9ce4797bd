//! The attacks of issue 8 (parts 3 and 6) against a gateway process in
//! front of two shard processes over a real nats-server with authorisation
//! on, the shards serving internal mTLS, each now failing to get in — one
//! cluster for all of them:
//!
//! - paths with dot segments (raw or percent-encoded) or hidden separators
//!   reach nothing behind the gateway: the shard's `/metrics`, `/readyz` and
//!   internal routes answered before; now a Keystone 404 with no upstream
//!   call;
//! - and were one forwarded, the shard's internal routes refuse the
//!   gateway's certificate (403) and serve only a shard's; a caller without
//!   a certificate of the federation CA does not get past the handshake;
//! - a login naming an unknown user costs what one with a wrong password
//!   does (user names cannot be told apart by timing);
//! - links in answers name the gateway, not a shard;
//! - a token issued in the future (beyond the clock skew) is refused by
//!   the gateway's validator and by the shards;
//! - `/metrics` is served on the admin listeners (`[admin] listen`) of the
//!   gateway and the shards, and is a Keystone 404 on their public ones;
//!   `/healthz` and `/readyz` are served on both.
//!
//! Needs `KEYFED_TEST_PG`, a nats-server and the `keyfed` binary: run
//! through `scripts/test`.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use keyfed_pki::MemberKind;
use keyfed_shared::time::now_micros;
use keyfed_shared::token::{self, Signer};
use keyfed_tests::cluster::Cluster;
use keyfed_tests::tls::{client, client_seeing, served_by};
use keyfed_tests::Gateways;
use reqwest::Method;
use serde_json::{json, Value};

/// What an attacker sent through the gateway and what it reached before.
const TRAVERSALS: &[(&str, &str)] = &[
    ("GET", "/v3/auth/../../metrics"),
    ("GET", "/v3/auth/../../readyz"),
    ("GET", "/v3/domains/../../internal/v1/tenants"),
    ("POST", "/v3/auth/../../internal/v1/join"),
    ("POST", "/v3/auth/%2e%2e/%2E%2e/internal/v1/join"),
    ("GET", "/v3/auth/.%2e/.%2E/metrics"),
    ("GET", "/v3/projects/x%2f..%2f..%2fmetrics"),
    ("GET", "/v3/users/x%5C..%5C..%5Creadyz"),
    ("GET", "/v3/regions/./../../readyz"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacks_at_the_edge_fail() {
    let f = Cluster::builder()
        .shards(2)
        .gateways(1)
        .internal_mtls()
        .start()
        .await
        .unwrap();
    let admin = f.admin_token(0).await.unwrap();

    dot_segments_reach_no_shard(&f, &admin).await;
    internal_routes_serve_shards_alone(&f).await;
    unknown_user_names_cost_a_password_check(&f, &admin).await;
    links_name_the_gateway(&f, &admin).await;
    tokens_from_the_future_are_refused(&f, &admin).await;
    metrics_only_on_the_admin_listeners(&f).await;
    a_renewed_certificate_is_served_after_sighup(&f).await;
}

/// The certificate shard-1's listener presents to a new connection.
async fn served_certificate(f: &Cluster) -> Vec<u8> {
    let files = f.member_tls(MemberKind::Gateway, "harness").unwrap();
    let http = client_seeing(&files.ca, Some(&files)).unwrap();
    served_by(&http, &format!("{}/v3", f.shards[1].url))
        .await
        .unwrap()
}

/// Renewing a certificate needs no restart: new files and a SIGHUP (the
/// poll is a minute away), and new connections get the new certificate.
async fn a_renewed_certificate_is_served_after_sighup(f: &Cluster) {
    let before = served_certificate(f).await;
    let old = f.member_tls(MemberKind::Shard, "shard-1").unwrap();
    std::fs::remove_file(&old.cert).unwrap();
    std::fs::remove_file(&old.key).unwrap();
    let renewed = f.member_tls(MemberKind::Shard, "shard-1").unwrap();
    let pem = std::fs::read_to_string(&renewed.cert).unwrap();
    let der = keyfed_pki::anchor::pem_to_der(&pem).unwrap();
    assert_ne!(der, before, "a new certificate was issued");
    f.signal_shard(1, "HUP").unwrap();
    f.wait_for(
        Duration::from_secs(10),
        "shard-1 to serve its renewed certificate",
        || async { served_certificate(f).await == der },
    )
    .await
    .unwrap();
    // It still serves the gateway with the new one.
    let admin = f.admin_token(0).await.unwrap();
    assert_eq!(f.validate(0, &admin, &admin).await.unwrap(), 200);
}

async fn metrics_only_on_the_admin_listeners(f: &Cluster) {
    // The harness's client: it trusts the federation CA and presents a
    // certificate, as the shards' mTLS listeners require.
    let get = |url: String| async move {
        let r = f.http.get(&url).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    let publics = [&f.gateways[0].url, &f.shards[0].url, &f.shards[1].url];
    let admins = [
        &f.gateways[0].admin_url,
        &f.shards[0].admin_url,
        &f.shards[1].admin_url,
    ];
    for (public, admin) in publics.into_iter().zip(admins) {
        let (status, body) = get(format!("{public}/metrics")).await;
        assert_eq!(status, 404, "{public}/metrics: {body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["code"], 404, "{body}");
        let (status, text) = get(format!("{admin}/metrics")).await;
        assert_eq!(status, 200);
        assert!(text.contains("_requests_total{"), "{admin}/metrics: {text}");
        for path in ["/healthz", "/readyz"] {
            assert_eq!(
                get(format!("{public}{path}")).await.0,
                200,
                "{public}{path}"
            );
            assert_eq!(get(format!("{admin}{path}")).await.0, 200, "{admin}{path}");
        }
        assert_eq!(get(format!("{admin}/v3")).await.0, 404, "no API on {admin}");
    }
    let (status, _) = f.raw(0, "GET", "/metrics", None).await.unwrap();
    assert_eq!(status, 404, "through the gateway");
}

async fn dot_segments_reach_no_shard(f: &Cluster, admin: &str) {
    let upstream = "keyfed_gateway_upstream_requests_total";
    let before = f.metric_sum(0, upstream).await.unwrap();
    for (method, path) in TRAVERSALS {
        let (status, body) = f.raw(0, method, path, Some(admin)).await.unwrap();
        assert_eq!(status, 404, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], 404, "{method} {path}: {body}");
    }
    let after = f.metric_sum(0, upstream).await.unwrap();
    assert_eq!(before, after, "no traversal was sent to a shard");
    // The same request, normalised, is still served.
    let (status, _) = f.raw(0, "GET", "/v3/regions", Some(admin)).await.unwrap();
    assert_eq!(status, 200);
}

async fn internal_routes_serve_shards_alone(f: &Cluster) {
    let gateway = f.member_tls(MemberKind::Gateway, "gateway-0").unwrap();
    let peer = f.member_tls(MemberKind::Shard, "shard-0").unwrap();
    let shard = &f.shards[1].url;
    let routes = [
        (Method::GET, "/internal/v1/tenants"),
        (Method::POST, "/internal/v1/join"),
        (Method::POST, "/internal/v1/names/reclaim"),
    ];
    let as_gateway = client(&gateway.ca, Some(&gateway)).unwrap();
    let as_shard = client(&gateway.ca, Some(&peer)).unwrap();
    for (method, route) in &routes {
        let url = format!("{shard}{route}");
        let r = as_gateway
            .request(method.clone(), &url)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status().as_u16(),
            403,
            "{method} {route} with the gateway's certificate"
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], 403, "{body}");
        // A shard's certificate passes the door; the route's own checks
        // (admin or join token, body) judge the rest.
        let r = as_shard
            .request(method.clone(), &url)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_ne!(
            r.status().as_u16(),
            403,
            "{method} {route} with a shard's certificate"
        );
    }
    // The public API on the same listener serves the gateway's certificate.
    let r = as_gateway.get(format!("{shard}/v3")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let anonymous = client(&gateway.ca, None).unwrap();
    let refused = anonymous.get(format!("{shard}/v3")).send().await;
    assert!(refused.is_err(), "no client certificate: {refused:?}");
}

fn login(user: &str, password: &str) -> Value {
    json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "domain": {"id": "default"}, "password": password}}}}})
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn unknown_user_names_cost_a_password_check(f: &Cluster, admin: &str) {
    let (status, body) = f
        .call(
            0,
            Method::POST,
            "/v3/users",
            admin,
            Some(
                &json!({"user": {"name": "known-user", "password": "right-password",
                                   "domain_id": "default"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{body}");
    let (known, unknown) = (login("known-user", "wrong"), login("no-such-user", "wrong"));
    let (mut known_times, mut unknown_times) = (Vec::new(), Vec::new());
    for round in 0..16 {
        for (body, times) in [(&known, &mut known_times), (&unknown, &mut unknown_times)] {
            let started = Instant::now();
            let (status, _, answer) = f.auth(0, body).await.unwrap();
            let elapsed = started.elapsed();
            assert_eq!(status, 401, "{answer}");
            // The first round warms connections up.
            if round > 0 {
                times.push(elapsed);
            }
        }
    }
    let (known, unknown) = (median(known_times), median(unknown_times));
    eprintln!("login medians: known name {known:?}, unknown name {unknown:?}");
    assert!(
        unknown * 2 >= known,
        "an unknown name ({unknown:?}) is answered much faster than a known one ({known:?})"
    );
}

async fn links_name_the_gateway(f: &Cluster, admin: &str) {
    let gw = f.gateway(0).to_owned();
    let (status, project) = f
        .call(
            0,
            Method::POST,
            "/v3/projects",
            admin,
            Some(&json!({"project": {"name": "linked"}})),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{project}");
    let id = project["project"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        project["project"]["links"]["self"],
        format!("{gw}/v3/projects/{id}")
    );
    let paths = [
        format!("/v3/projects/{id}"),
        "/v3/regions".to_owned(),
        "/v3/roles".to_owned(),
        "/v3/domains/default".to_owned(),
        "/v3/auth/catalog".to_owned(),
        "/v3".to_owned(),
    ];
    for path in paths {
        let (status, body) = f.call(0, Method::GET, &path, admin, None).await.unwrap();
        assert_eq!(status, 200, "{path}: {body}");
        let links = match body.get("version") {
            Some(version) => version["links"][0]["href"].clone(),
            None => body
                .get("links")
                .or_else(|| {
                    body.as_object()
                        .and_then(|o| o.values().next()?.get("links"))
                })
                .map(|l| l["self"].clone())
                .unwrap_or(Value::Null),
        };
        let link = links.as_str().unwrap_or_default();
        assert!(link.starts_with(&format!("{gw}/v3")), "{path}: {body}");
        let text = body.to_string();
        for shard in &f.shards {
            assert!(
                !text.contains(&shard.url),
                "{path} names {}: {text}",
                shard.url
            );
        }
    }
}

/// `token` signed again by its signer with the issue time `ahead` in the
/// future (and a lifetime of an hour from then).
fn issued_ahead(f: &Cluster, token: &str, ahead: Duration) -> String {
    let parsed = token::parse(token).unwrap();
    let kid = parsed.kid().to_owned();
    let shard = f.shard(kid.rsplit_once('.').unwrap().0).unwrap();
    let key = keyfed_shard::keys::load_or_create(&shard.signing_key_file()).unwrap();
    let mut claims = parsed.verify(&key.verifying_key()).unwrap();
    claims.issued_at = now_micros() + ahead.as_micros() as i64;
    claims.expires_at = claims.issued_at + 3_600_000_000;
    Signer::new(kid, key).sign(&claims).unwrap()
}

async fn tokens_from_the_future_are_refused(f: &Cluster, admin: &str) {
    let future = issued_ahead(f, admin, Duration::from_secs(600));
    assert_eq!(f.validate(0, admin, &future).await.unwrap(), 404);
    assert_eq!(f.validate(0, &future, &future).await.unwrap(), 401);
    let (status, body) = f
        .call(0, Method::GET, "/v3/regions", &future, None)
        .await
        .unwrap();
    assert_eq!(status, 401, "a shard refuses it too: {body}");
    // A clock a little ahead is within the skew.
    let ahead = issued_ahead(f, admin, Duration::from_secs(10));
    assert_eq!(f.validate(0, admin, &ahead).await.unwrap(), 200);
    let (status, _) = f
        .call(0, Method::GET, "/v3/regions", &ahead, None)
        .await
        .unwrap();
    assert_eq!(status, 200);
}
