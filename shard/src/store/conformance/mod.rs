//! The behaviour every [`Store`] must have, as one suite that runs against
//! any implementation: [`run_all`].
//!
//! Each check creates its own entities with fresh random ids and names, so
//! the suite can run again and again against the same database. It cannot
//! run concurrently with another run on the same store, though: pruning
//! revocation events is global by nature.
//!
//! Layout: this file holds [`run_all`] and the fixtures; `identity`
//! checks domains, projects and users; `roles` roles, implications,
//! assignments and cascades; `catalog` the catalog and revocation events;
//! `outbox` the membership outbox.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod catalog;
mod identity;
mod outbox;
mod roles;

pub use outbox::{still_pending, write_pending};

use crate::store::Store;
use keyfed_shared::ids::{AuditId, DomainId, ProjectId, RoleId, UserId};
use keyfed_shared::model::{Domain, Extra, Project, Role, User};
use keyfed_shared::revocation::{RevocationEvent, RevocationSubject};
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};

/// Runs every check against `store`, panicking at the first failure.
pub async fn run_all(store: &dyn Store) {
    identity::run(store).await;
    roles::run(store).await;
    catalog::run(store).await;
    outbox::run(store).await;
}

/// Asserts that a store call failed with the given [`StoreError`] variant.
///
/// [`StoreError`]: crate::store::StoreError
macro_rules! assert_err {
    ($result:expr, $kind:ident, $what:expr) => {
        match $result {
            Err($crate::store::StoreError::$kind(_)) => {}
            other => panic!("{}: expected {}, got {:?}", $what, stringify!($kind), other),
        }
    };
}
use assert_err;

/// A fresh unique name.
fn name(prefix: &str) -> String {
    format!("{prefix}-{}", UserId::generate())
}

/// Unix time in seconds.
fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Extra attributes exercising nested JSON.
fn extra() -> Extra {
    let value = json!({"email": "someone@example.org", "nested": {"list": [1, 2.5, "x", null]}});
    value.as_object().cloned().unwrap_or_default()
}

/// A revocation event with a fresh subject: a marker whose presence shows
/// whether a write stored it.
fn marker() -> RevocationEvent {
    RevocationEvent {
        subject: RevocationSubject::AuditId(AuditId::generate()),
        issued_before: now_secs() * 1_000_000,
        expires_at: now_secs() + 3600,
    }
}

/// Whether `event` is stored.
async fn stored(s: &dyn Store, event: &RevocationEvent) -> bool {
    let events = s.list_revocations(0).await.expect("list revocations");
    events.contains(event)
}

/// A domain with fresh id and name, not yet stored.
fn domain() -> Domain {
    Domain {
        id: DomainId::generate(),
        name: name("domain"),
        description: "conformance".into(),
        enabled: true,
    }
}

/// A stored fresh domain.
async fn new_domain(s: &dyn Store) -> Domain {
    let d = domain();
    s.create_domain(&d).await.expect("create domain");
    d
}

/// A project in `domain` with fresh id and name, not yet stored.
fn project(domain: &DomainId) -> Project {
    Project {
        id: ProjectId::generate(),
        name: name("project"),
        domain_id: domain.clone(),
        description: "conformance".into(),
        enabled: true,
        tags: vec!["a".into(), "b".into()],
        extra: extra(),
    }
}

/// A stored fresh project in `domain`.
async fn new_project(s: &dyn Store, domain: &DomainId) -> Project {
    let p = project(domain);
    s.create_project(&p).await.expect("create project");
    p
}

/// A user in `domain` with fresh id and name, not yet stored.
fn user(domain: &DomainId) -> User {
    User {
        id: UserId::generate(),
        name: name("user"),
        domain_id: domain.clone(),
        enabled: true,
        default_project_id: None,
        extra: extra(),
    }
}

/// A stored fresh user in `domain`, without a password.
async fn new_user(s: &dyn Store, domain: &DomainId) -> User {
    let u = user(domain);
    s.create_user(&u, None).await.expect("create user");
    u
}

/// A role (global when `domain` is `None`) with fresh id and name.
fn role(domain: Option<&DomainId>) -> Role {
    Role {
        id: RoleId::generate(),
        name: name("role"),
        domain_id: domain.cloned(),
        description: Some("conformance".into()),
    }
}

/// A stored fresh role.
async fn new_role(s: &dyn Store, domain: Option<&DomainId>) -> Role {
    let r = role(domain);
    s.create_role(&r).await.expect("create role");
    r
}

/// Asserts that `items` are in strictly increasing `key` order.
fn assert_sorted<T, K: Ord + std::fmt::Debug>(items: &[T], key: impl Fn(&T) -> K, what: &str) {
    for pair in items.windows(2) {
        let (a, b) = (key(&pair[0]), key(&pair[1]));
        assert!(a < b, "{what}: not in order: {a:?} before {b:?}");
    }
}
