//! Administration over the internal API: tenant counts per member
//! (`keyfed status`), retiring an empty member (`keyfed shard retire`) and
//! revoking a member at once (`keyfed shard revoke`).
//! Both list members' tenants with an admin call token they issue in the
//! credentials bucket and revoke when done.
//!
//! Retiring: the member is first *closed* (`POST /internal/v1/close`): it
//! refuses new projects and users for [`CLOSE_SECS`] and answers its
//! tenants once no creation is in flight, so the emptiness check cannot be
//! overtaken by a creation while the member is still in the ring. One
//! holding tenants is reopened and refused, left `active`. An empty one is
//! set `retiring` (the ring drops it: no new placements; it refuses
//! creations itself), listed again once it sees itself retiring and after
//! its placement barrier (a safety net should the close have lapsed), and
//! then set `retired` with `trusted_until` = now + the longest time a
//! token it signed stays valid; if a tenant appeared it is set back
//! `active`, reopened and refused. Tenant moves (draining a member that
//! holds tenants) are not built yet.

use std::time::Duration;

use keyfed_directory::{Bucket, Directory, DirectoryError};
use keyfed_federation::lifecycle::credentials;
use keyfed_federation::seal::SealedDirectory;
use keyfed_pki::join_token::Purpose;
use keyfed_shared::federation::{Member, MemberStatus};
use keyfed_shared::ids::ShardId;
use keyfed_shared::time::now_micros;

use super::activation::{list, Tenants};
use super::record::{set_status, StatusError};
use keyfed_shared::federation::ADMIN_TOKEN_HEADER;

/// How long the admin call token of one operation lives.
const TOKEN_SECS: i64 = 300;

/// How long a member being retired stays closed to new tenants: enough to
/// set it `retiring` and for it to see so (after which the ring excludes
/// it); it reopens by itself if the retirement dies half-way.
pub const CLOSE_SECS: i64 = 60;

fn now() -> i64 {
    now_micros() / 1_000_000
}

/// Why a retirement did not happen.
#[derive(Debug, thiserror::Error)]
pub enum RetireError {
    /// The member still owns tenants; it was left (or set back) active.
    #[error(
        "{id} still owns {projects} project(s) and {users} user(s); it stays active \
         (moving tenants off a member is not supported yet)"
    )]
    NotEmpty {
        id: ShardId,
        projects: usize,
        users: usize,
    },
    /// No such member, or not in a state that can retire.
    #[error(transparent)]
    Status(#[from] StatusError),
    /// The member could not be asked for its tenants.
    #[error("listing the tenants of {0}: {1}")]
    Unreachable(ShardId, String),
    /// The directory failed.
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    /// The admin call token could not be issued.
    #[error("issuing an admin call token: {0}")]
    Token(String),
}

async fn member(dir: &dyn Directory, id: &ShardId) -> Result<Member, RetireError> {
    super::record::effective(dir.kv(Bucket::Members).as_ref(), id.as_str())
        .await?
        .ok_or_else(|| StatusError::Unknown(id.to_string()).into())
}

/// Runs `op` with a fresh admin call token, revoking it after.
async fn with_token<T, F, Fut>(dir: &dyn Directory, op: F) -> Result<T, RetireError>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<T, RetireError>>,
{
    let token = credentials::issue(dir, Purpose::Admin, now(), TOKEN_SECS)
        .await
        .map_err(|e| RetireError::Token(e.to_string()))?;
    let outcome = op(token.clone()).await;
    let _ = credentials::revoke(dir, &token, Purpose::Admin).await;
    outcome
}

/// Each member's tenants (projects, users homed there), or why it could
/// not tell; retired members are skipped.
pub async fn tenant_counts(
    dir: &dyn Directory,
    http: &reqwest::Client,
    members: &[Member],
) -> Result<Vec<(ShardId, Result<(usize, usize), String>)>, RetireError> {
    with_token(dir, |token| async move {
        let mut counts = Vec::new();
        for m in members.iter().filter(|m| m.status != MemberStatus::Retired) {
            let listed = list(http, m, &token, None)
                .await
                .map(|t| (t.projects.len(), t.users.len()));
            counts.push((m.id.clone(), listed));
        }
        Ok(counts)
    })
    .await
}

/// `POST /internal/v1/close` on `m`: closed to new tenants for `seconds`
/// (0 reopens); its tenants once no creation is in flight.
pub async fn close(
    http: &reqwest::Client,
    m: &Member,
    token: &str,
    seconds: i64,
) -> Result<Tenants, String> {
    let r = http
        .post(format!("{}/internal/v1/close", m.url))
        .header(ADMIN_TOKEN_HEADER, token)
        .json(&serde_json::json!({ "seconds": seconds }))
        .send()
        .await
        .map_err(|e| format!("{}: {e}", m.id))?;
    if !r.status().is_success() {
        return Err(format!("{} answered {}", m.id, r.status()));
    }
    r.json().await.map_err(|e| format!("{}: {e}", m.id))
}

