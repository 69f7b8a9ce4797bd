//! Placement ring lookups (`shared::ring`): the cost of `owner(id)` for a
//! Keystone-shaped 32-character id at 8 and 64 shards, with equal and mixed
//! weights, and of the id hash alone. Figures: `benchmarks/README.md`,
//! section "Placement ring".

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use keyfed_shared::ids::ShardId;
use keyfed_shared::ring::{EntityHash, Ring};

/// 1024 ids of 32 hex characters from a fixed SplitMix64 stream, so that each
/// iteration looks up a different id (no branch-predictor memorisation).
fn ids() -> Vec<String> {
    let mut state = 0x6b65_7966_6564_u64;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..1024)
        .map(|_| format!("{:016x}{:016x}", next(), next()))
        .collect()
}

fn ring(n: usize, weight: impl Fn(usize) -> u32) -> Ring {
    let shards: Vec<_> = (0..n)
        .map(|i| (ShardId::new(format!("shard-{i}")), weight(i)))
        .collect();
    Ring::new(&shards).expect("valid ring")
}

fn bench_ring(c: &mut Criterion) {
    let ids = ids();
    let mut group = c.benchmark_group("ring/owner");
    let rings = [
        ("equal", 8, ring(8, |_| 1)),
        ("equal", 64, ring(64, |_| 1)),
        ("weights 1..=4", 64, ring(64, |i| (i % 4) as u32 + 1)),
        (
            "weights up to 1000",
            64,
            ring(64, |i| if i == 0 { 1000 } else { 100 }),
        ),
    ];
    for (label, n, ring) in &rings {
        group.bench_with_input(BenchmarkId::new(*label, n), ring, |b, ring| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) & 1023;
                ring.owner(black_box(ids[i].as_str())).as_str().len()
            })
        });
    }
    group.finish();

    let mut i = 0;
    c.bench_function("ring/entity_hash (32-byte id)", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            EntityHash::of(black_box(ids[i].as_str()))
        })
    });
    let hashes: Vec<_> = ids.iter().map(EntityHash::of).collect();
    let ring64 = ring(64, |_| 1);
    c.bench_function("ring/owner_of_hash (64 equal)", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            ring64.owner_of_hash(black_box(hashes[i])).as_str().len()
        })
    });
}

criterion_group!(benches, bench_ring);
criterion_main!(benches);
