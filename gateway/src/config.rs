//! The gateway's configuration (TOML). Every field has a documented default;
//! [`GatewayConfig::validate`] checks them at start-up with messages that
//! name the offending field.

use std::time::Duration;

use keyfed_directory::{EmbeddedConfig, NatsConfig};
use keyfed_federation::ValidatorConfig;
pub use keyfed_http::tls::{MtlsFiles, TlsFiles};
use serde::{Deserialize, Serialize};

/// The whole gateway configuration.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// The public HTTP endpoint.
    pub server: ServerConfig,
    /// Where the federation directory lives (exactly one backend).
    pub directory: DirectoryConfig,
    /// Offline token validation (cache size, allow-expired window).
    pub validator: ValidatorConfig,
    /// Calls to the shards.
    pub upstream: UpstreamConfig,
    /// Which member keys are trusted: the federation CA's certificates.
    pub trust: TrustConfig,
    /// Internal mTLS to the shards (`{ ca, cert, key }`): calls present
    /// this gateway's certificate (`keyfed ca issue-tls --kind gateway`) and
    /// trust only shards the federation CA `ca` certified. Required unless
    /// `upstream.insecure_plain_http`.
    pub internal_tls: Option<keyfed_http::tls::MtlsFiles>,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz` apart from the
    /// API) and which of them the public listener serves too. Default: no
    /// admin listener, health public, metrics not (see
    /// `keyfed_http::admin::AdminConfig`).
    pub admin: keyfed_http::admin::AdminConfig,
}

/// Trust in member keys. One of `ca_cert` (production) and
/// `insecure_registry_trust` is required.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// The federation CA certificate (PEM, `ca.pem` of `keyfed ca init`):
    /// tokens verify only with member keys it certifies.
    pub ca_cert: Option<std::path::PathBuf>,
    /// INSECURE, for tests of federations without a CA only: trust every
    /// key recorded in the member registry, so anyone able to write to the
    /// directory can sign tokens this gateway accepts. Default false.
    pub insecure_registry_trust: bool,
}

pub use keyfed_http::ServerConfig;

/// The directory backend: `[directory.nats]` or `[directory.embedded]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DirectoryConfig {
    /// NATS JetStream (production).
    pub nats: Option<NatsConfig>,
    /// The embedded on-disk directory (single host, `keyfed dev`).
    pub embedded: Option<EmbeddedConfig>,
}

/// Calls from the gateway to the shards.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// Longest a whole shard call may take, in milliseconds; past it the
    /// client gets 503. Default 5000.
    pub request_timeout_ms: u64,
    /// Longest a TCP connect to a shard may take, in milliseconds: a shard
    /// that is down fails fast. Default 1000.
    pub connect_timeout_ms: u64,
    /// INSECURE: call shards over plain HTTP, without `[internal_tls]`.
    /// For development and tests on one host only. Default false.
    pub insecure_plain_http: bool,
    /// Consecutive transport failures (connect errors, timeouts) after
    /// which a member is marked down: its tenants' requests then get 503
    /// at once until a probe of its `/healthz` answers. Default 3.
    pub down_after_failures: u32,
    /// How often a member marked down is probed, in milliseconds.
    /// Default 500.
    pub probe_interval_ms: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            request_timeout_ms: 5_000,
            connect_timeout_ms: 1_000,
            insecure_plain_http: false,
            down_after_failures: 3,
            probe_interval_ms: 500,
        }
    }
}

impl UpstreamConfig {
    /// [`UpstreamConfig::request_timeout_ms`] as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// [`UpstreamConfig::connect_timeout_ms`] as a duration.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

/// A configuration that failed validation; the message names the field.
#[derive(Debug, thiserror::Error)]
#[error("invalid gateway config: {0}")]
pub struct ConfigError(pub String);

fn invalid(field: &str, reason: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("field `{field}`: {reason}"))
}

impl GatewayConfig {
    /// Parses TOML (unknown fields are errors) and validates it.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// The public URL, without a trailing slash.
    pub fn public_url(&self) -> String {
        let scheme = if self.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        self.server.public_url(scheme)
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server
            .validate()
            .map_err(|e| invalid(e.field, e.problem))?;
        self.admin
            .validate()
            .map_err(|e| invalid(e.field, e.problem))?;
        match (&self.directory.nats, &self.directory.embedded) {
            (Some(n), None) => n.validate().map_err(|e| invalid("directory.nats", e))?,
            (None, Some(e)) => e.validate().map_err(|e| invalid("directory.embedded", e))?,
            (None, None) => {
                return Err(invalid(
                    "directory",
                    "set [directory.nats] or [directory.embedded]",
                ))
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "directory",
                    "set only one of [directory.nats] and [directory.embedded]",
                ))
            }
        }
        if self.upstream.request_timeout_ms == 0 {
            return Err(invalid("upstream.request_timeout_ms", "must be positive"));
        }
        if self.upstream.connect_timeout_ms == 0 {
            return Err(invalid("upstream.connect_timeout_ms", "must be positive"));
        }
        self.validate_transport()?;
        match (&self.trust.ca_cert, self.trust.insecure_registry_trust) {
            (Some(_), false) | (None, true) => {}
            (None, false) => {
                return Err(invalid(
                    "trust.ca_cert",
                    "required (the federation CA from `keyfed ca init`)",
                ))
            }
            (Some(_), true) => {
                return Err(invalid(
                    "trust.insecure_registry_trust",
                    "cannot be combined with trust.ca_cert",
                ))
            }
        }
        Ok(())
    }
}

