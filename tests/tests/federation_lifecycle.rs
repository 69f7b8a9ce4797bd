//! The federation's lifecycle end to end, with real processes over real
//! PostgreSQL and NATS, driven as an operator drives it (the `Cluster`
//! harness and the real CLI), in one run:
//!
//! 1. two `keyfed shard` and two `keyfed gateway` processes, CA trust;
//! 2. a catalog change (service + endpoint) through gateway 0 is in the
//!    token bodies validated at gateway 1 and at each shard;
//! 3. `keyfed join-token create`; a third shard joins through shard-0
//!    (`keyfed shard --join`): its key 0600, its certificate on disk; the
//!    spent token enrols nobody else;
//! 4. earlier projects keep their owner and answer through both gateways;
//!    new projects through both gateways land on the new shard; `keyfed
//!    status` counts them; `keyfed shard retire` refuses it (it owns
//!    tenants) and it stays active;
//! 5. NATS stops: both gateways keep validating, routing existing projects
//!    (on the new shard too) and logging in by name (asking the shards);
//!    NATS restarts, and a catalog change through gateway 1 reaches gateway
//!    0 and the new shard; a gateway started late shows the same catalog
//!    as gateway 0 and follows the next change;
//! 6. a rogue signer — in the registry with a certificate from another CA,
//!    or not in the registry at all — is refused by both gateways;
//! 7. 2,000 well-formed tokens naming 20 unknown signers cost a gateway at
//!    most 20 directory look-ups (its `/metrics`); malformed and expired
//!    ones cost none;
//! 8. a fourth shard joins, owns nothing, and retires (`keyfed status`:
//!    `retired`); new projects never land on it.
//!
//! In-process tests of the join endpoint's errors, pins, exact tenant
//! counts and `trusted_until` are in `federation_join.rs`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyfed_directory::{Bucket, Directory, NatsDirectory};
use keyfed_pki::signing_request;
use keyfed_shared::federation::{Member, MemberCert, MemberStatus};
use keyfed_shared::ids::{ProjectId, ShardId};
use keyfed_shared::token::Signer;
use keyfed_tests::cluster::Cluster;
use keyfed_tests::gateway::TestCa;
use keyfed_tests::keystone::Keystone;
use keyfed_tests::{claims, Gateways};
use reqwest::Method;
use serde_json::{json, Value};

const SIGNER_LOOKUPS: &str = "keyfed_gateway_signer_lookups";
const NEGATIVE_HITS: &str = "keyfed_gateway_unknown_signer_cache_hits";

fn now() -> i64 {
    keyfed_shared::time::now_micros() / 1_000_000
}

