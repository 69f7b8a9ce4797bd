//! `keyfed dev`: a whole federation in one process on embedded storage — a
//! gateway at `--listen` in front of `--shards` shards on loopback ports,
//! sharing one embedded directory — bootstrapped, with the admin's
//! credentials printed as `export OS_...` lines. The admin password is
//! generated on first start and kept in the data directory, so data and
//! credentials survive restarts.
//!
//! Transport is **plain HTTP** on loopback (`insecure_plain_http` for the
//! gateway, its calls to shards and the shards), and the start-up banner
//! says so: `keyfed dev` is for trying keyfed on one host; deployments
//! configure TLS and mTLS (docs/example-*.toml).
//!
//! Trust works as in production: a dev CA is created in `<data>/ca` on
//! first start (key 0600), every shard is an issuer certifying its own
//! signing key, and shards and gateway trust only keys the CA certifies.

use anyhow::Context;
use keyfed_directory::{Directory, EmbeddedConfig, EmbeddedDirectory};
use keyfed_gateway::config::GatewayConfig;
use keyfed_shard::config::{BootstrapConfig, FederationConfig, ShardConfig, StorageKind};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

fn admin_password(data: &Path) -> anyhow::Result<String> {
    let path = data.join("admin-password");
    match std::fs::read_to_string(&path) {
        Ok(p) => Ok(p.trim().to_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let password = uuid::Uuid::new_v4().simple().to_string();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options
                .open(&path)
                .with_context(|| format!("creating {}", path.display()))?;
            file.write_all(password.as_bytes())?;
            Ok(password)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The dev CA in `<data>/ca`, created on first start.
fn dev_ca(data: &Path) -> anyhow::Result<PathBuf> {
    let dir = data.join("ca");
    let (cert, _) = keyfed_pki::ca::ca_paths(&dir);
    if !cert.exists() {
        let now = keyfed_shared::time::now_micros() / 1_000_000;
        keyfed_pki::FederationCa::init(&dir, "keyfed dev CA", now, 3650 * 86_400)
            .context("creating the dev CA")?;
    }
    Ok(dir)
}

fn shard_config(
    i: usize,
    addr: SocketAddr,
    data: &Path,
    directory: &EmbeddedConfig,
    gateway_url: &str,
    password: &str,
) -> ShardConfig {
    let url = format!("http://{addr}");
    let mut config = ShardConfig::default();
    config.shard.id = format!("shard-{i}");
    config.server.listen = addr;
    config.server.public_url = Some(url.clone());
    // Plain HTTP on loopback: `keyfed dev` is for trying keyfed on one host.
    config.server.insecure_plain_http = true;
    config.storage.kind = StorageKind::Embedded;
    config.storage.path = data.join(format!("shard-{i}"));
    config.tokens.signing_key_file = data.join(format!("shard-{i}-signing-key.pem"));
    let identity = Some(format!("{gateway_url}/v3/"));
    config.bootstrap = Some(BootstrapConfig {
        admin_password: Some(password.to_owned()),
        public_url: identity.clone(),
        internal_url: identity.clone(),
        admin_url: identity,
        ..BootstrapConfig::default()
    });
    config.federation = Some(FederationConfig {
        advertise_url: url,
        weight: 1,
        nats: None,
        embedded: Some(directory.clone()),
        name_audit_interval_secs: keyfed_shard::config::DEFAULT_NAME_AUDIT_INTERVAL_SECS,
    });
    let (ca_cert, ca_key) = keyfed_pki::ca::ca_paths(&data.join("ca"));
    config.trust.ca_cert = Some(ca_cert);
    config.trust.ca_key = Some(ca_key);
    config
}

/// Runs the development federation until `shutdown`.
pub async fn run(
    listen: SocketAddr,
    data: PathBuf,
    shards: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=16).contains(&shards),
        "--shards must be between 1 and 16"
    );
    keyfed_directory::private_files::create_private_dir(&data)
        .with_context(|| format!("creating {}", data.display()))?;
    let password = admin_password(&data)?;
    let ca = dev_ca(&data)?;
    let gateway_url = format!("http://{listen}");
    let gateway_listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let dir_config = EmbeddedConfig::new(data.join("directory"));
    let directory: Arc<dyn Directory> =
        Arc::new(EmbeddedDirectory::open(&dir_config).context("opening the embedded directory")?);

    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    // One after the other: the first shard bootstraps the admin.
    for i in 1..=shards {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let config = shard_config(i, addr, &data, &dir_config, &gateway_url, &password);
        let state = keyfed_shard::server::build_with_directory(config, Some(directory.clone()))
            .await
            .with_context(|| format!("starting shard-{i}"))?;
        let mut stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let until = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            if let Err(e) = keyfed_shard::server::serve_state(state, listener, until).await {
                tracing::error!(error = %e, "shard stopped");
            }
        }));
        tracing::info!(shard = i, %addr, "shard serving");
    }

    let mut gateway = GatewayConfig::default();
    gateway.server.listen = listen;
    gateway.server.public_url = Some(gateway_url.clone());
    gateway.server.insecure_plain_http = true;
    gateway.upstream.insecure_plain_http = true;
    gateway.trust.ca_cert = Some(keyfed_pki::ca::ca_paths(&ca).0);
    // Loopback only: metrics at the one URL a newcomer has, explicitly.
    gateway.admin.public_metrics = true;
    println!(
        "# keyfed dev: Keystone v3 at {gateway_url}/v3 — a gateway over {shards} shard(s); data in {}",
        data.display()
    );
    println!(
        "# plain HTTP on loopback, for trying keyfed only; deployments use TLS and mTLS (docs/example-gateway.toml)"
    );
    println!("# metrics: {gateway_url}/metrics (deployments serve them on [admin] listen)");
    println!("export OS_AUTH_URL={gateway_url}/v3");
    println!("export OS_IDENTITY_API_VERSION=3");
    println!("export OS_USERNAME=admin");
    println!("export OS_PASSWORD={password}");
    println!("export OS_PROJECT_NAME=admin");
    println!("export OS_USER_DOMAIN_NAME=Default");
    println!("export OS_PROJECT_DOMAIN_NAME=Default");
    println!("export OS_REGION_NAME=RegionOne");
    std::io::stdout().flush()?;
    let outcome =
        keyfed_gateway::server::run_with_directory(gateway, directory, gateway_listener, shutdown)
            .await;
    let _ = stop.send(true);
    for t in tasks {
        let _ = t.await;
    }
    outcome.map_err(Into::into)
}
