//! Tenant placement: which active shard owns an entity id when no pin says
//! otherwise (`owner(id) = pin(id) or ring(id)`).
//!
//! Placement is persistent data layout, so the function below is fixed: it is
//! a pure function of the id's bytes and of the active shards' ids and
//! weights, uses only integer arithmetic and hashes with published
//! specifications, and gives the same answer on every platform and Rust
//! version. The golden vectors in this module's tests pin it; changing any
//! step means migrating every federation's data.
//!
//! # The placement function
//!
//! Weighted rendezvous (highest-random-weight) hashing in its logarithmic
//! form, with an integer logarithm. Inputs: the entity id as bytes `id` (an
//! id string's UTF-8 bytes) and the active shards, each a shard id `s` (UTF-8
//! bytes) with a weight `w_s ≥ 1`, ids distinct. All values are unsigned
//! integers; `⊕` is XOR and arithmetic marked *wrapping* is modulo 2^64.
//!
//! 1. `h_e = XXH3_64bits_withSeed(id, 0x6b65_7966_6564_3a65)` — the seed is
//!    ASCII `keyfed:e` read big-endian.
//! 2. For every shard, `h_s = XXH3_64bits_withSeed(s, 0x6b65_7966_6564_3a73)`
//!    — ASCII `keyfed:s`.
//! 3. `x_s = splitmix64(h_e ⊕ h_s)`, where for a 64-bit `v`:
//!    `z = v + 0x9e3779b97f4a7c15` (wrapping);
//!    `z = (z ⊕ (z >> 30)) · 0xbf58476d1ce4e5b9` (wrapping);
//!    `z = (z ⊕ (z >> 27)) · 0x94d049bb133111eb` (wrapping);
//!    `splitmix64(v) = z ⊕ (z >> 31)`.
//! 4. `L_s = neglog2(x_s) ≈ 2^32 · −log2((x_s + 1) / 2^64)`, in `0..=2^38`:
//!    if `x_s = 2^64 − 1` then `L_s = 0`; otherwise let `y = x_s + 1`,
//!    `e = floor(log2 y)` (so `0 ≤ e ≤ 63`), `f = (y << (63 − e)) mod 2^63`
//!    (the 63 bits after the leading one), `i = f >> 57`,
//!    `r = (f >> 25) mod 2^32`, `m = T[i] + (((T[i+1] − T[i]) · r) >> 32)`,
//!    and `L_s = 2^38 − (e · 2^32 + m)`; where
//!    `T[k] = round(2^32 · log2(1 + k/64))` for `k = 0..=64`, the 65 constants
//!    listed in `score::LOG2_TABLE` (`T[0] = 0`, `T[64] = 2^32`).
//! 5. The owner is the shard with the least `L_s / w_s`, compared exactly: `a`
//!    beats `b` iff `L_a · w_b < L_b · w_a` (128-bit products). If the
//!    products are equal, the shard whose id is smaller in byte order wins.
//!
//! # Why this function
//!
//! `x_s` behaves as an independent uniform draw per (id, shard), so
//! `L_s · ln 2 / 2^32` is a unit exponential and `L_s / w_s` an exponential of
//! rate `w_s`; the least of independent exponentials is shard `s` with
//! probability `w_s / Σw` (Schindelhauer & Schomaker, "Weighted distributed
//! hash tables", 2005). Every score depends on one (id, shard) pair only,
//! hence minimal movement: removing a shard moves only the ids it owned;
//! adding one moves ids only to it; raising a weight moves ids only to that
//! shard, lowering it only away from it.
//!
//! Floating point is avoided because `ln` is not bit-identical across
//! platforms; the piecewise-linear logarithm errs by less than 4.5·10⁻⁵ (in
//! log2 units, against a mean of 1.44), so its bias on shard shares is of
//! that order — far below sampling noise. It is non-increasing in `x_s`, so
//! with equal weights the owner is the shard with the highest `x_s`, unless
//! two shards' `L` coincide (a chance of about n·2⁻³² per id for n shards)
//! and the smaller id wins.
//! The alternative integer method, one virtual score per unit of weight,
//! costs `Σw` mixes per lookup (64 000 at 64 shards of weight 1 000); this
//! one costs at most one mix, one table interpolation and two
//! multiplications per shard, whatever the weights.
//!
//! # Cost
//!
//! One XXH3 pass over the id, then one mix per shard; the logarithm is
//! evaluated only for a shard that could beat the best so far (a higher `x`
//! or a higher weight), which with equal weights is O(log shards) of them.
//! No allocation.
//! A [`Ring`] shares its shard list behind an [`Arc`], so clones are cheap.
//! Measured figures are in `benchmarks/README.md` ("Placement ring").

