//! Throwaway PostgreSQL databases for tests.
//!
//! [`fresh_database`] creates an empty database `keyfed_t_<random hex>` on
//! the server named by `KEYFED_TEST_PG` (a libpq string or `postgres://`
//! URL for an account allowed to create databases; default
//! [`DEFAULT_ADMIN`]) and returns a connection string for it. Tests that
//! pass call [`drop_database`]; a failing test leaves its database behind
//! for inspection.

use anyhow::{bail, Context};
use std::str::FromStr;
use tokio_postgres::config::Host;
use tokio_postgres::{Client, Config, NoTls};

/// The environment variable naming the admin connection.
pub const ADMIN_ENV: &str = "KEYFED_TEST_PG";
/// The admin connection used when [`ADMIN_ENV`] is unset.
pub const DEFAULT_ADMIN: &str = "host=127.0.0.1 user=postgres dbname=postgres";
/// Prefix of every database these helpers create.
pub const DATABASE_PREFIX: &str = "keyfed_t_";

/// The admin connection string.
pub fn admin_url() -> String {
    std::env::var(ADMIN_ENV).unwrap_or_else(|_| DEFAULT_ADMIN.to_owned())
}

/// Creates a new, empty database and returns a libpq connection string for
/// it (same server and credentials as the admin connection).
pub async fn fresh_database() -> anyhow::Result<String> {
    let admin = admin_url();
    let config = Config::from_str(&admin).with_context(|| format!("parsing {ADMIN_ENV}"))?;
    let name = format!(
        "{DATABASE_PREFIX}{}",
        &uuid::Uuid::new_v4().simple().to_string()[..16]
    );
    let client = connect(&config).await?;
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .with_context(|| format!("creating database {name}"))?;
    Ok(connection_string(&config, &name))
}

/// Drops a database made by [`fresh_database`], closing its connections.
/// Refuses any database not named like one.
pub async fn drop_database(url: &str) -> anyhow::Result<()> {
    let target = Config::from_str(url).context("parsing the database url")?;
    let Some(name) = target.get_dbname() else {
        bail!("the database url names no database");
    };
    let valid = name.len() > DATABASE_PREFIX.len()
        && name.starts_with(DATABASE_PREFIX)
        && name[DATABASE_PREFIX.len()..]
            .chars()
            .all(|c| c.is_ascii_hexdigit());
    if !valid {
        bail!("refusing to drop {name:?}: not a test database");
    }
    let admin = Config::from_str(&admin_url()).with_context(|| format!("parsing {ADMIN_ENV}"))?;
    let client = connect(&admin).await?;
    client
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await
        .with_context(|| format!("dropping database {name}"))?;
    Ok(())
}

/// Opens one connection, driving it on a background task.
pub async fn connect(config: &Config) -> anyhow::Result<Client> {
    let (client, connection) = config
        .connect(NoTls)
        .await
        .context("connecting to the test PostgreSQL server")?;
    tokio::spawn(async move {
        // The connection ends when the client is dropped; errors after that
        // are of no interest to a test.
        let _ = connection.await;
    });
    Ok(client)
}

/// `config`'s server and credentials as a libpq string, for `dbname`.
fn connection_string(config: &Config, dbname: &str) -> String {
    let mut parts = Vec::new();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    if !hosts.is_empty() {
        parts.push(("host", hosts.join(",")));
    }
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    if !ports.is_empty() {
        parts.push(("port", ports.join(",")));
    }
    if let Some(user) = config.get_user() {
        parts.push(("user", user.to_owned()));
    }
    if let Some(password) = config.get_password() {
        parts.push(("password", String::from_utf8_lossy(password).into_owned()));
    }
    parts.push(("dbname", dbname.to_owned()));
    parts
        .iter()
        .map(|(key, value)| format!("{key}={}", quote(value)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quotes a libpq value when it needs it.
fn quote(value: &str) -> String {
    if !value.is_empty() && !value.contains([' ', '\'', '\\']) {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_round_trip() {
        let admin = Config::from_str("postgres://me:p%20w'd@db.example:6432/postgres").unwrap();
        let url = connection_string(&admin, "keyfed_t_00ff");
        let parsed = Config::from_str(&url).unwrap();
        assert_eq!(parsed.get_hosts(), &[Host::Tcp("db.example".into())]);
        assert_eq!(parsed.get_ports(), &[6432]);
        assert_eq!(parsed.get_user(), Some("me"));
        assert_eq!(parsed.get_password(), Some(&b"p w'd"[..]));
        assert_eq!(parsed.get_dbname(), Some("keyfed_t_00ff"));
    }
}
