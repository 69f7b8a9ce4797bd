//! Transport security on real sockets: a federation in one process (two
//! shards and a gateway on the embedded store and directory) where the
//! gateway serves public TLS from its own CA, and every internal call —
//! gateway to shard, shard to shard — runs over mTLS with certificates
//! from the federation CA. A full login, project creation, role grant (the
//! owner fetches the user from its home shard) and rescope run through the
//! gateway; a shard's listener refuses clients without a certificate the
//! federation CA issued.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use keyfed_gateway::config::GatewayConfig;
use keyfed_pki::MemberKind;
use keyfed_shard::config::{BootstrapConfig, ShardConfig, StorageKind, TlsFiles};
use keyfed_tests::cluster::eventually;
use keyfed_tests::tls::{
    bind, client, client_seeing, leaf, login, served_by, start, Pki, PASSWORD,
};
use serde_json::{json, Value};

async fn json(r: reqwest::Response, expected: u16) -> anyhow::Result<(Option<String>, Value)> {
    let status = r.status().as_u16();
    let token = r
        .headers()
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = r.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(status == expected, "status {status}, body {body}");
    Ok((token, body))
}

/// The shard that signed a token (its `kid` is `<shard>.<serial>`).
fn signer(token: &str) -> anyhow::Result<String> {
    let parsed = keyfed_shared::token::parse(token).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    Ok(parsed
        .kid()
        .split('.')
        .next()
        .unwrap_or_default()
        .to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keystone_through_a_tls_gateway_over_mtls_shards() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let federation_ca = Pki::new(root.path(), "federation-ca")?;
    let public_ca = Pki::new(root.path(), "public-ca")?;
    let fed = start(root.path(), &federation_ca, &public_ca).await?;
    let http = client(&public_ca.ca_file(), None)?;
    let gw = &fed.gateway;

    // Version discovery over https, with https links.
    let (_, versions) = json(http.get(format!("{gw}/v3")).send().await?, 200).await?;
    let href = versions["version"]["links"][0]["href"]
        .as_str()
        .unwrap_or_default();
    assert!(href.starts_with("https://"), "{versions}");

    // A password login (the home shard, over mTLS).
    let login = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": PASSWORD}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}
    }});
    let (token, body) = json(
        http.post(format!("{gw}/v3/auth/tokens"))
            .json(&login)
            .send()
            .await?,
        201,
    )
    .await?;
    let token = token.context("no X-Subject-Token")?;
    let user = body["token"]["user"]["id"].as_str().unwrap_or_default();
    let (_, roles) = json(
        http.get(format!("{gw}/v3/roles?name=admin"))
            .header("x-auth-token", &token)
            .send()
            .await?,
        200,
    )
    .await?;
    let role = roles["roles"][0]["id"].as_str().unwrap_or_default();

    // Projects until both shards own one: each creation, grant (on the
    // other shard, the owner fetches the user from its home shard: shard
    // to shard) and rescope (signed by the owner) runs over mTLS.
    let mut signers = BTreeSet::new();
    for n in 0..40 {
        let (_, project) = json(
            http.post(format!("{gw}/v3/projects"))
                .header("x-auth-token", &token)
                .json(&json!({"project": {"name": format!("tls-{n}"), "domain_id": "default"}}))
                .send()
                .await?,
            201,
        )
        .await?;
        let project = project["project"]["id"].as_str().unwrap_or_default();
        let grant = http
            .put(format!(
                "{gw}/v3/projects/{project}/users/{user}/roles/{role}"
            ))
            .header("x-auth-token", &token)
            .send()
            .await?;
        assert_eq!(grant.status().as_u16(), 204, "{:?}", grant.text().await);
        let rescope = json!({"auth": {
            "identity": {"methods": ["token"], "token": {"id": token}},
            "scope": {"project": {"id": project}}
        }});
        let (scoped, _) = json(
            http.post(format!("{gw}/v3/auth/tokens"))
                .json(&rescope)
                .send()
                .await?,
            201,
        )
        .await?;
        signers.insert(signer(&scoped.context("no scoped token")?)?);
        if signers.len() == 2 {
            break;
        }
    }
    assert_eq!(
        signers,
        BTreeSet::from(["shard-1".to_owned(), "shard-2".to_owned()])
    );

    // The shards' listeners serve federation members only.
    let shard = &fed.shards[0];
    let member = federation_ca.member(MemberKind::Gateway, "gw-probe")?;
    let ok = client(&federation_ca.ca_file(), Some(&member))?
        .get(format!("{shard}/healthz"))
        .send()
        .await?;
    assert_eq!(ok.status().as_u16(), 200);
    let anonymous = client(&federation_ca.ca_file(), None)?
        .get(format!("{shard}/healthz"))
        .send()
        .await;
    assert!(anonymous.is_err(), "no client certificate: {anonymous:?}");
    let rogue_ca = Pki::new(root.path(), "rogue-ca")?;
    let rogue = rogue_ca.member(MemberKind::Gateway, "gw-1")?;
    let rogue = client(&federation_ca.ca_file(), Some(&rogue))?
        .get(format!("{shard}/healthz"))
        .send()
        .await;
    assert!(rogue.is_err(), "a certificate from another CA: {rogue:?}");
    let plain = reqwest::get(format!("{}/healthz", shard.replace("https:", "http:"))).await;
    assert!(
        !matches!(&plain, Ok(r) if r.status().is_success()),
        "plain HTTP: {plain:?}"
    );
    // The gateway's public listener does not take plain HTTP either.
    let plain = reqwest::get(format!("{}/v3", gw.replace("https:", "http:"))).await;
    assert!(!matches!(&plain, Ok(r) if r.status().is_success()));
    Ok(())
}

