//! Join tokens and admin call tokens in the directory's credentials bucket
//! (`join/<id>`, `admin/<id>` → [`TokenRecord`] JSON, the secret's hash
//! only). A join token is consumed by deleting its record with
//! compare-and-swap on the revision that was verified, so of concurrent
//! joins presenting one token exactly one succeeds.

use bytes::Bytes;
use keyfed_directory::{Bucket, Directory, DirectoryError};
use keyfed_pki::join_token::{create, Presented, Purpose, TokenRecord};

use super::LifecycleError;

/// Creates a token for `purpose`, valid `ttl_secs` from `now`, stores its
/// record, and returns the token (shown once, never stored). Expired
/// records of the same purpose are pruned on the way.
pub async fn issue(
    dir: &dyn Directory,
    purpose: Purpose,
    now: i64,
    ttl_secs: i64,
) -> Result<String, LifecycleError> {
    let kv = dir.kv(Bucket::Credentials);
    prune(dir, purpose, now).await?;
    let (token, id, record) = create(purpose, now, ttl_secs);
    let value = serde_json::to_vec(&record)
        .map_err(|e| LifecycleError::Invalid(format!("encoding token record: {e}")))?;
    kv.create(&format!("{}{id}", purpose.prefix()), Bytes::from(value))
        .await?;
    Ok(token)
}

/// Deletes expired records of `purpose`.
async fn prune(dir: &dyn Directory, purpose: Purpose, now: i64) -> Result<(), LifecycleError> {
    let kv = dir.kv(Bucket::Credentials);
    for (key, entry) in kv.snapshot(purpose.prefix()).await?.entries {
        let expired = serde_json::from_slice::<TokenRecord>(&entry.value)
            .map(|r| r.expires_at <= now)
            .unwrap_or(true);
        if expired {
            match kv.delete(&key, Some(entry.revision)).await {
                Ok(_) | Err(DirectoryError::WrongRevision) | Err(DirectoryError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// Verifies `token` for `purpose` at `now`; returns the key and revision of
/// its record.
async fn verify(
    dir: &dyn Directory,
    token: &str,
    purpose: Purpose,
    now: i64,
) -> Result<(String, u64), LifecycleError> {
    let presented = Presented::parse(token).map_err(|_| LifecycleError::Refused)?;
    let key = presented.key(purpose);
    let entry = dir
        .kv(Bucket::Credentials)
        .get(&key)
        .await?
        .ok_or(LifecycleError::Refused)?;
    let record: TokenRecord =
        serde_json::from_slice(&entry.value).map_err(|_| LifecycleError::Refused)?;
    if let Err(why) = presented.verify(&record, purpose, now) {
        tracing::info!(record = presented.id(), %why, "token refused");
        return Err(LifecycleError::Refused);
    }
    Ok((key, entry.revision))
}

/// Verifies a join token without consuming it (so that a request without
/// a valid token learns nothing more, e.g. who holds the join lease).
pub async fn check_join_token(
    dir: &dyn Directory,
    token: &str,
    now: i64,
) -> Result<(), LifecycleError> {
    verify(dir, token, Purpose::Join, now).await.map(|_| ())
}

/// Verifies and consumes a join token: it can never be used again.
pub async fn consume_join_token(
    dir: &dyn Directory,
    token: &str,
    now: i64,
) -> Result<(), LifecycleError> {
    let (key, revision) = verify(dir, token, Purpose::Join, now).await?;
    match dir
        .kv(Bucket::Credentials)
        .delete(&key, Some(revision))
        .await
    {
        Ok(_) => Ok(()),
        // Someone consumed it between our read and our delete.
        Err(DirectoryError::WrongRevision) | Err(DirectoryError::NotFound) => {
            Err(LifecycleError::Refused)
        }
        Err(e) => Err(e.into()),
    }
}

/// Verifies an admin call token (usable until it expires).
pub async fn check_admin_token(
    dir: &dyn Directory,
    token: &str,
    now: i64,
) -> Result<(), LifecycleError> {
    verify(dir, token, Purpose::Admin, now).await.map(|_| ())
}

/// Revokes an admin call token before it expires (the CLI, when done).
pub async fn revoke(
    dir: &dyn Directory,
    token: &str,
    purpose: Purpose,
) -> Result<(), LifecycleError> {
    let presented = Presented::parse(token).map_err(|_| LifecycleError::Refused)?;
    dir.kv(Bucket::Credentials)
        .delete(&presented.key(purpose), None)
        .await?;
    Ok(())
}
