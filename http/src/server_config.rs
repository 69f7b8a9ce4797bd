//! `[server]`: the public listener of a shard or a gateway, one type for
//! both.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::admin::FieldError;
use crate::tls::TlsFiles;

/// Keystone's default `max_request_body_size` (112 KiB): the largest body
/// any Keystone API call needs, with room to spare.
pub const DEFAULT_MAX_BODY_BYTES: usize = 114_688;

/// The public HTTP listener and its request limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:5000`.
    pub listen: SocketAddr,
    /// The URL clients reach this server at, used in `links`, version
    /// discovery and (on a shard) the bootstrap catalog's identity endpoint;
    /// no trailing slash needed. Default: `<scheme>://<listen>`.
    pub public_url: Option<String>,
    /// Largest request body accepted, in bytes (413 beyond). Default
    /// 114688, Keystone's `max_request_body_size`.
    pub max_body_bytes: usize,
    /// Largest total size of request headers, in bytes (431 beyond; at
    /// least 4096). Default 16 KiB: tokens are small, but clients send many
    /// headers.
    pub max_header_bytes: usize,
    /// How long in-flight requests may run after shutdown is requested, in
    /// seconds. Default 10.
    pub shutdown_grace_secs: u64,
    /// Public TLS (`{ cert, key }`, PEM files, from any CA clients trust).
    /// A shard serves one listener: this, mTLS (`[internal_tls]`) or plain
    /// HTTP (`insecure_plain_http`) — exactly one; a gateway this or plain
    /// HTTP.
    pub tls: Option<TlsFiles>,
    /// INSECURE: serve (and, on a shard, call peers over) plain HTTP. For
    /// development and tests on one host only (`keyfed dev`). Default false.
    pub insecure_plain_http: bool,
    /// How often the TLS files (`tls`, `[internal_tls]`) are read again,
    /// in seconds: a changed certificate, key or CA is used by the next
    /// handshakes, open connections stay; files that do not load leave the
    /// previous ones in service (logged, counted in `/metrics`). `SIGHUP`
    /// checks at once. 0: only on `SIGHUP`. Default 60.
    pub tls_reload_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5000)),
            public_url: None,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_header_bytes: 16 * 1024,
            shutdown_grace_secs: 10,
            tls: None,
            insecure_plain_http: false,
            tls_reload_secs: 60,
        }
    }
}

impl ServerConfig {
    /// Checks the limits and the URL, without touching files or sockets.
    pub fn validate(&self) -> Result<(), FieldError> {
        let field = |field, problem: &str| FieldError {
            field,
            problem: problem.to_owned(),
        };
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(field(
                    "server.public_url",
                    "must start with http:// or https://",
                ));
            }
        }
        if self.max_body_bytes < 1024 {
            return Err(field("server.max_body_bytes", "must be at least 1024"));
        }
        if self.max_header_bytes < 4096 {
            return Err(field("server.max_header_bytes", "must be at least 4096"));
        }
        Ok(())
    }

    /// The public base URL, no trailing slash: `public_url`, or
    /// `<scheme>://<listen>`.
    pub fn public_url(&self, scheme: &str) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("{scheme}://{}", self.listen),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_urls_are_checked() {
        assert!(ServerConfig::default().validate().is_ok());
        let small = ServerConfig {
            max_body_bytes: 10,
            ..ServerConfig::default()
        };
        assert_eq!(small.validate().unwrap_err().field, "server.max_body_bytes");
        let ftp = ServerConfig {
            public_url: Some("ftp://x".into()),
            ..ServerConfig::default()
        };
        assert_eq!(ftp.validate().unwrap_err().field, "server.public_url");
        let named = ServerConfig {
            public_url: Some("https://id.example/".into()),
            ..ServerConfig::default()
        };
        assert_eq!(named.public_url("http"), "https://id.example");
        assert_eq!(
            ServerConfig::default().public_url("http"),
            "http://127.0.0.1:5000"
        );
    }
}
