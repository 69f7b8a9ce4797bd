//! Taking part in a federation: the shard registers its member record (id,
//! advertised URL, weight, signing key) in the directory, trusts the keys of
//! every registered member, follows the federation's revocation stream, and
//! publishes its own revocation events to it.
//!
//! Global data (domains, roles, catalog) lives in the directory: the shard
//! mirrors it into its store ([`mirror`]) and writes it there (`writes`).
//! The [`relay`] keeps the directory's membership index (user → shards
//! holding their assignments) in step with the store's membership outbox.
//!
//! Nothing here blocks the shard on NATS: registration and publishing retry
//! in the background with back-off, and at every start the shard republishes
//! the unexpired revocation events it stored, so an event stored just before
//! a crash or during a NATS outage still reaches every validator.

pub mod activation;
pub mod admin;
pub mod enrol;
pub mod enrol_tls;
pub mod global_names;
pub mod identity;
pub mod internal_client;
pub mod joining;
pub mod mirror;
pub mod names;
pub mod names_audit;
mod placement;
pub mod record;
pub mod relay;
pub mod rotation;
mod writes;

use crate::config::FederationConfig;
use crate::store::Store;
use crate::ShardError;
use ed25519_dalek::VerifyingKey;
use identity::Identity;
use keyfed_directory::{Bucket, Directory, EmbeddedDirectory, Kv, NatsDirectory};
use keyfed_federation::seal::SealedDirectory;
use keyfed_federation::{FederationView, Revocations, Validator, ValidatorConfig};
use keyfed_pki::{CaCert, FederationCa};
use keyfed_shared::federation::{Member, MemberStatus};
use keyfed_shared::ids::{ShardId, UserId};
use keyfed_shared::revocation::{RevocationEvent, TokenFacts};
use keyfed_shared::ring::Ring;
use relay::Relay;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Longest wait between retries of a directory write.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Serializes a revocation event for the stream.
fn to_payload(event: &RevocationEvent) -> Vec<u8> {
    serde_json::to_vec(event).unwrap_or_default()
}

/// A shard's link to its federation.
pub struct Federated {
    /// The directory, sealing and checking entries (see
    /// [`keyfed_federation::seal`]).
    pub directory: Arc<dyn Directory>,
    /// The same directory, for its signers and refusal count.
    pub sealed: Arc<SealedDirectory>,
    /// Members, keys, pins and global data, followed live.
    pub view: Arc<FederationView>,
    /// Revocation events of the whole federation.
    pub revocations: Arc<Revocations>,
    /// Looks up signers the view does not know yet, as gateways do (its
    /// token cache unused: the shard checks keys itself).
    pub signers: Validator,
    /// Delivers the store's membership outbox to the membership index.
    pub relay: Arc<Relay>,
    /// The federation CA, when this shard is an issuer (admits joiners).
    pub issuer: Option<Arc<FederationCa>>,
    /// Validity of the certificates this shard issues, seconds.
    pub certificate_validity_secs: i64,
    /// The federation CA certificate (none with registry trust).
    pub ca: Option<Arc<CaCert>>,
    /// How long a key replaced by a rotation stays trusted, seconds.
    pub retention_secs: i64,
    /// The client for internal calls to other members.
    pub internal_http: reqwest::Client,
    /// Creations against listings for a joining member (see [`joining`]).
    pub gate: joining::PlacementGate,
    /// Ids whose create or rename is in flight (see [`names`]).
    pub names_in_flight: names::InFlight,
    /// The status this shard's record had when registered (`None` until
    /// the directory took the record).
    pub registered: tokio::sync::watch::Receiver<Option<MemberStatus>>,
    memberships: Arc<dyn Kv>,
    outbox: mpsc::UnboundedSender<RevocationEvent>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Federated {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

async fn open(config: &FederationConfig) -> Result<Arc<dyn Directory>, ShardError> {
    let fail = |e: keyfed_directory::DirectoryError| ShardError::Federation(e.to_string());
    Ok(match (&config.nats, &config.embedded) {
        (Some(n), _) => Arc::new(NatsDirectory::connect(n).await.map_err(fail)?),
        (None, Some(e)) => Arc::new(EmbeddedDirectory::open(e).map_err(fail)?),
        (None, None) => return Err(ShardError::Federation("no directory configured".to_owned())),
    })
}

/// Retries `op` with doubling back-off until it succeeds.
async fn retry<F, Fut>(what: &str, mut op: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), keyfed_directory::DirectoryError>>,
{
    let mut delay = Duration::from_millis(50);
    loop {
        match op().await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "{what} failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(MAX_BACKOFF);
            }
        }
    }
}

