//! Configuration of the two directory backends. Every field has a default and
//! a reason; [`NatsConfig::validate`] and [`EmbeddedConfig::validate`] name
//! the offending field.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::directory::validate_namespace;
use crate::error::{DirectoryError, Result};

/// The namespace used when none is configured.
pub const DEFAULT_NAMESPACE: &str = "keyfed";

/// Default retention of revocation events: 24 hours, longer than Keystone's
/// default token lifetime (1 hour) with room for raised lifetimes.
pub const DEFAULT_REVOCATION_MAX_AGE_SECS: u64 = 24 * 60 * 60;

fn default_namespace() -> String {
    DEFAULT_NAMESPACE.to_owned()
}

fn default_revocation_max_age_secs() -> u64 {
    DEFAULT_REVOCATION_MAX_AGE_SECS
}

/// The directory on NATS JetStream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// NATS server URLs, comma separated (`nats://host:4222,nats://other:4222`).
    /// The client connects to any of them and, when its server goes away,
    /// reconnects to another (it also learns the cluster's other members
    /// from the server). List every node of a clustered NATS.
    pub url: String,
    /// Prefix of every bucket, stream and subject, so several federations (and
    /// parallel tests) can share one NATS deployment. ASCII letters, digits,
    /// `-`, `_`.
    pub namespace: String,
    /// Upper bound, in milliseconds, on every directory call. A dead NATS makes
    /// calls fail with `Unavailable` after this long instead of hanging.
    pub timeout_ms: u64,
    /// How long revocation events are retained, in seconds. Must be at least
    /// the longest token lifetime: a validator that was offline longer than
    /// this only missed events about tokens that have expired anyway.
    pub revocation_max_age_secs: u64,
    /// Replicas of each bucket and stream in a clustered NATS (1 for a single
    /// server; 3 on a 3-node JetStream cluster tolerates the loss of any one
    /// node: writes fail with `Unavailable` only while the survivors elect
    /// new leaders, measured 4–7.5 s). Applied when keyfed creates them, so
    /// set it on every process from the first start; changing it later
    /// needs `nats stream edit` on the existing streams.
    pub replicas: usize,
    /// Longest wait, in milliseconds, between reconnection attempts while NATS
    /// is unreachable (the delay doubles up to this).
    pub reconnect_max_delay_ms: u64,
    /// Authentication by an nkey: the file holding this process's nkey seed
    /// (`SU…`, one line; mode 0600 — `keyfed nats creds` writes one per
    /// identity). Preferred: the server stores only the public key.
    pub nkey_seed_file: Option<PathBuf>,
    /// Authentication by a decentralised-JWT credentials file (`.creds`,
    /// from `nsc`; mode 0600), for servers run with operator/accounts.
    pub creds_file: Option<PathBuf>,
    /// Authentication by user name and password: the user name…
    pub user: Option<String>,
    /// …and the file holding the password (one line; mode 0600).
    pub password_file: Option<PathBuf>,
    /// TLS to NATS: the CA certificate(s) to trust (PEM). Setting it, or a
    /// `tls://` URL, makes the connection TLS.
    pub tls_ca: Option<PathBuf>,
    /// TLS client certificate (PEM) when the server verifies clients, with
    /// `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM; mode 0600).
    pub tls_key: Option<PathBuf>,
    /// Refuse to talk to NATS without TLS.
    pub require_tls: bool,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: "nats://127.0.0.1:4222".to_owned(),
            namespace: default_namespace(),
            timeout_ms: 2_000,
            revocation_max_age_secs: DEFAULT_REVOCATION_MAX_AGE_SECS,
            replicas: 1,
            reconnect_max_delay_ms: 2_000,
            nkey_seed_file: None,
            creds_file: None,
            user: None,
            password_file: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            require_tls: false,
        }
    }
}

impl NatsConfig {
    /// A configuration for `url` with every other field at its default.
    pub fn new(url: impl Into<String>) -> Self {
        NatsConfig {
            url: url.into(),
            ..NatsConfig::default()
        }
    }

