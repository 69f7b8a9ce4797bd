//! Signed directory entries: the directory is shared infrastructure, not
//! an authority. Every entry whose forgery would grant power — member
//! records and their status, global data, join and admin tokens — is
//! sealed with a key the reader checks against the federation CA
//! ([`envelope`]), by the signer the entry's kind calls for ([`policy`]).
//! [`SealedDirectory`] does both transparently for everything above it: a
//! process wraps its directory once, and every reader ignores (and counts)
//! what fails its check, whoever managed to write it.
//!
//! Status attestations (`status/<id>`, signed by the CA) make retirement
//! and revocation final: a member's signatures made at or after its
//! `trusted_until` are refused, and readers never let an attestation go
//! back (see [`keyfed_shared::federation::StatusAttestation`]).

mod envelope;
mod kv;
mod policy;
#[cfg(test)]
mod tests;

pub use envelope::{EntryCheck, EntrySigner, SealError, SignedBy, CA_SIGNER};
pub use kv::{SealedDirectory, Signers};
