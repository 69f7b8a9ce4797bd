//! A federation of real processes, run the way an operator runs one: its
//! own `nats-server` (on a free port, so a test can stop and restart it), N
//! `keyfed shard` processes, each on its own fresh PostgreSQL database, and
//! M `keyfed gateway` processes, all configured by TOML files written to a
//! temporary directory.
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use keyfed_tests::cluster::Cluster;
//! let mut cluster = Cluster::builder().shards(3).gateways(2).start().await?;
//! let admin = cluster.admin_token(0).await?;
//! cluster.kill_shard(1);
//! cluster.restart_shard(1).await?;
//! cluster.stop_nats();
//! cluster.restart_nats()?;
//! # Ok(()) }
//! ```
//!
//! `Cluster::builder().nats_cluster(3)` runs NATS as a 3-node JetStream
//! cluster instead (routes on loopback, a store per node, the same
//! authorization on every node), every process is given all three URLs
//! and the directory's buckets and stream are created with 3 replicas;
//! [`Cluster::kill_nats_node`] and [`Cluster::restart_nats_node`] fail one
//! node.
//!
//! Start-up: `keyfed bootstrap --config shard-0.toml` creates the admin
//! (shard-0's config also keeps its `[bootstrap]` section, so a restart
//! re-runs it idempotently, as documented for operators), then the shards
//! start, then — once every shard is registered in the directory and trusts
//! every other's key — the gateways. The catalog's identity endpoint is
//! gateway 0, as an operator registers it. Each process's stdout and stderr
//! go to `<name>.log` in the temporary directory; a failed start reports the
//! log's tail, and a test that panics prints every process's tail and keeps
//! the directory (and the databases) for inspection. Dropping the cluster
//! kills the processes and drops the databases.
//!
//! The binary is `$KEYFED_BIN`, else `keyfed` in the directory of the
//! running test executable's profile (`target/<profile>/keyfed`), which
//! `scripts/test` builds before the suite (`cargo build --bin keyfed`).
//!
//! The harness's own view trusts member keys as the processes do (the
//! cluster's CA), so a record no certificate of the CA vouches for is in
//! neither's ring.
//!
//! Here: start-up, configs, stopping and restarting; `lifecycle.rs`: the
//! operator's CLI — join tokens, shards joining through a member
//! ([`Cluster::join_shard`]), `keyfed status`, `keyfed shard retire`;
//! `process.rs`: the binary, ports, child processes and their logs;
//! `client.rs`: requests through the gateways.

mod client;
mod lifecycle;
mod nats_access;
mod process;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use keyfed_directory::nats::access::Role;
use keyfed_directory::testing::NatsCluster;
use keyfed_directory::{NatsConfig, NatsDirectory};
use keyfed_federation::view::Trust;
use keyfed_federation::FederationView;
use keyfed_pki::MemberKind;
use keyfed_shard::config::MtlsFiles;
use keyfed_shared::ids::ProjectId;

use crate::keystone::Keystone;
use crate::through::Gateways;
use crate::tls::Pki;
pub use lifecycle::{CliOutput, StatusRow};
pub(crate) use process::free_port;
pub use process::{keyfed_binary, KEYFED_BIN_ENV};
use process::{Process, READY_TIMEOUT};

/// The upstream request timeout the gateways are configured with.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);
/// The upstream connect timeout the gateways are configured with.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// The bound on every directory call (`timeout_ms` of `[*.nats]`).
pub const DIRECTORY_TIMEOUT: Duration = Duration::from_secs(1);

/// How long `keyfed bootstrap` may run.
const BOOTSTRAP_TIMEOUT: Duration = Duration::from_secs(60);

/// A TOML basic string.
/// `[internal_tls]` naming `files`.
fn mtls_section(files: &MtlsFiles) -> String {
    format!(
        "[internal_tls]\nca = {}\ncert = {}\nkey = {}\n",
        toml_str(&files.ca.to_string_lossy()),
        toml_str(&files.cert.to_string_lossy()),
        toml_str(&files.key.to_string_lossy()),
    )
}

