//! A PostgreSQL primary with a synchronous streaming standby, run from
//! PostgreSQL's own server binaries in a temporary directory on free
//! loopback ports — the pair Patroni or an operator runs in production —
//! so a test can stop the primary and promote the standby.
//!
//! Set-up, as an operator does it: `initdb` (trust on loopback, whose
//! default `pg_hba.conf` admits replication connections there), a
//! `replicator` role with `REPLICATION`, `pg_basebackup -R` for the
//! standby, then `synchronous_standby_names = '*'` on the primary, so a
//! commit is acknowledged only once the standby has it: promoting the
//! standby loses no acknowledged write. The standby, once promoted, has no
//! standby of its own and commits locally.
//!
//! The binaries are `$KEYFED_PG_BIN`, else the newest
//! `/usr/lib/postgresql/<version>/bin` (Debian's layout; `scripts/test`
//! installs PostgreSQL). PostgreSQL refuses to run as root: as root, the
//! server commands run as the `postgres` user (`runuser`), which owns the
//! temporary directory. Dropping the pair stops both servers (immediate)
//! and removes the directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio_postgres::NoTls;

/// Environment variable naming PostgreSQL's server binary directory.
pub const PG_BIN_ENV: &str = "KEYFED_PG_BIN";
/// The database the pair serves.
pub const DATABASE: &str = "keyfed";

/// How long the standby may take to stream synchronously.
const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

/// A primary and its standby.
pub struct PgStandbyPair {
    bin: PathBuf,
    /// Ports of the primary and the standby.
    pub ports: (u16, u16),
    dir: tempfile::TempDir,
    as_postgres: bool,
}

