//! Revocation events and the O(1) index a validator checks them against.
//!
//! An event revokes every token that matches all of its set fields and was
//! issued before `issued_before`: one token (by audit id, which a rescoped
//! token shares with its parent), every token of a user (password change,
//! disable, delete), or every token scoped to a project (disable, delete).

use crate::ids::{AuditId, DomainId, ProjectId, UserId};
use serde::{Deserialize, Serialize};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

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

/// What a revocation event matches. It hashes as its [`SubjectRef`], so
/// the index can be probed with borrowed ids.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// A [`RevocationSubject`] made of borrowed ids: what the check probes the
/// index with, so a check allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum SubjectRef<'a> {
    AuditId(&'a str),
    User(&'a str),
    Project(&'a str),
    UserOnProject(&'a str, &'a str),
    Domain(&'a str),
}

/// Anything that reads as a [`SubjectRef`]; the index's keys borrow as
/// `dyn Subject`, the standard way to look a map up by a borrowed
/// composite key.
trait Subject {
    fn subject(&self) -> SubjectRef<'_>;
}

impl Subject for RevocationSubject {
    fn subject(&self) -> SubjectRef<'_> {
        match self {
            RevocationSubject::AuditId(a) => SubjectRef::AuditId(a.as_str()),
            RevocationSubject::User(u) => SubjectRef::User(u.as_str()),
            RevocationSubject::Project(p) => SubjectRef::Project(p.as_str()),
            RevocationSubject::UserOnProject(u, p) => {
                SubjectRef::UserOnProject(u.as_str(), p.as_str())
            }
            RevocationSubject::Domain(d) => SubjectRef::Domain(d.as_str()),
        }
    }
}

impl Subject for SubjectRef<'_> {
    fn subject(&self) -> SubjectRef<'_> {
        *self
    }
}

impl<'a> Borrow<dyn Subject + 'a> for RevocationSubject {
    fn borrow(&self) -> &(dyn Subject + 'a) {
        self
    }
}

impl Hash for dyn Subject + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.subject().hash(state);
    }
}

impl PartialEq for dyn Subject + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.subject() == other.subject()
    }
}

impl Eq for dyn Subject + '_ {}

impl Hash for RevocationSubject {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash exactly as `dyn Subject` does (the `Borrow` contract).
        self.subject().hash(state);
    }
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

    /// Whether a token with these facts is revoked. Allocates nothing.
    pub fn is_revoked(&self, t: &TokenFacts<'_>) -> bool {
        if self.cutoffs.is_empty() {
            return false;
        }
        let hit = |s: SubjectRef<'_>| {
            self.cutoffs
                .get(&s as &dyn Subject)
                .is_some_and(|(before, _)| t.issued_at < *before)
        };
        let user = t.user_id.as_str();
        t.audit_ids
            .iter()
            .any(|a| hit(SubjectRef::AuditId(a.as_str())))
            || hit(SubjectRef::User(user))
            || t.project_id.is_some_and(|p| {
                hit(SubjectRef::Project(p.as_str()))
                    || hit(SubjectRef::UserOnProject(user, p.as_str()))
            })
            || t.domain_ids
                .iter()
                .flatten()
                .any(|d| hit(SubjectRef::Domain(d.as_str())))
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
    fn every_subject_kind_is_found_by_borrowed_ids() {
        let (user, project, domain) = (UserId::new("u"), ProjectId::new("p"), DomainId::new("d"));
        let audit = [AuditId::new("a")];
        let token = TokenFacts {
            audit_ids: &audit,
            user_id: &user,
            project_id: Some(&project),
            domain_ids: [None, Some(&domain)],
            issued_at: 5,
        };
        let subjects = [
            RevocationSubject::AuditId(AuditId::new("a")),
            RevocationSubject::User(user.clone()),
            RevocationSubject::Project(project.clone()),
            RevocationSubject::UserOnProject(user.clone(), project.clone()),
            RevocationSubject::Domain(domain.clone()),
        ];
        for subject in subjects {
            let event = |subject| RevocationEvent {
                subject,
                issued_before: 10,
                expires_at: 10,
            };
            let idx = RevocationIndex::from_events([event(subject.clone())]);
            assert!(idx.is_revoked(&token), "{subject:?}");
            // The same ids under another kind do not match.
            let other = match subject {
                RevocationSubject::User(_) => RevocationSubject::Project(ProjectId::new("u")),
                _ => RevocationSubject::User(UserId::new("p")),
            };
            assert!(!RevocationIndex::from_events([event(other)]).is_revoked(&token));
        }
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