impl GatewayConfig {
    /// Exactly one choice for the public listener and one for shard calls.
    fn validate_transport(&self) -> Result<(), ConfigError> {
        match (&self.server.tls, self.server.insecure_plain_http) {
            (None, false) => {
                return Err(invalid(
                    "server.tls",
                    "choose how the gateway serves: `tls = { cert, key }` (public TLS) or \
                     `insecure_plain_http = true` (plain HTTP, for development only)",
                ))
            }
            (Some(_), true) => {
                return Err(invalid(
                    "server.insecure_plain_http",
                    "cannot be combined with server.tls",
                ))
            }
            _ => {}
        }
        match (&self.internal_tls, self.upstream.insecure_plain_http) {
            (None, false) => Err(invalid(
                "internal_tls",
                "choose how the gateway calls shards: `[internal_tls]` (mTLS with the \
                 federation CA) or `[upstream] insecure_plain_http = true` (plain HTTP, for \
                 development only)",
            )),
            (Some(_), true) => Err(invalid(
                "upstream.insecure_plain_http",
                "cannot be combined with [internal_tls]",
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_with_defaults_and_names_bad_fields() {
        let c = GatewayConfig::from_toml(&format!(
            "[server]\nlisten = \"127.0.0.1:5001\"\ninsecure_plain_http = true\n\
             [directory.nats]\nurl = \"nats://x:4222\"\n\
             [trust]\nca_cert = \"/etc/keyfed/ca.pem\"\n{MTLS}",
        ))
        .unwrap();
        assert_eq!(c.upstream.request_timeout_ms, 5_000);
        assert_eq!(c.upstream.connect_timeout_ms, 1_000);
        assert_eq!(c.public_url(), "http://127.0.0.1:5001");

        let err = GatewayConfig::from_toml("[server]\nlisten = \"127.0.0.1:1\"\n").unwrap_err();
        assert!(err.to_string().contains("`directory`"), "{err}");
        let err = GatewayConfig::from_toml(
            "[directory.nats]\nurl = \"nats://x\"\n[upstream]\nrequest_timeout_ms = 0\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("upstream.request_timeout_ms"),
            "{err}"
        );
        assert!(GatewayConfig::from_toml("[server]\nbogus = 1\n").is_err());
        let err = GatewayConfig::from_toml(&format!(
            "[server]\ninsecure_plain_http = true\n[directory.nats]\nurl = \"nats://x\"\n{MTLS}"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("trust.ca_cert"), "{err}");
    }

    const MTLS: &str =
        "[internal_tls]\nca = \"/ca.pem\"\ncert = \"/g.pem\"\nkey = \"/g-key.pem\"\n";

    #[test]
    fn listener_and_shard_calls_must_be_chosen_explicitly() {
        let base = "[directory.nats]\nurl = \"nats://x\"\n[trust]\nca_cert = \"/ca.pem\"\n";
        let err = GatewayConfig::from_toml(&format!("{base}{MTLS}")).unwrap_err();
        assert!(err.to_string().contains("server.tls"), "{err}");
        assert!(err.to_string().contains("insecure_plain_http"), "{err}");
        let tls = "[server]\ntls = { cert = \"/p.pem\", key = \"/p-key.pem\" }\n";
        let err = GatewayConfig::from_toml(&format!("{tls}{base}")).unwrap_err();
        assert!(err.to_string().contains("`internal_tls`"), "{err}");
        let c = GatewayConfig::from_toml(&format!("{tls}{base}{MTLS}")).unwrap();
        assert!(c.public_url().starts_with("https://"), "{}", c.public_url());
        let err =
            GatewayConfig::from_toml(&format!("{tls}insecure_plain_http = true\n{base}{MTLS}"))
                .unwrap_err();
        assert!(
            err.to_string().contains("server.insecure_plain_http"),
            "{err}"
        );
        let err = GatewayConfig::from_toml(&format!(
            "{tls}{base}{MTLS}[upstream]\ninsecure_plain_http = true\n"
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("upstream.insecure_plain_http"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod example_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn documented_example_is_valid() {
        let c = GatewayConfig::from_toml(include_str!("../../docs/example-gateway.toml")).unwrap();
        let d = GatewayConfig::default();
        assert_eq!(c.server.listen, d.server.listen);
        assert_eq!(c.server.max_body_bytes, d.server.max_body_bytes);
        assert_eq!(c.server.max_header_bytes, d.server.max_header_bytes);
        assert!(c.server.tls.is_some() && c.internal_tls.is_some());
        assert_eq!(c.upstream, d.upstream);
        assert_eq!(c.validator, d.validator);
    }
}
