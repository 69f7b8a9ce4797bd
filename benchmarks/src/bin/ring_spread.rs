//! Placement ring spread and movement (`shared::ring`).
//!
//! Places 1 000 000 Keystone-shaped ids (32 hex characters from a seeded
//! SplitMix64 stream, so every run places the same ids) and prints, as a
//! Markdown table:
//!
//! - for 8 and 64 equal-weight shards: the coefficient of variation of the
//!   per-shard load and the busiest shard's load over the mean;
//! - the share of ids that move when a shard is added (N → N+1), as a ratio
//!   to the ideal 1/(N+1), and when one is removed (N → N−1, ideal 1/N);
//!   every move must go to the added shard or come from the removed one;
//! - a weighted case (one shard of weight 2 among weight-1 shards): its load
//!   over its ideal share 2/(N+1), the spread of the others, and the moves
//!   when its weight goes from 1 to 2 over the ideal 2/(N+1) − 1/N.
//!
//! It also prints the mean time of one lookup over the million ids (a rough
//! figure; `benches/ring.rs` measures lookups properly).
//!
//! Targets: CV ≤ 2 %, movement ≤ 1.1 × ideal.
//!
//! Run: `cargo run --release -p keyfed-benchmarks --bin ring_spread`

use keyfed_shared::ids::ShardId;
use keyfed_shared::ring::{EntityHash, Ring, RingError};
use std::hint::black_box;
use std::time::Instant;

const IDS: usize = 1_000_000;
const SEED: u64 = 20_240_601;

/// SplitMix64: a seeded generator whose stream never changes between
/// versions of anything, so the figures are comparable between runs.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn shards(n: usize, heavy: Option<u32>) -> Vec<(ShardId, u32)> {
    (0..n)
        .map(|i| {
            let weight = if i == 0 { heavy.unwrap_or(1) } else { 1 };
            (ShardId::new(format!("shard-{i}")), weight)
        })
        .collect()
}

/// Per-shard loads (in the ring's shard order) and the owner index of every id.
fn place(ring: &Ring, ids: &[EntityHash]) -> (Vec<usize>, Vec<u32>) {
    let order: Vec<&ShardId> = ring.shards().map(|(s, _)| s).collect();
    let mut load = vec![0usize; order.len()];
    let owners = ids
        .iter()
        .map(|h| {
            let owner = ring.owner_of_hash(*h);
            // Shards are listed in ascending id order.
            let i = order.binary_search(&owner).expect("the owner is a member");
            load[i] += 1;
            i as u32
        })
        .collect();
    (load, owners)
}

/// Coefficient of variation (population) and max/mean of `loads`.
fn spread(loads: &[usize]) -> (f64, f64) {
    let n = loads.len() as f64;
    let mean = loads.iter().sum::<usize>() as f64 / n;
    let var = loads
        .iter()
        .map(|l| (*l as f64 - mean).powi(2))
        .sum::<f64>()
        / n;
    let max = loads.iter().copied().max().unwrap_or_default() as f64;
    (var.sqrt() / mean, max / mean)
}

/// The CV that ideal random placement of `IDS` ids over `n` equal shards
/// shows from sampling alone: `sqrt((1 − 1/n) / (IDS / n))`.
fn floor(n: usize) -> f64 {
    let p = 1.0 / n as f64;
    ((1.0 - p) / (IDS as f64 * p)).sqrt()
}

/// Share of ids whose owner differs between two rings, and how many of the
/// moves break the rule `allowed(old, new)`.
fn moved(
    before: &Ring,
    after: &Ring,
    ids: &[EntityHash],
    allowed: impl Fn(&ShardId, &ShardId) -> bool,
) -> (f64, usize) {
    let mut moved = 0usize;
    let mut wrong = 0usize;
    for h in ids {
        let (old, new) = (before.owner_of_hash(*h), after.owner_of_hash(*h));
        if old != new {
            moved += 1;
            if !allowed(old, new) {
                wrong += 1;
            }
        }
    }
    (moved as f64 / ids.len() as f64, wrong)
}

