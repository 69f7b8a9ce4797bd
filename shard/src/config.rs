//! The shard's configuration file (TOML). Every field has a documented
//! default; unknown fields are rejected; [`ShardConfig::validate`] checks
//! values at start and names the offending field.

pub use keyfed_http::tls::{MtlsFiles, TlsFiles};
use serde::Deserialize;
use std::path::PathBuf;

/// A configuration error naming the field at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file is not valid: {0}")]
    Parse(String),
    #[error("config field `{field}`: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
}

fn invalid(field: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        problem: problem.into(),
    }
}

/// Everything a shard reads at start.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShardConfig {
    /// HTTP listener and limits.
    pub server: ServerConfig,
    /// This shard's identity in the federation.
    pub shard: ShardIdentity,
    /// Where entities are stored.
    pub storage: StorageConfig,
    /// Token lifetime and signing key.
    pub tokens: TokenConfig,
    /// Password hashing cost.
    pub password: PasswordConfig,
    /// Optional bootstrap run at every start (idempotent), like
    /// `keystone-manage bootstrap`.
    pub bootstrap: Option<BootstrapConfig>,
    /// Logging.
    pub log: LogConfig,
    /// Membership in a federation (absent: a standalone Keystone).
    pub federation: Option<FederationConfig>,
    /// What member keys a federated shard trusts: the federation CA, and
    /// this shard's own signing certificate (see [`TrustConfig`]).
    pub trust: TrustConfig,
    /// Internal mTLS (`{ ca, cert, key }`): the listener serves only
    /// clients (gateways, peers) certified by the federation CA `ca`, and
    /// calls to peers present `cert` and trust only `ca`. For a federated
    /// shard: this, or `server.insecure_plain_http`. Default: none.
    pub internal_tls: Option<keyfed_http::tls::MtlsFiles>,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz` apart from the
    /// API) and which of them the public listener serves too. Default: no
    /// admin listener, health public, metrics not (see
    /// `keyfed_http::admin::AdminConfig`).
    pub admin: keyfed_http::admin::AdminConfig,
}

/// Trust in a federation: every member's token-signing key must be
/// certified by the federation CA. Required for a federated shard.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// The federation CA certificate (PEM, `ca.pem` of `keyfed ca init`).
    /// Only member keys it certifies are trusted. Required when federated,
    /// unless `insecure_registry_trust`.
    pub ca_cert: Option<PathBuf>,
    /// The CA key (`ca-key.pem`). Makes this shard an **issuer**: it
    /// certifies its own signing key at start and admits joining shards
    /// (`POST /internal/v1/join`). Default: none (not an issuer).
    pub ca_key: Option<PathBuf>,
    /// This shard's signing certificate (PEM): written by an issuer for
    /// itself, or by `keyfed shard --join`. Default: the signing key file's
    /// path with the extension `crt`.
    pub certificate: Option<PathBuf>,
    /// Validity of the certificates an issuer signs, in days. Default 365.
    pub certificate_validity_days: u32,
    /// INSECURE, for tests of federations without a CA only: trust every
    /// key recorded in the member registry, so anyone able to write to the
    /// directory can sign tokens the federation accepts. Default false.
    pub insecure_registry_trust: bool,
    /// For an issuer with `[internal_tls]`: an address where it serves
    /// `POST /internal/v1/join` alone over TLS (its internal certificate)
    /// without asking for a client certificate, so a shard joining the
    /// mTLS federation — with no TLS certificate yet — can reach it (`keyfed
    /// shard --join https://<this address>`). The join token authorises;
    /// the joiner checks this listener's certificate against the CA.
    /// Default: none.
    pub join_listen: Option<std::net::SocketAddr>,
}

impl Default for TrustConfig {
    fn default() -> Self {
        Self {
            ca_cert: None,
            ca_key: None,
            certificate: None,
            certificate_validity_days: 365,
            insecure_registry_trust: false,
            join_listen: None,
        }
    }
}

impl TrustConfig {
    /// Where this shard's certificate lives.
    pub fn certificate_path(&self, signing_key_file: &std::path::Path) -> PathBuf {
        self.certificate
            .clone()
            .unwrap_or_else(|| signing_key_file.with_extension("crt"))
    }
}

