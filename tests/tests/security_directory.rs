//! The directory is not an authority: entries whose forgery would grant
//! power are signed, and what fails its check is ignored by every reader.
//! Regression tests of the security review's findings, on processes (two
//! shards, a gateway, a real nats-server enforcing each process's
//! permissions). Each forgery is first tried with the credentials of a
//! process that may not write it (NATS refuses it), then with the
//! harness's admin identity, as if the permissions were bypassed:
//!
//! 1. an implied role `member → admin` written into the global bucket does
//!    not make a member an admin (it did: users created, system admin
//!    granted);
//! 2. a join-token record of the attacker's making does not admit a rogue
//!    shard (it did: a CA-signed certificate for an invented shard);
//! 3. a revoked member (no issuer) cannot undo its revocation with its own
//!    keys and NATS credentials: its record rewritten `active` and a status
//!    attestation of its own signing are refused or ignored; its tokens
//!    stay refused (they validated again); what it wrote while trusted
//!    stays, what it signs afterwards, even backdated, does not count;
//! 4. a pin written past the permissions does not move a tenant, and a
//!    names-index entry pointing a user's name at the attacker's user does
//!    not log the attacker in under that name; the owner's names audit puts
//!    the genuine reservation back.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use keyfed_directory::{Bucket, Directory, NatsDirectory};
use keyfed_federation::seal::{EntrySigner, SealedDirectory, Signers};
use keyfed_pki::join_token::{create, Purpose};
use keyfed_pki::signing_request;
use keyfed_shard::config::ShardConfig;
use keyfed_shared::federation::{status_key, Member, MemberStatus, StatusAttestation};
use keyfed_shared::ids::{ShardId, UserId};
use keyfed_shared::token::Signer;
use keyfed_tests::cluster::Cluster;
use keyfed_tests::{claims, Gateways};
use reqwest::Method;
use serde_json::{json, Value};

const REFUSED: &str = "keyfed_gateway_directory_entries_refused";

fn now() -> i64 {
    keyfed_shared::time::now_micros() / 1_000_000
}

async fn created(f: &Cluster, admin: &str, path: &str, body: Value, kind: &str) -> String {
    let (status, body) = f
        .call(0, Method::POST, path, admin, Some(&body))
        .await
        .unwrap();
    assert_eq!(status, 201, "{path}: {body}");
    body[kind]["id"].as_str().unwrap().to_owned()
}

