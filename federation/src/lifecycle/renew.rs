//! Online renewal of a member's signing certificate, done by an issuer on
//! the member's request (`POST /internal/v1/renew`).
//!
//! The member proves possession of its *current* certified key: the
//! request (a CSR for its new key, the kid of the current one, a timestamp
//! and a random nonce) is signed with the current signing key, and the
//! issuer verifies that signature with the key certified, for that kid, by
//! a currently valid certificate in the member's record. A timestamp more
//! than [`MAX_SKEW_SECS`] away from the issuer's clock is refused, and each
//! nonce is recorded in the credentials bucket (`renew/<nonce>`, created
//! once), so a replayed request is refused by every issuer. The CSR must
//! name the member and carry a key other than the current one. Only the
//! certificate is returned: the member writes its record itself.

use bytes::Bytes;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _};
use keyfed_directory::{Bucket, Directory, DirectoryError};
use keyfed_pki::{der_to_pem, CaCert, FederationCa};
use keyfed_shared::federation::{Member, MemberStatus};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::LifecycleError;

/// Largest accepted distance between a request's timestamp and the
/// issuer's clock, seconds.
pub const MAX_SKEW_SECS: i64 = 300;

/// What a renewing member sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewRequest {
    /// The member's id.
    pub shard_id: String,
    /// The kid of the current key, which signed this request.
    pub kid: String,
    /// CSR (PEM) for the new signing key, naming `shard_id`.
    pub csr: String,
    /// Unix seconds when the request was made.
    pub timestamp: i64,
    /// 32 lower-case hex digits, random, used once.
    pub nonce: String,
    /// Ed25519 signature of [`RenewRequest::message`] by the current key,
    /// lower-case hex.
    pub signature: String,
}

/// What the member gets back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewGrant {
    /// The new signing certificate, PEM.
    pub certificate: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl RenewRequest {
    /// The bytes signed: every field but the signature, unambiguously
    /// separated (the CSR by its digest).
    pub fn message(&self) -> Vec<u8> {
        format!(
            "keyfed-renew-v1\n{}\n{}\n{}\n{}\n{}",
            self.shard_id,
            self.kid,
            self.timestamp,
            self.nonce,
            hex(&Sha256::digest(self.csr.as_bytes()))
        )
        .into_bytes()
    }

    /// A request for `csr`, signed with `current` (kid `kid`); `nonce` is 16
    /// random bytes.
    pub fn signed(
        shard_id: &str,
        kid: &str,
        csr: String,
        current: &SigningKey,
        now: i64,
        nonce: [u8; 16],
    ) -> Self {
        let mut req = Self {
            shard_id: shard_id.to_owned(),
            kid: kid.to_owned(),
            csr,
            timestamp: now,
            nonce: hex(&nonce),
            signature: String::new(),
        };
        req.signature = hex(&current.sign(&req.message()).to_bytes());
        req
    }
}

/// The key certified for `kid` in `member`'s record, valid at `now`.
fn current_key(
    ca: &CaCert,
    member: &Member,
    kid: &str,
    now: i64,
) -> Option<ed25519_dalek::VerifyingKey> {
    let cert = member.certificates.iter().find(|c| c.kid == kid)?;
    if cert.retire_at.is_some_and(|t| t <= now) {
        return None;
    }
    let der = cert.der_bytes()?;
    ca.verify_signer(&der, member.id.as_str(), now)
        .ok()
        .map(|s| s.key)
}

/// Deletes the `renew/<nonce>` records whose replay window ended before
/// `now`; returns how many.
pub async fn prune_nonces(dir: &dyn Directory, now: i64) -> Result<usize, DirectoryError> {
    #[derive(serde::Deserialize)]
    struct Used {
        expires_at: i64,
    }
    let kv = dir.kv(Bucket::Credentials);
    let mut pruned = 0;
    for (key, entry) in kv.snapshot("renew/").await?.entries {
        let expired =
            serde_json::from_slice::<Used>(&entry.value).map_or(true, |u| u.expires_at < now);
        if expired {
            match kv.delete(&key, Some(entry.revision)).await {
                Ok(_) => pruned += 1,
                Err(DirectoryError::WrongRevision | DirectoryError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(pruned)
}

/// Verifies `req` at `now` and issues the new certificate, valid for
/// `validity_secs`; see the module doc. A bad signature, unknown member or
/// kid, stale timestamp or used nonce is `Refused` (401).
pub async fn renew(
    dir: &dyn Directory,
    ca: &FederationCa,
    req: &RenewRequest,
    now: i64,
    validity_secs: i64,
) -> Result<RenewGrant, LifecycleError> {
    keyfed_pki::names::check_shard_id(&req.shard_id)?;
    let nonce_ok = req.nonce.len() == 32
        && req
            .nonce
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !nonce_ok {
        return Err(LifecycleError::Invalid(
            "nonce must be 32 lower-case hex digits".into(),
        ));
    }
    // `abs_diff`: any i64 is a timestamp a caller can send.
    if req.timestamp.abs_diff(now) > MAX_SKEW_SECS.unsigned_abs() {
        return Err(LifecycleError::Refused);
    }
    let entry = dir
        .kv(Bucket::Members)
        .get(&req.shard_id)
        .await?
        .ok_or(LifecycleError::Refused)?;
    let member: Member = serde_json::from_slice(&entry.value)
        .map_err(|e| DirectoryError::Invalid(format!("decoding member record: {e}")))?;
    if member.status == MemberStatus::Retired {
        return Err(LifecycleError::Refused);
    }
    let key = current_key(ca.cert(), &member, &req.kid, now).ok_or(LifecycleError::Refused)?;
    let signature = unhex(&req.signature)
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| Signature::from_bytes(&b))
        .ok_or(LifecycleError::Refused)?;
    key.verify(&req.message(), &signature)
        .map_err(|_| LifecycleError::Refused)?;
    let (der, signer) = ca.issue_verified(&req.csr, &req.shard_id, now, validity_secs)?;
    if signer.key == key {
        return Err(LifecycleError::Invalid(
            "the CSR must carry a new key, not the current one".into(),
        ));
    }
    // Spend the nonce last: a refused request does not burn it, an
    // accepted one cannot be replayed at any issuer.
    let used = serde_json::json!({"expires_at": req.timestamp + MAX_SKEW_SECS});
    match dir
        .kv(Bucket::Credentials)
        .create(
            &format!("renew/{}", req.nonce),
            Bytes::from(used.to_string()),
        )
        .await
    {
        Ok(_) => {}
        Err(DirectoryError::AlreadyExists) => return Err(LifecycleError::Refused),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(member = %req.shard_id, kid = %req.kid, "renewed a member's signing certificate");
    // Nonces past the replay window can no longer be replayed (their
    // timestamp is refused): drop them, best effort.
    if let Err(error) = prune_nonces(dir, now).await {
        tracing::warn!(%error, "pruning used renewal nonces failed");
    }
    Ok(RenewGrant {
        certificate: der_to_pem(&der),
    })
}
