//! Look-ups of signers the view does not know yet, bounded so that bogus
//! tokens cannot cause a flurry of directory calls.
//!
//! A token whose `kid` names no known key may come from a shard that joined
//! moments ago, before the members watch delivered it. The validator then
//! asks [`SignerLookups::resolve`] to read that member's record straight
//! from the directory ([`FederationView::look_up_member`]), with three
//! bounds:
//!
//! - **single flight**: concurrent validations naming the same member
//!   share one look-up; it runs on its own task, so a caller that gives up
//!   does not cancel it for the others;
//! - **negative cache**: a member that was absent (or whose record names a
//!   different `kid`, or whose look-up failed) is not looked up again for
//!   `ttl`; the cache holds at most `capacity` members (expired ones are
//!   swept first, then arbitrary ones evicted), so a stream of distinct
//!   bogus signers cannot grow memory;
//! - **concurrency**: at most `max_in_flight` members are looked up at
//!   once; a validation that would start one more is rejected unlooked.
//!
//! Only the validator calls this, and only for well-formed, unexpired
//! tokens whose `kid` has the form `<member-id>.<serial>`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use keyfed_shared::ids::ShardId;
use tokio::sync::watch;

use crate::view::{FederationView, MemberLookup};

/// Longest member id in a `kid` (the shards' own limit on their id).
const MAX_MEMBER_ID_LEN: usize = 64;
/// Longest key serial in a `kid`.
const MAX_SERIAL_LEN: usize = 32;

/// The member a `kid` of the form `<member-id>.<serial>` names, if the
/// `kid` has that form: a member id of 1–64 ASCII letters, digits, `-` or
/// `_` and a serial of 1–32 of the same. Anything else is never looked up.
pub(crate) fn member_of_kid(kid: &str) -> Option<&str> {
    let (member, serial) = kid.rsplit_once('.')?;
    let allowed = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    (allowed(member, MAX_MEMBER_ID_LEN) && allowed(serial, MAX_SERIAL_LEN)).then_some(member)
}

/// The bounds of [`SignerLookups`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct LookupLimits {
    /// How long a member found unusable is not looked up again.
    pub(crate) ttl: Duration,
    /// Most members held in the negative cache.
    pub(crate) capacity: usize,
    /// Most members looked up at once.
    pub(crate) max_in_flight: usize,
}

/// Counters of signer look-ups, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Directory look-ups made (one per member per flight).
    pub lookups: u64,
    /// Validations rejected from the negative cache, without a look-up.
    pub negative_hits: u64,
    /// Validations rejected without a look-up because `max_in_flight`
    /// members were being looked up already.
    pub shed: u64,
    /// Members in the negative cache now.
    pub negative_entries: usize,
}

/// Whether a look-up can have made the signer's key known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resolved {
    /// The look-up found the member; check the view again.
    Retry,
    /// Unknown (now, or cached as such, or not looked up): reject.
    Unknown,
}

/// Both maps are keyed by member id (a `str`, so the hot checks need no
/// allocation).
#[derive(Default)]
struct State {
    /// Member → the instant until which it is not looked up again.
    negative: HashMap<String, Instant>,
    /// Member → where the outcome of its look-up in flight is published.
    in_flight: HashMap<String, Arc<Outcome>>,
}

/// See the module doc. Shared behind an `Arc` by the validator and the
/// look-up tasks it spawns.
pub(crate) struct SignerLookups {
    limits: LookupLimits,
    state: Mutex<State>,
    lookups: AtomicU64,
    negative_hits: AtomicU64,
    shed: AtomicU64,
}

/// The outcome of one look-up, `None` until it is known.
type Outcome = watch::Sender<Option<Resolved>>;

/// What to do about one member, decided under the lock.
enum Step {
    Done(Resolved),
    Wait(watch::Receiver<Option<Resolved>>),
    Lead(Arc<Outcome>, watch::Receiver<Option<Resolved>>),
}

