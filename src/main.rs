//! The `keyfed` binary: parses the command line and config, then hands over
//! to the library crates. Kept thin on purpose.

mod admin;
mod dev;
mod nats_creds;

use anyhow::Context;
use clap::{Parser, Subcommand};
use keyfed_directory::nats::access::Role;
use keyfed_shard::config::ShardConfig;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "keyfed",
    version,
    about = "A sharded OpenStack Identity (Keystone v3) federation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a shard: a Keystone v3 server for the tenants it owns (or, with
    /// a subcommand, administer one).
    #[command(subcommand_negates_reqs = true, args_conflicts_with_subcommands = true)]
    Shard {
        #[command(subcommand)]
        command: Option<ShardCommand>,
        /// The shard's TOML config file.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Join the federation first, through this issuer member's URL:
        /// generate the signing key, obtain its certificate, then run.
        #[arg(long, requires = "join_token")]
        join: Option<String>,
        /// The join token (`keyfed join-token create`), with `--join`.
        #[arg(long, requires = "join")]
        join_token: Option<String>,
        /// With `--join`: how long to keep retrying, in seconds, while
        /// another shard is joining (shards join one at a time).
        #[arg(long, default_value_t = 600, requires = "join")]
        join_wait_secs: u64,
    },
    /// Run a gateway: one Keystone v3 endpoint in front of the federation.
    Gateway {
        /// The gateway's TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Create the default domain, roles, admin user and project, and the
    /// identity endpoints (idempotent), then exit.
    Bootstrap {
        /// The shard's TOML config file (its `[bootstrap]` section is used).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// The federation CA.
    Ca {
        #[command(subcommand)]
        command: CaCommand,
    },
    /// The directory's NATS identities and their permissions.
    Nats {
        #[command(subcommand)]
        command: NatsCommand,
    },
    /// Join tokens, for shards joining the federation.
    JoinToken {
        #[command(subcommand)]
        command: JoinTokenCommand,
    },
    /// Show the federation's members: state, weight, certificate expiry.
    Status {
        /// A shard config file naming the directory (`[federation]`).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run a whole federation (a gateway over N shards) in one process on
    /// embedded storage, for trying keyfed out.
    Dev {
        /// Number of shards behind the gateway.
        #[arg(long, default_value_t = 3)]
        shards: usize,
        /// Address to serve the Keystone API on.
        #[arg(long, default_value = "127.0.0.1:5000")]
        listen: std::net::SocketAddr,
        /// Directory for data (survives restarts).
        #[arg(long, default_value = "./keyfed-dev")]
        data: PathBuf,
    },
}

#[derive(Subcommand)]
enum ShardCommand {
    /// Print a CSR for this shard's token-signing key (created, mode 0600,
    /// when missing), for `keyfed ca sign-shard`.
    Csr {
        /// The shard's TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Rebuild this shard's part of the membership index from its store:
    /// queues every user holding an assignment here, and every user the
    /// index says is here, for the shard's relay to rewrite their entries.
    Reindex {
        /// The shard's TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Retire a member that owns no tenants: it takes no new ones, and its
    /// key stays trusted until the last token it signed expires. Refused
    /// (and the member left active) while it owns tenants.
    Retire {
        /// The member's id.
        id: String,
        /// A shard config file naming the directory (`[federation]`); its
        /// token lifetimes bound how long the retired key stays trusted.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Revoke a member at once (compromised or lost): its keys stop being
    /// trusted everywhere within seconds and it takes no new tenants; the
    /// tenants it owns become unreachable.
    Revoke {
        /// The member's id.
        id: String,
        /// A shard config file naming the directory (`[federation]`).
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum NatsCommand {
    /// Generate NATS identities (one nkey seed per process, mode 0600,
    /// never overwritten) in `--dir`, and write `nats-authorization.conf`
    /// there: every identity in the directory with its least-privilege
    /// permissions, to include in nats-server.conf. Run it again with a new
    /// `--shard` when a shard joins, then `nats-server --signal reload`.
    Creds {
        /// Directory of the seeds and the generated config.
        #[arg(long)]
        dir: PathBuf,
        /// The federation's namespace (`[federation.nats] namespace`).
        #[arg(long, default_value = "keyfed")]
        namespace: String,
        /// A shard that is no issuer (its id); repeatable.
        #[arg(long)]
        shard: Vec<String>,
        /// A shard holding the CA key (its id); repeatable.
        #[arg(long)]
        issuer: Vec<String>,
        /// A gateway (any name); repeatable.
        #[arg(long)]
        gateway: Vec<String>,
        /// An operators' identity with every right (any name); repeatable.
        #[arg(long)]
        admin: Vec<String>,
    },
}

#[derive(Subcommand)]
enum CaCommand {
    /// Create the federation CA: `ca.pem` and `ca-key.pem` (mode 0600) in
    /// `--dir`. Refuses to overwrite an existing CA.
    Init {
        /// Directory to write the CA into.
        #[arg(long)]
        dir: PathBuf,
        /// The CA's common name.
        #[arg(long, default_value = "keyfed federation CA")]
        name: String,
        /// Validity in days.
        #[arg(long, default_value_t = 3650)]
        validity_days: u32,
    },
    /// Issue a member's TLS certificate for internal mTLS (serverAuth and
    /// clientAuth; names `keyfed:<kind>:<name>` and the hosts): writes
    /// `<out>/<name>.pem` and `<out>/<name>-key.pem` (mode 0600). Refuses
    /// to overwrite.
    IssueTls {
        /// The CA directory (`ca.pem`, `ca-key.pem`).
        #[arg(long)]
        dir: PathBuf,
        /// The member's id (a shard id, or a gateway's name).
        #[arg(long)]
        name: String,
        /// `shard` or `gateway`.
        #[arg(long, default_value = "shard")]
        kind: String,
        /// A DNS name or IP address of the member's advertise URL
        /// (repeatable; at least one for a shard).
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Directory to write the certificate and key into.
        #[arg(long)]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        validity_days: u32,
    },
    /// Sign a shard's token-signing certificate from its CSR (`keyfed
    /// shard csr`), for founding shards that are not issuers: writes the
    /// certificate (PEM) to `--out`. Refuses to overwrite.
    SignShard {
        /// The CA directory (`ca.pem`, `ca-key.pem`).
        #[arg(long)]
        dir: PathBuf,
        /// The shard's id (the CSR must name it).
        #[arg(long)]
        shard: String,
        /// The CSR file (PEM).
        #[arg(long)]
        csr: PathBuf,
        /// Where to write the certificate (give it to the shard as
        /// `[trust] certificate`).
        #[arg(long)]
        out: PathBuf,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        validity_days: u32,
    },
}

#[derive(Subcommand)]
enum JoinTokenCommand {
    /// Print a new single-use join token (only its hash is stored).
    Create {
        /// How long it stays valid (e.g. 10m, 1h; at most 24h).
        #[arg(long, default_value = "10m")]
        ttl: String,
        /// A shard config file naming the directory (`[federation]`).
        #[arg(long, short)]
        config: PathBuf,
    },
}

fn init_logging(format: &str, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Shard {
            command: Some(ShardCommand::Csr { config }),
            ..
        } => print!("{}", admin::shard_csr(&config)?),
        Command::Nats {
            command:
                NatsCommand::Creds {
                    dir,
                    namespace,
                    shard,
                    issuer,
                    gateway,
                    admin: admins,
                },
        } => {
            let wanted = [
                (Role::Shard, shard),
                (Role::Issuer, issuer),
                (Role::Gateway, gateway),
                (Role::Admin, admins),
            ];
            let conf = nats_creds::generate(&dir, &namespace, &wanted)?;
            println!(
                "wrote {}\ninclude it in nats-server.conf (include \"{}\"), then: nats-server --signal reload\n\
                 each process names its seed: nkey_seed_file = \"{}/<role>-<id>.nk\"",
                conf.display(),
                conf.display(),
                dir.display()
            );
        }
        Command::Shard {
            command: Some(ShardCommand::Reindex { config }),
            ..
        } => {
            init_logging("text", "warn");
            admin::reindex(&config).await?;
        }
        Command::Shard {
            command: Some(ShardCommand::Revoke { id, config }),
            ..
        } => {
            init_logging("text", "warn");
            admin::revoke(&config, &id).await?;
        }
        Command::Shard {
            command: Some(ShardCommand::Retire { id, config }),
            ..
        } => {
            init_logging("text", "warn");
            admin::retire(&config, &id).await?;
        }
        Command::Shard {
            command: None,
            config,
            join,
            join_token,
            join_wait_secs,
        } => {
            let config = config.context("--config is required")?;
            let config = ShardConfig::load(&config)?;
            init_logging(&config.log.format, &config.log.level);
            if let (Some(url), Some(token)) = (join, join_token) {
                keyfed_shard::federation::enrol::enrol_waiting(
                    &config,
                    &url,
                    &token,
                    std::time::Duration::from_secs(join_wait_secs),
                )
                .await?;
            }
            let listener = tokio::net::TcpListener::bind(config.server.listen)
                .await
                .with_context(|| format!("binding {}", config.server.listen))?;
            tracing::info!(addr = %config.server.listen, shard = %config.shard.id, "shard listening");
            keyfed_shard::run(config, listener, shutdown_signal()).await?;
        }
        Command::Bootstrap { config } => {
            let config = ShardConfig::load(&config)?;
            init_logging(&config.log.format, &config.log.level);
            if config.bootstrap.is_none() {
                anyhow::bail!("config field `bootstrap`: the config has no [bootstrap] section");
            }
            let state = keyfed_shard::server::build(config).await?;
            drop(state);
            println!("bootstrap complete");
        }
        Command::Gateway { config } => {
            let text = std::fs::read_to_string(&config)
                .with_context(|| format!("reading {}", config.display()))?;
            let config = keyfed_gateway::config::GatewayConfig::from_toml(&text)?;
            init_logging("text", "info");
            let listener = tokio::net::TcpListener::bind(config.server.listen)
                .await
                .with_context(|| format!("binding {}", config.server.listen))?;
            tracing::info!(addr = %config.server.listen, "gateway listening");
            keyfed_gateway::server::run(config, listener, shutdown_signal()).await?;
        }
        Command::Ca {
            command:
                CaCommand::Init {
                    dir,
                    name,
                    validity_days,
                },
        } => admin::ca_init(&dir, &name, validity_days)?,
        Command::Ca {
            command:
                CaCommand::IssueTls {
                    dir,
                    name,
                    kind,
                    hosts,
                    out,
                    validity_days,
                },
        } => admin::ca_issue_tls(&dir, &kind, &name, &hosts, &out, validity_days)?,
        Command::Ca {
            command:
                CaCommand::SignShard {
                    dir,
                    shard,
                    csr,
                    out,
                    validity_days,
                },
        } => admin::ca_sign_shard(&dir, &shard, &csr, &out, validity_days)?,
        Command::JoinToken {
            command: JoinTokenCommand::Create { ttl, config },
        } => {
            init_logging("text", "warn");
            admin::join_token_create(&config, &ttl).await?;
        }
        Command::Status { config } => {
            init_logging("text", "warn");
            admin::status(&config).await?;
        }
        Command::Dev {
            listen,
            data,
            shards,
        } => {
            init_logging("text", "info");
            dev::run(listen, data, shards, shutdown_signal()).await?;
        }
    }
    Ok(())
}