#[test]
fn a_config_without_a_transport_choice_is_refused() {
    let e = ShardConfig::from_toml_str("[shard]\nid = \"s1\"\n")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("server.tls") && e.contains("insecure_plain_http"),
        "{e}"
    );
    let e = GatewayConfig::from_toml(
        "[directory.embedded]\npath = \"/tmp/x\"\n[trust]\nca_cert = \"/ca.pem\"\n",
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        e.contains("server.tls") && e.contains("insecure_plain_http"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_cli_over_https_against_the_gateway() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let federation_ca = Pki::new(root.path(), "federation-ca")?;
    let public_ca = Pki::new(root.path(), "public-ca")?;
    let fed = start(root.path(), &federation_ca, &public_ca).await?;
    let env = |cacert: &Path| -> Vec<(String, String)> {
        [
            ("OS_AUTH_URL", format!("{}/v3", fed.gateway)),
            ("OS_CACERT", cacert.display().to_string()),
            ("OS_IDENTITY_API_VERSION", "3".into()),
            ("OS_USERNAME", "admin".into()),
            ("OS_PASSWORD", PASSWORD.into()),
            ("OS_PROJECT_NAME", "admin".into()),
            ("OS_USER_DOMAIN_NAME", "Default".into()),
            ("OS_PROJECT_DOMAIN_NAME", "Default".into()),
            ("OS_INTERFACE", "public".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    };
    let cli = keyfed_tests::python::OpenStack::new(env(&public_ca.ca_file()))?;
    let token = cli.json(&["token", "issue"]).await?;
    assert!(
        token["id"].as_str().is_some_and(|t| !t.is_empty()),
        "{token}"
    );
    cli.run(&["project", "create", "--domain", "default", "cli-tls"])
        .await?;
    let projects = cli
        .run(&["project", "list", "-f", "value", "-c", "Name"])
        .await?;
    assert!(projects.lines().any(|l| l == "cli-tls"), "{projects}");
    // Trusting another CA, the client refuses the gateway.
    let stranger = keyfed_tests::python::OpenStack::new(env(&federation_ca.ca_file()))?;
    let refused = stranger.fails(&["token", "issue"]).await?;
    assert!(
        refused.contains("SSL") || refused.contains("certificate"),
        "{refused}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_shard_serves_keystone_over_public_tls() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let public_ca = Pki::new(root.path(), "public-ca")?;
    let (listener, addr) = bind().await?;
    let url = format!("https://{addr}");
    let files = public_ca.member(MemberKind::Shard, "keystone")?;
    let mut c = ShardConfig::default();
    c.server.listen = addr;
    c.server.tls = Some(TlsFiles {
        cert: files.cert,
        key: files.key,
    });
    c.storage.kind = StorageKind::Embedded;
    c.storage.path = root.path().join("store");
    c.tokens.signing_key_file = root.path().join("signing-key.pem");
    c.password.memory_kib = 64;
    c.password.iterations = 1;
    c.bootstrap = Some(BootstrapConfig {
        admin_password: Some(PASSWORD.into()),
        ..BootstrapConfig::default()
    });
    assert_eq!(c.public_url(), url, "TLS makes the default URL https");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(keyfed_shard::server::run(c, listener, async move {
        let _ = stopped.await;
    }));
    let http = client(&public_ca.ca_file(), None)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let versions = loop {
        match http.get(format!("{url}/v3")).send().await {
            Ok(r) => break json(r, 200).await?.1,
            Err(e) if Instant::now() > deadline => bail!("the shard never answered: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    assert_eq!(
        versions["version"]["links"][0]["href"].as_str(),
        Some(format!("{url}/v3/").as_str()),
        "{versions}"
    );
    let login = json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "domain": {"id": "default"}, "password": PASSWORD}}}}});
    let (token, _) = json(
        http.post(format!("{url}/v3/auth/tokens"))
            .json(&login)
            .send()
            .await?,
        201,
    )
    .await?;
    assert!(token.is_some());
    let _ = stop.send(());
    server.await??;
    Ok(())
}

