//! Federation administration commands: `keyfed ca init`, `keyfed ca
//! issue-tls`, `keyfed join-token
//! create`, `keyfed status`, `keyfed shard retire` and `keyfed shard
//! reindex`. They act on files (the CA) or on the
//! directory named by a shard config's `[federation]` section.

use anyhow::Context;
use keyfed_directory::{Bucket, Directory, EmbeddedDirectory, NatsDirectory};
use keyfed_federation::lifecycle::credentials;
use keyfed_federation::seal::SealedDirectory;
use keyfed_pki::join_token::{parse_ttl, Purpose};
use keyfed_pki::FederationCa;
use keyfed_shard::config::ShardConfig;
use keyfed_shard::federation::admin;
use keyfed_shard::federation::internal_client::internal_client;
use keyfed_shared::federation::Member;
use keyfed_shared::ids::ShardId;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Longest join token lifetime accepted: a join token is meant to be used
/// at once.
const MAX_JOIN_TTL_SECS: i64 = 24 * 3600;

fn now() -> i64 {
    keyfed_shared::time::now_micros() / 1_000_000
}

/// `keyfed ca init`: creates the federation CA in `dir`.
pub fn ca_init(dir: &Path, name: &str, validity_days: u32) -> anyhow::Result<()> {
    let ca = FederationCa::init(dir, name, now(), i64::from(validity_days) * 86_400)
        .with_context(|| format!("creating the federation CA in {}", dir.display()))?;
    println!(
        "federation CA created in {}: {} (give it to every member and gateway), {} (mode 0600, issuers only); valid until unix time {}",
        dir.display(),
        keyfed_pki::ca::CA_CERT_FILE,
        keyfed_pki::ca::CA_KEY_FILE,
        ca.cert().not_after()
    );
    Ok(())
}

/// `keyfed ca issue-tls`: a member's TLS certificate for internal mTLS,
/// written as `<out>/<name>.pem` and `<out>/<name>-key.pem` (mode 0600).
pub fn ca_issue_tls(
    dir: &Path,
    kind: &str,
    name: &str,
    hosts: &[String],
    out: &Path,
    validity_days: u32,
) -> anyhow::Result<()> {
    let kind: keyfed_pki::MemberKind = kind.parse()?;
    let ca = FederationCa::load(dir)
        .with_context(|| format!("loading the federation CA from {}", dir.display()))?;
    let identity = ca.issue_tls(kind, name, hosts, now(), i64::from(validity_days) * 86_400)?;
    let paths = identity.write(out, name)?;
    println!(
        "TLS certificate for {} written: {} and its key {} (mode 0600); configure them in [internal_tls] with ca = {}",
        kind.uri(name),
        paths.cert.display(),
        paths.key.display(),
        keyfed_pki::ca::ca_paths(dir).0.display()
    );
    Ok(())
}

/// `keyfed shard csr`: a CSR (PEM) for the token-signing key of the shard
/// of `config`, the key created (mode 0600) when missing.
pub fn shard_csr(config: &Path) -> anyhow::Result<String> {
    let config = ShardConfig::load(config)?;
    let key = keyfed_shard::keys::load_or_create(&config.tokens.signing_key_file)?;
    Ok(keyfed_pki::signing_request(&config.shard.id, &key)?)
}

/// `keyfed ca sign-shard`: the signing certificate of `shard` from its CSR,
/// written (PEM) to `out`, never over an existing file.
pub fn ca_sign_shard(
    dir: &Path,
    shard: &str,
    csr: &Path,
    out: &Path,
    validity_days: u32,
) -> anyhow::Result<()> {
    let ca = FederationCa::load(dir)
        .with_context(|| format!("loading the federation CA from {}", dir.display()))?;
    let csr = keyfed_pki::files::read_text(csr)?;
    let (der, signer) = ca.issue_verified(&csr, shard, now(), i64::from(validity_days) * 86_400)?;
    keyfed_pki::files::write_public(out, keyfed_pki::der_to_pem(&der).as_bytes())?;
    println!(
        "signing certificate of {shard} written to {} (serial {}, valid until unix time {}); \
         configure it as [trust] certificate",
        out.display(),
        signer.serial,
        signer.not_after
    );
    Ok(())
}

/// Opens the directory a shard config names.
pub async fn open_directory(config: &Path) -> anyhow::Result<Arc<dyn Directory>> {
    Ok(open_sealed(config).await?)
}

