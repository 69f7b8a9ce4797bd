//! Types and pure logic shared by every keyfed process: identifiers, Keystone
//! entities and wire formats, the signed token format, revocation, and the
//! error kinds that decide a Keystone error response. No I/O lives here.
//!
//! Layout: [`ids`] newtyped identifiers; [`model`] Keystone entities;
//! [`error`] the error kinds shared by the API layers; [`token`] JWS tokens
//! (claims, signing, verification); [`auth`] the `POST /v3/auth/tokens`
//! request parser; [`revocation`] revocation events and their index;
//! [`ring`] tenant placement (weighted rendezvous hashing over the shards);
//! [`discovery`] version discovery documents; [`time`] timestamps in Keystone's formats; [`global`] the in-memory
//! snapshot of global data (domains, roles, catalog); [`federation`] member
//! records and the directory's keys and values; [`policy`] Keystone's
//! default policy (scope types, personas, targets). [`fuzzing`] (tests
//! and feature `fuzzing` only): strategies for the fuzz tests.

pub mod auth;
pub mod discovery;
pub mod error;
pub mod federation;
#[cfg(any(test, feature = "fuzzing"))]
pub mod fuzzing;
pub mod global;
pub mod ids;
pub mod model;
pub mod policy;
pub mod revocation;
pub mod ring;
pub mod time;
pub mod token;
