//! An mTLS federation in one process, for transport and join tests: two
//! shards on the embedded store and directory, both issuers, shard-1 also
//! serving joins on a join listener (`[trust] join_listen`), and a gateway
//! serving public TLS from its own CA and calling the shards over mTLS
//! with certificates from the federation CA. Every member checks its TLS
//! files every second (`tls_reload_secs = 1`), for renewal tests.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use keyfed_directory::{Directory, EmbeddedConfig, EmbeddedDirectory};
use keyfed_gateway::config::GatewayConfig;
use keyfed_pki::{FederationCa, MemberKind};
use keyfed_shard::config::{
    BootstrapConfig, FederationConfig, MtlsFiles, ShardConfig, StorageKind, TlsFiles,
};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The admin password of the first shard's bootstrap.
pub const PASSWORD: &str = "tls-test-admin-password";

pub fn now() -> i64 {
    keyfed_shared::time::now_micros() / 1_000_000
}

/// A CA in `<root>/<name>` and the member certificates it issues there.
pub struct Pki {
    /// The CA.
    pub ca: FederationCa,
    /// Its directory (`ca.pem`, `ca-key.pem`, issued files).
    pub dir: PathBuf,
}

impl Pki {
    /// A new CA named `name` in `<root>/<name>`.
    pub fn new(root: &Path, name: &str) -> anyhow::Result<Self> {
        let dir = root.join(name);
        let ca = FederationCa::init(&dir, name, now(), 86_400)?;
        Ok(Self { ca, dir })
    }

    /// The CA certificate file.
    pub fn ca_file(&self) -> PathBuf {
        keyfed_pki::ca::ca_paths(&self.dir).0
    }

    /// Issues member `id`'s TLS files (for 127.0.0.1) into the CA directory.
    pub fn member(&self, kind: MemberKind, id: &str) -> anyhow::Result<MtlsFiles> {
        let paths = self
            .ca
            .issue_tls(kind, id, &["127.0.0.1".to_owned()], now(), 3600)?
            .write(&self.dir, id)?;
        Ok(MtlsFiles {
            ca: self.ca_file(),
            cert: paths.cert,
            key: paths.key,
        })
    }

    /// Issues member `id` a new certificate and key and writes them over
    /// its files (issued by [`Pki::member`]), as a renewal would.
    pub fn renew(&self, kind: MemberKind, id: &str) -> anyhow::Result<()> {
        let issued = self
            .ca
            .issue_tls(kind, id, &["127.0.0.1".to_owned()], now(), 3600)?;
        let paths = self.files(id);
        keyfed_pki::files::replace_private(&paths.cert, issued.cert_pem.as_bytes())?;
        keyfed_pki::files::replace_private(&paths.key, issued.key_pem.as_bytes())?;
        Ok(())
    }

    /// Member `id`'s certificate and key files.
    pub fn files(&self, id: &str) -> TlsFiles {
        TlsFiles {
            cert: self.dir.join(format!("{id}.pem")),
            key: self.dir.join(format!("{id}-key.pem")),
        }
    }
}

/// The leaf certificate (DER) of a PEM file.
pub fn leaf(path: &Path) -> anyhow::Result<Vec<u8>> {
    let certs = keyfed_http::tls::load_certs(path)?;
    Ok(certs.first().context("no certificate")?.as_ref().to_vec())
}

/// The leaf certificate the server at `url` presented to `client` (built
/// by [`client_seeing`]).
pub async fn served_by(client: &reqwest::Client, url: &str) -> anyhow::Result<Vec<u8>> {
    let r = client.get(url).send().await?;
    let info = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .context("no TLS info (a client from client_seeing?)")?;
    Ok(info.peer_certificate().context("no certificate")?.to_vec())
}

/// A client trusting only `ca`, presenting `identity` (certificate and key
/// files) when given.
pub fn client(ca: &Path, identity: Option<&MtlsFiles>) -> anyhow::Result<reqwest::Client> {
    client_builder(ca, identity)?.build().map_err(Into::into)
}

/// [`client`], whose responses say which certificate the server presented
/// ([`served_by`]).
pub fn client_seeing(ca: &Path, identity: Option<&MtlsFiles>) -> anyhow::Result<reqwest::Client> {
    Ok(client_builder(ca, identity)?.tls_info(true).build()?)
}

