//! The membership outbox of the embedded store: a map from user to the
//! version of their latest assignment change, saved with the state, so it
//! is written in the same atomic file replace as the change itself. The
//! same rules as the PostgreSQL triggers: every grant, revocation and
//! cascading delete records each user it touched.

use super::state::{AssignmentRow, State};
use super::Outcome;
use crate::store::{OutboxEntry, StoreResult};
use keyfed_shared::ids::{RoleId, UserId};
use std::collections::BTreeSet;

impl State {
    /// Records that `user`'s assignments changed.
    pub fn note_membership(&mut self, user: &UserId) {
        self.outbox_version += 1;
        self.membership_outbox
            .insert(user.clone(), self.outbox_version);
    }

    /// Removes the assignments `gone` selects, recording their users.
    pub fn drop_assignments(&mut self, gone: impl Fn(&AssignmentRow) -> bool) {
        let mut touched = BTreeSet::new();
        self.assignments.retain(|a| {
            let drop = gone(a);
            if drop {
                touched.insert(a.user_id.clone());
            }
            !drop
        });
        for user in &touched {
            self.note_membership(user);
        }
    }

    /// Whether `user` holds any assignment (rows are ordered by user first).
    fn holds_assignments(&self, user: &UserId) -> bool {
        let lowest = AssignmentRow {
            user_id: user.clone(),
            target_type: String::new(),
            target_id: String::new(),
            role_id: RoleId::new(""),
        };
        self.assignments
            .range(lowest..)
            .next()
            .is_some_and(|a| a.user_id == *user)
    }

    /// Up to `limit` entries, lowest version first.
    pub fn outbox_pending(&self, limit: usize) -> Vec<OutboxEntry> {
        let mut entries: Vec<(&UserId, u64)> = self
            .membership_outbox
            .iter()
            .map(|(u, v)| (u, *v))
            .collect();
        entries.sort_unstable_by_key(|(_, v)| *v);
        entries
            .into_iter()
            .take(limit)
            .map(|(user, version)| OutboxEntry {
                user_id: user.clone(),
                version,
                holds_assignments: self.holds_assignments(user),
            })
            .collect()
    }

    /// Queues every user holding an assignment, and `others`.
    pub fn outbox_requeue(&mut self, others: &[UserId]) -> StoreResult<Outcome<u64>> {
        let mut users: BTreeSet<UserId> =
            self.assignments.iter().map(|a| a.user_id.clone()).collect();
        users.extend(others.iter().cloned());
        for user in &users {
            self.note_membership(user);
        }
        Ok(Outcome {
            value: users.len() as u64,
            changed: !users.is_empty(),
        })
    }

    /// Removes each entry still at its version.
    pub fn outbox_remove(&mut self, done: &[OutboxEntry]) -> StoreResult<Outcome<u64>> {
        let mut removed = 0;
        for e in done {
            if self.membership_outbox.get(&e.user_id) == Some(&e.version) {
                self.membership_outbox.remove(&e.user_id);
                removed += 1;
            }
        }
        Ok(Outcome {
            value: removed,
            changed: removed > 0,
        })
    }
}