/// How the shard takes part in a federation: its member record and the
/// directory it registers in and follows.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    /// URL at which gateways and peers reach this shard. Required.
    pub advertise_url: String,
    /// Relative share of new tenants. Default 1.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// The directory on NATS JetStream (production).
    pub nats: Option<keyfed_directory::NatsConfig>,
    /// The embedded directory (single-process federations, `keyfed dev`).
    pub embedded: Option<keyfed_directory::EmbeddedConfig>,
    /// Seconds between audits of the names index against this shard's
    /// entities (one runs at start; 0: only that one). Default 3600.
    #[serde(default = "default_name_audit_interval")]
    pub name_audit_interval_secs: u64,
}

fn default_weight() -> u32 {
    1
}

/// The default of `[federation] name_audit_interval_secs`.
pub const DEFAULT_NAME_AUDIT_INTERVAL_SECS: u64 = 3_600;

fn default_name_audit_interval() -> u64 {
    DEFAULT_NAME_AUDIT_INTERVAL_SECS
}

pub use keyfed_http::ServerConfig;

/// Who this shard is.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShardIdentity {
    /// The shard id written into every token it signs. Default `shard-1`.
    pub id: String,
}

impl Default for ShardIdentity {
    fn default() -> Self {
        Self {
            id: "shard-1".into(),
        }
    }
}

/// Which store to use.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// PostgreSQL (production).
    Postgres,
    /// The durable on-disk embedded store (`keyfed dev`).
    Embedded,
}

/// Storage settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// `postgres` or `embedded`. Default `postgres`.
    pub kind: StorageKind,
    /// PostgreSQL connection string (libpq key=value or a postgres:// URL).
    /// Default `host=127.0.0.1 user=postgres dbname=keyfed`. For a primary
    /// with standbys, name them all and ask for the writable one:
    /// `host=db-a,db-b port=5432,5432 target_session_attrs=read-write
    /// connect_timeout=2`; after a failover the pool drops its dead
    /// connections and opens new ones on whichever host now accepts writes,
    /// without a restart (`tcp_user_timeout` and `keepalives_idle`, in
    /// seconds here, bound how long a silently dead host goes unnoticed).
    pub url: String,
    /// Largest number of pooled PostgreSQL connections. Default 16.
    pub pool_size: usize,
    /// Directory of the embedded store. Default `./keyfed-data`.
    pub path: PathBuf,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            kind: StorageKind::Postgres,
            url: "host=127.0.0.1 user=postgres dbname=keyfed".into(),
            pool_size: 16,
            path: PathBuf::from("./keyfed-data"),
        }
    }
}

/// Token settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// Token lifetime in seconds. Default 3600 (Keystone's default).
    pub expiration_secs: u64,
    /// How long after expiry a token may still be validated with
    /// `allow_expired=true`, in seconds. Default 172800 (Keystone's 2 days).
    pub allow_expired_window_secs: u64,
    /// How far in the future a token's issue time may be, in seconds, for
    /// members' clocks that are not quite in step: a token issued later
    /// than now plus this is refused (no revocation event by time could
    /// match it). Default 60; keep it equal to the gateways'
    /// `validator.max_clock_skew_secs`.
    pub max_clock_skew_secs: u64,
    /// PKCS#8 PEM file holding the Ed25519 signing key; created (mode 0600)
    /// when missing. Default `./keyfed-signing-key.pem`.
    pub signing_key_file: PathBuf,
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            expiration_secs: 3600,
            allow_expired_window_secs: 2 * 24 * 3600,
            max_clock_skew_secs: keyfed_federation::DEFAULT_MAX_CLOCK_SKEW_SECS,
            signing_key_file: PathBuf::from("./keyfed-signing-key.pem"),
        }
    }
}

impl TokenConfig {
    /// The federation validator's settings for these: the same windows; the
    /// signer look-up bounds the gateways default to; no token cache (the
    /// shard verifies tokens itself).
    pub fn validator(&self) -> keyfed_federation::ValidatorConfig {
        keyfed_federation::ValidatorConfig {
            cache_capacity: 0,
            allow_expired_window_secs: self.allow_expired_window_secs,
            max_clock_skew_secs: self.max_clock_skew_secs,
            ..keyfed_federation::ValidatorConfig::default()
        }
    }
}

