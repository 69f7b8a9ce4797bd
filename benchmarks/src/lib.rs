//! keyfed benchmarks. `benches/tokens.rs` holds the criterion
//! micro-benchmarks of the token hot paths (sign; parse, verify and render
//! the Keystone body). See `benchmarks/README.md` for commands and figures.
//!
//! This library holds the fixtures the benchmarks share.

use ed25519_dalek::SigningKey;
use keyfed_shared::ids::{AuditId, DomainId, ProjectId, RoleId, UserId};
use keyfed_shared::token::{Claims, Scope, Signer};

/// A fixed signing key (benchmarks need no secrecy, only repeatability).
pub fn signer(kid: &str) -> Signer {
    Signer::new(kid, SigningKey::from_bytes(&[7; 32]))
}

/// A typical project-scoped claim set: three roles, one audit id.
pub fn typical_claims(now_micros: i64, roles: Vec<RoleId>) -> Claims {
    Claims {
        user_id: UserId::generate(),
        user_name: "alice".into(),
        user_domain_id: DomainId::new("default"),
        methods: vec!["password".into()],
        issued_at: now_micros,
        expires_at: now_micros + 3_600_000_000,
        audit_ids: vec![AuditId::generate()],
        scope: Scope::Project {
            id: ProjectId::generate(),
            name: "demo".into(),
            domain_id: DomainId::new("default"),
        },
        roles,
        shard_set: vec![],
    }
}

pub mod cli;
pub mod loadgen;
