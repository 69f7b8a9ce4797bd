//! The federation lifecycle as an operator drives it, with the real CLI:
//! join tokens, shards joining through a member (`keyfed shard --join`),
//! `keyfed status` and `keyfed shard retire`.

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use keyfed_shared::federation::MemberStatus;
use keyfed_shared::ids::ShardId;

use super::{free_port, Cluster, Process, ShardProcess};

/// How long a joined shard may take to turn itself active.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// What a `keyfed` command printed.
#[derive(Clone, Debug)]
pub struct CliOutput {
    /// It exited with status 0.
    pub success: bool,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// One member line of `keyfed status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusRow {
    /// The member id.
    pub id: String,
    /// `joining`, `active`, `retiring` or `retired`.
    pub state: String,
    /// Projects it owns (`?` if it could not tell, `-` if not asked).
    pub projects: String,
    /// Users homed there.
    pub users: String,
}

impl Cluster {
    /// Runs `keyfed ARGS` to completion.
    pub async fn cli(&self, args: &[&str]) -> anyhow::Result<CliOutput> {
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("RUST_BACKTRACE");
        let out = tokio::task::spawn_blocking(move || command.output())
            .await?
            .context("running keyfed")?;
        Ok(CliOutput {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs `keyfed ARGS --config shard-0.toml`; its stdout, or an error
    /// with its stderr if it failed.
    pub async fn cli_ok(&self, args: &[&str]) -> anyhow::Result<String> {
        let config = self.shards[0].config.to_string_lossy().into_owned();
        let mut all = args.to_vec();
        all.extend(["--config", &config]);
        let out = self.cli(&all).await?;
        if !out.success {
            bail!("keyfed {all:?} failed:\n{}{}", out.stdout, out.stderr);
        }
        Ok(out.stdout)
    }

    /// `keyfed join-token create --ttl 10m`: a new single-use join token.
    pub async fn join_token(&self) -> anyhow::Result<String> {
        let out = self
            .cli_ok(&["join-token", "create", "--ttl", "10m"])
            .await?;
        Ok(out.trim().to_owned())
    }

    /// `keyfed status`, one row per member.
    pub async fn status(&self) -> anyhow::Result<Vec<StatusRow>> {
        let out = self.cli_ok(&["status"]).await?;
        let mut rows = Vec::new();
        for line in out.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 5 {
                bail!("unexpected `keyfed status` line {line:?} in:\n{out}");
            }
            rows.push(StatusRow {
                id: cols[0].to_owned(),
                state: cols[1].to_owned(),
                projects: cols[3].to_owned(),
                users: cols[4].to_owned(),
            });
        }
        Ok(rows)
    }

    /// `keyfed status`'s row for member `id`.
    pub async fn status_of(&self, id: &str) -> anyhow::Result<StatusRow> {
        self.status()
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .with_context(|| format!("`keyfed status` does not list {id}"))
    }

    /// `keyfed shard retire ID`, as the operator runs it (not checked).
    pub async fn retire(&self, id: &str) -> anyhow::Result<CliOutput> {
        let config = self.shards[0].config.to_string_lossy().into_owned();
        self.cli(&["shard", "retire", id, "--config", &config])
            .await
    }

    /// A new shard `id` joins through shard `via`, as an operator runs it:
    /// a fresh database, a config that trusts the federation CA (no CA
    /// key: not an issuer), then `keyfed shard --config F --join URL
    /// --join-token T`. Waits until it answers `/readyz` and the directory
    /// shows it `active`; returns its index in [`Cluster::shards`]. A later
    /// [`Cluster::restart_shard`] starts it without `--join` (its key and
    /// certificate are on disk).
    ///
    /// If it fails (the process exits, say for a spent token), the shard is
    /// forgotten and its database dropped; the error carries its log's
    /// tail.
    pub async fn join_shard(&mut self, id: &str, via: usize, token: &str) -> anyhow::Result<usize> {
        anyhow::ensure!(
            self.shards.iter().all(|s| s.id != id),
            "{id} is already in the cluster"
        );
        let issuer = self.shards[via].url.clone();
        let database = crate::pg::fresh_database()
            .await
            .with_context(|| format!("creating {id}'s database"))?;
        let config = self.dir()?.join(format!("{id}.toml"));
        let config_arg = config.to_string_lossy().into_owned();
        let process = Process::new(
            id,
            &self.binary,
            &[
                "shard",
                "--config",
                &config_arg,
                "--join",
                &issuer,
                "--join-token",
                token,
            ],
            self.dir()?,
        );
        self.shards.push(ShardProcess {
            id: id.to_owned(),
            url: String::new(),
            admin_url: String::new(),
            database,
            owns_database: true,
            config,
            founder: false,
            process,
        });
        let i = self.shards.len() - 1;
        let joined = self.start_joiner(i, &config_arg).await;
        if let Err(e) = joined {
            let mut shard = self.shards.remove(i);
            shard.process.kill();
            if let Err(drop) = crate::pg::drop_database(&shard.database).await {
                eprintln!("could not drop {id}'s database: {drop:#}");
            }
            return Err(e);
        }
        Ok(i)
    }

    async fn start_joiner(&mut self, i: usize, config: &str) -> anyhow::Result<()> {
        let port = free_port()?;
        self.write_shard_config(i, port, None)?;
        let shard = &mut self.shards[i];
        shard.process.spawn()?;
        // Enrolled once: restarts run without --join.
        shard.process.args = ["shard", "--config", config]
            .iter()
            .map(Into::into)
            .collect();
        let (http, url) = (self.http.clone(), shard.url.clone());
        shard.process.wait_ready(&http, &url).await?;
        let member = ShardId::new(&shard.id);
        let waited = self
            .wait_for(ACTIVE_TIMEOUT, &format!("{member} to turn active"), || {
                let active = self
                    .view
                    .member(&member)
                    .is_some_and(|m| m.status == MemberStatus::Active && m.url == url);
                async move { active }
            })
            .await;
        if let Err(e) = waited {
            bail!("{e:#}; its log ends:\n{}", self.shards[i].process.tail());
        }
        Ok(())
    }
}