/// Argon2id parameters and the hashing pool bound.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    /// Argon2id memory cost in KiB. Default 19456 (OWASP's recommendation).
    pub memory_kib: u32,
    /// Argon2id iterations. Default 2.
    pub iterations: u32,
    /// Argon2id lanes. Default 1.
    pub parallelism: u32,
    /// Most hashes computed at once (each on a blocking thread). Default 4.
    pub max_concurrent: usize,
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
            max_concurrent: 4,
        }
    }
}

/// What bootstrap creates (all idempotent).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BootstrapConfig {
    /// Admin user name. Default `admin`.
    pub admin_username: String,
    /// Admin password. Required (or `admin_password_env`).
    pub admin_password: Option<String>,
    /// Name of an environment variable holding the admin password.
    pub admin_password_env: Option<String>,
    /// Admin project name. Default `admin`.
    pub project_name: String,
    /// Region created for the identity endpoints. Default `RegionOne`.
    pub region_id: String,
    /// Identity endpoint URLs; each defaults to `server.public_url`.
    pub public_url: Option<String>,
    /// Internal identity endpoint URL.
    pub internal_url: Option<String>,
    /// Admin identity endpoint URL.
    pub admin_url: Option<String>,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            admin_username: "admin".into(),
            admin_password: None,
            admin_password_env: None,
            project_name: "admin".into(),
            region_id: "RegionOne".into(),
            public_url: None,
            internal_url: None,
            admin_url: None,
        }
    }
}

impl BootstrapConfig {
    /// The admin password from the config or its environment variable.
    pub fn password(&self) -> Result<String, ConfigError> {
        if let Some(p) = &self.admin_password {
            return Ok(p.clone());
        }
        let var = self.admin_password_env.as_deref().ok_or_else(|| {
            invalid(
                "bootstrap.admin_password",
                "set admin_password or admin_password_env",
            )
        })?;
        std::env::var(var).map_err(|_| {
            invalid(
                "bootstrap.admin_password_env",
                format!("environment variable {var} is not set"),
            )
        })
    }
}

/// Log output.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`. Default `text`.
    pub format: String,
    /// A tracing filter (e.g. `info,keyfed_shard=debug`). Default `info`;
    /// the `RUST_LOG` environment variable overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

impl ShardConfig {
    /// Parses and validates a TOML document.
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and validates a config file.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml_str(&text)
    }

    /// The public base URL (no trailing slash).
    pub fn public_url(&self) -> String {
        self.server.public_url(self.scheme())
    }

    /// Checks every value; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let id = &self.shard.id;
        if id.is_empty()
            || id.len() > 64
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                "shard.id",
                "1-64 characters of letters, digits, '-' or '_'",
            ));
        }
        self.server
            .validate()
            .map_err(|e| invalid(e.field, e.problem))?;
        self.admin
            .validate()
            .map_err(|e| invalid(e.field, e.problem))?;
        if self.federation.is_some() && !self.admin.public_health {
            return Err(invalid(
                "admin.public_health",
                "a federated shard must serve /healthz and /readyz at its member URL \
                 (gateways probe them there)",
            ));
        }
        if self.storage.kind == StorageKind::Postgres && self.storage.url.is_empty() {
            return Err(invalid("storage.url", "required for the postgres store"));
        }
        if self.storage.pool_size == 0 {
            return Err(invalid("storage.pool_size", "must be at least 1"));
        }
        if !(60..=7 * 24 * 3600).contains(&self.tokens.expiration_secs) {
            return Err(invalid(
                "tokens.expiration_secs",
                "must be between 60 and 604800",
            ));
        }
        let p = &self.password;
        if p.memory_kib < 8 * p.parallelism.max(1) {
            return Err(invalid(
                "password.memory_kib",
                "must be at least 8 × parallelism",
            ));
        }
        if p.iterations == 0 {
            return Err(invalid("password.iterations", "must be at least 1"));
        }
        if p.parallelism == 0 {
            return Err(invalid("password.parallelism", "must be at least 1"));
        }
        if p.max_concurrent == 0 {
            return Err(invalid("password.max_concurrent", "must be at least 1"));
        }
        if let Some(b) = &self.bootstrap {
            b.password()?;
            if b.admin_username.is_empty() {
                return Err(invalid("bootstrap.admin_username", "must not be empty"));
            }
            if b.project_name.is_empty() {
                return Err(invalid("bootstrap.project_name", "must not be empty"));
            }
        }
        if let Some(f) = &self.federation {
            if !(f.advertise_url.starts_with("http://") || f.advertise_url.starts_with("https://"))
            {
                return Err(invalid(
                    "federation.advertise_url",
                    "must start with http:// or https://",
                ));
            }
            if !(1..=keyfed_shared::ring::MAX_WEIGHT).contains(&f.weight) {
                return Err(invalid("federation.weight", "must be between 1 and 1000"));
            }
            match (&f.nats, &f.embedded) {
                (Some(n), None) => n
                    .validate()
                    .map_err(|e| invalid("federation.nats", e.to_string()))?,
                (None, Some(e)) => e
                    .validate()
                    .map_err(|e| invalid("federation.embedded", e.to_string()))?,
                _ => {
                    return Err(invalid(
                        "federation",
                        "configure exactly one of [federation.nats] and [federation.embedded]",
                    ))
                }
            }
        }
        self.validate_trust()?;
        self.validate_transport()?;
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(invalid("log.format", "must be `text` or `json`"));
        }
        Ok(())
    }
}

