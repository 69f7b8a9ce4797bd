//! The gateway's shared state: configuration, the directory, the federation
//! view and revocation index it follows, the offline validator, the HTTP
//! client for the shards and the metrics. No globals: tests run several
//! gateways in one process.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use keyfed_directory::Directory;

use crate::health::Health;
use keyfed_federation::view::Trust;
use keyfed_federation::{FederationView, Revocations, Validator};
use keyfed_shared::federation::MemberStatus;
use keyfed_shared::ids::ShardId;

use crate::config::GatewayConfig;
use crate::error::{GatewayError, Result};
use crate::metrics::Metrics;
use crate::request_id::RequestIds;
use keyfed_http::tls::TlsReloader;

/// One gateway replica's state; shared as [`AppState`].
pub struct Gateway {
    /// The validated configuration.
    pub config: GatewayConfig,
    /// The public URL (no trailing slash), for discovery and links.
    pub public_url: String,
    /// The federation directory, read through the view's signature checks
    /// (names and memberships look-ups; the gateway writes nothing).
    pub directory: Arc<dyn Directory>,
    /// Members, placement, pins and global data, followed live.
    pub view: Arc<FederationView>,
    /// Revocation events, followed live.
    pub revocations: Arc<Revocations>,
    /// Offline token validation.
    pub validator: Validator,
    /// The client for shard calls (bounded connect and request timeouts).
    pub http: reqwest::Client,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The TLS configs of the public listener and the client to the
    /// shards, following their files (`keyfed_http::tls::TlsReloader`).
    pub tls: TlsReloader,
    /// The `x-openstack-request-id` of each request.
    pub request_ids: RequestIds,
    /// `X-Forwarded-Proto`, `-Host` and `-Prefix` naming [`Self::public_url`],
    /// sent with every shard call so the links a shard renders name the
    /// gateway (see [`forwarded_headers`]).
    pub forwarded: axum::http::HeaderMap,
    /// Which members fail fast (see [`crate::health`]).
    pub health: Arc<Health>,
    /// Round-robin cursor for requests any member can answer.
    next_member: AtomicUsize,
    /// The prober of members marked down, stopped with the gateway.
    prober: tokio::task::JoinHandle<()>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.prober.abort();
    }
}

/// The headers telling a shard the public endpoint a request came in on,
/// as a proxy tells Keystone (oslo's `HTTPProxyToWSGI`): scheme, host (and
/// port) and path prefix of the gateway's configured public URL — never
/// the client's `Host` header, so a client cannot choose the links it is
/// given.
pub fn forwarded_headers(public_url: &str) -> Result<axum::http::HeaderMap> {
    use axum::http::HeaderValue;
    let bad = |e: String| GatewayError::Internal(format!("server.public_url {public_url:?}: {e}"));
    let url = reqwest::Url::parse(public_url).map_err(|e| bad(e.to_string()))?;
    let host = url.host_str().ok_or_else(|| bad("no host".into()))?;
    let host = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let prefix = url.path().trim_end_matches('/');
    let mut headers = axum::http::HeaderMap::new();
    for (name, value) in [
        ("x-forwarded-proto", url.scheme()),
        ("x-forwarded-host", host.as_str()),
        ("x-forwarded-prefix", prefix),
    ] {
        if !value.is_empty() {
            let value = HeaderValue::from_str(value).map_err(|e| bad(e.to_string()))?;
            headers.insert(name, value);
        }
    }
    Ok(headers)
}

/// The handle every handler receives.
pub type AppState = Arc<Gateway>;

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("public_url", &self.public_url)
            .finish_non_exhaustive()
    }
}

/// How the view trusts member keys: the CA of `trust.ca_cert`, else the
/// registry (only with `trust.insecure_registry_trust`, or in unit tests
/// that build a gateway without validating its config).
fn trust(config: &GatewayConfig) -> Result<Trust> {
    let Some(path) = &config.trust.ca_cert else {
        tracing::warn!("member keys are trusted without a CA (insecure_registry_trust)");
        return Ok(Trust::Registry);
    };
    let ca = keyfed_pki::files::read_text(path)
        .and_then(|pem| keyfed_pki::CaCert::from_pem(&pem))
        .map_err(|e| GatewayError::Internal(format!("trust.ca_cert: {e}")))?;
    Ok(Trust::Ca(Arc::new(ca)))
}

