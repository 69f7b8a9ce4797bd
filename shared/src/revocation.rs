//! Revocation events and the O(1) index a validator checks them against.
//!
//! An event revokes every token that matches all of its set fields and was
//! issued before `issued_before`: one token (by audit id, which a rescoped
//! token shares with its parent), every token of a user (password change,
//! disable, delete), or every token scoped to a project (disable, delete).

use crate::ids::{AuditId, DomainId, ProjectId, UserId};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One revocation: a subject and a cut-off time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationEvent {
    pub subject: RevocationSubject,
    /// Tokens issued strictly before this instant (unix microseconds) are revoked.
    pub issued_before: i64,
    /// After this instant (unix seconds) no token the event matches can still
    /// be valid, so the event may be pruned.
    pub expires_at: i64,
}

/// What a revocation event matches.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationSubject {
    AuditId(AuditId),
    User(UserId),
    Project(ProjectId),
    /// A user's tokens scoped to one project (a role assignment removed).
    UserOnProject(UserId, ProjectId),
    /// Tokens of users in, or scoped to, a domain (the domain disabled).
    Domain(DomainId),
}

/// What a token exposes to the revocation check.
pub struct TokenFacts<'a> {
    pub audit_ids: &'a [AuditId],
    pub user_id: &'a UserId,
    pub project_id: Option<&'a ProjectId>,
    /// The user's domain, and the domain of the scope when there is one.
    pub domain_ids: [Option<&'a DomainId>; 2],
    pub issued_at: i64,
}

/// Revocation events indexed by subject, keeping the latest cut-off per
/// subject: a check costs a few hash look-ups whatever the number of events.
#[derive(Clone, Debug, Default)]
pub struct RevocationIndex {
    cutoffs: HashMap<RevocationSubject, (i64, i64)>,
}

impl RevocationIndex {
    /// Builds an index from events.
    pub fn from_events(events: impl IntoIterator<Item = RevocationEvent>) -> Self {
        let mut index = Self::default();
        for e in events {
            index.insert(e);
        }
        index
    }

    /// Adds one event (idempotent; the later cut-off wins).
    pub fn insert(&mut self, event: RevocationEvent) {
        let entry = self
            .cutoffs
            .entry(event.subject)
            .or_insert((event.issued_before, event.expires_at));
        entry.0 = entry.0.max(event.issued_before);
        entry.1 = entry.1.max(event.expires_at);
    }

    /// Drops events that can no longer match a live token.
    pub fn prune(&mut self, now_secs: i64) {
        self.cutoffs.retain(|_, (_, expires)| *expires > now_secs);
    }

    /// Number of distinct subjects held.
    pub fn len(&self) -> usize {
        self.cutoffs.len()
    }

    /// Whether the index holds no event.
    pub fn is_empty(&self) -> bool {
        self.cutoffs.is_empty()
    }

    /// Whether a token with these facts is revoked.
    pub fn is_revoked(&self, t: &TokenFacts<'_>) -> bool {
        let hit = |s: RevocationSubject| {
            self.cutoffs
                .get(&s)
                .is_some_and(|(before, _)| t.issued_at < *before)
        };
        t.audit_ids
            .iter()
            .any(|a| hit(RevocationSubject::AuditId(a.clone())))
            || hit(RevocationSubject::User(t.user_id.clone()))
            || t.project_id.is_some_and(|p| {
                hit(RevocationSubject::Project(p.clone()))
                    || hit(RevocationSubject::UserOnProject(
                        t.user_id.clone(),
                        p.clone(),
                    ))
            })
            || t.domain_ids
                .iter()
                .flatten()
                .any(|d| hit(RevocationSubject::Domain((*d).clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(audit: &'a [AuditId], user: &'a UserId, at: i64) -> TokenFacts<'a> {
        TokenFacts {
            audit_ids: audit,
            user_id: user,
            project_id: None,
            domain_ids: [None, None],
            issued_at: at,
        }
    }

    #[test]
    fn user_event_revokes_only_earlier_tokens() {
        let user = UserId::new("u");
        let audit = [AuditId::new("a")];
        let idx = RevocationIndex::from_events([RevocationEvent {
            subject: RevocationSubject::User(user.clone()),
            issued_before: 100,
            expires_at: 10,
        }]);
        assert!(idx.is_revoked(&facts(&audit, &user, 99)));
        assert!(!idx.is_revoked(&facts(&audit, &user, 100)));
        assert!(!idx.is_revoked(&facts(&audit, &UserId::new("v"), 99)));
    }

    #[test]
    fn audit_event_matches_parent_chain_and_prunes() {
        let user = UserId::new("u");
        let chain = [AuditId::new("child"), AuditId::new("parent")];
        let mut idx = RevocationIndex::from_events([RevocationEvent {
            subject: RevocationSubject::AuditId(AuditId::new("parent")),
            issued_before: i64::MAX,
            expires_at: 10,
        }]);
        assert!(idx.is_revoked(&facts(&chain, &user, 5)));
        idx.prune(11);
        assert!(idx.is_empty());
        assert!(!idx.is_revoked(&facts(&chain, &user, 5)));
    }
}
