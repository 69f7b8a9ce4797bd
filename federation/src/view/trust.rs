//! Which member keys the view trusts — where member records become keys.
//!
//! With [`Trust::Ca`] (a federation with a CA) a key is trusted only if a
//! certificate in the member's record certifies it: chained to the
//! federation CA, naming the member, for a `kid` of the member's own
//! (`<member-id>.<serial>`). Each certified key is trusted within its
//! certificate's validity — so a renewed certificate and the one it
//! replaces both verify while both are valid — and, for a retired member,
//! no later than the record's `trusted_until` (its last token's expiry);
//! a key replaced by a rotation no later than its entry's `retire_at`.
//! A record with no acceptable certificate offers no key at all: a server
//! whose certificate is self-made, or from another CA, can sign nothing
//! the federation accepts.
//!
//! With [`Trust::Registry`] (a federation without a CA) the record's own
//! `kid` and public key are trusted, until `trusted_until` when retired.
//!
//! Chain and name are checked once, when a record is decoded; time windows
//! are checked every time keys are published (and the members table
//! republishes periodically, so expiry takes effect without a change).

use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use keyfed_pki::CaCert;
use keyfed_shared::federation::Member;

/// What the view trusts member keys on; see the module doc.
#[derive(Clone, Debug, Default)]
pub enum Trust {
    /// The keys recorded in the registry (federations without a CA).
    #[default]
    Registry,
    /// Only keys certified by the federation CA.
    Ca(Arc<CaCert>),
}

/// A key a member record offers, and when it may verify.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TrustedKey {
    pub(crate) kid: String,
    pub(crate) key: VerifyingKey,
    /// Unix seconds: first and last second (exclusive) it verifies.
    pub(crate) from: i64,
    pub(crate) until: i64,
}

impl TrustedKey {
    /// Whether it verifies at `now` (unix seconds).
    pub(crate) fn valid_at(&self, now: i64) -> bool {
        self.from <= now && now < self.until
    }
}

/// Whether `kid` is one of member `id`'s (`<id>.<serial>`).
pub(crate) fn own_kid(id: &str, kid: &str) -> bool {
    kid.strip_prefix(id)
        .and_then(|s| s.strip_prefix('.'))
        .is_some_and(|serial| !serial.is_empty())
}

impl Trust {
    /// The keys `member` offers (its `kid` and `public_key` already
    /// checked by the caller, decoded as `recorded`).
    pub(crate) fn keys(&self, member: &Member, recorded: VerifyingKey) -> Vec<TrustedKey> {
        let until = member.trusted_until.unwrap_or(i64::MAX);
        match self {
            Trust::Registry => vec![TrustedKey {
                kid: member.kid.clone(),
                key: recorded,
                from: i64::MIN,
                until,
            }],
            Trust::Ca(ca) => member
                .certificates
                .iter()
                .filter_map(|cert| {
                    if !own_kid(member.id.as_str(), &cert.kid) {
                        tracing::warn!(member = %member.id, kid = %cert.kid, "certificate for a kid that is not the member's; ignored");
                        return None;
                    }
                    let der = cert.der_bytes()?;
                    match ca.verify_signer_untimed(&der, member.id.as_str()) {
                        Ok(signer) => Some(TrustedKey {
                            kid: cert.kid.clone(),
                            key: signer.key,
                            from: signer.not_before,
                            until: signer
                                .not_after
                                .min(until)
                                .min(cert.retire_at.unwrap_or(i64::MAX)),
                        }),
                        Err(error) => {
                            tracing::warn!(member = %member.id, kid = %cert.kid, %error, "untrusted member certificate; ignored");
                            None
                        }
                    }
                })
                .collect(),
        }
    }
}