/// Mean wall time of `owner_of_hash` over all ids (the id hash excluded).
fn ns_per_lookup(ring: &Ring, ids: &[EntityHash]) -> f64 {
    let start = Instant::now();
    let mut acc = 0usize;
    for h in ids {
        acc = acc.wrapping_add(ring.owner_of_hash(black_box(*h)).as_str().len());
    }
    black_box(acc);
    start.elapsed().as_nanos() as f64 / ids.len() as f64
}

fn pct(x: f64) -> String {
    format!("{:.2} %", x * 100.0)
}

fn main() -> Result<(), RingError> {
    let mut rng = SplitMix64(SEED);
    let ids: Vec<EntityHash> = (0..IDS)
        .map(|_| EntityHash::of(format!("{:016x}{:016x}", rng.next(), rng.next())))
        .collect();
    println!("{IDS} ids (32 hex characters, SplitMix64 seed {SEED})\n");

    println!("| shards | CV of load (sampling floor) | max/mean | moved N→N+1 (ideal) | ratio | moved N→N−1 (ideal) | ratio | ns/lookup |");
    println!("|---|---|---|---|---|---|---|---|");
    for n in [8, 64] {
        let ring = Ring::new(&shards(n, None))?;
        let (load, _) = place(&ring, &ids);
        let ns = ns_per_lookup(&ring, &ids);
        let (cv, max_mean) = spread(&load);

        let added = ShardId::new(format!("shard-{n}"));
        let grown = Ring::new(&shards(n + 1, None))?;
        let (up, bad_up) = moved(&ring, &grown, &ids, |_, new| *new == added);
        let removed = ShardId::new(format!("shard-{}", n - 1));
        let shrunk = Ring::new(&shards(n - 1, None))?;
        let (down, bad_down) = moved(&ring, &shrunk, &ids, |old, _| *old == removed);
        assert_eq!((bad_up, bad_down), (0, 0), "a move broke minimal movement");

        let (ideal_up, ideal_down) = (1.0 / (n + 1) as f64, 1.0 / n as f64);
        println!(
            "| {n} | {} ({}) | {max_mean:.4} | {} ({}) | {:.3} | {} ({}) | {:.3} | {ns:.0} |",
            pct(cv),
            pct(floor(n)),
            pct(up),
            pct(ideal_up),
            up / ideal_up,
            pct(down),
            pct(ideal_down),
            down / ideal_down,
        );
    }

    println!("\nWeighted: shard-0 has weight 2, the others 1.\n");
    println!("| shards | shard-0 load / ideal 2/(N+1) | CV of the others | max/mean of the others | moved when shard-0 goes 1→2 (ideal) | ratio |");
    println!("|---|---|---|---|---|---|");
    for n in [8, 64] {
        let plain = Ring::new(&shards(n, None))?;
        let ring = Ring::new(&shards(n, Some(2)))?;
        let (load, _) = place(&ring, &ids);
        let ideal_heavy = 2.0 / (n + 1) as f64;
        let heavy_id = ShardId::new("shard-0");
        let at = ring
            .shards()
            .position(|(s, _)| *s == heavy_id)
            .expect("shard-0 is a member");
        let heavy = load[at] as f64 / IDS as f64 / ideal_heavy;
        let others: Vec<usize> = (0..load.len())
            .filter(|i| *i != at)
            .map(|i| load[i])
            .collect();
        let (cv, max_mean) = spread(&others);
        let (up, bad) = moved(&plain, &ring, &ids, |_, new| *new == heavy_id);
        assert_eq!(bad, 0, "a move broke minimal movement");
        let ideal_up = ideal_heavy - 1.0 / n as f64;
        println!(
            "| {n} | {heavy:.4} | {} | {max_mean:.4} | {} ({}) | {:.3} |",
            pct(cv),
            pct(up),
            pct(ideal_up),
            up / ideal_up,
        );
    }
    Ok(())
}