/// The service types in a rendered token body.
fn catalog_types(body: &Value) -> Vec<String> {
    body["token"]["catalog"]
        .as_array()
        .map(|services| {
            services
                .iter()
                .filter_map(|s| s["type"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Creates a service of `kind` with a public endpoint through gateway `g`,
/// retrying while the gateway answers 503 (the directory coming back).
async fn add_service(f: &Cluster, g: usize, admin: &str, kind: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let body = json!({"service": {"type": kind, "name": kind}});
    let service = loop {
        let (status, body) = f
            .call(g, Method::POST, "/v3/services", admin, Some(&body))
            .await
            .unwrap();
        if status == 201 {
            break body["service"]["id"].as_str().unwrap().to_owned();
        }
        assert!(
            status == 503 && Instant::now() < deadline,
            "creating service {kind} through gateway {g}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let endpoint = json!({"endpoint": {"service_id": service, "interface": "public",
        "url": format!("http://{kind}.example:8774/"), "region_id": "RegionOne"}});
    let (status, body) = f
        .call(g, Method::POST, "/v3/endpoints", admin, Some(&endpoint))
        .await
        .unwrap();
    assert_eq!(
        status, 201,
        "endpoint for {kind} through gateway {g}: {body}"
    );
}

/// Waits until `kind` is in the catalog of `token` validated at gateway
/// `g` (`Some`) or else at shard `s` directly.
async fn wait_catalog(f: &Cluster, at: At, token: &str, kind: &str) {
    let what = format!("{kind} in the catalog at {at:?}");
    f.wait_for(Duration::from_secs(20), &what, || async {
        let body = match at {
            At::Gateway(g) => match f.validate_body(g, token, token).await {
                Ok((200, body)) => body,
                _ => return false,
            },
            At::Shard(s) => {
                let shard = Keystone::new(f.shards[s].url.clone(), "").unwrap();
                match shard.validate_token(token, token).await {
                    Ok((status, text)) if status == 200 => {
                        serde_json::from_str(&text).unwrap_or(Value::Null)
                    }
                    _ => return false,
                }
            }
        };
        catalog_types(&body).iter().any(|t| t == kind)
    })
    .await
    .unwrap();
}

#[derive(Clone, Copy, Debug)]
enum At {
    Gateway(usize),
    Shard(usize),
}

async fn create_project(f: &Cluster, g: usize, admin: &str, name: &str) -> ProjectId {
    let body = json!({"project": {"name": name, "domain_id": "default"}});
    let (status, body) = f
        .call(g, Method::POST, "/v3/projects", admin, Some(&body))
        .await
        .unwrap();
    assert_eq!(status, 201, "creating {name} through gateway {g}: {body}");
    ProjectId::new(body["project"]["id"].as_str().unwrap())
}

async fn get_project(f: &Cluster, g: usize, token: &str, p: &ProjectId) -> (u16, Value) {
    f.call(g, Method::GET, &format!("/v3/projects/{p}"), token, None)
        .await
        .unwrap()
}

fn random_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng)
}

/// Sends `tokens` to gateway `g` as `X-Auth-Token` of `GET /v3/auth/tokens`
/// from 8 concurrent clients; every answer must be 401.
async fn send_bad_tokens(f: &Cluster, g: usize, tokens: Vec<String>) {
    let tokens = Arc::new(tokens);
    let url = format!("{}/v3/auth/tokens", f.gateway(g));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (tokens, url, http) = (tokens.clone(), url.clone(), f.http.clone());
        workers.push(tokio::spawn(async move {
            for t in tokens.iter().skip(w).step_by(8) {
                let r = http
                    .get(&url)
                    .header("x-auth-token", t)
                    .header("x-subject-token", t)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status().as_u16(), 401, "token {t}");
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_federation_grows_survives_a_nats_outage_and_shrinks() {
    let started = Instant::now();
    let mut f = Cluster::builder()
        .shards(2)
        .gateways(2)
        .start()
        .await
        .unwrap();
    let admin = f.admin_token(0).await.unwrap();

    // 2. A catalog change through gateway 0, in tokens validated elsewhere.
    add_service(&f, 0, &admin, "compute").await;
    wait_catalog(&f, At::Gateway(1), &admin, "compute").await;
    for s in 0..2 {
        wait_catalog(&f, At::Shard(s), &admin, "compute").await;
    }

    let mut before = BTreeMap::new();
    for i in 0..12 {
        let p = create_project(&f, i % 2, &admin, &format!("before-{i}")).await;
        before.insert(p.clone(), f.owner_of_project(p.as_str()).unwrap());
    }

    // 3. A join token from the CLI; shard-2 joins through shard-0.
    let token = f.join_token().await.unwrap();
    let s2 = f.join_shard("shard-2", 0, &token).await.unwrap();
    let s2_id = ShardId::new("shard-2");
    let key = f.shards[s2]
        .config
        .with_file_name("shard-2-signing-key.pem");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }
    assert!(key.with_extension("crt").exists());
    let spent = f.join_shard("shard-9", 0, &token).await.unwrap_err();
    assert!(format!("{spent:#}").contains("401"), "{spent:#}");
    assert!(f.view.member(&ShardId::new("shard-9")).is_none());

    // 4. Earlier projects stay put and answer; new ones land on shard-2.
    for (p, owner) in &before {
        assert_eq!(&f.owner_of_project(p.as_str()).unwrap(), owner, "{p}");
        for g in 0..2 {
            let (status, body) = get_project(&f, g, &admin, p).await;
            assert_eq!(status, 200, "gateway {g}, {p}: {body}");
        }
    }
    let mut landed = [0usize; 2];
    let mut on_s2 = None;
    // New projects until each gateway has placed some on shard-2 (a third
    // of them land there; 60 leave a chance of ~1e-5 of falling short).
    for i in 0..60 {
        if i >= 24 && landed.iter().all(|&n| n > 0) {
            break;
        }
        let g = i % 2;
        let p = create_project(&f, g, &admin, &format!("after-{i}")).await;
        if f.owner_of_project(p.as_str()).unwrap() == s2_id.as_str() {
            landed[g] += 1;
            let (status, body) = get_project(&f, 1 - g, &admin, &p).await;
            assert_eq!(status, 200, "{p} on shard-2 via gateway {}: {body}", 1 - g);
            on_s2 = Some(p);
        }
    }
    assert!(landed[0] > 0 && landed[1] > 0, "{landed:?}");
    let on_s2 = on_s2.unwrap();
    let row = f.status_of("shard-2").await.unwrap();
    assert_eq!(row.state, "active", "{row:?}");
    assert_eq!(row.projects, (landed[0] + landed[1]).to_string(), "{row:?}");
    let refused = f.retire("shard-2").await.unwrap();
    assert!(!refused.success, "{refused:?}");
    assert!(refused.stderr.contains("still owns"), "{refused:?}");
    assert_eq!(f.view.member(&s2_id).unwrap().status, MemberStatus::Active);

    // 5. NATS stops: validation, routing by id and login by name go on.
    f.stop_nats();
    let (old, _) = before.first_key_value().unwrap();
    for g in 0..2 {
        assert_eq!(
            f.validate(g, &admin, &admin).await.unwrap(),
            200,
            "gateway {g}"
        );
        for p in [old, &on_s2] {
            let (status, body) = get_project(&f, g, &admin, p).await;
            assert_eq!(status, 200, "gateway {g} without NATS, {p}: {body}");
        }
        let fresh = f.admin_token(g).await.unwrap();
        assert_eq!(f.validate(1 - g, &admin, &fresh).await.unwrap(), 200);
    }
    f.restart_nats().unwrap();
    add_service(&f, 1, &admin, "image").await;
    wait_catalog(&f, At::Gateway(0), &admin, "image").await;
    wait_catalog(&f, At::Shard(s2), &admin, "image").await;
    // A gateway started late converges: the snapshot brings what came
    // before (the same catalog as gateway 0), the watch what comes after.
    let late = f.add_gateway().await.unwrap();
    f.wait_for(
        Duration::from_secs(20),
        "the late gateway's catalog",
        || async {
            let (Ok((200, early)), Ok((200, now))) = (
                f.validate_body(0, &admin, &admin).await,
                f.validate_body(late, &admin, &admin).await,
            ) else {
                return false;
            };
            early["token"]["catalog"] == now["token"]["catalog"]
        },
    )
    .await
    .unwrap();
    add_service(&f, 0, &admin, "volume").await;
    wait_catalog(&f, At::Gateway(late), &admin, "volume").await;

    // 6. Rogue signers: certified by another CA, or in no record at all.
    let dir = NatsDirectory::connect(&f.directory).await.unwrap();
    let rogue_ca = TestCa::new().unwrap();
    let rogue_key = random_key();
    let csr = signing_request("rogue", &rogue_key).unwrap();
    let (der, _) = rogue_ca
        .ca
        .issue_verified(&csr, "rogue", now(), 86_400)
        .unwrap();
    let record = Member {
        id: ShardId::new("rogue"),
        url: "http://127.0.0.1:9".into(),
        weight: 1,
        status: MemberStatus::Active,
        kid: "rogue.1".into(),
        public_key: Member::encode_key(&rogue_key.verifying_key()),
        certificates: vec![MemberCert::new("rogue.1", &der)],
        trusted_until: None,
    };
    let revision = dir
        .kv(Bucket::Members)
        .put("rogue", serde_json::to_vec(&record).unwrap().into())
        .await
        .unwrap();
    // Both gateways have applied the rogue's record.
    for g in 0..2 {
        f.wait_for(
            Duration::from_secs(20),
            &format!("gateway {g} to apply members revision {revision}"),
            || async {
                f.metric_sum(g, "keyfed_gateway_directory_revision{bucket=\"members\"}")
                    .await
                    .is_ok_and(|r| r >= revision as f64)
            },
        )
        .await
        .unwrap();
    }
    let admin_claims = claims(&admin);
    let forged = Signer::new("rogue.1", rogue_key)
        .sign(&admin_claims)
        .unwrap();
    let ghost = Signer::new("ghost.1", random_key())
        .sign(&admin_claims)
        .unwrap();
    for g in 0..2 {
        for bad in [&forged, &ghost] {
            assert_eq!(
                f.validate(g, &admin, bad).await.unwrap(),
                404,
                "gateway {g}"
            );
            let (status, body) = f
                .call(g, Method::GET, "/v3/projects", bad, None)
                .await
                .unwrap();
            assert_eq!(status, 401, "gateway {g}: {body}");
        }
    }
    assert!(f
        .view
        .ring()
        .unwrap()
        .weight(&ShardId::new("rogue"))
        .is_none());

    // 7. Bogus tokens: malformed and expired ones cost no look-up…
    let lookups = f.metric_sum(1, SIGNER_LOOKUPS).await.unwrap();
    let mut expired = admin_claims.clone();
    expired.expires_at = keyfed_shared::time::now_micros() - 3_600_000_000;
    let mut malformed = vec![
        "garbage".to_owned(),
        "a.b.c".to_owned(),
        format!("{}x", &admin[..admin.len() - 4]),
        Signer::new("nodot", random_key())
            .sign(&admin_claims)
            .unwrap(),
    ];
    for i in 0..50 {
        malformed.push(
            Signer::new(format!("expired-{i}.1"), random_key())
                .sign(&expired)
                .unwrap(),
        );
    }
    send_bad_tokens(&f, 1, malformed).await;
    assert_eq!(f.metric_sum(1, SIGNER_LOOKUPS).await.unwrap(), lookups);

    // …and 2,000 from 20 unknown signers at most 20.
    let hits = f.metric_sum(1, NEGATIVE_HITS).await.unwrap();
    let mut bogus = Vec::new();
    for s in 0..20 {
        let signer = Signer::new(format!("bogus-{s}.1"), random_key());
        for n in 0..100 {
            let mut c = admin_claims.clone();
            c.issued_at += n;
            bogus.push(signer.sign(&c).unwrap());
        }
    }
    send_bad_tokens(&f, 1, bogus).await;
    let spent_lookups = f.metric_sum(1, SIGNER_LOOKUPS).await.unwrap() - lookups;
    let spent_hits = f.metric_sum(1, NEGATIVE_HITS).await.unwrap() - hits;
    assert!(
        (1.0..=20.0).contains(&spent_lookups),
        "{spent_lookups} look-ups for 20 unknown signers"
    );
    assert!(spent_hits >= 1_000.0, "{spent_hits} negative-cache hits");
    eprintln!("2,000 tokens of 20 unknown signers: {spent_lookups} look-ups, {spent_hits} negative-cache hits");

    // 8. An empty shard joins and retires; new tenants never land on it.
    let token = f.join_token().await.unwrap();
    f.join_shard("shard-3", 1, &token).await.unwrap();
    let s3_id = ShardId::new("shard-3");
    let row = f.status_of("shard-3").await.unwrap();
    assert_eq!((row.state.as_str(), row.projects.as_str()), ("active", "0"));
    let retired = f.retire("shard-3").await.unwrap();
    assert!(retired.success, "{retired:?}");
    assert_eq!(f.status_of("shard-3").await.unwrap().state, "retired");
    f.wait_for(
        Duration::from_secs(20),
        "shard-3 out of the ring",
        || async { f.view.ring().is_some_and(|r| r.weight(&s3_id).is_none()) },
    )
    .await
    .unwrap();
    for i in 0..6 {
        let p = create_project(&f, i % 2, &admin, &format!("late-{i}")).await;
        assert_ne!(f.owner_of_project(p.as_str()).unwrap(), "shard-3");
    }

    // 9. A member revoked at once (`keyfed shard revoke`): a token it
    //    signed, valid and cached at both gateways a moment ago, is
    //    refused by both within seconds.
    let (_, me) = f.validate_body(0, &admin, &admin).await.unwrap();
    let (admin_id, role) = (
        me["token"]["user"]["id"].as_str().unwrap().to_owned(),
        me["token"]["roles"][0]["id"].as_str().unwrap().to_owned(),
    );
    let grant = format!("/v3/projects/{on_s2}/users/{admin_id}/roles/{role}");
    let (status, body) = f.call(0, Method::PUT, &grant, &admin, None).await.unwrap();
    assert_eq!(status, 204, "{body}");
    let (status, signed_by_s2, body) = f.rescope(1, &admin, on_s2.as_str()).await.unwrap();
    assert_eq!(status, 201, "{body}");
    let signed_by_s2 = signed_by_s2.unwrap();
    assert!(claims(&signed_by_s2).project_id() == Some(&on_s2));
    for g in [0, 1] {
        assert_eq!(f.validate(g, &admin, &signed_by_s2).await.unwrap(), 200);
    }
    f.cli_ok(&["shard", "revoke", "shard-2"]).await.unwrap();
    let revoked = Instant::now();
    for g in [0, 1] {
        f.wait_for(
            Duration::from_secs(15),
            "the revoked member's token refused",
            || async { f.validate(g, &admin, &signed_by_s2).await.ok() == Some(404) },
        )
        .await
        .unwrap();
    }
    eprintln!(
        "a revoked member's token refused by both gateways after {:?}",
        revoked.elapsed()
    );
    assert_eq!(f.status_of("shard-2").await.unwrap().state, "retired");
    eprintln!("the federation's lifecycle took {:?}", started.elapsed());
}
