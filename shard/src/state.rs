//! The shard's shared state: one `Arc<Shard>` handed to every handler. No
//! globals: tests build as many shards as they like in one process.

use crate::config::ShardConfig;
use crate::error::Result;
use crate::federation::mirror::MirrorProgress;
use crate::federation::Federated;
use crate::global::GlobalData;
use crate::keyring::{self, OwnKey};
use crate::metrics::Metrics;
use crate::password::Hasher;
use crate::store::Store;
use arc_swap::ArcSwap;
use ed25519_dalek::VerifyingKey;
use keyfed_http::tls::TlsReloader;
use keyfed_shared::revocation::{RevocationEvent, RevocationIndex, RevocationSubject};
use keyfed_shared::time::now_micros;
use std::sync::{Arc, RwLock};

/// Handle passed to handlers.
pub type AppState = Arc<Shard>;

/// Everything a running shard holds.
pub struct Shard {
    pub config: ShardConfig,
    /// Request ids (`req-<uuid>`, as the gateway makes them).
    pub request_ids: keyfed_http::request_id::RequestIds,
    /// Base URL for links (no trailing slash).
    pub public_url: String,
    pub store: Arc<dyn Store>,
    pub hasher: Hasher,
    /// The key new tokens are signed with (replaced by a key rotation,
    /// see [`crate::federation::rotation`]).
    pub(crate) own: ArcSwap<OwnKey>,
    global: ArcSwap<GlobalData>,
    revocations: RwLock<RevocationIndex>,
    /// The federation this shard belongs to, when configured.
    pub federation: Option<Arc<Federated>>,
    /// Prometheus metrics.
    pub metrics: Metrics,
    /// The TLS configs of the listeners and the peer client, following
    /// their files (`keyfed_http::tls::TlsReloader`).
    pub tls: TlsReloader,
    /// Client for calls to other members (user stubs).
    pub http: reqwest::Client,
    /// How far the global-data mirror has got (federated shards).
    pub mirror: MirrorProgress,
    /// Pauses for fault tests (see [`crate::failpoints`]).
    pub failpoints: crate::failpoints::Failpoints,
    /// Background tasks over this state (mirror, key rotation).
    tasks: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for Shard {
    fn drop(&mut self) {
        for task in self
            .tasks
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .drain(..)
        {
            task.abort();
        }
    }
}

impl Shard {
    /// Builds the state: signing key, hasher, global data and revocations
    /// loaded from the store.
    pub async fn new(
        config: ShardConfig,
        store: Arc<dyn Store>,
        directory: Option<Arc<dyn keyfed_directory::Directory>>,
    ) -> Result<AppState, crate::ShardError> {
        let key_base = &config.tokens.signing_key_file;
        let cert_base = config.trust.certificate_path(key_base);
        let serial = keyring::current_serial(key_base, &cert_base);
        let own = OwnKey::new(
            &config.shard.id,
            serial,
            keyring::load_or_create(key_base, serial)?,
        );
        let hasher = Hasher::new(&config.password)?;
        let global = crate::global::load(store.as_ref()).await?;
        let now_secs = now_micros() / 1_000_000;
        let events = store.list_revocations(now_secs).await?;
        let federation = match &config.federation {
            Some(f) => Some(
                Federated::join(
                    f,
                    directory,
                    store.clone(),
                    &config.shard.id,
                    crate::federation::identity::Identity::load(
                        &config,
                        &own.key,
                        own.kid(),
                        &keyring::serial_path(&cert_base, serial),
                        now_secs,
                    )
                    .map_err(|e| crate::ShardError::Federation(e.to_string()))?,
                    events.clone(),
                    &config.tokens.validator(),
                )
                .await?,
            ),
            None => None,
        };
        let tls = TlsReloader::new();
        let http = peer_client(&config, &tls)?;
        let shard = Arc::new(Self {
            public_url: config.public_url(),
            config,
            store,
            hasher,
            own: ArcSwap::from_pointee(own),
            global: ArcSwap::from_pointee(global),
            revocations: RwLock::new(RevocationIndex::from_events(events)),
            federation,
            metrics: Metrics::with_tls(&tls),
            tls,
            http,
            mirror: MirrorProgress::default(),
            failpoints: crate::failpoints::Failpoints::from_env(),
            request_ids: keyfed_http::request_id::RequestIds::new(),
            tasks: std::sync::Mutex::new(Vec::new()),
        });
        if let Some(f) = &shard.federation {
            let mirror = tokio::spawn(crate::federation::mirror::run(
                Arc::downgrade(&shard),
                f.directory.clone(),
            ));
            let rotation = tokio::spawn(crate::federation::rotation::run(Arc::downgrade(&shard)));
            let audit = tokio::spawn(crate::federation::names_audit::run(
                Arc::downgrade(&shard),
                std::time::Duration::from_secs(
                    shard
                        .config
                        .federation
                        .as_ref()
                        .map_or(0, |c| c.name_audit_interval_secs),
                ),
            ));
            shard
                .tasks
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .extend([mirror, rotation, audit]);
        }
        Ok(shard)
    }