/// The builder of [`client`] (10 s timeout), for other settings.
pub fn client_builder(
    ca: &Path,
    identity: Option<&MtlsFiles>,
) -> anyhow::Result<reqwest::ClientBuilder> {
    let mut builder = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(ca)?)?)
        .timeout(Duration::from_secs(10));
    if let Some(files) = identity {
        let mut pem = std::fs::read(&files.cert)?;
        pem.extend(std::fs::read(&files.key)?);
        builder = builder.identity(reqwest::Identity::from_pem(&pem)?);
    }
    Ok(builder)
}

/// A listener on a free loopback port.
pub async fn bind() -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    Ok((listener, addr))
}

/// A loopback address with a port that was free a moment ago (for a
/// listener the server binds itself).
pub fn free_port() -> anyhow::Result<SocketAddr> {
    let port = keyfed_directory::testing::free_port()?;
    Ok(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Two mTLS shards and a gateway (public TLS, mTLS to the shards).
pub struct Federation {
    /// The gateway's https URL.
    pub gateway: String,
    /// The shards' https URLs.
    pub shards: Vec<String>,
    /// The embedded directory the members share.
    pub directory: Arc<dyn Directory>,
    /// The same, as an issuer uses it (entries sealed with the CA key):
    /// for tests that issue tokens or change statuses.
    pub issuer: Arc<dyn Directory>,
    /// Its config (for members started later).
    pub directory_config: EmbeddedConfig,
    /// Where shard-1, an issuer, serves joins (`[trust] join_listen`).
    pub join_url: String,
    /// Stops every member when it turns true.
    pub stop: watch::Sender<bool>,
}

impl Drop for Federation {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The config of `shard-<i>`: mTLS, an issuer, on the embedded store.
pub fn shard_config(
    root: &Path,
    i: usize,
    addr: SocketAddr,
    gateway: &str,
    directory: &EmbeddedConfig,
    federation_ca: &Pki,
) -> anyhow::Result<ShardConfig> {
    let id = format!("shard-{i}");
    let url = format!("https://{addr}");
    let mut c = ShardConfig::default();
    c.shard.id = id.clone();
    c.server.listen = addr;
    c.server.public_url = Some(url.clone());
    c.server.shutdown_grace_secs = 1;
    c.server.tls_reload_secs = 1;
    c.internal_tls = Some(federation_ca.member(MemberKind::Shard, &id)?);
    c.storage.kind = StorageKind::Embedded;
    c.storage.path = root.join(&id);
    c.tokens.signing_key_file = root.join(format!("{id}-signing-key.pem"));
    c.password.memory_kib = 64;
    c.password.iterations = 1;
    let identity = Some(format!("{gateway}/v3/"));
    c.bootstrap = Some(BootstrapConfig {
        admin_password: Some(PASSWORD.into()),
        public_url: identity.clone(),
        internal_url: identity.clone(),
        admin_url: identity,
        ..BootstrapConfig::default()
    });
    c.federation = Some(FederationConfig {
        advertise_url: url,
        weight: 1,
        nats: None,
        embedded: Some(directory.clone()),
        name_audit_interval_secs: keyfed_shard::config::DEFAULT_NAME_AUDIT_INTERVAL_SECS,
    });
    let (ca_cert, ca_key) = keyfed_pki::ca::ca_paths(&federation_ca.dir);
    c.trust.ca_cert = Some(ca_cert);
    c.trust.ca_key = Some(ca_key);
    c.validate().context("the test shard's config")?;
    Ok(c)
}

/// Two mTLS shards (issuers; shard-1 also serves joins on a join
/// listener) and a gateway (public TLS from `public_ca`, mTLS to the
/// shards).
pub async fn start(
    root: &Path,
    federation_ca: &Pki,
    public_ca: &Pki,
) -> anyhow::Result<Federation> {
    let directory_config = EmbeddedConfig::new(root.join("directory"));
    let directory: Arc<dyn Directory> = Arc::new(EmbeddedDirectory::open(&directory_config)?);
    let (gateway_listener, gateway_addr) = bind().await?;
    let gateway = format!("https://{gateway_addr}");
    let (stop, stopped) = watch::channel(false);
    let join_addr = free_port()?;
    let mut shards = Vec::new();
    for i in 1..=2 {
        let (listener, addr) = bind().await?;
        let mut config = shard_config(root, i, addr, &gateway, &directory_config, federation_ca)?;
        if i == 1 {
            config.trust.join_listen = Some(join_addr);
            config.validate()?;
        }
        shards.push(config.public_url());
        let state = keyfed_shard::server::build_with_directory(config, Some(directory.clone()))
            .await
            .with_context(|| format!("starting shard-{i}"))?;
        let mut stopped = stopped.clone();
        tokio::spawn(keyfed_shard::server::serve_state(
            state,
            listener,
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        ));
    }

    let mut config = GatewayConfig::default();
    config.server.listen = gateway_addr;
    config.server.public_url = Some(gateway.clone());
    config.server.shutdown_grace_secs = 1;
    config.server.tls_reload_secs = 1;
    config.admin.public_metrics = true;
    // A server's certificate (gateway certificates only serve clients).
    let public = public_ca.member(MemberKind::Shard, "public")?;
    config.server.tls = Some(TlsFiles {
        cert: public.cert,
        key: public.key,
    });
    config.internal_tls = Some(federation_ca.member(MemberKind::Gateway, "gw-1")?);
    config.trust.ca_cert = Some(federation_ca.ca_file());
    config.directory.embedded = Some(directory_config.clone());
    config.validate()?;
    let mut stopped = stopped.clone();
    tokio::spawn(keyfed_gateway::server::run_with_directory(
        config,
        directory.clone(),
        gateway_listener,
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        },
    ));
    let issuer = crate::gateway::as_issuer(
        directory.clone(),
        &keyfed_pki::FederationCa::load(&federation_ca.dir)?,
    )?;
    let federation = Federation {
        gateway,
        shards,
        issuer,
        directory,
        directory_config,
        join_url: format!("https://{join_addr}"),
        stop,
    };
    let http = client(&public_ca.ca_file(), None)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http
            .get(format!("{}/readyz", federation.gateway))
            .send()
            .await;
        if matches!(&r, Ok(r) if r.status() == reqwest::StatusCode::OK) {
            return Ok(federation);
        }
        if Instant::now() > deadline {
            bail!("the gateway never became ready over https: {r:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Joins `shard-<i>` to `fed` through shard-1's join listener with only
/// the CA certificate and a fresh join token (its TLS certificate comes
/// with the join), serves it until `fed` stops, and waits until it is
/// active; returns its record.
pub async fn join_shard(
    root: &Path,
    fed: &Federation,
    federation_ca: &Pki,
    i: usize,
) -> anyhow::Result<keyfed_shared::federation::Member> {
    use keyfed_directory::Bucket;
    use keyfed_shared::federation::{Member, MemberStatus};
    let (listener, addr) = bind().await?;
    let mut c = shard_config(
        root,
        i,
        addr,
        &fed.gateway,
        &fed.directory_config,
        federation_ca,
    )?;
    let id = c.shard.id.clone();
    let tls_dir = root.join(format!("{id}-tls"));
    c.internal_tls = Some(MtlsFiles {
        ca: federation_ca.ca_file(),
        cert: tls_dir.join("tls.pem"),
        key: tls_dir.join("tls-key.pem"),
    });
    c.trust.ca_key = None;
    c.bootstrap = None;
    c.validate()?;
    let dir = fed.issuer.as_ref();
    let token = keyfed_federation::lifecycle::credentials::issue(
        dir,
        keyfed_pki::join_token::Purpose::Join,
        now(),
        600,
    )
    .await?;
    keyfed_shard::federation::enrol::enrol(&c, &fed.join_url, &token).await?;
    let state = keyfed_shard::server::build_with_directory(c, Some(fed.directory.clone())).await?;
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
        let entry = dir.kv(Bucket::Members).get(&id).await?;
        let member: Option<Member> = entry
            .map(|e| serde_json::from_slice(&e.value))
            .transpose()?;
        match member {
            Some(m) if m.status == MemberStatus::Active => return Ok(m),
            _ if Instant::now() > deadline => bail!("{id} never turned active"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The bootstrap admin's token (project `admin`) through gateway `gw`.
pub async fn login(http: &reqwest::Client, gw: &str) -> anyhow::Result<String> {
    let login = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "domain": {"id": "default"}, "password": PASSWORD}}},
        "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}
    }});
    let r = http
        .post(format!("{gw}/v3/auth/tokens"))
        .json(&login)
        .send()
        .await?;
    anyhow::ensure!(r.status() == 201, "login: {}", r.status());
    Ok(r.headers()
        .get("x-subject-token")
        .context("no X-Subject-Token")?
        .to_str()?
        .to_owned())
}
