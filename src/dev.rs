//! `keyfed dev`: a shard on the embedded store, bootstrapped, with the
//! admin's credentials printed as `export OS_...` lines. The admin password
//! is generated on first start and kept in the data directory, so data and
//! credentials survive restarts.

use anyhow::Context;
use keyfed_shard::config::{BootstrapConfig, ShardConfig, StorageKind};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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

/// Runs the development federation until `shutdown`.
pub async fn run(
    listen: SocketAddr,
    data: PathBuf,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let password = admin_password(&data)?;
    let url = format!("http://{listen}");
    let mut config = ShardConfig::default();
    config.server.listen = listen;
    config.server.public_url = Some(url.clone());
    config.storage.kind = StorageKind::Embedded;
    config.storage.path = data.join("shard-1");
    config.tokens.signing_key_file = data.join("shard-1-signing-key.pem");
    config.bootstrap = Some(BootstrapConfig {
        admin_password: Some(password.clone()),
        ..BootstrapConfig::default()
    });
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    println!(
        "# keyfed dev: Keystone v3 at {url}/v3 (data in {})",
        data.display()
    );
    println!("export OS_AUTH_URL={url}/v3");
    println!("export OS_IDENTITY_API_VERSION=3");
    println!("export OS_USERNAME=admin");
    println!("export OS_PASSWORD={password}");
    println!("export OS_PROJECT_NAME=admin");
    println!("export OS_USER_DOMAIN_NAME=Default");
    println!("export OS_PROJECT_DOMAIN_NAME=Default");
    println!("export OS_REGION_NAME=RegionOne");
    std::io::stdout().flush()?;
    keyfed_shard::run(config, listener, shutdown).await?;
    Ok(())
}