/// Opens the directory a shard config names, sealing and checking entries
/// as that shard's administrator (see `keyfed_federation::seal`).
pub async fn open_sealed(config: &Path) -> anyhow::Result<Arc<SealedDirectory>> {
    let config = ShardConfig::load(config)?;
    let federation = config
        .federation
        .as_ref()
        .context("config field `federation`: the config names no directory")?;
    let inner: Arc<dyn Directory> = match (&federation.nats, &federation.embedded) {
        (Some(nats), _) => Arc::new(NatsDirectory::connect(nats).await?),
        (None, Some(embedded)) => Arc::new(EmbeddedDirectory::open(embedded)?),
        (None, None) => anyhow::bail!("config field `federation`: no directory configured"),
    };
    let (check, signers) = keyfed_shard::federation::identity::directory_seal(&config, now())?;
    Ok(SealedDirectory::wrap(inner, check, Arc::new(signers)))
}

/// `keyfed shard reindex`: queues this shard's part of the membership index
/// for its relay to rewrite (see
/// [`keyfed_shard::federation::relay::reindex`]).
pub async fn reindex(config_path: &Path) -> anyhow::Result<()> {
    let config = ShardConfig::load(config_path)?;
    let directory = open_directory(config_path).await?;
    let store = keyfed_shard::server::open_store(&config).await?;
    let me = ShardId::new(config.shard.id.as_str());
    let queued = keyfed_shard::federation::relay::reindex(
        store.as_ref(),
        directory.kv(Bucket::Memberships).as_ref(),
        &me,
    )
    .await?;
    println!(
        "queued {queued} users of {me}; its relay rewrites their membership index entries \
         (now if it runs, else when it starts)"
    );
    Ok(())
}

/// `keyfed join-token create`: prints a single-use join token.
pub async fn join_token_create(config: &Path, ttl: &str) -> anyhow::Result<()> {
    let ttl_secs = parse_ttl(ttl)
        .filter(|s| *s <= MAX_JOIN_TTL_SECS)
        .with_context(|| format!("--ttl {ttl:?}: give a duration like 10m, at most 24h"))?;
    let dir = open_directory(config).await?;
    let token = credentials::issue(dir.as_ref(), Purpose::Join, now(), ttl_secs).await?;
    println!("{token}");
    eprintln!("single-use join token, valid for {ttl_secs} s");
    Ok(())
}

/// `keyfed status`: the members, their state, weight, certificate expiry
/// and tenant counts (asked of each member's internal API with an admin
/// call token), from the directory.
pub async fn status(config_path: &Path) -> anyhow::Result<()> {
    let config = ShardConfig::load(config_path)?;
    let dir = open_directory(config_path).await?;
    let members =
        keyfed_shard::federation::record::effective_all(dir.kv(Bucket::Members).as_ref()).await?;
    // Members' internal API, called as the shard of `config` would (mTLS
    // with `[internal_tls]`).
    let http = internal_client(&config, Duration::from_secs(30))?;
    let counts: BTreeMap<_, _> = admin::tenant_counts(dir.as_ref(), &http, &members)
        .await?
        .into_iter()
        .collect();
    println!(
        "{:<20} {:<9} {:>6}  {:>8} {:>8}  {:<22} url",
        "member", "state", "weight", "projects", "users", "certificate expiry"
    );
    for m in members {
        let (projects, users) = match counts.get(&m.id) {
            Some(Ok((p, u))) => (p.to_string(), u.to_string()),
            Some(Err(e)) => {
                eprintln!("{}: tenants unknown: {e}", m.id);
                ("?".into(), "?".into())
            }
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<20} {:<9} {:>6}  {:>8} {:>8}  {:<22} {}",
            m.id.as_str(),
            format!("{:?}", m.status).to_lowercase(),
            m.weight,
            projects,
            users,
            cert_expiry(&m),
            m.url
        );
    }
    Ok(())
}

/// `keyfed shard retire`: retires member `id` if it owns no tenants.
pub async fn retire(config_path: &Path, id: &str) -> anyhow::Result<()> {
    let config = ShardConfig::load(config_path)?;
    let dir = open_directory(config_path).await?;
    let keep = config
        .tokens
        .expiration_secs
        .saturating_add(config.tokens.allow_expired_window_secs);
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    let http = internal_client(&config, Duration::from_secs(30))?;
    let retired = admin::retire(dir.as_ref(), &http, &ShardId::new(id), keep).await?;
    println!(
        "{id} retired; its key stays trusted until unix time {}",
        retired.trusted_until.unwrap_or_default()
    );
    Ok(())
}