mod score;
#[cfg(test)]
mod tests;

use crate::ids::ShardId;
use std::sync::Arc;

/// The largest weight a shard may have. The function is defined for any
/// `u32` weight; the bound only catches misconfiguration (a 1 000 : 1 ratio
/// is already extreme for machines in one federation).
pub const MAX_WEIGHT: u32 = 1000;

/// Why a set of shards cannot form a [`Ring`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// No active shard: nothing can own an entity.
    #[error("a placement ring needs at least one active shard")]
    NoShards,
    /// A weight outside `1..=MAX_WEIGHT`.
    #[error("shard {shard}: weight {weight} is outside 1..={MAX_WEIGHT}")]
    InvalidWeight {
        /// The offending shard.
        shard: ShardId,
        /// Its weight.
        weight: u32,
    },
    /// The same shard id appears twice.
    #[error("shard {0} is listed more than once")]
    DuplicateShard(ShardId),
}

/// The placement hash of an entity id (step 1 of the function). Compute it
/// once to place the same id on several rings, e.g. to compare the layout
/// before and after a membership change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntityHash(u64);

impl EntityHash {
    /// Hashes an entity id's bytes (for a string id, its UTF-8 bytes).
    pub fn of(id: impl AsRef<[u8]>) -> Self {
        Self(score::entity_hash(id.as_ref()))
    }

    /// The 64-bit value `h_e`.
    pub fn value(self) -> u64 {
        self.0
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Member {
    id: ShardId,
    weight: u32,
    /// `h_s`, precomputed.
    hash: u64,
}

/// The placement ring over the active shards. Immutable; build a new one when
/// membership or weights change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ring {
    /// Sorted by shard id (byte order), never empty.
    members: Arc<[Member]>,
}

impl Ring {
    /// Builds the ring of the given active shards and weights. The order of
    /// `shards` does not matter.
    pub fn new(shards: &[(ShardId, u32)]) -> Result<Self, RingError> {
        if shards.is_empty() {
            return Err(RingError::NoShards);
        }
        let mut members = Vec::with_capacity(shards.len());
        for (id, weight) in shards {
            if !(1..=MAX_WEIGHT).contains(weight) {
                return Err(RingError::InvalidWeight {
                    shard: id.clone(),
                    weight: *weight,
                });
            }
            members.push(Member {
                id: id.clone(),
                weight: *weight,
                hash: score::shard_hash(id.as_str()),
            });
        }
        members.sort_by(|a, b| a.id.cmp(&b.id));
        if let Some(pair) = members.windows(2).find(|p| p[0].id == p[1].id) {
            return Err(RingError::DuplicateShard(pair[0].id.clone()));
        }
        Ok(Self {
            members: members.into(),
        })
    }

    /// The shard that owns entity `id` (its bytes; for a string id, its UTF-8
    /// bytes).
    pub fn owner(&self, id: impl AsRef<[u8]>) -> &ShardId {
        self.owner_of_hash(EntityHash::of(id))
    }

    /// The shard that owns the entity whose placement hash is `entity`.
    pub fn owner_of_hash(&self, entity: EntityHash) -> &ShardId {
        let mix = |m: &Member| score::splitmix64(entity.0 ^ m.hash);
        // `members` is never empty (checked in `new`).
        let mut best = &self.members[0];
        let mut best_x = mix(best);
        let mut best_l = score::neg_log2(best_x);
        for m in &self.members[1..] {
            let x = mix(m);
            // `neg_log2` is non-increasing, so `x ≤ best_x` gives
            // `L ≥ best_l`; with `w ≤ best.weight` as well, `L · best.weight
            // ≥ best_l · w` and `m` cannot win. This skips the logarithm for
            // all but O(log n) members when the weights are equal.
            if x <= best_x && m.weight <= best.weight {
                continue;
            }
            let l = score::neg_log2(x);
            // Members are in ascending id order, so a strict comparison keeps
            // the smaller id on a tie.
            if u128::from(l) * u128::from(best.weight) < u128::from(best_l) * u128::from(m.weight) {
                best = m;
                best_x = x;
                best_l = l;
            }
        }
        &best.id
    }

    /// The active shards and their weights, in ascending id order.
    pub fn shards(&self) -> impl ExactSizeIterator<Item = (&ShardId, u32)> + '_ {
        self.members.iter().map(|m| (&m.id, m.weight))
    }

    /// The weight of `shard`, or `None` if it is not in the ring.
    pub fn weight(&self, shard: &ShardId) -> Option<u32> {
        self.members
            .binary_search_by(|m| m.id.cmp(shard))
            .ok()
            .map(|i| self.members[i].weight)
    }
}
