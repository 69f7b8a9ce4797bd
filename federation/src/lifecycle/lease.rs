//! The join lease: shards join one at a time. A well-known key of the
//! credentials bucket, [`JOIN_LEASE_KEY`], holds `{holder, expires_at}`:
//! the shard whose join is in progress and until when. It is taken by
//! compare-and-swap `create` when an issuer admits a shard (so a second
//! admission while another shard is joining is refused, its token
//! unspent), renewed by the joiner on each activation pass, and released
//! by it once it is `active`. A lease past its expiry can be taken over by
//! compare-and-swap, so a joiner that crashed blocks others at most until
//! its lease expires.

use bytes::Bytes;
use keyfed_directory::{Bucket, Directory, DirectoryError};
use serde::{Deserialize, Serialize};

/// The lease's key in the credentials bucket.
pub const JOIN_LEASE_KEY: &str = "lease/join";

/// The lease's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinLease {
    /// The shard whose join holds it.
    pub holder: String,
    /// Unix seconds after which another join may take it over.
    pub expires_at: i64,
}

/// Why the lease was not obtained.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another shard is joining.
    #[error(
        "shard {holder:?} is joining (its lease runs until unix time {expires_at} unless it \
         activates first); shards join one at a time: retry later"
    )]
    Held { holder: String, expires_at: i64 },
    /// The directory failed.
    #[error("directory: {0}")]
    Directory(#[from] DirectoryError),
}

fn encode(lease: &JoinLease) -> Result<Bytes, DirectoryError> {
    serde_json::to_vec(lease)
        .map(Bytes::from)
        .map_err(|e| DirectoryError::Invalid(format!("encoding the join lease: {e}")))
}

/// Takes the lease for `holder` until `now + ttl_secs`: creates it, renews
/// it when `holder` has it already, or takes it over once expired (an
/// unreadable value counts as expired). Each write is a compare-and-swap,
/// so of concurrent takers exactly one wins.
pub async fn acquire(
    dir: &dyn Directory,
    holder: &str,
    now: i64,
    ttl_secs: i64,
) -> Result<(), LeaseError> {
    let kv = dir.kv(Bucket::Credentials);
    let mine = encode(&JoinLease {
        holder: holder.to_owned(),
        expires_at: now.saturating_add(ttl_secs),
    })?;
    match kv.create(JOIN_LEASE_KEY, mine.clone()).await {
        Ok(_) => return Ok(()),
        Err(DirectoryError::AlreadyExists) => {}
        Err(e) => return Err(e.into()),
    }
    let Some(entry) = kv.get(JOIN_LEASE_KEY).await? else {
        // Released in between: one more create decides.
        return match kv.create(JOIN_LEASE_KEY, mine).await {
            Ok(_) => Ok(()),
            Err(DirectoryError::AlreadyExists) => Err(held(dir).await?),
            Err(e) => Err(e.into()),
        };
    };
    let current = serde_json::from_slice::<JoinLease>(&entry.value).ok();
    if let Some(l) = current.as_ref() {
        if l.holder != holder && l.expires_at > now {
            return Err(LeaseError::Held {
                holder: l.holder.clone(),
                expires_at: l.expires_at,
            });
        }
    }
    match kv.update(JOIN_LEASE_KEY, mine, entry.revision).await {
        Ok(_) => {
            if let Some(l) = current.filter(|l| l.holder != holder) {
                tracing::warn!(expired = %l.holder, holder, "join lease taken over after expiry");
            }
            Ok(())
        }
        Err(DirectoryError::WrongRevision | DirectoryError::NotFound) => Err(held(dir).await?),
        Err(e) => Err(e.into()),
    }
}

/// The refusal naming whoever holds the lease now.
async fn held(dir: &dyn Directory) -> Result<LeaseError, DirectoryError> {
    let current = dir
        .kv(Bucket::Credentials)
        .get(JOIN_LEASE_KEY)
        .await?
        .and_then(|e| serde_json::from_slice::<JoinLease>(&e.value).ok());
    Ok(match current {
        Some(l) => LeaseError::Held {
            holder: l.holder,
            expires_at: l.expires_at,
        },
        None => LeaseError::Held {
            holder: "another shard".into(),
            expires_at: 0,
        },
    })
}

/// Releases the lease if `holder` has it (compare-and-swap: a lease taken
/// over meanwhile stays). Returns whether it was released.
pub async fn release(dir: &dyn Directory, holder: &str) -> Result<bool, DirectoryError> {
    let kv = dir.kv(Bucket::Credentials);
    let Some(entry) = kv.get(JOIN_LEASE_KEY).await? else {
        return Ok(false);
    };
    let mine = serde_json::from_slice::<JoinLease>(&entry.value).is_ok_and(|l| l.holder == holder);
    if !mine {
        return Ok(false);
    }
    match kv.delete(JOIN_LEASE_KEY, Some(entry.revision)).await {
        Ok(_) => Ok(true),
        Err(DirectoryError::WrongRevision | DirectoryError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}