fn toml_str(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A `keyfed shard` process.
pub struct ShardProcess {
    /// The shard id, `shard-<i>`.
    pub id: String,
    /// Base URL (no trailing slash); the same across restarts.
    pub url: String,
    /// Its admin listener's base URL (`/metrics`; `[admin] listen`).
    pub admin_url: String,
    /// The libpq connection string of its database.
    pub database: String,
    /// Whether the harness made `database` (and drops it).
    owns_database: bool,
    /// Its config file.
    pub config: PathBuf,
    /// A founding member (an issuer: it certifies its own key); else it
    /// joined with `keyfed shard --join`.
    founder: bool,
    process: Process,
}

/// A `keyfed gateway` process.
pub struct GatewayProcess {
    /// Base URL (no trailing slash).
    pub url: String,
    /// Its admin listener's base URL (`/metrics`; `[admin] listen`).
    pub admin_url: String,
    /// Its config file.
    pub config: PathBuf,
    process: Process,
}

/// What to start; see [`Cluster::builder`].
#[derive(Clone, Debug)]
pub struct ClusterBuilder {
    shards: usize,
    gateways: usize,
    shard_env: Vec<(String, String)>,
    internal_mtls: bool,
    name_audit_interval_secs: Option<u64>,
    nats_nodes: usize,
    shard_stores: Vec<(usize, String)>,
}

impl ClusterBuilder {
    /// Number of shard processes (default 3).
    pub fn shards(mut self, n: usize) -> Self {
        self.shards = n;
        self
    }

    /// Number of gateway processes (default 1).
    pub fn gateways(mut self, n: usize) -> Self {
        self.gateways = n;
        self
    }

    /// An environment variable for every shard process (failpoints).
    pub fn shard_env(mut self, key: &str, value: &str) -> Self {
        self.shard_env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Internal mTLS, as production runs: shards serve `https` with
    /// `[internal_tls]` (a certificate of the cluster's CA each, naming
    /// `keyfed:shard:<id>`), gateways call them presenting a gateway
    /// certificate, and the harness's own client presents one too
    /// (`harness`, kind gateway). Gateways stay plain HTTP for clients.
    /// Joins are not supported in this mode.
    pub fn internal_mtls(mut self) -> Self {
        self.internal_mtls = true;
        self
    }

    /// Every shard's `[federation] name_audit_interval_secs`.
    pub fn name_audit_interval_secs(mut self, secs: u64) -> Self {
        self.name_audit_interval_secs = Some(secs);
        self
    }

    /// NATS as a JetStream cluster of `nodes` servers, with the directory's
    /// buckets and stream replicated on all of them (default 1: one plain
    /// server, replicas 1).
    pub fn nats_cluster(mut self, nodes: usize) -> Self {
        self.nats_nodes = nodes;
        self
    }

    /// Shard `i`'s store connection string, instead of a fresh database on
    /// `KEYFED_TEST_PG` (a primary with its standby, say). The harness does
    /// not drop it.
    pub fn shard_store(mut self, i: usize, url: &str) -> Self {
        self.shard_stores.push((i, url.to_owned()));
        self
    }

    /// Starts everything and waits until it is ready.
    pub async fn start(self) -> anyhow::Result<Cluster> {
        Cluster::start(self).await
    }
}

/// NATS, shard processes and gateway processes.
pub struct Cluster {
    /// The shards, `shard-0` …
    pub shards: Vec<ShardProcess>,
    /// The gateways.
    pub gateways: Vec<GatewayProcess>,
    /// The harness's own view of the directory (to check placement).
    pub view: Arc<FederationView>,
    /// The bootstrap admin's password (user `admin`, project `admin`, on
    /// `shard-0`).
    pub admin_password: String,
    /// The directory settings every process uses.
    pub directory: NatsConfig,
    /// A client with a per-request timeout.
    pub http: reqwest::Client,
    binary: PathBuf,
    nats: NatsCluster,
    /// The federation CA (in the cluster's directory).
    pki: Pki,
    /// Shards serve internal mTLS ([`ClusterBuilder::internal_mtls`]).
    internal_mtls: bool,
    /// Extra lines of every shard's `[federation]` section.
    federation_extra: String,
    /// The NATS identities issued to the processes.
    access: nats_access::NatsAccess,
    dir: Option<tempfile::TempDir>,
}

impl Cluster {
    /// A builder: `Cluster::builder().shards(3).gateways(2).start()`.
    pub fn builder() -> ClusterBuilder {
        ClusterBuilder {
            shards: 3,
            gateways: 1,
            shard_env: Vec::new(),
            internal_mtls: false,
            name_audit_interval_secs: None,
            nats_nodes: 1,
            shard_stores: Vec::new(),
        }
    }

    async fn start(spec: ClusterBuilder) -> anyhow::Result<Self> {
        anyhow::ensure!(spec.shards >= 1, "a cluster needs at least one shard");
        let binary = keyfed_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("keyfed-cluster")
            .tempdir()?;
        let namespace = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        // nats-server enforces each process's permissions from the start:
        // the identities of the founders and gateways are issued up front,
        // joiners' and late gateways' when they come (and NATS reloads).
        let mut access = nats_access::NatsAccess::new(dir.path().join("nats"), &namespace)?;
        let (harness_seed, _) = access.seed(Role::Admin, "harness")?;
        for i in 0..spec.shards {
            access.seed(Role::Issuer, &format!("shard-{i}"))?;
        }
        for i in 0..spec.gateways {
            access.seed(Role::Gateway, &format!("gateway-{i}"))?;
        }
        let nats = NatsCluster::start(spec.nats_nodes, Some(access.conf()))
            .context("starting nats-server")?;
        let directory = NatsConfig {
            namespace,
            timeout_ms: DIRECTORY_TIMEOUT.as_millis() as u64,
            reconnect_max_delay_ms: 500,
            replicas: spec.nats_nodes.min(5),
            nkey_seed_file: Some(harness_seed),
            ..NatsConfig::new(nats.urls())
        };
        // The federation CA, before anything trusts it — the harness's view
        // included: it trusts member keys as the processes do, so a record
        // no certificate of the CA vouches for is in neither's ring.
        let now = keyfed_shared::time::now_micros() / 1_000_000;
        let pki = Pki {
            dir: dir.path().join("ca"),
            ca: keyfed_pki::FederationCa::init(
                &dir.path().join("ca"),
                "keyfed test CA",
                now,
                3650 * 86_400,
            )?,
        };
        let trust = Trust::Ca(Arc::new(pki.ca.cert().clone()));
        let http = if spec.internal_mtls {
            let harness = pki.member(MemberKind::Gateway, "harness")?;
            crate::tls::client_builder(&harness.ca, Some(&harness))?
        } else {
            reqwest::Client::builder()
        }
        .timeout(Duration::from_secs(30));
        let mut cluster = Self {
            shards: Vec::new(),
            gateways: Vec::new(),
            view: FederationView::start_with_trust(
                Arc::new(NatsDirectory::connect(&directory).await?),
                trust,
            )
            .await?,
            admin_password: uuid::Uuid::new_v4().simple().to_string(),
            directory,
            http: http.build()?,
            binary,
            nats,
            pki,
            internal_mtls: spec.internal_mtls,
            federation_extra: spec
                .name_audit_interval_secs
                .map(|s| format!("name_audit_interval_secs = {s}\n"))
                .unwrap_or_default(),
            access,
            dir: Some(dir),
        };

        // Gateway ports first: gateway 0 is the catalog's identity endpoint.
        let gateway_urls: Vec<String> = (0..spec.gateways)
            .map(|_| Ok(format!("http://127.0.0.1:{}", free_port()?)))
            .collect::<anyhow::Result<_>>()?;
        let identity = gateway_urls.first().cloned();

        for i in 0..spec.shards {
            let given = spec.shard_stores.iter().find(|(s, _)| *s == i);
            let database = match given {
                Some((_, url)) => url.clone(),
                None => crate::pg::fresh_database()
                    .await
                    .with_context(|| format!("creating shard-{i}'s database"))?,
            };
            let id = format!("shard-{i}");
            let config = cluster.dir()?.join(format!("{id}.toml"));
            let mut process = Process::new(
                &id,
                &cluster.binary,
                &["shard", "--config", &config.to_string_lossy()],
                cluster.dir()?,
            );
            process.env = spec.shard_env.clone();
            cluster.shards.push(ShardProcess {
                id,
                url: String::new(),
                admin_url: String::new(),
                database,
                owns_database: given.is_none(),
                config,
                founder: true,
                process,
            });
        }
        for i in 0..spec.shards {
            let port = free_port()?;
            cluster.write_shard_config(i, port, identity.as_deref())?;
        }

        // The operator's first step: bootstrap, then run.
        cluster.bootstrap().await?;
        for i in 0..spec.shards {
            cluster.shards[i].process.spawn()?;
        }
        for i in 0..spec.shards {
            cluster.wait_shard_ready(i, identity.as_deref()).await?;
        }
        cluster.wait_federated().await?;

        for url in gateway_urls {
            cluster.spawn_gateway(url)?;
        }
        let http = cluster.http.clone();
        for g in &mut cluster.gateways {
            let url = g.url.clone();
            g.process.wait_ready(&http, &url).await?;
        }
        // Every gateway validates the admin's token before tests start.
        if !cluster.gateways.is_empty() {
            let admin = cluster.admin_token(0).await?;
            for g in 0..cluster.gateways.len() {
                cluster
                    .wait_for(
                        Duration::from_secs(20),
                        "the gateway to trust shard-0",
                        || {
                            let admin = admin.clone();
                            let c = &cluster;
                            async move { c.validate(g, &admin, &admin).await.ok() == Some(200) }
                        },
                    )
                    .await?;
            }
        }
        Ok(cluster)
    }

    fn dir(&self) -> anyhow::Result<&Path> {
        Ok(self
            .dir
            .as_ref()
            .context("the cluster is shut down")?
            .path())
    }

    /// `[trust]`: the cluster's federation CA (in its directory); issuers
    /// (the founding shards) certify their own keys with its key.
    fn trust_section(&self, issuer: bool) -> anyhow::Result<String> {
        let (cert, key) = keyfed_pki::ca::ca_paths(&self.dir()?.join("ca"));
        let mut text = format!("[trust]\nca_cert = {}\n", toml_str(&cert.to_string_lossy()));
        if issuer {
            text.push_str(&format!("ca_key = {}\n", toml_str(&key.to_string_lossy())));
        }
        text.push('\n');
        Ok(text)
    }

    /// `[…nats]` for the process of `role` `id`: the cluster's server and
    /// namespace, and that process's own nkey (issued, and the server
    /// reloaded, if it is new).
    fn nats_section(&mut self, role: Role, id: &str) -> anyhow::Result<String> {
        let (seed, new) = self.access.seed(role, id)?;
        if new {
            self.nats
                .reload_authorization(self.access.conf())
                .context("reloading nats-server's authorization")?;
        }
        let d = &self.directory;
        Ok(format!(
            "url = {}\nnamespace = {}\ntimeout_ms = {}\nreconnect_max_delay_ms = {}\nreplicas = {}\nnkey_seed_file = {}\n",
            toml_str(&d.url),
            toml_str(&d.namespace),
            d.timeout_ms,
            d.reconnect_max_delay_ms,
            d.replicas,
            toml_str(&seed.to_string_lossy()),
        ))
    }

    /// Writes shard `i`'s config for `port`; shard-0's carries the
    /// bootstrap section, with `identity` as the catalog's identity URL.
    /// Founders are issuers (`[trust] ca_key`); joiners trust the CA only.
    fn write_shard_config(
        &mut self,
        i: usize,
        port: u16,
        identity: Option<&str>,
    ) -> anyhow::Result<()> {
        let scheme = if self.internal_mtls { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{port}");
        let transport = if self.internal_mtls {
            let id = self.shards[i].id.clone();
            mtls_section(&self.member_tls(MemberKind::Shard, &id)?)
        } else {
            "# Plain HTTP on loopback (TLS has its own tests).\n".to_owned()
        };
        let plain = if self.internal_mtls {
            ""
        } else {
            "insecure_plain_http = true\n"
        };
        let admin = format!("127.0.0.1:{}", free_port()?);
        let shard = &self.shards[i];
        let key = self.dir()?.join(format!("{}-signing-key.pem", shard.id));
        let mut text = format!(
            "# Written by keyfed-tests (tests/src/cluster.rs).\n\
             [server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = {url_s}\nshutdown_grace_secs = 1\n\
             {plain}\n{transport}\n\
             [admin]\nlisten = \"{admin}\"\n\n\
             [shard]\nid = {id}\n\n\
             [storage]\nkind = \"postgres\"\nurl = {db}\npool_size = 4\n\n\
             [tokens]\nsigning_key_file = {key}\n\n\
             # Cheap hashes: tests verify behaviour, not hashing cost.\n\
             [password]\nmemory_kib = 64\niterations = 1\nparallelism = 1\nmax_concurrent = 4\n\n\
             [log]\nlevel = \"info\"\n\n",
            url_s = toml_str(&url),
            id = toml_str(&shard.id),
            db = toml_str(&shard.database),
            key = toml_str(&key.to_string_lossy()),
        );
        if i == 0 {
            text.push_str(&format!(
                "[bootstrap]\nadmin_password = {}\n",
                toml_str(&self.admin_password)
            ));
            if let Some(gateway) = identity {
                let endpoint = toml_str(&format!("{gateway}/v3/"));
                text.push_str(&format!(
                    "public_url = {endpoint}\ninternal_url = {endpoint}\nadmin_url = {endpoint}\n"
                ));
            }
            text.push('\n');
        }
        let founder = self.shards[i].founder;
        text.push_str(&self.trust_section(founder)?);
        let role = if founder { Role::Issuer } else { Role::Shard };
        let id = self.shards[i].id.clone();
        text.push_str(&format!(
            "[federation]\nadvertise_url = {}\nweight = 1\n{}\n[federation.nats]\n{}",
            toml_str(&url),
            self.federation_extra.clone(),
            self.nats_section(role, &id)?
        ));
        keyfed_shard::config::ShardConfig::from_toml_str(&text)
            .with_context(|| format!("the harness wrote a bad config for shard-{i}:\n{text}"))?;
        std::fs::write(&self.shards[i].config, text)?;
        self.shards[i].url = url;
        self.shards[i].admin_url = format!("http://{admin}");
        Ok(())
    }

    /// Writes gateway `g`'s config; returns its admin listener's URL.
    fn write_gateway_config(&mut self, g: usize, path: &Path, url: &str) -> anyhow::Result<String> {
        let listen = url.trim_start_matches("http://");
        let admin = format!("127.0.0.1:{}", free_port()?);
        let nats = self.nats_section(Role::Gateway, &format!("gateway-{g}"))?;
        let (upstream, transport) = if self.internal_mtls {
            let files = self.member_tls(MemberKind::Gateway, &format!("gateway-{g}"))?;
            (String::new(), mtls_section(&files))
        } else {
            ("insecure_plain_http = true\n".to_owned(), String::new())
        };
        let text = format!(
            "# Written by keyfed-tests (tests/src/cluster.rs).\n\
             [server]\nlisten = {listen}\npublic_url = {url}\nshutdown_grace_secs = 1\n\
             insecure_plain_http = true\n\n\
             [admin]\nlisten = {admin_s}\n\n\
             [directory.nats]\n{nats}\n\
             [upstream]\nrequest_timeout_ms = {request}\nconnect_timeout_ms = {connect}\n\
             {upstream}\n{transport}\n{trust}",
            trust = self.trust_section(false)?,
            listen = toml_str(listen),
            admin_s = toml_str(&admin),
            url = toml_str(url),
            request = UPSTREAM_TIMEOUT.as_millis(),
            connect = CONNECT_TIMEOUT.as_millis(),
        );
        keyfed_gateway::config::GatewayConfig::from_toml(&text)
            .with_context(|| format!("the harness wrote a bad gateway config:\n{text}"))?;
        std::fs::write(path, text)?;
        Ok(format!("http://{admin}"))
    }

    /// `keyfed bootstrap --config shard-0.toml`, to completion.
    async fn bootstrap(&mut self) -> anyhow::Result<()> {
        let config = self.shards[0].config.to_string_lossy().into_owned();
        let mut process = Process::new(
            "bootstrap",
            &self.binary,
            &["bootstrap", "--config", &config],
            self.dir()?,
        );
        process.spawn()?;
        let deadline = Instant::now() + BOOTSTRAP_TIMEOUT;
        loop {
            if let Some(status) = process.exited() {
                process.child = None;
                if !status.success() {
                    bail!(
                        "keyfed bootstrap failed ({status}); its log ends:\n{}",
                        process.tail()
                    );
                }
                let log = std::fs::read_to_string(&process.log).unwrap_or_default();
                if !log.contains("bootstrap complete") {
                    bail!("keyfed bootstrap did not report completion:\n{log}");
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "keyfed bootstrap still running after {BOOTSTRAP_TIMEOUT:?}; its log ends:\n{}",
                    process.tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for shard `i`; if it could not bind its port (taken since it
    /// was picked), moves it to another one, before it ever registered.
    async fn wait_shard_ready(&mut self, i: usize, identity: Option<&str>) -> anyhow::Result<()> {
        let http = self.http.clone();
        for _ in 0..3 {
            let url = self.shards[i].url.clone();
            match self.shards[i].process.wait_ready(&http, &url).await {
                Ok(()) => return Ok(()),
                Err(e)
                    if self.shards[i]
                        .process
                        .tail()
                        .contains("Address already in use") =>
                {
                    eprintln!("{}: port taken, trying another: {e:#}", self.shards[i].id);
                    let port = free_port()?;
                    self.write_shard_config(i, port, identity)?;
                    self.shards[i].process.spawn()?;
                }
                Err(e) => return Err(e),
            }
        }
        bail!("{} found no free port", self.shards[i].id)
    }

    /// Waits until every shard is a member, the ring covers them all, and
    /// every shard trusts every member's key.
    async fn wait_federated(&self) -> anyhow::Result<()> {
        let n = self.shards.len();
        self.wait_for(
            Duration::from_secs(20),
            "every shard to register",
            || async { self.view.members().len() == n && self.view.ring().is_some() },
        )
        .await?;
        let shard0 = self.shard_keystone(0);
        let admin = shard0.admin_token().await?.id;
        for (i, shard) in self.shards.iter().enumerate() {
            let client = self.shard_keystone(i);
            self.wait_for(
                Duration::from_secs(20),
                &format!("{} to trust shard-0's key", shard.id),
                || async {
                    matches!(client.validate_token(&admin, &admin).await,
                             Ok((s, _)) if s == reqwest::StatusCode::OK)
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Polls `check` every 20 ms until it holds; an error after `limit`.
    /// Returns how long it took.
    pub async fn wait_for<F, Fut>(
        &self,
        limit: Duration,
        what: &str,
        check: F,
    ) -> anyhow::Result<Duration>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        eventually(limit, what, check).await
    }

    /// Writes gateway `gateways.len()`'s config for `url` and starts it
    /// (not waiting for it).
    fn spawn_gateway(&mut self, url: String) -> anyhow::Result<()> {
        let i = self.gateways.len();
        let config = self.dir()?.join(format!("gateway-{i}.toml"));
        let admin_url = self.write_gateway_config(i, &config, &url)?;
        let mut process = Process::new(
            &format!("gateway-{i}"),
            &self.binary,
            &["gateway", "--config", &config.to_string_lossy()],
            self.dir()?,
        );
        process.spawn()?;
        self.gateways.push(GatewayProcess {
            url,
            admin_url,
            config,
            process,
        });
        Ok(())
    }

    /// Starts one more gateway, late (it loads the directory's snapshot
    /// and follows from there), and waits until it is ready; its index.
    pub async fn add_gateway(&mut self) -> anyhow::Result<usize> {
        let url = format!("http://127.0.0.1:{}", free_port()?);
        self.spawn_gateway(url.clone())?;
        let http = self.http.clone();
        let g = self.gateways.len() - 1;
        self.gateways[g].process.wait_ready(&http, &url).await?;
        Ok(g)
    }

    /// Kills shard `i` (SIGKILL, as a crash): its port stops answering.
    pub fn kill_shard(&mut self, i: usize) {
        self.shards[i].process.kill();
    }

    /// Starts shard `i` again — same config, database and port — and waits
    /// until it is ready.
    pub async fn restart_shard(&mut self, i: usize) -> anyhow::Result<()> {
        let http = self.http.clone();
        let shard = &mut self.shards[i];
        shard.process.spawn()?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let url = shard.url.clone();
            match shard.process.wait_ready(&http, &url).await {
                Ok(()) => return Ok(()),
                // The killed process's socket may linger a moment.
                Err(_)
                    if shard.process.tail().contains("Address already in use")
                        && Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    shard.process.spawn()?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends shard `i` a signal (`HUP`: reload its TLS files now).
    pub fn signal_shard(&self, i: usize, signal: &str) -> anyhow::Result<()> {
        self.shards[i].process.signal(signal)
    }

    /// Stops shard `i` (SIGSTOP: hung, its connections open).
    pub fn pause_shard(&self, i: usize) -> anyhow::Result<()> {
        self.shards[i].process.signal("STOP")
    }

    /// Lets shard `i` go on (SIGCONT).
    pub fn resume_shard(&self, i: usize) -> anyhow::Result<()> {
        self.shards[i].process.signal("CONT")
    }

    /// Shard `i`'s whole log.
    pub fn shard_log(&self, i: usize) -> String {
        self.shards[i].process.log_text()
    }

    /// Kills gateway `g` (SIGKILL).
    pub fn kill_gateway(&mut self, g: usize) {
        self.gateways[g].process.kill();
    }

    /// Starts gateway `g` again on its port and waits until it is ready.
    pub async fn restart_gateway(&mut self, g: usize) -> anyhow::Result<()> {
        let http = self.http.clone();
        let gateway = &mut self.gateways[g];
        gateway.process.spawn()?;
        let url = gateway.url.clone();
        gateway.process.wait_ready(&http, &url).await
    }

    /// Kills nats-server — every node of a NATS cluster (their JetStream
    /// stores stay).
    pub fn stop_nats(&mut self) {
        self.nats.kill_all();
    }

    /// Starts nats-server (every node down) again on the same ports and
    /// stores.
    pub fn restart_nats(&mut self) -> anyhow::Result<()> {
        self.nats.restart_all().context("restarting nats-server")
    }

    /// The NATS servers (one, or the nodes of `nats_cluster`).
    pub fn nats(&self) -> &NatsCluster {
        &self.nats
    }

    /// Kills NATS node `i` (SIGKILL, as a crash; its store stays).
    pub fn kill_nats_node(&mut self, i: usize) {
        self.nats.kill(i);
    }

    /// Starts NATS node `i` again on its ports and store; it rejoins the
    /// cluster (catching up is the caller's to wait for).
    pub fn restart_nats_node(&mut self, i: usize) -> anyhow::Result<()> {
        self.nats
            .restart(i)
            .with_context(|| format!("restarting NATS node {i}"))
    }

    /// The URL of gateway `g`.
    pub fn gateway(&self, g: usize) -> &str {
        &self.gateways[g].url
    }

    /// Gateway `g` as a Keystone endpoint (for the real-client suites).
    pub fn keystone(&self, g: usize) -> anyhow::Result<Keystone> {
        Keystone::new(self.gateway(g), self.admin_password.clone())
    }

    /// Shard `i` as a Keystone endpoint, called by the harness's client
    /// (over mTLS with the harness's gateway certificate, if the cluster
    /// runs it).
    pub fn shard_keystone(&self, i: usize) -> Keystone {
        Keystone::with_client(
            self.shards[i].url.clone(),
            self.admin_password.clone(),
            self.http.clone(),
        )
    }

    /// The internal TLS files of member `id` of `kind`, issued by the
    /// cluster's CA the first time they are asked for.
    pub fn member_tls(&self, kind: MemberKind, id: &str) -> anyhow::Result<MtlsFiles> {
        let files = MtlsFiles {
            ca: self.pki.ca_file(),
            cert: self.pki.dir.join(format!("{id}.pem")),
            key: self.pki.dir.join(format!("{id}-key.pem")),
        };
        if files.cert.exists() {
            return Ok(files);
        }
        self.pki.member(kind, id)
    }

    /// The shard with id `shard-<i>`.
    pub fn shard(&self, id: &str) -> Option<&ShardProcess> {
        self.shards.iter().find(|s| s.id == id)
    }

    /// The id of the shard owning `project`, by the directory.
    pub fn owner_of_project(&self, project: &str) -> anyhow::Result<String> {
        self.view
            .owner_of_project(&ProjectId::new(project))
            .map(|s| s.to_string())
            .with_context(|| format!("no owner for project {project}"))
    }

    /// The tail of every process's log, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let processes = self
            .shards
            .iter()
            .map(|s| &s.process)
            .chain(self.gateways.iter().map(|g| &g.process));
        for p in processes {
            out.push_str(&format!(
                "---- {} ({}):\n{}\n",
                p.name,
                p.log.display(),
                p.tail()
            ));
        }
        out
    }
}

impl Drop for Cluster {
    /// Kills the processes and drops the databases — unless the test is
    /// panicking: then it prints each log's tail and leaves the logs and
    /// databases for inspection.
    fn drop(&mut self) {
        for g in &mut self.gateways {
            g.process.kill();
        }
        for s in &mut self.shards {
            s.process.kill();
        }
        if std::thread::panicking() {
            eprintln!(
                "==== keyfed-tests: the cluster's logs ====\n{}",
                self.logs()
            );
            if let Some(dir) = self.dir.take() {
                eprintln!("logs and configs left in {}", dir.keep().display());
            }
            for s in &self.shards {
                eprintln!("{}'s database left for inspection: {}", s.id, s.database);
            }
            return;
        }
        let databases: Vec<String> = self
            .shards
            .iter()
            .filter(|s| s.owns_database)
            .map(|s| s.database.clone())
            .collect();
        // Drop may run inside the test's runtime, which cannot block on
        // another future: use a thread with its own runtime.
        let dropped = std::thread::spawn(move || -> anyhow::Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                for db in &databases {
                    crate::pg::drop_database(db).await?;
                }
                Ok(())
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!("could not drop a cluster database: {e:#}");
        }
    }
}

/// Polls `check` every 20 ms until it holds; an error naming `what` after
/// `limit`. Returns how long it took.
pub async fn eventually<F, Fut>(
    limit: Duration,
    what: &str,
    mut check: F,
) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            bail!("waited {limit:?} for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
