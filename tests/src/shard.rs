//! One shard server on a free loopback port, backed by a brand-new
//! PostgreSQL database and bootstrapped with an admin user, project and
//! catalog — the same `keyfed_shard::server::run` that `keyfed` runs.
//!
//! The server gets its own thread and Tokio runtime, so a test can block,
//! use any runtime flavour, or drive it from a child process without
//! starving it. Dropping the [`TestShard`] shuts it down.

use crate::keystone::Keystone;
pub use crate::keystone::Token;
use crate::python::OpenStack;
use anyhow::{bail, Context};
use keyfed_shard::config::{
    BootstrapConfig, PasswordConfig, ServerConfig, ShardConfig, StorageConfig, StorageKind,
    TokenConfig,
};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long a shard may take to answer `GET /healthz` after start.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running shard.
pub struct TestShard {
    /// Base URL, e.g. `http://127.0.0.1:40123` (no trailing slash).
    pub url: String,
    /// The bootstrap admin's password (user `admin`, project `admin`, domain
    /// `Default`).
    pub admin_password: String,
    /// The libpq connection string of this shard's database.
    pub database: String,
    keystone: Keystone,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

impl TestShard {
    /// Starts a shard and waits until it answers `GET /healthz`.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// Starts a shard whose config `customize` adjusts (e.g. to federate it).
    pub async fn start_with(customize: impl FnOnce(&mut ShardConfig)) -> anyhow::Result<Self> {
        init_logging();
        let database = crate::pg::fresh_database()
            .await
            .context("creating the shard's database")?;
        let dir = tempfile::tempdir()?;
        let admin_password = uuid::Uuid::new_v4().simple().to_string();

        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");

        let mut config = ShardConfig {
            server: ServerConfig {
                listen: addr,
                public_url: Some(url.clone()),
                shutdown_grace_secs: 1,
                // Tests on loopback; TLS has its own tests (transport_tls).
                insecure_plain_http: true,
                ..ServerConfig::default()
            },
            storage: StorageConfig {
                kind: StorageKind::Postgres,
                url: database.clone(),
                pool_size: 4,
                ..StorageConfig::default()
            },
            tokens: TokenConfig {
                signing_key_file: dir.path().join("signing-key.pem"),
                ..TokenConfig::default()
            },
            // Cheap hashes: tests verify behaviour, not hashing cost.
            password: PasswordConfig {
                memory_kib: 64,
                iterations: 1,
                parallelism: 1,
                max_concurrent: 4,
            },
            bootstrap: Some(BootstrapConfig {
                admin_password: Some(admin_password.clone()),
                ..BootstrapConfig::default()
            }),
            // In process, tests read `/metrics` where they call (the
            // process harness uses admin listeners).
            admin: keyfed_http::admin::AdminConfig {
                public_metrics: true,
                ..Default::default()
            },
            ..ShardConfig::default()
        };
        customize(&mut config);
        config.validate().context("the test shard's config")?;

        let (shutdown, shutdown_rx) = oneshot::channel::<()>();
        let server = std::thread::Builder::new()
            .name(format!("shard-{}", addr.port()))
            .spawn(move || -> anyhow::Result<()> {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()?;
                let outcome = runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    keyfed_shard::server::run(config, listener, async move {
                        // A dropped sender means the same as a sent signal.
                        let _ = shutdown_rx.await;
                    })
                    .await
                    .context("keyfed_shard::server::run")
                });
                runtime.shutdown_timeout(Duration::from_secs(2));
                outcome
            })?;

        let keystone = Keystone::new(url.clone(), admin_password.clone())?;
        let mut shard = Self {
            url,
            admin_password,
            database,
            keystone,
            shutdown: Some(shutdown),
            server: None,
            _dir: dir,
        };

        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if server.is_finished() {
                let outcome = server
                    .join()
                    .map_err(|_| anyhow::anyhow!("the shard server thread panicked"))?;
                outcome.context("the shard stopped during start-up")?;
                bail!("the shard stopped during start-up without an error");
            }
            let health = shard
                .http()
                .get(format!("{}/healthz", shard.url))
                .send()
                .await;
            if matches!(&health, Ok(r) if r.status() == reqwest::StatusCode::OK) {
                shard.server = Some(server);
                return Ok(shard);
            }
            if Instant::now() > deadline {
                bail!(
                    "the shard at {} did not answer GET /healthz with 200 within {START_TIMEOUT:?} \
                     (last answer: {health:?})",
                    shard.url
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The endpoint as the real-client suites drive it.
    pub fn keystone(&self) -> &Keystone {
        &self.keystone
    }

    /// The `OS_*` variables of the bootstrap admin, scoped to project `admin`.
    pub fn os_env(&self) -> Vec<(String, String)> {
        self.keystone.os_env()
    }

    /// The `openstack` CLI as the bootstrap admin.
    pub fn openstack(&self) -> anyhow::Result<OpenStack> {
        self.keystone.openstack()
    }

    /// The `openstack` CLI as another user (domain `Default`).
    pub fn openstack_as(
        &self,
        user: &str,
        password: &str,
        project: &str,
    ) -> anyhow::Result<OpenStack> {
        self.keystone.openstack_as(user, password, project)
    }

    /// An HTTP client with a per-request timeout.
    pub fn http(&self) -> &reqwest::Client {
        self.keystone.http()
    }

    /// Issues a project-scoped token by password (user and project of
    /// domain `Default`).
    pub async fn token(&self, user: &str, password: &str, project: &str) -> anyhow::Result<Token> {
        self.keystone.token(user, password, project).await
    }

    /// A token of the bootstrap admin, scoped to project `admin`.
    pub async fn admin_token(&self) -> anyhow::Result<Token> {
        self.keystone.admin_token().await
    }

    /// `GET /v3/auth/tokens` validating `subject` with `auth`; returns the
    /// status and body.
    pub async fn validate_token(
        &self,
        auth: &str,
        subject: &str,
    ) -> anyhow::Result<(reqwest::StatusCode, String)> {
        self.keystone.validate_token(auth, subject).await
    }
}

impl Drop for TestShard {
    /// Stops the server and drops its database, unless the test is
    /// panicking (a failed assertion): then the database stays for
    /// inspection.
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = server.join();
        }
        if std::thread::panicking() {
            eprintln!("test shard database left for inspection: {}", self.database);
            return;
        }
        // Drop may run inside the test's runtime, which cannot block on
        // another future: use a thread with its own runtime.
        let database = self.database.clone();
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(crate::pg::drop_database(&database)))
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop the test shard database: {e:#}");
        }
    }
}

/// Sends server logs to the test's captured output (once per process);
/// `RUST_LOG` overrides the default filter.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
