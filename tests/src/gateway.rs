//! A federation in one process: a real nats-server, N federated shards
//! (each on a fresh PostgreSQL database, `TestShard::start_with`) and one or
//! more gateways on real sockets running `keyfed_gateway::run`. Each
//! gateway gets its own thread and runtime, like the shards.
//!
//! Trust is the production one: a test CA ([`TestCa`]), every shard an
//! issuer certifying its own signing key, gateways trusting the CA only.
//!
//! For tests that reach inside the processes (their metrics, a shard's
//! store, a directory client next to them). End-to-end scenarios run the
//! real binary instead: [`crate::cluster`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use keyfed_directory::testing::NatsServer;
use keyfed_directory::{Directory, NatsConfig, NatsDirectory};
use keyfed_federation::view::Trust;
use keyfed_federation::FederationView;
use keyfed_gateway::config::{
    DirectoryConfig, GatewayConfig, ServerConfig, TrustConfig, UpstreamConfig,
};
use keyfed_pki::FederationCa;
use keyfed_shard::config::{FederationConfig, ShardConfig};
use std::path::PathBuf;
use tokio::sync::oneshot;

use crate::shard::TestShard;
use crate::through::Gateways;

/// The upstream request timeout the test gateways use.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// A federation CA in a temporary directory (`ca.pem`, `ca-key.pem`).
pub struct TestCa {
    /// The CA certificate file.
    pub cert: PathBuf,
    /// The CA key file (mode 0600).
    pub key: PathBuf,
    /// The CA, to issue or verify in tests.
    pub ca: FederationCa,
    _dir: tempfile::TempDir,
}

/// `raw` as an issuer holding `ca` uses it: what it writes is sealed with
/// the CA key (join and admin tokens, status attestations, member records)
/// and what it reads is checked, as `keyfed` administration commands do.
pub fn as_issuer(raw: Arc<dyn Directory>, ca: &FederationCa) -> anyhow::Result<Arc<dyn Directory>> {
    use keyfed_federation::seal::{EntryCheck, EntrySigner, SealedDirectory, Signers};
    let check = EntryCheck::new(Some(Arc::new(ca.cert().clone())))?;
    let signers = Signers::new(None, Some(EntrySigner::Ca(ca.entry_signing_key()?)));
    Ok(SealedDirectory::wrap(raw, check, Arc::new(signers)))
}

impl TestCa {
    /// `raw` as an issuer of this CA uses it (see [`as_issuer`]).
    pub fn issuer_directory(&self, raw: Arc<dyn Directory>) -> anyhow::Result<Arc<dyn Directory>> {
        as_issuer(raw, &self.ca)
    }

    /// Creates a CA valid for ten years.
    pub fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let now = keyfed_shared::time::now_micros() / 1_000_000;
        let ca = FederationCa::init(dir.path(), "keyfed test CA", now, 3650 * 86_400)?;
        let (cert, key) = keyfed_pki::ca::ca_paths(dir.path());
        Ok(Self {
            cert,
            key,
            ca,
            _dir: dir,
        })
    }

    /// Makes `config` an issuer of this CA (it certifies its own key).
    pub fn issuer(&self, config: &mut ShardConfig) {
        config.trust.ca_cert = Some(self.cert.clone());
        config.trust.ca_key = Some(self.key.clone());
    }

    /// Starts shard `id`, federated on `nats` (weight 1) and an issuer of
    /// this CA, on a fresh database.
    pub async fn federated_shard(&self, id: &str, nats: &NatsConfig) -> anyhow::Result<TestShard> {
        let nats = nats.clone();
        let id = id.to_owned();
        let (ca_cert, ca_key) = (self.cert.clone(), self.key.clone());
        TestShard::start_with(move |c| {
            c.shard.id = id;
            c.trust.ca_cert = Some(ca_cert);
            c.trust.ca_key = Some(ca_key);
            c.federation = Some(FederationConfig {
                advertise_url: c.public_url(),
                weight: 1,
                nats: Some(nats),
                embedded: None,
                name_audit_interval_secs: keyfed_shard::config::DEFAULT_NAME_AUDIT_INTERVAL_SECS,
            });
        })
        .await
    }

    /// Makes `config` trust this CA without being an issuer.
    pub fn trusting(&self, config: &mut ShardConfig) {
        config.trust.ca_cert = Some(self.cert.clone());
    }

    /// The view trust of this CA.
    pub fn trust(&self) -> Trust {
        Trust::Ca(Arc::new(self.ca.cert().clone()))
    }
}

/// A running gateway; dropping it shuts it down.
pub struct TestGateway {
    /// Base URL (no trailing slash).
    pub url: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<std::thread::JoinHandle<()>>,
}

impl TestGateway {
    /// Starts a gateway on the directory `nats` trusting member keys as
    /// recorded, without a CA (`insecure_registry_trust`: for tests of
    /// federations without a CA only), and waits until it is ready.
    pub async fn start(nats: &NatsConfig) -> anyhow::Result<Self> {
        Self::start_trusting(
            nats,
            TrustConfig {
                ca_cert: None,
                insecure_registry_trust: true,
            },
        )
        .await
    }

    /// Starts a gateway on the directory `nats` trusting the CA of `ca`.
    pub async fn start_with_ca(nats: &NatsConfig, ca: &TestCa) -> anyhow::Result<Self> {
        Self::start_trusting(
            nats,
            TrustConfig {
                ca_cert: Some(ca.cert.clone()),
                insecure_registry_trust: false,
            },
        )
        .await
    }