    /// The call timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if self.servers().is_empty() {
            return Err(invalid("url", "no server URL given"));
        }
        validate_namespace(&self.namespace).map_err(|e| invalid("namespace", e))?;
        if self.timeout_ms == 0 {
            return Err(invalid("timeout_ms", "must be positive"));
        }
        if self.revocation_max_age_secs == 0 {
            return Err(invalid("revocation_max_age_secs", "must be positive"));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(invalid("replicas", "must be between 1 and 5"));
        }
        if self.reconnect_max_delay_ms == 0 {
            return Err(invalid("reconnect_max_delay_ms", "must be positive"));
        }
        let methods = [
            self.nkey_seed_file.is_some(),
            self.creds_file.is_some(),
            self.user.is_some() || self.password_file.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(invalid(
                "nkey_seed_file",
                "choose one of nkey_seed_file, creds_file, or user with password_file",
            ));
        }
        if self.user.is_some() != self.password_file.is_some() {
            return Err(invalid(
                "password_file",
                "user and password_file go together",
            ));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(invalid("tls_key", "tls_cert and tls_key go together"));
        }
        for (field, path) in [
            ("nkey_seed_file", &self.nkey_seed_file),
            ("creds_file", &self.creds_file),
            ("password_file", &self.password_file),
            ("tls_key", &self.tls_key),
        ] {
            if let Some(path) = path {
                check_secret_file(path).map_err(|e| invalid(field, e))?;
            }
        }
        for (field, path) in [("tls_ca", &self.tls_ca), ("tls_cert", &self.tls_cert)] {
            if let Some(path) = path.as_ref().filter(|p| !p.is_file()) {
                return Err(invalid(field, format!("{} is not a file", path.display())));
            }
        }
        Ok(())
    }

    /// The secret read from `path` (first line, trimmed).
    pub(crate) fn read_secret(path: &std::path::Path) -> Result<String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DirectoryError::Invalid(format!("reading {}: {e}", path.display())))?;
        Ok(text.lines().next().unwrap_or_default().trim().to_owned())
    }

    /// The server URLs, trimmed, empty items dropped.
    pub(crate) fn servers(&self) -> Vec<String> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// A file holding a secret must exist and be readable by its owner only.
fn check_secret_file(path: &std::path::Path) -> std::result::Result<(), String> {
    let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{} is readable by others (mode {mode:o}); make it 0600",
                path.display()
            ));
        }
    }
    Ok(())
}

/// The embedded directory of `keyfed dev`: in-process, durable on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// Directory holding the state, created if missing; each namespace gets a
    /// subdirectory. One process at a time may open a namespace.
    pub path: PathBuf,
    /// Namespace, as for NATS: separates federations sharing `path`.
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Retention of revocation events, in seconds (see [`NatsConfig`]).
    #[serde(default = "default_revocation_max_age_secs")]
    pub revocation_max_age_secs: u64,
}

impl EmbeddedConfig {
    /// A configuration storing under `path`, other fields at their defaults.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        EmbeddedConfig {
            path: path.into(),
            namespace: default_namespace(),
            revocation_max_age_secs: DEFAULT_REVOCATION_MAX_AGE_SECS,
        }
    }

    /// Checks every field; the error names the field.
    pub fn validate(&self) -> Result<()> {
        if self.path.as_os_str().is_empty() {
            return Err(invalid("path", "must not be empty"));
        }
        validate_namespace(&self.namespace).map_err(|e| invalid("namespace", e))?;
        if self.revocation_max_age_secs == 0 {
            return Err(invalid("revocation_max_age_secs", "must be positive"));
        }
        Ok(())
    }
}

fn invalid(field: &str, reason: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Invalid(format!("directory config field `{field}`: {reason}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn defaults_are_valid_and_errors_name_the_field() {
        NatsConfig::default().validate().unwrap();
        EmbeddedConfig::new("/tmp/x").validate().unwrap();
        let bad = NatsConfig {
            namespace: "a.b".into(),
            ..NatsConfig::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("`namespace`"));
        let bad = NatsConfig {
            timeout_ms: 0,
            ..NatsConfig::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("`timeout_ms`"));
    }

    #[test]
    fn server_lists_are_split() {
        let config = NatsConfig::new(" nats://a:1, ,nats://b:2 ");
        assert_eq!(config.servers(), vec!["nats://a:1", "nats://b:2"]);
        assert!(NatsConfig::new(" , ").validate().is_err());
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let parsed: std::result::Result<NatsConfig, _> =
            serde_json::from_str(r#"{"url": "nats://x", "timeout": 5}"#);
        assert!(parsed.is_err());
        let parsed: EmbeddedConfig =
            serde_json::from_str(r#"{"path": "/var/lib/keyfed"}"#).unwrap();
        assert_eq!(parsed.namespace, DEFAULT_NAMESPACE);
    }
}