/// The sum of a metric family in the gateway's `/metrics` (`name{…} n`
/// lines).
async fn gateway_metric(http: &reqwest::Client, gw: &str, line: &str) -> anyhow::Result<u64> {
    let text = http
        .get(format!("{gw}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with(line))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_certificates_are_served_without_a_restart() -> anyhow::Result<()> {
    let root = tempfile::tempdir()?;
    let federation_ca = Pki::new(root.path(), "federation-ca")?;
    let public_ca = Pki::new(root.path(), "public-ca")?;
    let fed = start(root.path(), &federation_ca, &public_ca).await?;
    let gw = &fed.gateway;
    let limit = Duration::from_secs(10);

    // The gateway's public certificate, renewed in place: new handshakes
    // get the new one, a connection opened before keeps working.
    let open = client_seeing(&public_ca.ca_file(), None)?;
    let public = public_ca.files("public");
    let first = leaf(&public.cert)?;
    assert_eq!(served_by(&open, &format!("{gw}/v3")).await?, first);
    public_ca.renew(MemberKind::Shard, "public")?;
    let renewed = leaf(&public.cert)?;
    assert_ne!(first, renewed);
    eventually(limit, "the renewed public certificate", || async {
        let fresh = client_seeing(&public_ca.ca_file(), None);
        match fresh {
            Ok(c) => served_by(&c, &format!("{gw}/v3")).await.ok() == Some(renewed.clone()),
            Err(_) => false,
        }
    })
    .await?;
    assert_eq!(served_by(&open, &format!("{gw}/v3")).await?, first);
    let token = login(&open, gw).await?;

    // A shard's internal certificate and the gateway's client certificate,
    // renewed: the shard serves the new one, and the gateway, presenting
    // its new one, still reaches every shard (the listing asks both).
    federation_ca.renew(MemberKind::Shard, "shard-1")?;
    federation_ca.renew(MemberKind::Gateway, "gw-1")?;
    let probe = federation_ca.member(MemberKind::Gateway, "gw-probe")?;
    let shard = format!("{}/healthz", fed.shards[0]);
    let renewed = leaf(&federation_ca.files("shard-1").cert)?;
    eventually(limit, "the renewed shard certificate", || async {
        match client_seeing(&federation_ca.ca_file(), Some(&probe)) {
            Ok(c) => served_by(&c, &shard).await.ok() == Some(renewed.clone()),
            Err(_) => false,
        }
    })
    .await?;
    eventually(
        limit,
        "the gateway's client certificate reloaded",
        || async {
            let reloads = "keyfed_gateway_tls_reloads_total{files=\"internal_tls\"}";
            gateway_metric(&open, gw, reloads).await.unwrap_or(0) >= 1
        },
    )
    .await?;
    let projects = open
        .get(format!("{gw}/v3/projects"))
        .header("x-auth-token", &token)
        .send()
        .await?;
    assert_eq!(projects.status().as_u16(), 200);

    // A broken key file: logged, counted, and the certificate in service
    // stays.
    std::fs::write(&public.key, "-----BEGIN PRIVATE KEY-----\nbroken\n")?;
    eventually(limit, "the failed reload counted", || async {
        let failures = "keyfed_gateway_tls_reload_failures_total{files=\"server.tls\"}";
        gateway_metric(&open, gw, failures).await.unwrap_or(0) == 1
    })
    .await?;
    let fresh = client_seeing(&public_ca.ca_file(), None)?;
    assert_eq!(
        served_by(&fresh, &format!("{gw}/v3")).await?,
        leaf(&public.cert)?
    );
    Ok(())
}