    /// Starts a gateway on the directory `nats` with `trust` and waits
    /// until `/readyz` answers 200.
    pub async fn start_trusting(nats: &NatsConfig, trust: TrustConfig) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        let config = GatewayConfig {
            server: ServerConfig {
                listen: addr,
                public_url: Some(url.clone()),
                shutdown_grace_secs: 1,
                // Plain HTTP on loopback; TLS has its own tests.
                insecure_plain_http: true,
                ..ServerConfig::default()
            },
            directory: DirectoryConfig {
                nats: Some(nats.clone()),
                embedded: None,
            },
            upstream: UpstreamConfig {
                request_timeout_ms: UPSTREAM_TIMEOUT.as_millis() as u64,
                connect_timeout_ms: 500,
                insecure_plain_http: true,
                ..UpstreamConfig::default()
            },
            trust,
            // In process, tests read `/metrics` where they call (the
            // process harness uses admin listeners).
            admin: keyfed_http::admin::AdminConfig {
                public_metrics: true,
                ..Default::default()
            },
            ..GatewayConfig::default()
        };
        let (shutdown, rx) = oneshot::channel::<()>();
        let server = std::thread::Builder::new()
            .name(format!("gateway-{}", addr.port()))
            .spawn(move || {
                let Ok(runtime) = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                else {
                    return;
                };
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    let stop = async move {
                        let _ = rx.await;
                    };
                    if let Err(e) = keyfed_gateway::run(config, listener, stop).await {
                        eprintln!("gateway stopped: {e}");
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(2));
            })?;
        let gateway = Self {
            url,
            shutdown: Some(shutdown),
            server: Some(server),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = http.get(format!("{}/readyz", gateway.url)).send().await;
            if matches!(&r, Ok(r) if r.status() == reqwest::StatusCode::OK) {
                return Ok(gateway);
            }
            if Instant::now() > deadline {
                bail!("the gateway at {} never became ready: {r:?}", gateway.url);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The sum of a counter family in `/metrics` (e.g.
    /// `keyfed_gateway_upstream_requests_total`).
    pub async fn metric_sum(&self, name: &str) -> anyhow::Result<f64> {
        let text = reqwest::get(format!("{}/metrics", self.url))
            .await?
            .text()
            .await?;
        Ok(crate::through::metric_family_sum(&text, name))
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.server.take() {
            let _ = t.join();
        }
    }
}

/// NATS, federated shards and gateways.
pub struct TestFederation {
    /// The shards, `shard-0` … (a test may take one out to stop it).
    pub shards: Vec<Option<TestShard>>,
    /// The gateways.
    pub gateways: Vec<TestGateway>,
    /// A view of the directory, to check placement.
    pub view: Arc<FederationView>,
    /// The bootstrap admin's password (user `admin`, lives on `shard-0`).
    pub admin_password: String,
    /// The directory settings every process uses.
    pub directory: NatsConfig,
    /// A client with a per-request timeout.
    pub http: reqwest::Client,
    /// The federation CA every process trusts (every shard is an issuer).
    pub ca: TestCa,
    /// The NATS server.
    pub nats: NatsServer,
}

impl TestFederation {
    /// Starts NATS, `n_shards` federated shards and one gateway.
    pub async fn start(n_shards: usize) -> anyhow::Result<Self> {
        Self::start_with(n_shards, 1).await
    }

    /// Starts NATS, `n_shards` federated shards and `n_gateways` gateways,
    /// and waits until every gateway sees every member.
    pub async fn start_with(n_shards: usize, n_gateways: usize) -> anyhow::Result<Self> {
        let nats = NatsServer::start()?;
        let namespace = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let directory = NatsConfig {
            namespace,
            timeout_ms: 1_000,
            ..NatsConfig::new(nats.url())
        };
        let ca = TestCa::new()?;
        let mut shards = Vec::new();
        for i in 0..n_shards {
            let shard = ca
                .federated_shard(&format!("shard-{i}"), &directory)
                .await
                .with_context(|| format!("starting shard-{i}"))?;
            shards.push(Some(shard));
        }
        let admin_password = shards
            .first()
            .and_then(|s| s.as_ref())
            .map(|s| s.admin_password.clone())
            .context("at least one shard is needed")?;
        let dir = Arc::new(NatsDirectory::connect(&directory).await?);
        let view = FederationView::start_with_trust(dir, ca.trust()).await?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while view.members().len() < n_shards || view.ring().is_none() {
            if Instant::now() > deadline {
                bail!("only {} members registered", view.members().len());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut gateways = Vec::new();
        for _ in 0..n_gateways {
            gateways.push(TestGateway::start_with_ca(&directory, &ca).await?);
        }
        let federation = Self {
            shards,
            gateways,
            view,
            admin_password,
            directory,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            ca,
            nats,
        };
        // Every shard must trust every other's key before tests rely on
        // cross-shard tokens.
        let admin = federation.admin_token(0).await?;
        for shard in federation.shards.iter().flatten() {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let (status, _) = shard.validate_token(&admin, &admin).await?;
                if status == reqwest::StatusCode::OK {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("{} never trusted shard-0's key ({status})", shard.url);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(federation)
    }

    /// The URL of gateway `i`.
    pub fn gateway(&self, i: usize) -> &str {
        &self.gateways[i].url
    }

    /// The running shard with id `shard-<i>`.
    pub fn shard(&self, id: &str) -> Option<&TestShard> {
        let i: usize = id.strip_prefix("shard-")?.parse().ok()?;
        self.shards.get(i)?.as_ref()
    }
}

impl crate::through::Gateways for TestFederation {
    fn http(&self) -> &reqwest::Client {
        &self.http
    }

    fn gateway_url(&self, g: usize) -> &str {
        self.gateway(g)
    }

    fn admin_password(&self) -> &str {
        &self.admin_password
    }
}
