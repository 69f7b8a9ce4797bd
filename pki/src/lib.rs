//! keyfed's federation PKI.
//!
//! Layout: [`ca`] the federation CA (create, store with its key 0600, load,
//! issue a shard's signing certificate from its CSR); [`csr`] a shard's
//! certificate signing request for its Ed25519 token-signing key;
//! [`anchor`] the CA certificate as a trust anchor and the verification of
//! a signing certificate (chain, validity, shard name) yielding the key
//! tokens must verify with; [`names`] how certificates name shards
//! (`keyfed:shard:<id>`) and gateways (`keyfed:gateway:<id>`); [`tls`]
//! members' TLS certificates for internal mTLS, and [`tls_request`] the
//! same from a member's CSR (joining shards); [`join_token`] short-lived hashed secrets (join
//! tokens, admin call tokens) checked in constant time; [`files`] key and
//! certificate files (never overwritten, keys 0600); [`error`] the error
//! kinds.
//!
//! Certificates are Ed25519 throughout, generated with `rcgen` and parsed
//! and verified with `x509-parser`, both on `ring`. This crate depends on
//! no other keyfed crate.

#![forbid(unsafe_code)]

pub mod anchor;
pub mod ca;
pub mod csr;
pub mod error;
pub mod files;
pub mod join_token;
pub mod names;
pub mod tls;
pub mod tls_request;

#[cfg(test)]
mod tests;

pub use crate::anchor::{der_to_pem, pem_to_der, CaCert, SignerCert};
pub use crate::ca::FederationCa;
pub use crate::csr::signing_request;
pub use crate::error::PkiError;
pub use crate::tls::{MemberKind, TlsIdentity};
