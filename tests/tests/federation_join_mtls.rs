//! A shard joins an mTLS federation with nothing but the CA certificate
//! and a join token (`keyfed_tests::tls`: two mTLS shards, both issuers,
//! and a TLS gateway in one process, on the embedded store and directory):
//!
//! - the join goes to the issuer's join listener (TLS verified against the
//!   CA, no client certificate) and brings back, besides the signing
//!   certificate, the shard's internal TLS certificate for the key it
//!   generated (written 0600 where `[internal_tls]` points);
//! - the new shard serves its mTLS listener, turns itself active, and the
//!   gateway reaches it over mTLS: projects placed on it are served;
//! - the join listener serves the join route only, and its token is spent;
//! - shards join one at a time: a second joiner is refused (409) while the
//!   first holds the join lease, and joins with the same token once the
//!   first is active; a lease left by a crashed joiner delays activation
//!   only until it expires.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::Context;
use keyfed_directory::Bucket;
use keyfed_federation::lifecycle::credentials;
use keyfed_federation::lifecycle::lease::{JoinLease, JOIN_LEASE_KEY};
use keyfed_pki::join_token::Purpose;
use keyfed_pki::MemberKind;
use keyfed_shard::config::MtlsFiles;
use keyfed_shard::federation::activation::{list, Tenants};
use keyfed_shard::federation::enrol::{enrol, enrol_waiting};
use keyfed_shared::federation::{Member, MemberStatus};
use keyfed_tests::tls::{bind, client, login, now, shard_config, start, Pki};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shard_joins_an_mtls_federation_and_is_served_over_mtls() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let federation_ca = Pki::new(root.path(), "federation-ca")?;
    let public_ca = Pki::new(root.path(), "public-ca")?;
    let fed = start(root.path(), &federation_ca, &public_ca).await?;
    let dir = fed.issuer.as_ref();

    // The joiner: the CA certificate, no TLS certificate, no CA key.
    let (listener, addr) = bind().await?;
    let mut joiner = shard_config(
        root.path(),
        3,
        addr,
        &fed.gateway,
        &fed.directory_config,
        &federation_ca,
    )?;
    let tls_dir = root.path().join("shard-3-tls");
    joiner.internal_tls = Some(MtlsFiles {
        ca: federation_ca.ca_file(),
        cert: tls_dir.join("tls.pem"),
        key: tls_dir.join("tls-key.pem"),
    });
    joiner.trust.ca_key = None;
    joiner.bootstrap = None;
    joiner.validate()?;

    // Over plain HTTP the join is refused before anything is sent.
    let token = credentials::issue(dir, Purpose::Join, now(), 600).await?;
    let plain = fed.join_url.replace("https:", "http:");
    let e = enrol(&joiner, &plain, &token).await.unwrap_err();
    assert!(e.to_string().contains("https://"), "{e}");

    enrol(&joiner, &fed.join_url, &token).await?;
    let tls = joiner.internal_tls.clone().unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&tls.key)?.permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the TLS key's mode");
    }
    let cert = std::fs::read_to_string(&tls.cert)?;
    federation_ca.ca.cert().verify_member_tls(
        &keyfed_pki::pem_to_der(&cert)?,
        MemberKind::Shard,
        "shard-3",
        now(),
    )?;
    // The token is spent.
    let mut again = joiner.clone();
    again.shard.id = "shard-4".into();
    again.tokens.signing_key_file = root.path().join("shard-4-signing-key.pem");
    again.internal_tls = Some(MtlsFiles {
        ca: federation_ca.ca_file(),
        cert: root.path().join("shard-4-tls.pem"),
        key: root.path().join("shard-4-tls-key.pem"),
    });
    let spent = enrol(&again, &fed.join_url, &token).await.unwrap_err();
    assert!(spent.to_string().contains("401"), "{spent}");

    // Shards join one at a time: while shard-3 is joining, shard-4 is
    // refused with its token unspent.
    let token4 = credentials::issue(dir, Purpose::Join, now(), 600).await?;
    let busy = enrol(&again, &fed.join_url, &token4).await.unwrap_err();
    let busy = busy.to_string();
    assert!(
        busy.contains("409") && busy.contains("one at a time"),
        "{busy}"
    );
    // A joiner that crashed holding the lease delays shard-3's activation
    // until its lease expires, then shard-3 takes it over.
    // (Unix seconds: it expires at least 3 s from now.)
    let ghost_since = Instant::now();
    let ghost = JoinLease {
        holder: "ghost".into(),
        expires_at: now() + 4,
    };
    dir.kv(Bucket::Credentials)
        .put(JOIN_LEASE_KEY, serde_json::to_vec(&ghost)?.into())
        .await?;

    // The join listener serves the join route and nothing else.
    let anonymous = client(&federation_ca.ca_file(), None)?;
    let other = anonymous
        .get(format!("{}/v3/projects", fed.join_url))
        .send()
        .await?;
    assert_eq!(other.status().as_u16(), 404);

    // The new shard serves over mTLS and activates itself.
    let state =
        keyfed_shard::server::build_with_directory(joiner.clone(), Some(fed.directory.clone()))
            .await?;
    let mut stopped = fed.stop.subscribe();
    tokio::spawn(keyfed_shard::server::serve_state(
        state,
        listener,
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        },
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let entry = dir.kv(Bucket::Members).get("shard-3").await?;
        let member: Option<Member> = entry
            .map(|e| serde_json::from_slice(&e.value))
            .transpose()?;
        if member.is_some_and(|m| m.status == MemberStatus::Active) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "shard-3 never turned active");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let shard3: Member = serde_json::from_slice(
        &dir.kv(Bucket::Members)
            .get("shard-3")
            .await?
            .context("shard-3's record")?
            .value,
    )?;
    assert_eq!(shard3.url, format!("https://{addr}"));
    assert!(
        ghost_since.elapsed() >= Duration::from_secs(3),
        "shard-3 activated while another joiner's lease was live"
    );
    // Active: its lease is released (right after it turned itself
    // active), and shard-4 joins with its token.
    let deadline = Instant::now() + Duration::from_secs(10);
    while dir
        .kv(Bucket::Credentials)
        .get(JOIN_LEASE_KEY)
        .await?
        .is_some()
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the join lease outlived the activation"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A joiner waiting its turn: while a lease is held (a ghost's, for
    // 3 s more) it retries at the issuer's pace and joins once it is free.
    let ghost = JoinLease {
        holder: "ghost-2".into(),
        expires_at: now() + 3,
    };
    dir.kv(Bucket::Credentials)
        .put(JOIN_LEASE_KEY, serde_json::to_vec(&ghost)?.into())
        .await?;
    let waited = Instant::now();
    enrol_waiting(&again, &fed.join_url, &token4, Duration::from_secs(60)).await?;
    assert!(
        waited.elapsed() >= Duration::from_secs(1),
        "joined while the lease was held"
    );

    // Projects through the gateway until one is placed on shard-3; each
    // of them is served (gateway → shard-3 over mTLS).
    let http = client(&public_ca.ca_file(), None)?;
    let gw = &fed.gateway;
    let token = login(&http, gw).await?;
    // Internal routes serve shard certificates only (as `keyfed status`
    // calls them, with a shard's files).
    let probe = federation_ca.member(MemberKind::Shard, "shard-probe")?;
    let member_client = client(&federation_ca.ca_file(), Some(&probe))?;
    let mut on_new = Vec::new();
    for n in 0..60 {
        let r = http
            .post(format!("{gw}/v3/projects"))
            .header("x-auth-token", &token)
            .json(&json!({"project": {"name": format!("joined-{n}"), "domain_id": "default"}}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 201, "creating a project: {}", r.status());
        let admin = credentials::issue(dir, Purpose::Admin, now(), 60).await?;
        let Tenants { projects, .. } = list(&member_client, &shard3, &admin, None)
            .await
            .map_err(anyhow::Error::msg)?;
        if !projects.is_empty() {
            on_new = projects;
            break;
        }
    }
    anyhow::ensure!(!on_new.is_empty(), "no project was placed on shard-3");
    for id in &on_new {
        let r = http
            .get(format!("{gw}/v3/projects/{id}"))
            .header("x-auth-token", &token)
            .send()
            .await?;
        assert_eq!(r.status().as_u16(), 200);
        let body: Value = r.json().await?;
        assert_eq!(body["project"]["id"], id.as_str());
    }
    Ok(())
}