impl SignerLookups {
    pub(crate) fn new(limits: LookupLimits) -> Self {
        Self {
            limits,
            state: Mutex::new(State::default()),
            lookups: AtomicU64::new(0),
            negative_hits: AtomicU64::new(0),
            shed: AtomicU64::new(0),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Looks `member` up for a token naming `kid`, unless the negative
    /// cache or the bounds say not to; waits for a look-up already in
    /// flight. Must be called within a Tokio runtime.
    pub(crate) async fn resolve(
        self: &Arc<Self>,
        view: &Arc<FederationView>,
        member: &str,
        kid: &str,
    ) -> Resolved {
        let step = self.step(member);
        let mut rx = match step {
            Step::Done(resolved) => return resolved,
            Step::Wait(rx) => rx,
            Step::Lead(tx, rx) => {
                let task = LookupTask {
                    lookups: self.clone(),
                    view: view.clone(),
                    member: ShardId::new(member),
                    kid: kid.to_owned(),
                    outcome: Some(tx),
                };
                tokio::spawn(task.run());
                rx
            }
        };
        // An error means the task is gone (the runtime is shutting down).
        let outcome = rx.wait_for(Option::is_some).await.map(|seen| *seen);
        outcome.ok().flatten().unwrap_or(Resolved::Unknown)
    }

    fn step(&self, member: &str) -> Step {
        let now = Instant::now();
        let mut state = self.state();
        if let Some(until) = state.negative.get(member) {
            if *until > now {
                drop(state);
                self.negative_hits.fetch_add(1, Ordering::Relaxed);
                return Step::Done(Resolved::Unknown);
            }
            state.negative.remove(member);
        }
        if let Some(outcome) = state.in_flight.get(member) {
            return Step::Wait(outcome.subscribe());
        }
        // A capacity of 0 would leave look-ups unbounded over time: it
        // disables them, as `max_in_flight` 0 does.
        if self.limits.capacity == 0 || state.in_flight.len() >= self.limits.max_in_flight {
            drop(state);
            self.shed.fetch_add(1, Ordering::Relaxed);
            return Step::Done(Resolved::Unknown);
        }
        let (tx, rx) = watch::channel(None);
        let tx = Arc::new(tx);
        state.in_flight.insert(member.to_owned(), tx.clone());
        Step::Lead(tx, rx)
    }

    /// Records the outcome of `member`'s look-up: cached as negative unless
    /// it made `kid` known, and no longer in flight (both under one lock,
    /// so no validation in between can start a second look-up).
    fn finish(&self, member: &ShardId, outcome: Resolved) {
        let now = Instant::now();
        let mut state = self.state();
        if outcome == Resolved::Unknown {
            if state.negative.len() >= self.limits.capacity {
                make_room(&mut state.negative, self.limits.capacity, now);
            }
            state
                .negative
                .insert(member.as_str().to_owned(), now + self.limits.ttl);
        }
        state.in_flight.remove(member.as_str());
    }

    pub(crate) fn stats(&self) -> LookupStats {
        LookupStats {
            lookups: self.lookups.load(Ordering::Relaxed),
            negative_hits: self.negative_hits.load(Ordering::Relaxed),
            shed: self.shed.load(Ordering::Relaxed),
            negative_entries: self.state().negative.len(),
        }
    }

    /// Validations waiting on `member`'s look-up in flight (tests).
    #[cfg(test)]
    pub(crate) fn waiting(&self, member: &str) -> usize {
        self.state()
            .in_flight
            .get(member)
            .map_or(0, |outcome| outcome.receiver_count())
    }
}

/// Drops expired entries; if that frees less than an eighth of `capacity`,
/// arbitrary ones too, so a sweep's cost is spread over many inserts.
fn make_room(negative: &mut HashMap<String, Instant>, capacity: usize, now: Instant) {
    negative.retain(|_, until| *until > now);
    let keep = capacity.saturating_sub((capacity / 8).max(1));
    if negative.len() > keep {
        let victims: Vec<String> = negative
            .keys()
            .take(negative.len() - keep)
            .cloned()
            .collect();
        for victim in &victims {
            negative.remove(victim);
        }
    }
}

/// One look-up, run on its own task. Dropped unfinished (a panic, the
/// runtime shutting down), it still records an outcome, so no validation
/// waits forever on it.
struct LookupTask {
    lookups: Arc<SignerLookups>,
    view: Arc<FederationView>,
    member: ShardId,
    kid: String,
    outcome: Option<Arc<Outcome>>,
}

impl LookupTask {
    async fn run(mut self) {
        self.lookups.lookups.fetch_add(1, Ordering::Relaxed);
        let resolved = match self.view.look_up_member(&self.member).await {
            Ok(MemberLookup::Found { kids }) if kids.contains(&self.kid) => {
                tracing::info!(member = %self.member, kid = %self.kid, "signer found by a directory look-up");
                Resolved::Retry
            }
            Ok(MemberLookup::Found { kids }) => {
                tracing::debug!(member = %self.member, ?kids, token_kid = %self.kid, "token names no key the member offers");
                Resolved::Unknown
            }
            Ok(MemberLookup::Absent) => Resolved::Unknown,
            Err(error) => {
                tracing::warn!(member = %self.member, %error, "signer look-up failed");
                Resolved::Unknown
            }
        };
        self.complete(resolved);
    }

    fn complete(&mut self, resolved: Resolved) {
        if let Some(outcome) = self.outcome.take() {
            self.lookups.finish(&self.member, resolved);
            outcome.send_replace(Some(resolved));
        }
    }
}

impl Drop for LookupTask {
    fn drop(&mut self) {
        self.complete(Resolved::Unknown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_kids_name_a_member() {
        assert_eq!(member_of_kid("shard-1.1"), Some("shard-1"));
        assert_eq!(member_of_kid("a_b.key-2"), Some("a_b"));
        for bad in ["", "s1", ".1", "s1.", "s 1.1", "s1.1.2", "s/1.1", "s1.ü"] {
            assert_eq!(member_of_kid(bad), None, "{bad:?}");
        }
        assert_eq!(member_of_kid(&format!("{}.1", "m".repeat(65))), None);
        assert_eq!(member_of_kid(&format!("m.{}", "1".repeat(33))), None);
    }

    #[test]
    fn the_negative_cache_stays_bounded() {
        let now = Instant::now();
        let mut negative = HashMap::new();
        for i in 0..100 {
            negative.insert(format!("m{i}"), now + Duration::from_secs(30));
        }
        negative.insert("old".to_owned(), now);
        make_room(&mut negative, 100, now);
        assert!(!negative.contains_key("old"));
        assert_eq!(negative.len(), 100 - 100 / 8);
    }
}
