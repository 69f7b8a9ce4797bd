//! Turning a joining member `active`, done by the joiner itself once it
//! serves. Tenant moves do not exist yet, so the existing tenants the new
//! ring would assign to it stay where they are, pinned there:
//!
//! 1. ask every active or retiring member for its project and user ids
//!    (`GET /internal/v1/tenants?joining=<me>` with an admin call token
//!    this shard issues itself and revokes after); a member answers only
//!    once it sees this shard joining, after its placement barrier — so
//!    whatever it creates later pins itself ([`super::joining`]);
//! 2. pin each listed id that the ring *with this shard* assigns to it to
//!    the member that listed it (pins bucket, `create`; an existing pin
//!    stands);
//! 3. wait until this shard answers `/readyz` at its advertised URL, then
//!    set its record `active` by compare-and-swap.
//!
//! Each pass first renews the join lease (`keyfed_federation::lifecycle::
//! lease`, taken when the issuer admitted this shard), and the lease is
//! released once the shard is active: shards join one at a time. A pass
//! that finds the lease held by another joiner (this one's expired and was
//! taken over) waits for it like any other failure.
//!
//! Any failure keeps the shard `joining` and the whole pass is retried with
//! back-off; pins are idempotent, so a retry is harmless.

use std::sync::Arc;
use std::time::Duration;

use keyfed_directory::{Bucket, Directory};
use keyfed_federation::lifecycle::admit::JOIN_LEASE_SECS;
use keyfed_federation::lifecycle::{credentials, lease};
use keyfed_federation::FederationView;
use keyfed_pki::join_token::Purpose;
use keyfed_shared::federation::{Member, MemberStatus};
use keyfed_shared::ids::ShardId;
use keyfed_shared::ring::Ring;
use keyfed_shared::time::now_micros;
use serde::Deserialize;
use tokio::sync::watch;

use super::joining::{pin, PinError};
use super::record::activate;
use keyfed_shared::federation::ADMIN_TOKEN_HEADER;

/// How long the admin call token used for the listings lives.
const LISTING_TOKEN_SECS: i64 = 300;
/// Longest wait between two passes.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// A member's answer to `GET /internal/v1/tenants`.
#[derive(Debug, Deserialize)]
pub struct Tenants {
    /// Project ids it owns.
    pub projects: Vec<String>,
    /// User ids homed there.
    pub users: Vec<String>,
}

/// What the activation needs (no reference to the shard itself).
pub struct Activation {
    /// The directory.
    pub directory: Arc<dyn Directory>,
    /// The federation as seen from here.
    pub view: Arc<FederationView>,
    /// This shard.
    pub me: ShardId,
    /// Its advertised URL (no trailing slash).
    pub url: String,
    /// The registration outcome.
    pub registered: watch::Receiver<Option<MemberStatus>>,
    /// The client for internal calls.
    pub http: reqwest::Client,
}

fn now() -> i64 {
    now_micros() / 1_000_000
}

impl Activation {
    /// Waits for the registration, and activates if it found the record
    /// `joining`.
    pub async fn run(mut self) {
        let Ok(status) = self.registered.wait_for(Option::is_some).await.map(|s| *s) else {
            return;
        };
        if status != Some(MemberStatus::Joining) {
            return;
        }
        let http = self.http.clone();
        let mut delay = Duration::from_millis(200);
        loop {
            match self.pass(&http).await {
                Ok(pinned) => {
                    tracing::info!(shard = %self.me, pinned, "joined: now active");
                    return;
                }
                Err(e) => {
                    tracing::warn!(shard = %self.me, error = %e, "activation pending; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn pass(&self, http: &reqwest::Client) -> Result<usize, String> {
        if !self.view.ready() {
            return Err("the federation view is not loaded".into());
        }
        let members = self.view.members();
        let me = members
            .iter()
            .find(|m| m.id == self.me)
            .ok_or("this shard's record is not in the view yet")?;
        lease::acquire(
            self.directory.as_ref(),
            self.me.as_str(),
            now(),
            JOIN_LEASE_SECS,
        )
        .await
        .map_err(|e| e.to_string())?;
        let mut weights: Vec<(ShardId, u32)> = members
            .iter()
            .filter(|m| m.status == MemberStatus::Active)
            .map(|m| (m.id.clone(), m.weight))
            .collect();
        weights.push((me.id.clone(), me.weight));
        let ring = Ring::new(&weights).map_err(|e| format!("ring: {e}"))?;
        let token = credentials::issue(
            self.directory.as_ref(),
            Purpose::Admin,
            now(),
            LISTING_TOKEN_SECS,
        )
        .await
        .map_err(|e| e.to_string())?;
        let pinned = self.pin_all(http, &members, &ring, &token).await;
        let _ = credentials::revoke(self.directory.as_ref(), &token, Purpose::Admin).await;
        let pinned = pinned?;
        self.wait_serving(http).await?;
        activate(
            self.directory.kv(Bucket::Members).as_ref(),
            self.me.as_str(),
        )
        .await
        .map_err(|e| e.to_string())?;
        match lease::release(self.directory.as_ref(), self.me.as_str()).await {
            Ok(_) => {}
            // It expires on its own.
            Err(e) => tracing::warn!(error = %e, "releasing the join lease failed"),
        }
        Ok(pinned)
    }

    async fn pin_all(
        &self,
        http: &reqwest::Client,
        members: &[Member],
        ring: &Ring,
        token: &str,
    ) -> Result<usize, String> {
        let pins = self.directory.kv(Bucket::Pins);
        let mut pinned = 0;
        for m in members.iter().filter(|m| {
            m.id != self.me && matches!(m.status, MemberStatus::Active | MemberStatus::Retiring)
        }) {
            let tenants = list(http, m, token, Some(("joining", self.me.as_str()))).await?;
            let entities = tenants
                .projects
                .iter()
                .map(|id| ("project", id))
                .chain(tenants.users.iter().map(|id| ("user", id)));
            for (kind, id) in entities {
                if ring.owner(id.as_str()) != &self.me {
                    continue;
                }
                match pin(pins.as_ref(), &format!("{kind}/{id}"), &m.id).await {
                    Ok(()) | Err(PinError::Elsewhere(_)) => pinned += 1,
                    Err(PinError::Directory(e)) => return Err(e.to_string()),
                }
            }
        }
        Ok(pinned)
    }

    async fn wait_serving(&self, http: &reqwest::Client) -> Result<(), String> {
        for _ in 0..600 {
            let r = http.get(format!("{}/readyz", self.url)).send().await;
            if r.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!("{} never answered /readyz", self.url))
    }
}

/// `GET /internal/v1/tenants` on `member` with an admin call token; with
/// `barrier` = (`joining` or `retiring`, a member id), once `member` sees
/// that member in that state, after its placement barrier.
pub async fn list(
    http: &reqwest::Client,
    member: &Member,
    token: &str,
    barrier: Option<(&str, &str)>,
) -> Result<Tenants, String> {
    let mut req = http
        .get(format!("{}/internal/v1/tenants", member.url))
        .header(ADMIN_TOKEN_HEADER, token);
    if let Some((status, id)) = barrier {
        req = req.query(&[(status, id)]);
    }
    let r = req
        .send()
        .await
        .map_err(|e| format!("{}: {e}", member.id))?;
    if !r.status().is_success() {
        return Err(format!("{} answered {}", member.id, r.status()));
    }
    r.json().await.map_err(|e| format!("{}: {e}", member.id))
}