impl ShardConfig {
    /// The scheme clients use for this shard's listener.
    pub fn scheme(&self) -> &'static str {
        if self.server.tls.is_some() || self.internal_tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Exactly one way of serving, and URLs that match it.
    fn validate_transport(&self) -> Result<(), ConfigError> {
        let s = &self.server;
        match (&s.tls, &self.internal_tls, s.insecure_plain_http) {
            (None, None, false) => {
                return Err(invalid(
                    "server.tls",
                    "choose how this shard serves: `[internal_tls]` (mTLS with the federation \
                     CA, for a federated shard), `[server] tls = { cert, key }` (public TLS, \
                     standalone), or `[server] insecure_plain_http = true` (plain HTTP, for \
                     development only)",
                ))
            }
            (Some(_), Some(_), _) => {
                return Err(invalid(
                    "server.tls",
                    "a shard serves one listener: with [internal_tls] it is mTLS; remove \
                     server.tls",
                ))
            }
            (Some(_), None, true) | (None, Some(_), true) => {
                return Err(invalid(
                    "server.insecure_plain_http",
                    "cannot be combined with server.tls or [internal_tls]",
                ))
            }
            _ => {}
        }
        if let Some(f) = &self.federation {
            if s.tls.is_some() {
                return Err(invalid(
                    "server.tls",
                    "a federated shard serves gateways and peers: use [internal_tls] (mTLS) \
                     instead",
                ));
            }
            let scheme = self.scheme();
            if !f.advertise_url.starts_with(&format!("{scheme}://")) {
                return Err(invalid(
                    "federation.advertise_url",
                    format!("must start with {scheme}:// (as the listener serves)"),
                ));
            }
        }
        Ok(())
    }