    /// The current global-data snapshot.
    pub fn global(&self) -> Arc<GlobalData> {
        self.global.load_full()
    }

    /// Reloads global data after a write to domains, roles or the catalog.
    pub async fn reload_global(&self) -> Result<()> {
        let fresh = crate::global::load(self.store.as_ref()).await?;
        self.global.store(Arc::new(fresh));
        Ok(())
    }

    /// A revocation event for `subject` cutting off tokens issued until now,
    /// kept as long as any such token could still be validated.
    pub fn revocation_event(&self, subject: RevocationSubject) -> RevocationEvent {
        let now = now_micros();
        let keep =
            self.config.tokens.expiration_secs + self.config.tokens.allow_expired_window_secs;
        RevocationEvent {
            subject,
            issued_before: now + 1,
            expires_at: now / 1_000_000 + keep as i64 + 1,
        }
    }

    /// Applies an event, already stored, to the in-memory index, and hands
    /// it to the federation's stream when the shard is federated.
    pub fn apply_revocation(&self, event: RevocationEvent) {
        if let Some(f) = &self.federation {
            f.publish(event.clone());
        }
        self.revocations
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(event);
    }

    /// Stores and applies a revocation event.
    pub async fn revoke(&self, subject: RevocationSubject) -> Result<()> {
        let event = self.revocation_event(subject);
        self.store.add_revocation(&event).await?;
        self.apply_revocation(event);
        Ok(())
    }

    pub(crate) fn is_revoked(&self, facts: &keyfed_shared::revocation::TokenFacts<'_>) -> bool {
        let local = self
            .revocations
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_revoked(facts);
        local
            || self
                .federation
                .as_ref()
                .is_some_and(|f| f.is_revoked(facts))
    }

    /// The verification key for `kid`: this shard's current one, or a
    /// registered member's (this shard's earlier ones included) when
    /// federated.
    pub(crate) fn verifying_key(&self, kid: &str) -> Option<VerifyingKey> {
        let own = self.own.load();
        if own.kid() == kid {
            return Some(own.signer.verifying_key());
        }
        self.federation.as_ref().and_then(|f| f.key(kid))
    }

    /// Drops expired events from the store and the index.
    pub async fn prune_revocations(&self) -> Result<u64> {
        let now = now_micros() / 1_000_000;
        let pruned = self.store.prune_revocations(now).await?;
        self.revocations
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .prune(now);
        Ok(pruned)
    }
}

/// The client for calls to peers: with `[internal_tls]` it presents this
/// shard's certificate and trusts only the federation CA; otherwise plain
/// HTTP (which the config chose explicitly).
fn peer_client(
    config: &ShardConfig,
    reloader: &TlsReloader,
) -> Result<reqwest::Client, crate::ShardError> {
    let mut builder = reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(2));
    if let Some(files) = &config.internal_tls {
        let tls = reloader
            .member_client_config("internal_tls", files, crate::federation::peer_is_a_shard())
            .map_err(|e| crate::ShardError::Tls(format!("internal_tls: {e}")))?;
        builder = builder.use_preconfigured_tls(tls);
    }
    builder
        .build()
        .map_err(|e| crate::ShardError::Tls(format!("the peer client: {e}")))
}