/// PostgreSQL's server binary directory.
fn pg_bin() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(PG_BIN_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql: install PostgreSQL or set KEYFED_PG_BIN")?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .context("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl PgStandbyPair {
    /// Starts the primary, creates the database, clones and starts the
    /// standby, and waits until it streams synchronously. Tries again on
    /// new ports if a server could not start (a free port taken since).
    pub async fn start() -> anyhow::Result<Self> {
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once().await {
                Ok(pair) => return Ok(pair),
                Err(e) => {
                    eprintln!("PostgreSQL primary and standby did not start: {e:#}");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("PostgreSQL did not start")))
    }

    async fn start_once() -> anyhow::Result<Self> {
        let as_postgres = is_root();
        let dir = tempfile::Builder::new().prefix("keyfed-pg").tempdir()?;
        if as_postgres {
            run(Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(dir.path()))?;
        }
        let ports = (crate::cluster::free_port()?, crate::cluster::free_port()?);
        let pair = Self {
            bin: pg_bin()?,
            ports,
            dir,
            as_postgres,
        };
        pair.pg("initdb", |c| {
            c.arg("-D").arg(pair.data(0)).args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ])
        })?;
        let socket_dir = pair.dir.path().display().to_string();
        let conf = format!(
            "\n# keyfed-tests: a primary with a streaming standby\n\
             listen_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{socket_dir}'\n\
             wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\n\
             # Throwaway data: no fsync (replication, not the disk, keeps writes here).\n\
             fsync = off\n",
            ports.0
        );
        append(&pair.data(0).join("postgresql.conf"), &conf)?;
        pair.pg_ctl(0, &["-w", "-t", "30", "start"])?;
        let admin = pair.connect(ports.0, "postgres").await?;
        // One statement at a time: neither may run in a transaction block.
        for sql in [
            "CREATE ROLE replicator WITH REPLICATION LOGIN".to_owned(),
            format!("CREATE DATABASE {DATABASE}"),
        ] {
            admin.batch_execute(&sql).await?;
        }
        let port = ports.0.to_string();
        pair.pg("pg_basebackup", |c| {
            c.args(["-h", "127.0.0.1", "-p", &port, "-U", "replicator", "-D"])
                .arg(pair.data(1))
                .args(["-R", "-X", "stream", "-c", "fast", "--no-sync"])
        })?;
        append(
            &pair.data(1).join("postgresql.conf"),
            &format!("port = {}\n", ports.1),
        )?;
        pair.pg_ctl(1, &["-w", "-t", "30", "start"])?;
        // Synchronous from here on: the standby is streaming.
        for sql in [
            "ALTER SYSTEM SET synchronous_standby_names = '*'",
            "SELECT pg_reload_conf()",
        ] {
            admin.batch_execute(sql).await?;
        }
        let deadline = Instant::now() + SYNC_TIMEOUT;
        loop {
            let row = admin
                .query_opt(
                    "SELECT sync_state FROM pg_stat_replication WHERE state = 'streaming'",
                    &[],
                )
                .await?;
            if row.is_some_and(|r| r.get::<_, String>(0) == "sync") {
                break;
            }
            if Instant::now() > deadline {
                bail!("the standby does not stream synchronously after {SYNC_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(pair)
    }

    /// The store connection string naming both servers, as a shard's
    /// `[storage] url`: libpq tries them in order and keeps the one that
    /// accepts writes.
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1,127.0.0.1 port={},{} user=postgres dbname={DATABASE} \
             target_session_attrs=read-write connect_timeout=2",
            self.ports.0, self.ports.1
        )
    }

    /// Stops the primary at once (`pg_ctl stop -m immediate`: a crash to
    /// its clients).
    pub fn stop_primary(&self) -> anyhow::Result<()> {
        self.pg_ctl(0, &["-m", "immediate", "-w", "stop"])
    }

    /// Promotes the standby to primary (`pg_ctl promote`, as Patroni does)
    /// and waits until it accepts writes.
    pub fn promote_standby(&self) -> anyhow::Result<()> {
        self.pg_ctl(1, &["-w", "-t", "30", "promote"])
    }

    /// A superuser connection to database `dbname` on the server on `port`.
    pub async fn connect(&self, port: u16, dbname: &str) -> anyhow::Result<tokio_postgres::Client> {
        let config = tokio_postgres::Config::from_str(&format!(
            "host=127.0.0.1 port={port} user=postgres dbname={dbname} connect_timeout=5"
        ))?;
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// The data directory of server `i` (0 primary, 1 standby).
    fn data(&self, i: usize) -> PathBuf {
        self.dir
            .path()
            .join(if i == 0 { "primary" } else { "standby" })
    }

    /// `pg_ctl -D <server i> -l <its log> args…`; a failure carries the
    /// server's log.
    fn pg_ctl(&self, i: usize, args: &[&str]) -> anyhow::Result<()> {
        let log = self.data(i).with_extension("log");
        self.pg("pg_ctl", |c| {
            c.arg("-D").arg(self.data(i)).arg("-l").arg(&log).args(args)
        })
        .with_context(|| std::fs::read_to_string(&log).unwrap_or_default())
    }

    /// Runs PostgreSQL program `name` (as `postgres` when root).
    fn pg(
        &self,
        name: &str,
        args: impl FnOnce(&mut Command) -> &mut Command,
    ) -> anyhow::Result<()> {
        let program = self.bin.join(name);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        command.current_dir(self.dir.path());
        run(args(&mut command)).with_context(|| format!("running {name}"))
    }

    /// The servers' logs, for failure messages.
    pub fn logs(&self) -> String {
        (0..2)
            .map(|i| {
                let log = self.data(i).with_extension("log");
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                format!("---- {}:\n{text}", log.display())
            })
            .collect()
    }
}

impl Drop for PgStandbyPair {
    fn drop(&mut self) {
        for i in 0..2 {
            if self.data(i).join("postmaster.pid").exists() {
                let _ = self.pg_ctl(i, &["-m", "immediate", "-w", "stop"]);
            }
        }
    }
}

fn append(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new().append(true).open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command.output()?;
    if !output.status.success() {
        bail!(
            "{:?} failed ({}): {}{}",
            command.get_program(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
