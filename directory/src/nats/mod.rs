//! The directory on NATS JetStream.
//!
//! Names, for namespace `ns`: bucket `ns_members` (JetStream stream
//! `KV_ns_members`, subjects `$KV.ns_members.>`) and likewise for every
//! [`Bucket`]; the revocation stream `ns_revocations` on subject
//! `keyfed.ns.revocations`. Buckets and the stream are created on first use
//! with history 1 and file storage.
//!
//! # While NATS is down
//!
//! - [`NatsDirectory::connect`] does not wait for the server: the client keeps
//!   trying to connect (and later to reconnect) in the background, forever,
//!   with a delay doubling up to `reconnect_max_delay_ms`.
//! - Every call is bounded by `timeout_ms` and then fails with
//!   [`DirectoryError::Unavailable`], so callers degrade (serve from their
//!   caches) instead of hanging. A write that failed this way has an unknown
//!   outcome: the client may still deliver it once reconnected. Compare-and-
//!   swap writes stay safe (a stale one is refused by the server); re-read
//!   before retrying.
//! - A stream from [`Kv::watch_from`] or [`Directory::revocations_from`] stays
//!   open: it delivers nothing during the outage, then, as soon as the client
//!   has reconnected (or its consumer fails for any other reason), it
//!   re-subscribes after the last revision (or sequence) it delivered, with a
//!   fresh consumer, and continues in order, without gaps or duplicates
//!   (subject to the compaction described in [`crate::kv`]).

pub mod access;
mod consumer;
mod keys;
mod kv;
mod revocations;

use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::watch;

use self::kv::{KvSettings, NatsKv};
use self::revocations::{NatsRevocations, StreamSettings};
use crate::config::NatsConfig;
use crate::directory::{Bucket, Directory, RevocationStream};
use crate::error::{DirectoryError, Result};
use crate::kv::Kv;
use crate::resume::Backoff;

/// First delay before re-subscribing a watch after a failure.
const RESUBSCRIBE_INITIAL_DELAY: Duration = Duration::from_millis(50);

/// The directory stored in NATS JetStream.
#[derive(Clone)]
pub struct NatsDirectory {
    namespace: String,
    client: Client,
    buckets: [Arc<NatsKv>; 6],
    revocations: NatsRevocations,
}

impl std::fmt::Debug for NatsDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsDirectory")
            .field("namespace", &self.namespace)
            .field("state", &self.client.connection_state())
            .finish_non_exhaustive()
    }
}

