//! Retiring a member cannot race a creation on it (`keyfed_tests::tls`:
//! an mTLS federation in one process; a third shard joins empty):
//!
//! - a closed member (`POST /internal/v1/close`) refuses every project the
//!   ring places on it (503) and stores none; reopened, it takes them
//!   again;
//! - `keyfed shard retire` closes the member before its emptiness check:
//!   with projects being created and read back through the gateway all
//!   along, the retirement either succeeds with no project on the member
//!   or is refused with the member active and open again — and no project
//!   is ever unreachable through the gateway (none is misrouted).
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use keyfed_directory::Bucket;
use keyfed_federation::lifecycle::credentials;
use keyfed_pki::join_token::Purpose;
use keyfed_pki::MemberKind;
use keyfed_shard::federation::admin::{self, close, RetireError};
use keyfed_shared::federation::{Member, MemberStatus};
use keyfed_shared::ids::ShardId;
use keyfed_tests::tls::{client, join_shard, login, now, start, Pki};
use serde_json::json;

/// Creates project `name` through the gateway: its id, or the status.
async fn create(
    http: &reqwest::Client,
    gw: &str,
    token: &str,
    name: &str,
) -> anyhow::Result<Result<String, u16>> {
    let r = http
        .post(format!("{gw}/v3/projects"))
        .header("x-auth-token", token)
        .json(&json!({"project": {"name": name, "domain_id": "default"}}))
        .send()
        .await?;
    if r.status() != 201 {
        return Ok(Err(r.status().as_u16()));
    }
    let body: serde_json::Value = r.json().await?;
    Ok(Ok(body["project"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned()))
}

/// `GET /v3/projects/<id>` through the gateway: the status.
async fn read(http: &reqwest::Client, gw: &str, token: &str, id: &str) -> anyhow::Result<u16> {
    let r = http
        .get(format!("{gw}/v3/projects/{id}"))
        .header("x-auth-token", token)
        .send()
        .await?;
    Ok(r.status().as_u16())
}

/// Member `id` as it stands: its record, with its status attestation.
async fn member(fed: &keyfed_tests::tls::Federation, id: &str) -> anyhow::Result<Member> {
    let members = fed.issuer.kv(Bucket::Members);
    keyfed_shard::federation::record::effective(members.as_ref(), id)
        .await?
        .context("no record")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retiring_a_member_cannot_race_a_creation_on_it() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let federation_ca = Pki::new(root.path(), "federation-ca")?;
    let public_ca = Pki::new(root.path(), "public-ca")?;
    let fed = start(root.path(), &federation_ca, &public_ca).await?;
    let shard3 = join_shard(root.path(), &fed, &federation_ca, 3).await?;
    let dir = fed.issuer.as_ref();
    let http = client(&public_ca.ca_file(), None)?;
    let gw = fed.gateway.clone();
    let token = login(&http, &gw).await?;
    // Internal routes serve shard certificates (as `keyfed shard retire`
    // calls them, with a shard's files).
    let probe = federation_ca.member(MemberKind::Shard, "shard-probe")?;
    let members = client(&federation_ca.ca_file(), Some(&probe))?;
    let admin_token = credentials::issue(dir, Purpose::Admin, now(), 300).await?;
    let listed = |seconds| {
        let (members, shard3, admin_token) = (&members, &shard3, &admin_token);
        async move {
            close(members, shard3, admin_token, seconds)
                .await
                .map_err(anyhow::Error::msg)
        }
    };

    // Closed: projects placed on shard-3 are refused and none is stored.
    assert!(
        listed(60).await?.projects.is_empty(),
        "shard-3 joined empty"
    );
    let mut refused = 0;
    for n in 0..30 {
        match create(&http, &gw, &token, &format!("closed-{n}")).await? {
            Ok(id) => assert_eq!(read(&http, &gw, &token, &id).await?, 200),
            Err(503) => refused += 1,
            Err(status) => anyhow::bail!("creating a project: {status}"),
        }
    }
    assert!(refused > 0, "no creation was placed on shard-3");
    // Reopened: it takes projects again (this listing reopens it).
    assert!(listed(0).await?.projects.is_empty());
    let mut on_shard3 = 0;
    for n in 0..60 {
        create(&http, &gw, &token, &format!("open-{n}"))
            .await?
            .map_err(|s| anyhow::anyhow!("creating a project: {s}"))?;
        on_shard3 = listed(0).await?.projects.len();
        if on_shard3 > 0 {
            break;
        }
    }
    assert!(
        on_shard3 > 0,
        "no project was placed on shard-3 once reopened"
    );
    // A member with tenants is refused retirement, left active and open.
    let keep = 3600;
    let id = ShardId::new("shard-3");
    let refusal = admin::retire(dir, &members, &id, keep).await;
    assert!(
        matches!(refusal, Err(RetireError::NotEmpty { .. })),
        "{refusal:?}"
    );
    assert_eq!(member(&fed, "shard-3").await?.status, MemberStatus::Active);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_retirement_under_load_never_misroutes_a_project() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let federation_ca = Pki::new(root.path(), "federation-ca")?;
    let public_ca = Pki::new(root.path(), "public-ca")?;
    let fed = start(root.path(), &federation_ca, &public_ca).await?;
    let shard3 = join_shard(root.path(), &fed, &federation_ca, 3).await?;
    let dir = fed.issuer.as_ref();
    let http = client(&public_ca.ca_file(), None)?;
    let gw = fed.gateway.clone();
    let token = login(&http, &gw).await?;
    // Internal routes serve shard certificates (as `keyfed shard retire`
    // calls them, with a shard's files).
    let probe = federation_ca.member(MemberKind::Shard, "shard-probe")?;
    let members = client(&federation_ca.ca_file(), Some(&probe))?;

    // Creations, each read back at once, while shard-3 is retired.
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn({
        let (http, gw, token, stop) = (http.clone(), gw.clone(), token.clone(), stop.clone());
        async move {
            let mut created = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                if let Ok(id) = create(&http, &gw, &token, &format!("load-{n}")).await? {
                    let status = read(&http, &gw, &token, &id).await?;
                    anyhow::ensure!(status == 200, "project {id} read back: {status}");
                    created.push(id);
                }
            }
            anyhow::Ok(created)
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let outcome = admin::retire(dir, &members, &ShardId::new("shard-3"), 3600).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let created = load.await??;
    assert!(!created.is_empty());
    let admin_token = credentials::issue(dir, Purpose::Admin, now(), 300).await?;
    match outcome {
        Ok(retired) => {
            assert_eq!(retired.status, MemberStatus::Retired);
            let left = close(&members, &shard3, &admin_token, 0).await;
            let left = left.map_err(anyhow::Error::msg)?;
            assert!(left.projects.is_empty(), "a retired member holds {left:?}");
        }
        Err(RetireError::NotEmpty { .. }) => {
            assert_eq!(member(&fed, "shard-3").await?.status, MemberStatus::Active);
        }
        Err(e) => anyhow::bail!("retire: {e}"),
    }
    // Every project created is where the gateway looks for it.
    for id in &created {
        assert_eq!(read(&http, &gw, &token, id).await?, 200, "project {id}");
    }
    Ok(())
}
