//! Key rotation: a federated shard renews its signing certificate, online
//! and without a restart, in the last third of the certificate's validity.
//!
//! A rotation generates a NEW Ed25519 key with the next serial (kid
//! `<id>.<n+1>`, file beside the first key, 0600 — see
//! [`crate::keyring`]), gets it certified — by its own CA key on an issuer,
//! otherwise by an issuer (`POST /internal/v1/renew`, the request signed
//! with the current key as proof of possession; issuers are found by
//! asking the active members in turn: a non-issuer answers 404) — checks
//! the certificate against its CA, writes it beside the key, and makes it
//! the current certificate of its member record by compare-and-swap. The
//! replaced certificates stay in the record with `retire_at` = now + the
//! token lifetime + the allow-expired window (+ 15 s), so tokens the
//! old key signed keep validating everywhere; validators stop trusting it
//! at `retire_at`, and this task then removes it from the record. New
//! tokens are signed with the new key once this shard's own view has it
//! (at most [`VIEW_WAIT`] later), so peers following the same directory
//! learn the new key before they see tokens carrying it. Failures retry
//! with back-off.

use std::sync::{Arc, Weak};
use std::time::Duration;

use keyfed_directory::Bucket;
use keyfed_federation::lifecycle::renew::{RenewGrant, RenewRequest};
use keyfed_pki::{der_to_pem, pem_to_der, signing_request, CaCert};
use keyfed_shared::federation::{Member, MemberCert, MemberStatus};
use keyfed_shared::ids::ShardId;
use keyfed_shared::time::now_micros;

use super::{record, Federated};
use crate::keyring::{self, OwnKey};
use crate::state::Shard;

/// Longest sleep between checks (renewal due, old entries to remove).
const TICK: Duration = Duration::from_secs(5);
/// Longest wait for this shard's view to show a new key before signing.
const VIEW_WAIT: Duration = Duration::from_secs(10);
/// Longest wait between failed renewal attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Why a renewal attempt failed (retried).
#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    /// Generating, certifying or checking the key.
    #[error("{0}")]
    Pki(#[from] keyfed_pki::PkiError),
    /// Writing the key or certificate.
    #[error("{0}")]
    Local(#[from] crate::error::Error),
    /// The directory failed.
    #[error("{0}")]
    Directory(#[from] keyfed_directory::DirectoryError),
    /// No issuer granted the renewal.
    #[error("no issuer renewed the certificate: {0}")]
    NoIssuer(String),
}

fn now() -> i64 {
    now_micros() / 1_000_000
}

/// Unix seconds at which the current certificate should be renewed: when
/// a third of its validity is left.
fn renew_at(ca: &CaCert, der: &[u8], shard: &str) -> Option<i64> {
    let signer = ca.verify_signer_untimed(der, shard).ok()?;
    Some(signer.not_after - (signer.not_after - signer.not_before) / 3)
}

/// The current certificate's DER, from this shard's record in its view.
fn current_der(f: &Federated, me: &ShardId, kid: &str) -> Option<Vec<u8>> {
    f.view
        .member(me)?
        .certificates
        .iter()
        .find(|c| c.kid == kid)?
        .der_bytes()
}

/// Runs for the shard's life: renews when due, removes retired entries.
pub async fn run(shard: Weak<Shard>) {
    let mut backoff = TICK;
    let mut retry_at = 0;
    loop {
        let Some(s) = shard.upgrade() else { return };
        let Some(f) = s.federation.clone() else {
            return;
        };
        let Some(ca) = f.ca.clone() else { return };
        let me = ShardId::new(s.config.shard.id.as_str());
        let now = now();
        let own = s.own.load_full();
        let due = current_der(&f, &me, own.kid())
            .and_then(|der| renew_at(&ca, &der, me.as_str()))
            .is_some_and(|at| at <= now);
        if due && now >= retry_at {
            match rotate(&s, &f, &ca, &own).await {
                Ok(kid) => {
                    tracing::info!(%kid, "signing key rotated");
                    backoff = TICK;
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "certificate renewal failed; retrying");
                    retry_at = now + backoff.as_secs() as i64;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        let stale = f.view.member(&me).is_some_and(|m| {
            m.certificates
                .iter()
                .any(|c| c.retire_at.is_some_and(|t| t <= now))
        });
        if stale {
            let members = f.directory.kv(Bucket::Members);
            match record::prune(members.as_ref(), me.as_str(), now).await {
                Ok(true) => {
                    tracing::info!("removed retired signing certificates from the member record")
                }
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, "removing retired certificates failed; retrying")
                }
            }
        }
        drop((s, f));
        tokio::time::sleep(TICK).await;
    }
}

/// One rotation; returns the new kid.
async fn rotate(
    s: &Shard,
    f: &Federated,
    ca: &CaCert,
    own: &OwnKey,
) -> Result<String, RotationError> {
    let shard = s.config.shard.id.as_str();
    let serial = own.serial + 1;
    let kid = keyring::kid(shard, serial);
    let key_base = &s.config.tokens.signing_key_file;
    let key = keyring::load_or_create(key_base, serial)?;
    let csr = signing_request(shard, &key)?;
    let now = now();
    let der = match &f.issuer {
        Some(issuer) => issuer.issue(&csr, shard, now, f.certificate_validity_secs)?,
        None => pem_to_der(&from_issuers(s, f, own, csr, now).await?.certificate)?,
    };
    let signer = ca.verify_signer(&der, shard, now)?;
    if signer.key != key.verifying_key() {
        return Err(keyfed_pki::PkiError::Rejected(
            "the renewed certificate certifies another key".into(),
        )
        .into());
    }
    let cert_path = keyring::serial_path(&s.config.trust.certificate_path(key_base), serial);
    keyfed_pki::files::replace_private(&cert_path, der_to_pem(&der).as_bytes())?;
    let members = f.directory.kv(Bucket::Members);
    record::rotate(
        members.as_ref(),
        shard,
        MemberCert::new(&kid, &der),
        Member::encode_key(&key.verifying_key()),
        now,
        f.retention_secs,
    )
    .await?;
    let deadline = tokio::time::Instant::now() + VIEW_WAIT;
    while f.view.key(&kid).is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f.sealed
        .signers()
        .set_member(keyfed_federation::seal::EntrySigner::Member {
            kid: kid.clone(),
            key: key.clone(),
            cert: Arc::new(der),
        });
    s.own.store(Arc::new(OwnKey::new(shard, serial, key)));
    Ok(kid)
}

/// Asks the active members other than this one, in turn, to renew.
async fn from_issuers(
    s: &Shard,
    f: &Federated,
    own: &OwnKey,
    csr: String,
    now: i64,
) -> Result<RenewGrant, RotationError> {
    let me = s.config.shard.id.as_str();
    let mut last = String::from("no active member to ask");
    for member in f.view.members() {
        if member.id.as_str() == me || member.status != MemberStatus::Active {
            continue;
        }
        let request =
            RenewRequest::signed(me, own.kid(), csr.clone(), &own.key, now, rand::random());
        let url = format!("{}/internal/v1/renew", member.url);
        let answer = match f.internal_http.post(&url).json(&request).send().await {
            Ok(r) => r,
            Err(e) => {
                last = format!("{}: {e}", member.id);
                continue;
            }
        };
        let status = answer.status();
        if status.is_success() {
            return answer
                .json::<RenewGrant>()
                .await
                .map_err(|e| RotationError::NoIssuer(format!("{}: {e}", member.id)));
        }
        if status != reqwest::StatusCode::NOT_FOUND {
            last = format!("{} answered {status}", member.id);
        }
    }
    Err(RotationError::NoIssuer(last))
}