/// Reopens `m` to new tenants (best effort: the close lapses anyway).
async fn reopen(http: &reqwest::Client, m: &Member, token: &str) {
    if let Err(e) = close(http, m, token, 0).await {
        tracing::warn!(shard = %m.id, error = %e, "reopening failed; it reopens when the close lapses");
    }
}

/// Lists `m` once it sees itself retiring (retried for up to 10 s).
async fn list_retiring(http: &reqwest::Client, m: &Member, token: &str) -> Result<Tenants, String> {
    let mut last = String::new();
    for _ in 0..100 {
        match list(http, m, token, Some(("retiring", m.id.as_str()))).await {
            Ok(t) => return Ok(t),
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last)
}

/// Retires member `id` if it owns no tenant; `keep_secs` is the longest a
/// token it signed stays valid (lifetime + allow-expired window).
pub async fn retire(
    dir: &dyn Directory,
    http: &reqwest::Client,
    id: &ShardId,
    keep_secs: i64,
) -> Result<Member, RetireError> {
    let m = member(dir, id).await?;
    if !matches!(m.status, MemberStatus::Active | MemberStatus::Retiring) {
        return Err(StatusError::State {
            id: id.to_string(),
            status: m.status,
        }
        .into());
    }
    let members = dir.kv(Bucket::Members);
    with_token(dir, |token| async move {
        let not_empty = |t: &Tenants| RetireError::NotEmpty {
            id: id.clone(),
            projects: t.projects.len(),
            users: t.users.len(),
        };
        // Closed first: from here no tenant can be created on it.
        let before = close(http, &m, &token, CLOSE_SECS)
            .await
            .map_err(|e| RetireError::Unreachable(id.clone(), e))?;
        if !before.projects.is_empty() || !before.users.is_empty() {
            reopen(http, &m, &token).await;
            return Err(not_empty(&before));
        }
        let active = [MemberStatus::Active, MemberStatus::Retiring];
        let flipped = set_status(
            members.as_ref(),
            id.as_str(),
            &active,
            MemberStatus::Retiring,
            None,
            false,
        )
        .await;
        if let Err(e) = flipped {
            reopen(http, &m, &token).await;
            return Err(e.into());
        }
        let after = list_retiring(http, &m, &token).await;
        let refusal = match after {
            Ok(t) if t.projects.is_empty() && t.users.is_empty() => None,
            Ok(t) => Some(not_empty(&t)),
            Err(e) => Some(RetireError::Unreachable(id.clone(), e)),
        };
        if let Some(refusal) = refusal {
            let back = [MemberStatus::Retiring];
            set_status(
                members.as_ref(),
                id.as_str(),
                &back,
                MemberStatus::Active,
                None,
                false,
            )
            .await?;
            reopen(http, &m, &token).await;
            return Err(refusal);
        }
        let until = now().saturating_add(keep_secs);
        let retired = set_status(
            members.as_ref(),
            id.as_str(),
            &[MemberStatus::Retiring],
            MemberStatus::Retired,
            Some(until),
            false,
        )
        .await?;
        tracing::info!(shard = %id, trusted_until = until, "member retired");
        Ok(retired)
    })
    .await
}

/// Revokes member `id` at once (a compromised or lost member): `retired`
/// with `trusted_until` = now, so every view drops its keys — tokens it
/// signed, cached ones included, are refused everywhere within the view's
/// recheck (≤ 5 s) — and the ring no longer places anything on it. Unlike
/// [`retire`] it does not wait for the member to be empty: tenants it owns
/// are unreachable until restored elsewhere.
///
/// From then on no signature of its keys counts, whenever it claims to
/// have been made; so first the entries it signed while trusted (its
/// record, global data, tokens) are signed again by this issuer, and what
/// it wrote before stays.
pub async fn revoke(dir: &SealedDirectory, id: &ShardId) -> Result<Member, StatusError> {
    let resealed = dir.reseal(id.as_str()).await?;
    tracing::info!(shard = %id, resealed, "entries the revoked member signed are signed again");
    let any = [
        MemberStatus::Joining,
        MemberStatus::Active,
        MemberStatus::Retiring,
        MemberStatus::Retired,
    ];
    let members = dir.kv(Bucket::Members);
    let revoked = set_status(
        members.as_ref(),
        id.as_str(),
        &any,
        MemberStatus::Retired,
        Some(now()),
        true,
    )
    .await?;
    tracing::warn!(shard = %id, "member revoked: its keys are no longer trusted");
    Ok(revoked)
}