/// `options` with the credentials and TLS settings of `config`.
async fn authenticate(options: ConnectOptions, config: &NatsConfig) -> Result<ConnectOptions> {
    let mut options = options;
    if let Some(path) = &config.nkey_seed_file {
        options = options.nkey(NatsConfig::read_secret(path)?);
    }
    if let Some(path) = &config.creds_file {
        options = options.credentials_file(path).await.map_err(|e| {
            DirectoryError::Invalid(format!("directory config field `creds_file`: {e}"))
        })?;
    }
    if let (Some(user), Some(path)) = (&config.user, &config.password_file) {
        options = options.user_and_password(user.clone(), NatsConfig::read_secret(path)?);
    }
    if let Some(ca) = &config.tls_ca {
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    Ok(options.require_tls(config.require_tls))
}

/// The delay before reconnection attempt `attempts` (counted from 1).
fn reconnect_delay(attempts: usize, max: Duration) -> Duration {
    if attempts <= 1 {
        return Duration::ZERO;
    }
    let exponent = u32::try_from(attempts - 2).unwrap_or(u32::MAX).min(16);
    Duration::from_millis(50u64 << exponent).min(max)
}

impl NatsDirectory {
    /// Validates `config` and starts connecting to NATS. Returns at once, even
    /// when no server is reachable yet (see the module doc).
    pub async fn connect(config: &NatsConfig) -> Result<Self> {
        config.validate()?;
        let timeout = config.timeout();
        let max_delay = Duration::from_millis(config.reconnect_max_delay_ms);
        let namespace = config.namespace.clone();
        // Counts (re)connections; open watches re-subscribe when it moves.
        let (reconnects, reconnects_rx) = watch::channel(0u64);
        let reconnects = Arc::new(reconnects);
        let options = ConnectOptions::new()
            .name(format!("keyfed-directory/{namespace}"))
            .retry_on_initial_connect()
            .connection_timeout(timeout)
            .request_timeout(Some(timeout))
            .reconnect_delay_callback(move |attempts| reconnect_delay(attempts, max_delay))
            .event_callback(move |event| {
                let namespace = namespace.clone();
                let reconnects = reconnects.clone();
                async move {
                    match event {
                        Event::Connected => {
                            reconnects.send_modify(|count| *count += 1);
                            tracing::info!(%namespace, "directory connected to NATS");
                        }
                        Event::Disconnected => {
                            tracing::warn!(%namespace, "directory disconnected from NATS")
                        }
                        other => tracing::debug!(%namespace, event = %other, "NATS event"),
                    }
                }
            });
        let options = authenticate(options, config).await?;
        let client = options
            .connect(config.servers())
            .await
            .map_err(|e| DirectoryError::Invalid(format!("directory config field `url`: {e}")))?;
        Ok(Self::with_client(client, config, reconnects_rx))
    }

    fn with_client(client: Client, config: &NatsConfig, reconnects: watch::Receiver<u64>) -> Self {
        let timeout = config.timeout();
        let mut jetstream = async_nats::jetstream::new(client.clone());
        jetstream.set_timeout(timeout);
        let backoff = Backoff {
            initial: RESUBSCRIBE_INITIAL_DELAY,
            max: Duration::from_millis(config.reconnect_max_delay_ms)
                .max(RESUBSCRIBE_INITIAL_DELAY),
        };
        let namespace = config.namespace.as_str();
        let bucket = |bucket: Bucket| {
            Arc::new(NatsKv::new(KvSettings {
                client: client.clone(),
                jetstream: jetstream.clone(),
                bucket: format!("{namespace}_{}", bucket.name()),
                replicas: config.replicas,
                timeout,
                backoff,
                reconnects: reconnects.clone(),
            }))
        };
        let buckets = Bucket::ALL.map(bucket);
        let revocations = NatsRevocations::new(StreamSettings {
            client: client.clone(),
            jetstream: jetstream.clone(),
            name: format!("{namespace}_revocations"),
            subject: format!("keyfed.{namespace}.revocations"),
            max_age: Duration::from_secs(config.revocation_max_age_secs),
            replicas: config.replicas,
            timeout,
            backoff,
            reconnects,
        });
        NatsDirectory {
            namespace: config.namespace.clone(),
            client,
            buckets,
            revocations,
        }
    }

    /// Whether the client is connected to a NATS server right now.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The underlying NATS connection, to share it (e.g. with the event bus).
    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[async_trait]
impl Directory for NatsDirectory {
    fn namespace(&self) -> &str {
        &self.namespace
    }

    fn kv(&self, bucket: Bucket) -> Arc<dyn Kv> {
        self.buckets[bucket.index()].clone()
    }

    async fn publish_revocation(&self, payload: Bytes) -> Result<u64> {
        self.revocations.publish(payload).await
    }

    async fn revocations_from(&self, after: u64) -> Result<RevocationStream> {
        self.revocations.events_from(after).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delays_double_up_to_the_cap() {
        let max = Duration::from_millis(1_000);
        assert_eq!(reconnect_delay(1, max), Duration::ZERO);
        assert_eq!(reconnect_delay(2, max), Duration::from_millis(50));
        assert_eq!(reconnect_delay(3, max), Duration::from_millis(100));
        assert_eq!(reconnect_delay(100, max), max);
    }
}