async fn role_id(f: &Cluster, admin: &str, name: &str) -> String {
    let (status, body) = f
        .call(
            0,
            Method::GET,
            &format!("/v3/roles?name={name}"),
            admin,
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    body["roles"][0]["id"].as_str().unwrap().to_owned()
}

/// Waits until the gateway has applied `bucket` up to `revision`.
async fn applied(f: &Cluster, bucket: &str, revision: u64) {
    let metric = format!("keyfed_gateway_directory_revision{{bucket=\"{bucket}\"}}");
    f.wait_for(
        Duration::from_secs(20),
        &format!("the gateway to apply {bucket} revision {revision}"),
        || async {
            f.metric_sum(0, &metric)
                .await
                .is_ok_and(|r| r >= revision as f64)
        },
    )
    .await
    .unwrap();
}

/// The directory as gateway 0 reaches it: its own NATS identity.
async fn gateway_directory(f: &Cluster) -> NatsDirectory {
    let text = std::fs::read_to_string(&f.gateways[0].config).unwrap();
    let config = keyfed_gateway::config::GatewayConfig::from_toml(&text).unwrap();
    let nats = config.directory.nats.unwrap();
    assert!(
        nats.nkey_seed_file.is_some(),
        "the gateway has its own identity"
    );
    NatsDirectory::connect(&nats).await.unwrap()
}

/// A fresh token like `like`, signed with `signer`.
fn forge(signer: &Signer, like: &str) -> String {
    let mut c = claims(like);
    c.issued_at = keyfed_shared::time::now_micros();
    signer.sign(&c).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_directory_entries_grant_nothing() {
    let mut f = Cluster::builder()
        .shards(2)
        .gateways(1)
        .start()
        .await
        .unwrap();
    let admin = f.admin_token(0).await.unwrap();
    let raw = NatsDirectory::connect(&f.directory).await.unwrap();

    // A member of one project.
    let project = created(
        &f,
        &admin,
        "/v3/projects",
        json!({"project": {"name": "sec-p", "domain_id": "default"}}),
        "project",
    )
    .await;
    let user = created(
        &f,
        &admin,
        "/v3/users",
        json!({"user": {"name": "sec-m", "password": "pw-sec-m-1", "domain_id": "default"}}),
        "user",
    )
    .await;
    let (member_role, admin_role) = (
        role_id(&f, &admin, "member").await,
        role_id(&f, &admin, "admin").await,
    );
    let grant = format!("/v3/projects/{project}/users/{user}/roles/{member_role}");
    let (status, body) = f.call(0, Method::PUT, &grant, &admin, None).await.unwrap();
    assert_eq!(status, 204, "{body}");
    let member = f
        .password_token(0, "sec-m", "pw-sec-m-1", Some("sec-p"))
        .await
        .unwrap();
    let new_user = json!({"user": {"name": "sec-x", "domain_id": "default"}});
    let (status, _) = f
        .call(0, Method::POST, "/v3/users", &member, Some(&new_user))
        .await
        .unwrap();
    assert_eq!(status, 403, "a member creates no user");

    // 1. member implies admin, written straight into NATS: refused with a
    //    gateway's credentials, ignored when written past the permissions.
    let gateway_nats = gateway_directory(&f).await;
    let refused_before = f.metric_sum(0, REFUSED).await.unwrap();
    let rule = json!({"prior": member_role, "implied": admin_role});
    let forged_rule = Bytes::from(rule.to_string());
    let rule_key = format!("implied/{member_role}/{admin_role}");
    assert!(
        gateway_nats
            .kv(Bucket::Global)
            .put(&rule_key, forged_rule.clone())
            .await
            .is_err(),
        "NATS refuses a gateway's write to global data"
    );
    let revision = raw
        .kv(Bucket::Global)
        .put(&rule_key, forged_rule)
        .await
        .unwrap();
    applied(&f, "global", revision).await;
    assert!(f.metric_sum(0, REFUSED).await.unwrap() > refused_before);
    // Give the shards' mirrors the same time; then the member is still a
    // member at the gateway and at the shard that answers the call.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, body) = f
        .call(0, Method::POST, "/v3/users", &member, Some(&new_user))
        .await
        .unwrap();
    assert_eq!(status, 403, "the forged implied role granted admin: {body}");
    let system = format!("/v3/system/users/{user}/roles/{admin_role}");
    let (status, _) = f
        .call(0, Method::PUT, &system, &member, None)
        .await
        .unwrap();
    assert_eq!(status, 403, "a member grants itself no system admin");
    let (_, me) = f.validate_body(0, &admin, &member).await.unwrap();
    let roles: Vec<&str> = me["token"]["roles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert!(!roles.contains(&"admin"), "{roles:?}");

    // 2. A join token of the attacker's making admits no one.
    let (token, id, record) = create(Purpose::Join, now(), 600);
    assert!(
        gateway_nats
            .kv(Bucket::Credentials)
            .put(
                &format!("join/{id}"),
                Bytes::from(serde_json::to_vec(&record).unwrap())
            )
            .await
            .is_err(),
        "NATS refuses a gateway's write of credentials"
    );
    raw.kv(Bucket::Credentials)
        .put(
            &format!("join/{id}"),
            Bytes::from(serde_json::to_vec(&record).unwrap()),
        )
        .await
        .unwrap();
    let rogue_key = ed25519_dalek::SigningKey::from_bytes(&rand::random());
    let join = json!({
        "shard_id": "rogue", "csr": signing_request("rogue", &rogue_key).unwrap(),
        "advertise_url": "http://127.0.0.1:9", "weight": 1, "join_token": token,
    });
    let answer = f
        .http
        .post(format!("{}/internal/v1/join", f.shards[0].url))
        .json(&join)
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status().as_u16(),
        401,
        "{}",
        answer.text().await.unwrap()
    );

    // 3. A member that is no issuer (it joined) is revoked; with its own
    //    keys and its own NATS credentials it tries to come back. Roles
    //    created before through the gateway, some of them written (and
    //    signed) by it, outlive its revocation.
    let token = f.join_token().await.unwrap();
    let s2 = f.join_shard("shard-2", 0, &token).await.unwrap();
    let mut roles = Vec::new();
    for i in 0..6 {
        let body = json!({"role": {"name": format!("sec-role-{i}")}});
        roles.push(created(&f, &admin, "/v3/roles", body, "role").await);
    }
    let mut by_s2 = 0;
    for id in &roles {
        let stored = raw
            .kv(Bucket::Global)
            .get(&format!("role/{id}"))
            .await
            .unwrap()
            .unwrap();
        let envelope: Value = serde_json::from_slice(&stored.value).unwrap();
        by_s2 += usize::from(envelope["signer"] == "shard-2.1");
    }
    assert!(by_s2 >= 1, "no role was written by shard-2");
    let config = ShardConfig::load(&f.shards[s2].config).unwrap();
    assert!(config.trust.ca_key.is_none(), "a joiner holds no CA key");
    let key = keyfed_shard::keys::load_or_create(&config.tokens.signing_key_file).unwrap();
    let as_s2 = Signer::new("shard-2.1", key.clone());
    assert_eq!(
        f.validate(0, &admin, &forge(&as_s2, &admin)).await.unwrap(),
        200,
        "shard-2's signatures count before its revocation"
    );
    f.cli_ok(&["shard", "revoke", "shard-2"]).await.unwrap();
    f.wait_for(
        Duration::from_secs(15),
        "shard-2's tokens refused",
        || async { f.validate(0, &admin, &forge(&as_s2, &admin)).await.ok() == Some(404) },
    )
    .await
    .unwrap();
    // Its own credentials: its signing key and certificate, and its NATS
    // identity (permissions of a shard, not an issuer's).
    let pem = std::fs::read_to_string(
        config
            .trust
            .certificate_path(&config.tokens.signing_key_file),
    )
    .unwrap();
    let own_key = EntrySigner::Member {
        kid: "shard-2.1".into(),
        key,
        cert: Arc::new(keyfed_pki::pem_to_der(&pem).unwrap()),
    };
    let own_nats = config.federation.as_ref().unwrap().nats.clone().unwrap();
    assert!(own_nats.nkey_seed_file.is_some());
    let own_nats = NatsDirectory::connect(&own_nats).await.unwrap();
    let (check, _) = keyfed_shard::federation::identity::directory_seal(&config, now()).unwrap();
    let own = Arc::new(Signers::new(Some(own_key.clone()), None));
    let as_member = SealedDirectory::wrap(Arc::new(own_nats.clone()), check, own);
    let members = as_member.kv(Bucket::Members);
    let mut record: Member =
        serde_json::from_slice(&members.get("shard-2").await.unwrap().unwrap().value).unwrap();
    record.status = MemberStatus::Active;
    record.trusted_until = None;
    members
        .put("shard-2", Bytes::from(serde_json::to_vec(&record).unwrap()))
        .await
        .unwrap();
    let key_of = status_key(&ShardId::new("shard-2"));
    let undo = StatusAttestation {
        member: ShardId::new("shard-2"),
        status: MemberStatus::Active,
        trusted_until: None,
        at: keyfed_shared::time::now_micros(),
        revoked: false,
    };
    let undo = Bytes::from(serde_json::to_vec(&undo).unwrap());
    assert!(
        members.put(&key_of, undo.clone()).await.is_err(),
        "a member cannot sign a status attestation"
    );
    let self_signed = Bytes::from(
        own_key
            .seal(Bucket::Members, &key_of, &undo, now())
            .unwrap(),
    );
    assert!(
        own_nats
            .kv(Bucket::Members)
            .put(&key_of, self_signed.clone())
            .await
            .is_err(),
        "NATS refuses a member's write of a status attestation"
    );
    // Past the permissions (the harness's admin identity), readers still
    // ignore it.
    let revision = raw
        .kv(Bucket::Members)
        .put(&key_of, self_signed)
        .await
        .unwrap();
    applied(&f, "members", revision).await;
    for _ in 0..10 {
        let fresh = forge(&as_s2, &admin);
        assert_eq!(f.validate(0, &admin, &fresh).await.unwrap(), 404);
        let (status, _) = f
            .call(0, Method::POST, "/v3/users", &fresh, Some(&new_user))
            .await
            .unwrap();
        assert_eq!(status, 401, "the revoked member's token was accepted");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The gateway still holds the genuine revocation: an attestation never
    // goes back, and the member's later record is signed after it.
    assert!(f.metric_sum(0, REFUSED).await.unwrap() > refused_before + 1.0);
    // What shard-2 wrote while trusted stays (its issuer signed it again);
    // what it signs now, even dated before its revocation, does not count.
    for id in &roles {
        let (status, body) = f
            .call(0, Method::GET, &format!("/v3/roles/{id}"), &admin, None)
            .await
            .unwrap();
        assert_eq!(status, 200, "role {id} lost with its writer: {body}");
    }
    let backdated = own_key
        .seal(
            Bucket::Global,
            "role/sec-backdated",
            br#"{"id":"sec-backdated","name":"sec-backdated"}"#,
            now() - 3_600,
        )
        .unwrap();
    let revision = raw
        .kv(Bucket::Global)
        .put("role/sec-backdated", Bytes::from(backdated))
        .await
        .unwrap();
    applied(&f, "global", revision).await;
    let (status, _) = f
        .call(0, Method::GET, "/v3/roles/sec-backdated", &admin, None)
        .await
        .unwrap();
    assert_eq!(
        status, 404,
        "a backdated signature of a revoked member counted"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_pins_and_names_route_nothing() {
    let mut f = Cluster::builder()
        .shards(2)
        .gateways(1)
        .start()
        .await
        .unwrap();
    let admin = f.admin_token(0).await.unwrap();
    let raw = NatsDirectory::connect(&f.directory).await.unwrap();
    let gateway_nats = gateway_directory(&f).await;
    let project = created(
        &f,
        &admin,
        "/v3/projects",
        json!({"project": {"name": "pin-p", "domain_id": "default"}}),
        "project",
    )
    .await;
    let owner = f.owner_of_project(&project).unwrap();
    let elsewhere = if owner == "shard-0" {
        "shard-1"
    } else {
        "shard-0"
    };
    let victim = created(
        &f,
        &admin,
        "/v3/users",
        json!({"user": {"name": "victim", "password": "pw-victim-1", "domain_id": "default"}}),
        "user",
    )
    .await;
    let evil = created(
        &f,
        &admin,
        "/v3/users",
        json!({"user": {"name": "evil", "password": "pw-evil-1", "domain_id": "default"}}),
        "user",
    )
    .await;
    let refused_before = f.metric_sum(0, REFUSED).await.unwrap();

    // A pin moving the project: refused to a gateway, ignored past the
    // permissions — the project is still routed to its owner.
    let pin = format!("project/{project}");
    let forged_pin = Bytes::from(elsewhere.to_owned());
    assert!(
        gateway_nats
            .kv(Bucket::Pins)
            .put(&pin, forged_pin.clone())
            .await
            .is_err(),
        "NATS refuses a gateway's pin"
    );
    let revision = raw.kv(Bucket::Pins).put(&pin, forged_pin).await.unwrap();
    applied(&f, "pins", revision).await;
    assert!(f.metric_sum(0, REFUSED).await.unwrap() > refused_before);
    assert_eq!(f.owner_of_project(&project).unwrap(), owner);
    let (status, body) = f
        .call(
            0,
            Method::GET,
            &format!("/v3/projects/{project}"),
            &admin,
            None,
        )
        .await
        .unwrap();
    assert_eq!(status, 200, "the forged pin moved the project: {body}");

    // The victim's name pointed at the attacker's user: refused to a
    // gateway (gateways write nothing), ignored past the permissions — the
    // attacker's password under the victim's name logs nobody in.
    let name = "user/default/victim";
    let forged_name = Bytes::from(evil.clone());
    assert!(
        gateway_nats
            .kv(Bucket::Names)
            .put(name, forged_name.clone())
            .await
            .is_err(),
        "NATS refuses a gateway's write to the names index"
    );
    raw.kv(Bucket::Names).put(name, forged_name).await.unwrap();
    let refused = f.metric_sum(0, REFUSED).await.unwrap();
    let attempt = f.password_token(0, "victim", "pw-evil-1", None).await;
    assert!(attempt.is_err(), "logged in under the victim's name");
    assert!(f.metric_sum(0, REFUSED).await.unwrap() > refused);

    // The victim's home shard audits the names index when it starts: the
    // genuine reservation is back, the name logs the victim in again and
    // cannot be taken by another user.
    let home = f
        .view
        .home_of_user(&UserId::new(victim.as_str()))
        .unwrap()
        .to_string();
    let i = f.shards.iter().position(|s| s.id == home).unwrap();
    f.kill_shard(i);
    f.restart_shard(i).await.unwrap();
    let restored = "keyfed_shard_name_repairs_total{repair=\"name_restored\"}";
    let metrics = format!("{}/metrics", f.shards[i].admin_url);
    f.wait_for(
        Duration::from_secs(20),
        "the victim's name restored",
        || async {
            let text = f.http.get(&metrics).send().await.unwrap().text().await;
            keyfed_tests::through::metric_family_sum(&text.unwrap(), restored) >= 1.0
        },
    )
    .await
    .unwrap();
    f.password_token(0, "victim", "pw-victim-1", None)
        .await
        .unwrap();
    let again = json!({"user": {"name": "victim", "domain_id": "default"}});
    let (status, body) = f
        .call(0, Method::POST, "/v3/users", &admin, Some(&again))
        .await
        .unwrap();
    assert_eq!(status, 409, "the victim's name was taken: {body}");
}
