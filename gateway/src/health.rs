//! Member health: a member that hangs or is down costs its tenants one
//! detection, not a timeout per request.
//!
//! Every shard call reports its outcome. After
//! `[upstream] down_after_failures` consecutive transport failures
//! (connect errors, timeouts, broken answers) the member is marked *down*:
//! calls to it then fail at once with Keystone's 503, without touching the
//! network, while a prober asks its `/healthz` every
//! `[upstream] probe_interval_ms`; the first answer marks it up again. Any
//! successful call resets the count. Other members are not affected.
//! Metrics: `keyfed_gateway_member_down{shard}` (1 while down),
//! `keyfed_gateway_member_down_transitions_total{shard}` and
//! `keyfed_gateway_upstream_shed_total{shard}` (calls refused while down).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use keyfed_federation::FederationView;
use keyfed_shared::ids::ShardId;

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, Debug, Default)]
struct MemberState {
    failures: u32,
    down: bool,
}

/// The health of every member this gateway called.
#[derive(Debug)]
pub struct Health {
    members: Mutex<HashMap<ShardId, MemberState>>,
    down_after: u32,
}

/// What a reported failure did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The member stays up (or was down already).
    Unchanged,
    /// This failure marked the member down.
    WentDown,
}

impl Health {
    /// Marks a member down after `down_after` consecutive failures (at
    /// least 1).
    pub fn new(down_after: u32) -> Self {
        Self {
            members: Mutex::default(),
            down_after: down_after.max(1),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<ShardId, MemberState>) -> T) -> T {
        f(&mut self.members.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether calls to `shard` fail fast now.
    pub fn is_down(&self, shard: &ShardId) -> bool {
        self.with(|m| m.get(shard).is_some_and(|s| s.down))
    }

    /// A call to `shard` failed in transport.
    pub fn failed(&self, shard: &ShardId) -> Verdict {
        self.with(|m| {
            let state = m.entry(shard.clone()).or_default();
            state.failures = state.failures.saturating_add(1);
            if !state.down && state.failures >= self.down_after {
                state.down = true;
                Verdict::WentDown
            } else {
                Verdict::Unchanged
            }
        })
    }

    /// `shard` answered (a call or a probe); `true` if it was down.
    pub fn answered(&self, shard: &ShardId) -> bool {
        self.with(|m| match m.get_mut(shard) {
            Some(state) => {
                let was_down = state.down;
                *state = MemberState::default();
                was_down
            }
            None => false,
        })
    }

    /// The members marked down.
    pub fn down(&self) -> Vec<ShardId> {
        self.with(|m| {
            m.iter()
                .filter(|(_, s)| s.down)
                .map(|(id, _)| id.clone())
                .collect()
        })
    }
}

/// Probes the members marked down every `every` until each answers; runs
/// until dropped.
pub async fn probe(
    health: Arc<Health>,
    view: Arc<FederationView>,
    http: reqwest::Client,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        for shard in health.down() {
            let Some(member) = view.member(&shard) else {
                // No longer a member: forget it.
                health.answered(&shard);
                continue;
            };
            let url = format!("{}/healthz", member.url.trim_end_matches('/'));
            let answered = http
                .get(&url)
                .timeout(PROBE_TIMEOUT)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if answered && health.answered(&shard) {
                tracing::warn!(%shard, "member answers again; no longer failing fast");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_goes_down_after_consecutive_failures_and_up_on_an_answer() {
        let health = Health::new(3);
        let (a, b) = (ShardId::new("a"), ShardId::new("b"));
        assert_eq!(health.failed(&a), Verdict::Unchanged);
        assert_eq!(health.failed(&a), Verdict::Unchanged);
        // An answer in between starts the count again.
        assert!(!health.answered(&a));
        assert_eq!(health.failed(&a), Verdict::Unchanged);
        assert_eq!(health.failed(&a), Verdict::Unchanged);
        assert!(!health.is_down(&a));
        assert_eq!(health.failed(&a), Verdict::WentDown);
        assert!(health.is_down(&a));
        assert_eq!(health.failed(&a), Verdict::Unchanged, "down once");
        assert!(!health.is_down(&b), "other members are not affected");
        assert_eq!(health.down(), vec![a.clone()]);
        assert!(health.answered(&a));
        assert!(!health.is_down(&a));
        assert!(health.down().is_empty());
    }
}
