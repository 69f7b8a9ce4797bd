//! The admin listener (`[admin]`): `/metrics`, `/healthz` and `/readyz`
//! for operators and monitoring, on an address of their own (loopback by
//! default) instead of the public Keystone listener. Which of them the
//! public listener serves too is [`AdminConfig::public_health`] and
//! [`AdminConfig::public_metrics`]; shards and gateways build the routes,
//! this module the config and the listener.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;

use crate::tls::{TlsFiles, TlsReloader, Transport};

/// The admin listener and what the public listener serves of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Where `/metrics`, `/healthz` and `/readyz` are served, apart from
    /// the Keystone API (e.g. `127.0.0.1:9100`). Default: none — no admin
    /// listener, and `/metrics` is served nowhere unless `public_metrics`.
    pub listen: Option<SocketAddr>,
    /// TLS for the admin listener (`{ cert, key }`, PEM; reloaded on change
    /// like the others). Default: none — plain HTTP, which a `listen`
    /// address other than loopback needs `insecure_plain_http` for.
    pub tls: Option<TlsFiles>,
    /// INSECURE: serve the admin listener over plain HTTP on an address
    /// other than loopback (metrics name members, routes and load).
    /// Default false.
    pub insecure_plain_http: bool,
    /// Serve `/metrics` on the public listener too. Default false: there it
    /// is a Keystone 404, as for any unknown path.
    pub public_metrics: bool,
    /// Serve `/healthz` and `/readyz` on the public listener too. Default
    /// true: load balancers probe the port they balance, and gateways
    /// probe their shards' `/healthz` at the member URL (so a federated
    /// shard must keep it). They tell whether the process is up and ready,
    /// nothing more.
    pub public_health: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: None,
            tls: None,
            insecure_plain_http: false,
            public_metrics: false,
            public_health: true,
        }
    }
}

/// A setting that cannot be used (`[admin]`, `[server]`): the field and
/// the problem.
#[derive(Debug, thiserror::Error)]
#[error("config field `{field}`: {problem}")]
pub struct FieldError {
    /// The field at fault (`admin.listen`, `server.max_body_bytes`).
    pub field: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl AdminConfig {
    /// Checks the settings without touching files or sockets.
    pub fn validate(&self) -> Result<(), FieldError> {
        match self.listen {
            Some(addr)
                if self.tls.is_none() && !addr.ip().is_loopback() && !self.insecure_plain_http =>
            {
                Err(FieldError {
                    field: "admin.listen",
                    problem: format!(
                        "{addr} is not a loopback address: set admin.tls, or \
                         admin.insecure_plain_http = true"
                    ),
                })
            }
            _ => Ok(()),
        }
    }

    /// Binds the admin listener, if one is configured (TLS files followed
    /// by `reloader`), and serves `app` on it until `shutdown` (as
    /// [`crate::serve_with`]) on a task of its own.
    pub async fn spawn(
        &self,
        app: axum::Router,
        reloader: &TlsReloader,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
        grace: std::time::Duration,
        max_buf: usize,
    ) -> Result<(), FieldError> {
        if let Some((listener, transport)) = self.bind(reloader).await? {
            tokio::spawn(crate::serve_with(
                app, listener, transport, shutdown, grace, max_buf,
            ));
        }
        Ok(())
    }

    async fn bind(
        &self,
        reloader: &TlsReloader,
    ) -> Result<Option<(TcpListener, Transport)>, FieldError> {
        let Some(addr) = self.listen else {
            return Ok(None);
        };
        let transport = match &self.tls {
            Some(files) => {
                Transport::tls(reloader.server_config("admin.tls", files).map_err(|e| {
                    FieldError {
                        field: "admin.tls",
                        problem: e.to_string(),
                    }
                })?)
            }
            None => Transport::Plain,
        };
        let listener = TcpListener::bind(addr).await.map_err(|e| FieldError {
            field: "admin.listen",
            problem: format!("binding {addr}: {e}"),
        })?;
        tracing::info!(%addr, scheme = transport.scheme(), "admin listener: /metrics, /healthz, /readyz");
        Ok(Some((listener, transport)))
    }
}