impl Federated {
    /// Opens the directory (or uses `directory`, shared with other
    /// components of the same process), registers the member record, starts
    /// following the federation, queues `unpublished` revocation events, and
    /// starts relaying `store`'s membership outbox.
    pub async fn join(
        config: &FederationConfig,
        directory: Option<Arc<dyn Directory>>,
        store: Arc<dyn Store>,
        shard_id: &str,
        identity: Identity,
        unpublished: Vec<RevocationEvent>,
        validator: &ValidatorConfig,
    ) -> Result<Arc<Self>, ShardError> {
        let inner = match directory {
            Some(d) => d,
            None => open(config).await?,
        };
        let sealed = SealedDirectory::wrap(
            inner.clone(),
            identity.check.clone(),
            identity.signers.clone(),
        );
        let directory: Arc<dyn Directory> = sealed.clone();
        let member = Member {
            id: ShardId::new(shard_id),
            url: config.advertise_url.trim_end_matches('/').to_owned(),
            weight: config.weight,
            status: MemberStatus::Active,
            kid: identity.kid.clone(),
            public_key: Member::encode_key(&identity.public_key),
            certificates: identity.certificates,
            trusted_until: None,
        };
        let members = directory.kv(Bucket::Members);
        let keep = identity.retention_secs;
        let (registered_tx, registered) = tokio::sync::watch::channel(None);
        let register = tokio::spawn(async move {
            retry("registering the member record", || {
                let members = members.clone();
                let member = member.clone();
                let registered_tx = registered_tx.clone();
                async move {
                    let now = keyfed_shared::time::now_micros() / 1_000_000;
                    let status = record::register(members.as_ref(), &member, now, keep).await?;
                    let _ = registered_tx.send(Some(status));
                    Ok(())
                }
            })
            .await;
            tracing::info!(shard = %member.id, "member record registered");
        });
        // The view checks what it reads itself (it is given the raw
        // directory, not this shard's sealing one).
        let view = FederationView::start_with_trust(inner, identity.trust)
            .await
            .map_err(|e| ShardError::Federation(e.to_string()))?;
        let revocations = Revocations::start(directory.clone());
        let signers = Validator::new(view.clone(), revocations.clone(), validator);
        let (outbox, mut rx) = mpsc::unbounded_channel::<RevocationEvent>();
        let dir = directory.clone();
        let publisher = tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let payload = to_payload(&event);
                retry("publishing a revocation event", || {
                    let dir = dir.clone();
                    let payload = payload.clone();
                    async move { dir.publish_revocation(payload.into()).await.map(|_| ()) }
                })
                .await;
            }
        });
        for event in unpublished {
            let _ = outbox.send(event);
        }
        let activating = tokio::spawn(
            activation::Activation {
                directory: directory.clone(),
                view: view.clone(),
                me: ShardId::new(shard_id),
                url: config.advertise_url.trim_end_matches('/').to_owned(),
                registered: registered.clone(),
                http: identity.internal_http.clone(),
            }
            .run(),
        );
        let relay = Arc::new(Relay::default());
        let memberships = directory.kv(Bucket::Memberships);
        let relaying = tokio::spawn(relay.clone().run(
            store,
            memberships.clone(),
            ShardId::new(shard_id),
        ));
        Ok(Arc::new(Self {
            directory,
            sealed,
            view,
            revocations,
            signers,
            relay,
            issuer: identity.issuer,
            certificate_validity_secs: identity.validity_secs,
            ca: identity.ca,
            retention_secs: identity.retention_secs,
            internal_http: identity.internal_http,
            registered,
            gate: joining::PlacementGate::default(),
            names_in_flight: names::InFlight::default(),
            memberships,
            outbox,
            tasks: vec![register, publisher, relaying, activating],
        }))
    }

    /// Queues a revocation event for the federation's stream.
    pub fn publish(&self, event: RevocationEvent) {
        if self.outbox.send(event).is_err() {
            tracing::error!("revocation publisher stopped; event kept only locally");
        }
    }

    /// The shards holding `user`'s assignments according to the membership
    /// index, plus the user's home shard. When the directory cannot be read
    /// this is the home shard alone (the gateway then asks the directory
    /// itself, or every shard).
    pub async fn shard_set(&self, user: &UserId) -> BTreeSet<ShardId> {
        let mut shards = relay::shards_of(self.memberships.as_ref(), user)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(user = %user, error = %e, "membership index unavailable");
                BTreeSet::new()
            });
        shards.extend(self.view.home_of_user(user));
        shards
    }

    /// A registered member's verification key.
    pub fn key(&self, kid: &str) -> Option<VerifyingKey> {
        self.view.key(kid)
    }

    /// Whether the federation revoked a token with these facts.
    pub fn is_revoked(&self, facts: &TokenFacts<'_>) -> bool {
        self.revocations.is_revoked(facts)
    }
}

/// The check of a shard's internal TLS clients on the servers they call:
/// a certificate naming a shard (`keyfed:shard:<id>`), never a gateway's.
/// (Gateways also bind it to the member at the address: see
/// `FederationView::serves_at`.)
pub fn peer_is_a_shard() -> keyfed_http::tls::PeerCheck {
    std::sync::Arc::new(|der, _host| {
        keyfed_pki::tls::peer_member(der)
            .is_some_and(|(kind, _)| kind == keyfed_pki::MemberKind::Shard)
    })
}

/// Whether a user stored here is homed here rather than a stub: pinned
/// here, or unpinned and placed here by the ring over the active members
/// and this one — whatever this member's own status (a retiring member
/// still holds its users).
pub fn homed_here(f: &Federated, me: &ShardId) -> impl Fn(&UserId) -> bool {
    let mut weights: Vec<(ShardId, u32)> = f
        .view
        .members()
        .into_iter()
        .filter(|m| m.status == MemberStatus::Active || m.id == *me)
        .map(|m| (m.id, m.weight))
        .collect();
    weights.dedup_by(|a, b| a.0 == b.0);
    let ring = Ring::new(&weights).ok();
    let view = f.view.clone();
    let me = me.clone();
    move |user| match view.pinned_user(user) {
        Some(shard) => shard == me,
        None => ring.as_ref().is_some_and(|r| r.owner(user.as_str()) == &me),
    }
}
