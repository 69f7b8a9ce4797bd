//! The signed form of a directory entry and the keys that sign it.
//!
//! A sealed value is JSON `{"sealed": 1, "signer", "cert"?, "at", "value",
//! "sig"}`: `value` is the entry's own bytes (UTF-8 JSON, kept as a string
//! so they are verified exactly as written); `signer` is `ca` (the
//! federation CA key, held by issuers) or a member's `kid`
//! (`<member-id>.<serial>`), whose signing certificate `cert` (DER,
//! base64url) travels with it, so an entry stays verifiable after the key
//! rotated out of the member record; `at` is when it was signed (unix
//! seconds); `sig` is Ed25519 (base64url) over
//! `keyfed-entry-v1\n<bucket>\n<key>\n<signer>\n<at>\n<value>` — the
//! bucket and key are bound, so a signed value cannot be moved to another
//! key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use keyfed_directory::Bucket;
use keyfed_pki::{CaCert, SignerCert};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `signer` of entries signed with the federation CA key.
pub const CA_SIGNER: &str = "ca";

/// Envelope format version.
const FORMAT: u8 = 1;

/// How far in the future a signature time may lie (clock skew).
const MAX_SKEW_SECS: i64 = 300;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    sealed: u8,
    signer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cert: Option<String>,
    at: i64,
    value: String,
    sig: String,
}

fn message(bucket: Bucket, key: &str, signer: &str, at: i64, value: &str) -> Vec<u8> {
    format!(
        "keyfed-entry-v1\n{}\n{key}\n{signer}\n{at}\n{value}",
        bucket.name()
    )
    .into_bytes()
}

/// A key that signs entries.
#[derive(Clone)]
pub enum EntrySigner {
    /// The federation CA key (issuers).
    Ca(SigningKey),
    /// A member's certified token-signing key.
    Member {
        /// Its kid, `<member-id>.<serial>`.
        kid: String,
        /// The key.
        key: SigningKey,
        /// Its signing certificate, DER.
        cert: Arc<Vec<u8>>,
    },
}

impl std::fmt::Debug for EntrySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntrySigner::Ca(_) => f.write_str("EntrySigner::Ca"),
            EntrySigner::Member { kid, .. } => write!(f, "EntrySigner::Member({kid})"),
        }
    }
}

impl EntrySigner {
    /// The member this signer is, if it is one.
    pub fn member_id(&self) -> Option<&str> {
        match self {
            EntrySigner::Ca(_) => None,
            EntrySigner::Member { kid, .. } => kid.rsplit_once('.').map(|(id, _)| id),
        }
    }

    /// `value` sealed for `key` of `bucket`, signed at `at` (unix seconds).
    /// `None` when `value` is not UTF-8 (every sealed entry is JSON).
    pub fn seal(&self, bucket: Bucket, key: &str, value: &[u8], at: i64) -> Option<Vec<u8>> {
        let value = std::str::from_utf8(value).ok()?.to_owned();
        let (signer, cert, signing) = match self {
            EntrySigner::Ca(k) => (CA_SIGNER.to_owned(), None, k),
            EntrySigner::Member { kid, key, cert } => (kid.clone(), Some(B64.encode(&**cert)), key),
        };
        let sig = signing.sign(&message(bucket, key, &signer, at, &value));
        let envelope = Envelope {
            sealed: FORMAT,
            signer,
            cert,
            at,
            value,
            sig: B64.encode(sig.to_bytes()),
        };
        serde_json::to_vec(&envelope).ok()
    }
}

/// Who signed an entry that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignedBy {
    /// The federation CA key.
    Ca,
    /// A member's certified key.
    Member {
        /// The member.
        id: String,
        /// When it signed, unix seconds.
        at: i64,
    },
    /// Not checked: the federation runs without a CA
    /// (`insecure_registry_trust`), so entries are taken as they are.
    Unchecked,
}

/// Why a stored value was refused.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("not a sealed entry")]
    NotSealed,
    #[error("malformed envelope: {0}")]
    Malformed(String),
    #[error("bad signature")]
    BadSignature,
    #[error("signer certificate refused: {0}")]
    Certificate(String),
    #[error("signed at {at}, outside the signer's validity")]
    OutOfValidity { at: i64 },
    #[error("signer {0} may not write this entry")]
    WrongSigner(String),
    #[error("signer {id} is retired or revoked since {until}")]
    Revoked { id: String, until: i64 },
}

