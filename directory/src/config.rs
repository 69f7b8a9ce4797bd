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
    /// The client connects to any of them and fails over between them.
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
    /// server; 3 tolerates the loss of one server). Applied at creation.
    pub replicas: usize,
    /// Longest wait, in milliseconds, between reconnection attempts while NATS
    /// is unreachable (the delay doubles up to this).
    pub reconnect_max_delay_ms: u64,
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
        Ok(())
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