impl Gateway {
    /// Starts following the directory and builds the state. Returns even if
    /// the directory is unreachable (the gateway is then not ready).
    pub async fn start(config: GatewayConfig, directory: Arc<dyn Directory>) -> Result<AppState> {
        // The view checks the signed entries it reads; the gateway reads
        // the names index through the same checks, and writes nothing.
        let view = FederationView::start_with_trust(directory.clone(), trust(&config)?).await?;
        let revocations = Revocations::start(directory.clone());
        let validator = Validator::new(view.clone(), revocations.clone(), &config.validator);
        let mut http = reqwest::Client::builder()
            .connect_timeout(config.upstream.connect_timeout())
            .timeout(config.upstream.request_timeout())
            .pool_idle_timeout(std::time::Duration::from_secs(30));
        // mTLS to the shards: this gateway's certificate, the federation CA
        // as the only trust anchor. Without it, plain HTTP (chosen
        // explicitly in the config).
        // The shard called must present its own certificate: one naming the
        // member the view has at that address (not another member's, not a
        // gateway's).
        let tls = TlsReloader::new();
        if let Some(files) = &config.internal_tls {
            let members = view.clone();
            let check: keyfed_http::tls::PeerCheck =
                Arc::new(move |der, host| members.serves_at(der, host));
            let tls = tls
                .member_client_config("internal_tls", files, check)
                .map_err(|e| crate::server::config_error("internal_tls", e))?;
            http = http.use_preconfigured_tls(tls);
        }
        let http = http
            .build()
            .map_err(|e| GatewayError::Internal(format!("building the HTTP client: {e}")))?;
        let public_url = config.public_url();
        let health = Arc::new(Health::new(config.upstream.down_after_failures));
        let prober = tokio::spawn(crate::health::probe(
            health.clone(),
            view.clone(),
            http.clone(),
            std::time::Duration::from_millis(config.upstream.probe_interval_ms.max(10)),
        ));
        Ok(Arc::new(Self {
            forwarded: forwarded_headers(&public_url)?,
            public_url,
            config,
            directory: view.checked_directory(),
            view,
            revocations,
            validator,
            http,
            metrics: Metrics::with_tls(&tls),
            tls,
            request_ids: RequestIds::new(),
            health,
            next_member: AtomicUsize::new(0),
            prober,
        }))
    }

    /// Whether the gateway can route and validate: the view's snapshots are
    /// loaded and the revocation stream is followed.
    pub fn ready(&self) -> bool {
        self.validator.ready()
    }

    /// A member that can answer requests about global data: the active (or
    /// retiring) members in turn.
    pub fn any_member(&self) -> Result<ShardId> {
        let candidates: Vec<ShardId> = self
            .view
            .members()
            .into_iter()
            .filter(|m| m.status == MemberStatus::Active)
            .map(|m| m.id)
            .collect();
        if candidates.is_empty() {
            return Err(GatewayError::NoMember);
        }
        let i = self.next_member.fetch_add(1, Ordering::Relaxed) % candidates.len();
        Ok(candidates[i].clone())
    }

    /// Where a new entity `id` goes while its ring owner `down` is marked
    /// down: its owner on a ring of the active members that are not down.
    /// `None` when no other member is up.
    pub fn live_owner(&self, id: &str, down: &ShardId) -> Option<ShardId> {
        let live: Vec<(ShardId, u32)> = self
            .view
            .members()
            .into_iter()
            .filter(|m| m.status == MemberStatus::Active)
            .filter(|m| m.id != *down && !self.health.is_down(&m.id))
            .map(|m| (m.id, m.weight))
            .collect();
        let ring = keyfed_shared::ring::Ring::new(&live).ok()?;
        Some(ring.owner(id).clone())
    }

    /// The members a fan-out queries: every active or retiring member.
    pub fn serving_members(&self) -> Vec<ShardId> {
        self.view
            .members()
            .into_iter()
            .filter(|m| matches!(m.status, MemberStatus::Active | MemberStatus::Retiring))
            .map(|m| m.id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::forwarded_headers;

    #[test]
    fn the_forwarded_headers_name_the_public_url() {
        let h = forwarded_headers("https://ID.example.org:5000/identity").unwrap();
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
        assert_eq!(get("x-forwarded-proto"), Some("https"));
        assert_eq!(get("x-forwarded-host"), Some("id.example.org:5000"));
        assert_eq!(get("x-forwarded-prefix"), Some("/identity"));
        let h = forwarded_headers("http://127.0.0.1:8080").unwrap();
        assert_eq!(h.get("x-forwarded-host").unwrap(), "127.0.0.1:8080");
        assert!(h.get("x-forwarded-prefix").is_none());
        assert!(forwarded_headers("not a url").is_err());
    }
}