/// How entries are checked: against the federation CA, or not at all.
#[derive(Clone, Debug)]
pub enum EntryCheck {
    /// No CA (`insecure_registry_trust`): envelopes are unwrapped
    /// unchecked and plain values accepted.
    Unchecked,
    /// Every sealed entry must verify under the federation CA.
    Ca {
        /// The CA certificate (chains member certificates).
        ca: Arc<CaCert>,
        /// The CA's own key (verifies CA-signed entries).
        ca_key: Box<VerifyingKey>,
        /// Member certificates already verified (chain and name), by the
        /// SHA-256 of their DER: a bucket's entries share a few signers.
        verified: Arc<CertCache>,
    },
}

/// Member certificates verified under the CA, bounded.
#[derive(Debug, Default)]
pub struct CertCache(Mutex<HashMap<[u8; 32], SignerCert>>);

/// Most certificates remembered; the cache starts over beyond.
const CERT_CACHE_CAPACITY: usize = 1_024;

impl CertCache {
    fn verify(&self, ca: &CaCert, der: &[u8], member: &str) -> Result<SignerCert, SealError> {
        let digest: [u8; 32] = Sha256::digest(der).into();
        let cached = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&digest)
            .cloned();
        let cert = match cached {
            Some(cert) => cert,
            None => {
                let cert = ca
                    .verify_signer_untimed(der, member)
                    .map_err(|err| SealError::Certificate(err.to_string()))?;
                let mut cache = self.0.lock().unwrap_or_else(PoisonError::into_inner);
                if cache.len() >= CERT_CACHE_CAPACITY {
                    cache.clear();
                }
                cache.insert(digest, cert.clone());
                cert
            }
        };
        // The digest covers the name checked, but say so explicitly.
        if cert.shard != member {
            return Err(SealError::Certificate(format!("it does not name {member}")));
        }
        Ok(cert)
    }
}

impl EntryCheck {
    /// Checks under `ca`; `None` for [`EntryCheck::Unchecked`].
    pub fn new(ca: Option<Arc<CaCert>>) -> Result<Self, keyfed_pki::PkiError> {
        Ok(match ca {
            None => EntryCheck::Unchecked,
            Some(ca) => EntryCheck::Ca {
                ca_key: Box::new(ca.public_key()?),
                ca,
                verified: Arc::default(),
            },
        })
    }

    /// Opens `stored` (the bytes under `key` of `bucket`) at `now`: the
    /// entry's own value and who signed it.
    pub fn open(
        &self,
        bucket: Bucket,
        key: &str,
        stored: &[u8],
        now: i64,
    ) -> Result<(Vec<u8>, SignedBy), SealError> {
        let envelope = serde_json::from_slice::<Envelope>(stored)
            .ok()
            .filter(|e| e.sealed == FORMAT);
        let (ca, ca_key, verified) = match self {
            EntryCheck::Unchecked => {
                let value = match envelope {
                    Some(e) => e.value.into_bytes(),
                    None => stored.to_vec(),
                };
                return Ok((value, SignedBy::Unchecked));
            }
            EntryCheck::Ca {
                ca,
                ca_key,
                verified,
            } => (ca, ca_key, verified),
        };
        let e = envelope.ok_or(SealError::NotSealed)?;
        if e.at > now.saturating_add(MAX_SKEW_SECS) {
            return Err(SealError::OutOfValidity { at: e.at });
        }
        let sig: [u8; 64] = B64
            .decode(&e.sig)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| SealError::Malformed("signature".into()))?;
        let sig = Signature::from_bytes(&sig);
        let msg = message(bucket, key, &e.signer, e.at, &e.value);
        let by = if e.signer == CA_SIGNER {
            ca_key
                .verify(&msg, &sig)
                .map_err(|_| SealError::BadSignature)?;
            SignedBy::Ca
        } else {
            let (id, serial) = e
                .signer
                .rsplit_once('.')
                .filter(|(id, serial)| !id.is_empty() && !serial.is_empty())
                .ok_or_else(|| SealError::Malformed(format!("signer {:?}", e.signer)))?;
            let der = e
                .cert
                .as_deref()
                .and_then(|c| B64.decode(c).ok())
                .ok_or_else(|| SealError::Malformed("certificate".into()))?;
            let cert = verified.verify(ca, &der, id)?;
            if !(cert.not_before <= e.at && e.at <= cert.not_after) {
                return Err(SealError::OutOfValidity { at: e.at });
            }
            cert.key
                .verify(&msg, &sig)
                .map_err(|_| SealError::BadSignature)?;
            let _ = serial;
            SignedBy::Member {
                id: id.to_owned(),
                at: e.at,
            }
        };
        Ok((e.value.into_bytes(), by))
    }
}