    fn validate_trust(&self) -> Result<(), ConfigError> {
        let t = &self.trust;
        if t.ca_key.is_some() && t.ca_cert.is_none() {
            return Err(invalid("trust.ca_key", "needs trust.ca_cert"));
        }
        if t.join_listen.is_some() && (t.ca_key.is_none() || self.internal_tls.is_none()) {
            return Err(invalid(
                "trust.join_listen",
                "only an issuer (trust.ca_key) with [internal_tls] serves joins apart",
            ));
        }
        if t.insecure_registry_trust && t.ca_cert.is_some() {
            return Err(invalid(
                "trust.insecure_registry_trust",
                "cannot be combined with trust.ca_cert",
            ));
        }
        if !(1..=3650).contains(&t.certificate_validity_days) {
            return Err(invalid(
                "trust.certificate_validity_days",
                "must be between 1 and 3650",
            ));
        }
        if self.federation.is_some() && t.ca_cert.is_none() && !t.insecure_registry_trust {
            return Err(invalid(
                "trust.ca_cert",
                "required for a federated shard (the federation CA from `keyfed ca init`)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_are_valid_once_plain_http_is_chosen() {
        let mut c = ShardConfig::default();
        c.server.insecure_plain_http = true;
        c.validate().unwrap();
        ShardConfig::from_toml_str("[server]\ninsecure_plain_http = true\n").unwrap();
    }

    #[test]
    fn the_transport_must_be_chosen_explicitly_and_once() {
        let e = ShardConfig::from_toml_str("").unwrap_err();
        assert!(e.to_string().contains("server.tls"), "{e}");
        assert!(e.to_string().contains("insecure_plain_http"), "{e}");
        let tls =
            ShardConfig::from_toml_str("[server]\ntls = { cert = \"/c.pem\", key = \"/k.pem\" }\n")
                .unwrap();
        assert!(tls.public_url().starts_with("https://"));
        let e = ShardConfig::from_toml_str(
            "[server]\ninsecure_plain_http = true\ntls = { cert = \"/c\", key = \"/k\" }\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("insecure_plain_http"), "{e}");
        let mtls = "[internal_tls]\nca = \"/ca.pem\"\ncert = \"/c.pem\"\nkey = \"/k.pem\"\n";
        let e = ShardConfig::from_toml_str(&format!(
            "[server]\ntls = {{ cert = \"/c\", key = \"/k\" }}\n{mtls}"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("one listener"), "{e}");
        let federated = "[federation]\nadvertise_url = \"http://10.0.0.1:5000\"\n\
                         [federation.embedded]\npath = \"/tmp/d\"\n\
                         [trust]\nca_cert = \"/ca.pem\"\n";
        let e = ShardConfig::from_toml_str(&format!("{mtls}{federated}")).unwrap_err();
        assert!(e.to_string().contains("https://"), "{e}");
        ShardConfig::from_toml_str(&format!("{mtls}{}", federated.replace("http:", "https:")))
            .unwrap();
        // A join listener: an issuer with [internal_tls] only.
        let join = "join_listen = \"127.0.0.1:5443\"\n";
        let https = federated.replace("http:", "https:");
        let e = ShardConfig::from_toml_str(&format!("{mtls}{https}{join}")).unwrap_err();
        assert!(e.to_string().contains("trust.join_listen"), "{e}");
        let issuer = format!("{https}ca_key = \"/ca-key.pem\"\n{join}");
        ShardConfig::from_toml_str(&format!("{mtls}{issuer}")).unwrap();
        let plain = format!(
            "[server]\ninsecure_plain_http = true\n{}",
            issuer.replace("https:", "http:")
        );
        let e = ShardConfig::from_toml_str(&plain).unwrap_err();
        assert!(e.to_string().contains("trust.join_listen"), "{e}");
    }

    #[test]
    fn errors_name_the_field() {
        let e = ShardConfig::from_toml_str(
            "[server]\ninsecure_plain_http = true\n[tokens]\nexpiration_secs = 5\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("tokens.expiration_secs"), "{e}");
        let e = ShardConfig::from_toml_str("[server]\nlisten = \"nope\"\n").unwrap_err();
        assert!(e.to_string().contains("listen"), "{e}");
        let e = ShardConfig::from_toml_str("[bogus]\n").unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
        let e = ShardConfig::from_toml_str("[server]\ninsecure_plain_http = true\n[bootstrap]\n")
            .unwrap_err();
        assert!(e.to_string().contains("bootstrap.admin_password"), "{e}");
    }
}

#[cfg(test)]
mod example_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn documented_example_is_valid() {
        let text =
            include_str!("../../docs/example-shard.toml").replace("KEYFED_ADMIN_PASSWORD", "PATH");
        let config = ShardConfig::from_toml_str(&text).unwrap();
        let defaults = ShardConfig::default();
        assert_eq!(config.server.listen, defaults.server.listen);
        assert_eq!(
            config.tokens.expiration_secs,
            defaults.tokens.expiration_secs
        );
        assert_eq!(config.password.memory_kib, defaults.password.memory_kib);
        assert_eq!(config.storage.url, defaults.storage.url);
    }
}