/// `keyfed shard revoke`: distrusts a member's keys at once.
pub async fn revoke(config_path: &Path, id: &str) -> anyhow::Result<()> {
    let dir = open_sealed(config_path).await?;
    admin::revoke(&dir, &ShardId::new(id)).await?;
    println!("{id} revoked: its tokens are refused by every member within seconds");
    Ok(())
}

/// The expiry of the certificate of a member's current kid, as text.
fn cert_expiry(m: &Member) -> String {
    let Some(cert) = m.certificates.iter().find(|c| c.kid == m.kid) else {
        return "no certificate".into();
    };
    let expiry = cert.der_bytes().and_then(|der| {
        x509_not_after(&der).and_then(|t| {
            time::OffsetDateTime::from_unix_timestamp(t)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
        })
    });
    expiry.unwrap_or_else(|| "unreadable".into())
}

fn x509_not_after(der: &[u8]) -> Option<i64> {
    keyfed_pki::anchor::not_after(der)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn ca_init_refuses_to_overwrite_and_join_tokens_are_stored_hashed() {
        let tmp = tempfile::tempdir().unwrap();
        let ca_dir = tmp.path().join("ca");
        ca_init(&ca_dir, "test CA", 30).unwrap();
        let key = std::fs::read(ca_dir.join(keyfed_pki::ca::CA_KEY_FILE)).unwrap();
        assert!(ca_init(&ca_dir, "again", 30).is_err());
        assert_eq!(
            std::fs::read(ca_dir.join(keyfed_pki::ca::CA_KEY_FILE)).unwrap(),
            key
        );

        let config = tmp.path().join("shard.toml");
        let text = |ca_key: bool| {
            format!(
                "[server]\ninsecure_plain_http = true\n[trust]\nca_cert = {:?}\n{}\
                 [federation]\nadvertise_url = \"http://127.0.0.1:1\"\n[federation.embedded]\npath = {:?}\n",
                ca_dir.join(keyfed_pki::ca::CA_CERT_FILE),
                if ca_key {
                    format!("ca_key = {:?}\n", ca_dir.join(keyfed_pki::ca::CA_KEY_FILE))
                } else {
                    String::new()
                },
                tmp.path().join("dir")
            )
        };
        // Join tokens are signed with the CA key: only an issuer's config
        // creates them.
        std::fs::write(&config, text(false)).unwrap();
        let refused = join_token_create(&config, "10m").await.unwrap_err();
        assert!(refused.to_string().contains("CA key"), "{refused}");
        std::fs::write(&config, text(true)).unwrap();
        assert!(join_token_create(&config, "2d").await.is_err());
        assert!(join_token_create(&config, "soon").await.is_err());
        let dir = open_directory(&config).await.unwrap();
        let token = credentials::issue(dir.as_ref(), Purpose::Join, now(), 60)
            .await
            .unwrap();
        let stored = dir.kv(Bucket::Credentials).snapshot("join/").await.unwrap();
        assert_eq!(stored.entries.len(), 1);
        let secret = token.split_once('.').unwrap().1;
        assert!(!String::from_utf8_lossy(&stored.entries[0].1.value).contains(secret));
        credentials::consume_join_token(dir.as_ref(), &token, now())
            .await
            .unwrap();
        status(&config).await.unwrap();

        // A founding shard that is no issuer: CSR, signed offline.
        std::fs::write(
            &config,
            format!(
                "[server]\ninsecure_plain_http = true\n[shard]\nid = \"s7\"\n\
                 [tokens]\nsigning_key_file = {:?}\n",
                tmp.path().join("s7-key.pem")
            ),
        )
        .unwrap();
        let csr = shard_csr(&config).unwrap();
        let csr_file = tmp.path().join("s7.csr");
        std::fs::write(&csr_file, &csr).unwrap();
        let out = tmp.path().join("s7.crt");
        assert!(ca_sign_shard(&ca_dir, "s8", &csr_file, &out, 30).is_err());
        ca_sign_shard(&ca_dir, "s7", &csr_file, &out, 30).unwrap();
        assert!(ca_sign_shard(&ca_dir, "s7", &csr_file, &out, 30).is_err());
        let ca = FederationCa::load(&ca_dir).unwrap();
        let der = keyfed_pki::pem_to_der(&std::fs::read_to_string(&out).unwrap()).unwrap();
        let key = keyfed_shard::keys::load_or_create(&tmp.path().join("s7-key.pem")).unwrap();
        assert_eq!(
            ca.cert().verify_signer(&der, "s7", now()).unwrap().key,
            key.verifying_key()
        );
    }
}
