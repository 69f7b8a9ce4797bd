#![allow(clippy::unwrap_used)]

//! The golden vectors were computed by an independent implementation of the
//! specification in `mod.rs` (Python, with the reference C libxxhash 0.8.1
//! for XXH3 and 60-digit decimals for the table). If one of them fails, the
//! placement function changed: that is a data migration, not a test update.

use super::score::{entity_hash, neg_log2, shard_hash, splitmix64, LOG2_TABLE, NEG_LOG2_MAX};
use super::*;

fn ring(shards: &[(&str, u32)]) -> Ring {
    let shards: Vec<_> = shards
        .iter()
        .map(|(id, w)| (ShardId::new(*id), *w))
        .collect();
    Ring::new(&shards).unwrap()
}

fn equal(n: usize) -> Vec<(ShardId, u32)> {
    (0..n)
        .map(|i| (ShardId::new(format!("shard-{i}")), 1))
        .collect()
}

/// `n` Keystone-shaped ids (32 hex characters) from a fixed seed.
fn ids(n: usize) -> Vec<String> {
    let mut state = 0x5eed_u64;
    (0..n)
        .map(|_| {
            let a = splitmix64(state);
            let b = splitmix64(state.wrapping_add(0x9e37_79b9_7f4a_7c15));
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15 << 1);
            format!("{a:016x}{b:016x}")
        })
        .collect()
}

const THREE: &[(&str, u32)] = &[("shard-1", 1), ("shard-2", 1), ("shard-3", 1)];
const EIGHT: &[(&str, u32)] = &[
    ("shard-0", 1),
    ("shard-1", 1),
    ("shard-2", 1),
    ("shard-3", 1),
    ("shard-4", 1),
    ("shard-5", 1),
    ("shard-6", 1),
    ("shard-7", 1),
];
/// A shard set: (shard id, weight).
type Shards = &'static [(&'static str, u32)];

const WEIGHTED: &[(&str, u32)] = &[("alpha", 1), ("bravo", 2), ("charlie", 5), ("delta", 10)];

#[test]
fn golden_primitives() {
    let long_x = "x".repeat(64);
    let long_y = "y".repeat(300);
    let hashes: &[(&[u8], u64)] = &[
        (b"", 0xcd70a0983fc1ff6a),
        (b"a", 0xff1379694975c74b),
        (b"default", 0x82f054dcc60924e4),
        (b"9f86d081884c7d659a2feaa0c55ad015", 0xe56863a83b406a30),
        ("projét-ünicode".as_bytes(), 0x6f38a5b655ad64f6),
        (long_x.as_bytes(), 0xba88352164dc7e57),
        (long_y.as_bytes(), 0xc70f55fde17c2b34),
    ];
    for (id, h) in hashes {
        assert_eq!(
            entity_hash(id),
            *h,
            "entity hash of {:?}",
            String::from_utf8_lossy(id)
        );
        assert_eq!(EntityHash::of(id).value(), *h);
    }
    assert_eq!(shard_hash("shard-1"), 0x31f6862bcd656e98);
    assert_eq!(shard_hash("shard-2"), 0x12f7788e19598549);
    assert_eq!(shard_hash("s"), 0x72812429eca466e5);

    // splitmix64(0) is SplitMix64's well-known first output from seed 0.
    assert_eq!(splitmix64(0), 0xe220a8397b1dcdaf);
    assert_eq!(splitmix64(1), 0x910a2dec89025cc1);
    assert_eq!(splitmix64(0x0123456789abcdef), 0x157a3807a48faa9d);
    assert_eq!(splitmix64(u64::MAX), 0xe4d971771b652c20);

    let logs: &[(u64, u64)] = &[
        (0, 274877906944),
        (1, 270582939648),
        (2, 268070544838),
        (3, 266287972352),
        ((1 << 63) - 1, 4294967296),
        (1 << 63, 4294967296),
        (u64::MAX - 1, 1),
        (u64::MAX, 0),
        (0x0123456789abcdef, 33560022256),
        (0xfedcba9876543210, 27647375),
    ];
    for (x, l) in logs {
        assert_eq!(neg_log2(*x), *l, "neg_log2({x:#x})");
    }
}

#[test]
fn golden_owners() {
    let long_x = "x".repeat(64);
    let long_y = "y".repeat(300);
    let cases: &[(&str, [&str; 3])] = &[
        ("", ["shard-2", "shard-5", "charlie"]),
        ("default", ["shard-1", "shard-1", "delta"]),
        ("admin", ["shard-3", "shard-0", "charlie"]),
        (
            "9f86d081884c7d659a2feaa0c55ad015",
            ["shard-1", "shard-1", "bravo"],
        ),
        (
            "e3b0c44298fc1c149afbf4c8996fb924",
            ["shard-2", "shard-2", "delta"],
        ),
        (
            "2c26b46b68ffc68ff99b453c1d304134",
            ["shard-3", "shard-0", "delta"],
        ),
        (
            "fcde2b2edba56bf408601fb721fe9b5c",
            ["shard-3", "shard-3", "delta"],
        ),
        ("projét-ünicode", ["shard-1", "shard-4", "charlie"]),
        (
            "b5bb9d8014a0f9b1d61e21e796d78dcc",
            ["shard-3", "shard-3", "charlie"],
        ),
        (
            "7d865e959b2466918c9863afca942d0f",
            ["shard-2", "shard-2", "charlie"],
        ),
        (&long_x, ["shard-2", "shard-2", "delta"]),
        (&long_y, ["shard-2", "shard-2", "bravo"]),
    ];
    let rings = [ring(THREE), ring(EIGHT), ring(WEIGHTED)];
    for (id, expected) in cases {
        for (ring, want) in rings.iter().zip(expected) {
            assert_eq!(ring.owner(id).as_str(), *want, "owner of {id:?}");
        }
    }
    assert_eq!(ring(&[("only", 7)]).owner("anything").as_str(), "only");
}

/// Places `golden-0` .. `golden-9999` and pins both the per-shard counts and
/// an order-sensitive checksum of the owner sequence
/// (`acc = acc · 31 + position of owner in the table + 1`, wrapping).
#[test]
fn golden_layout_of_10k_ids() {
    let cases: &[(Shards, &[usize], u64)] = &[
        (
            EIGHT,
            &[1181, 1295, 1271, 1222, 1254, 1274, 1263, 1240],
            0x60f3da0dc9c0fc91,
        ),
        (WEIGHTED, &[548, 1117, 2751, 5584], 0xaf28bd1ae0513b77),
    ];
    for (shards, counts, checksum) in cases {
        let r = ring(shards);
        let mut got = vec![0; shards.len()];
        let mut acc = 0u64;
        for i in 0..10_000 {
            let owner = r.owner(format!("golden-{i}"));
            let pos = shards
                .iter()
                .position(|(s, _)| *s == owner.as_str())
                .unwrap();
            got[pos] += 1;
            acc = acc.wrapping_mul(31).wrapping_add(pos as u64 + 1);
        }
        assert_eq!(got, *counts);
        assert_eq!(acc, *checksum);
    }
}

#[test]
fn log2_table_matches_its_definition() {
    for (k, t) in LOG2_TABLE.iter().enumerate() {
        let exact = (1.0 + k as f64 / 64.0).log2() * 4294967296.0;
        assert!(
            (*t as f64 - exact).abs() <= 0.5 + 1e-6,
            "T[{k}] = {t}, exact {exact}"
        );
    }
}

#[test]
fn neg_log2_is_accurate_and_monotone() {
    let mut prev = (0u64, NEG_LOG2_MAX);
    let mut xs: Vec<u64> = ids(2000)
        .iter()
        .map(|s| entity_hash(s.as_bytes()))
        .collect();
    xs.extend((0..64).map(|b| 1u64 << b));
    xs.extend((0..64).map(|b| (1u64 << b) - 1));
    xs.push(u64::MAX);
    // Both sides of every table segment boundary at every exponent.
    for e in 0..64u32 {
        for i in 0..64u64 {
            if let Some(start) = (1u64 << e).checked_add((i << 57) >> (63 - e)) {
                xs.extend([start.saturating_sub(2), start.saturating_sub(1)]);
            }
        }
    }
    xs.sort_unstable();
    for x in xs {
        let l = neg_log2(x);
        assert!(
            l <= prev.1,
            "not monotone: {:#x} -> {}, {x:#x} -> {l}",
            prev.0,
            prev.1
        );
        prev = (x, l);
        let exact = -((x as f64 + 1.0) / 18446744073709551616.0).log2();
        let err = (l as f64 / 4294967296.0 - exact).abs();
        assert!(err < 4.5e-5, "neg_log2({x:#x}) off by {err}");
    }
}

/// Step 5 of the specification, literally: every shard's score, least
/// `L / w` by exact cross-multiplication, ties to the smallest id.
fn owner_by_definition<'a>(shards: &'a [(ShardId, u32)], id: &str) -> &'a ShardId {
    let h_e = entity_hash(id.as_bytes());
    let scored = shards.iter().map(|(s, w)| {
        let l = neg_log2(splitmix64(h_e ^ shard_hash(s.as_str())));
        (s, *w, l)
    });
    let best = scored.reduce(|(bs, bw, bl), (s, w, l)| {
        let (lhs, rhs) = (
            u128::from(l) * u128::from(bw),
            u128::from(bl) * u128::from(w),
        );
        if lhs < rhs || (lhs == rhs && s < bs) {
            (s, w, l)
        } else {
            (bs, bw, bl)
        }
    });
    best.unwrap().0
}

#[test]
fn skipping_the_logarithm_changes_nothing() {
    let weighted: Vec<_> = (0..24)
        .map(|i| (ShardId::new(format!("m{i}")), [1, 1, 2, 7, 1000, 3][i % 6]))
        .collect();
    for shards in [equal(1), equal(5), equal(64), weighted] {
        let r = Ring::new(&shards).unwrap();
        for id in ids(3000) {
            assert_eq!(r.owner(&id), owner_by_definition(&shards, &id), "{id}");
        }
    }
}

#[test]
fn deterministic_whatever_the_input_order_or_the_handle() {
    let mut shuffled = equal(8);
    shuffled.reverse();
    shuffled.swap(1, 5);
    let a = Ring::new(&equal(8)).unwrap();
    let b = Ring::new(&shuffled).unwrap();
    assert_eq!(a, b);
    let c = a.clone();
    for id in ids(2000) {
        let o = a.owner(&id);
        assert_eq!(o, b.owner(&id));
        assert_eq!(o, c.owner(&id));
        assert_eq!(o, a.owner(id.as_bytes()));
        assert_eq!(o, a.owner_of_hash(EntityHash::of(&id)));
    }
}

#[test]
fn removing_a_shard_moves_only_its_ids() {
    let all = equal(8);
    let before = Ring::new(&all).unwrap();
    let removed = &all[3].0;
    let rest: Vec<_> = all.iter().filter(|(s, _)| s != removed).cloned().collect();
    let after = Ring::new(&rest).unwrap();
    let mut moved = 0;
    for id in ids(20_000) {
        let (old, new) = (before.owner(&id), after.owner(&id));
        if old == removed {
            moved += 1;
        } else {
            assert_eq!(old, new, "{id} moved off a shard that stayed");
        }
    }
    assert!(moved > 0);
}

#[test]
fn adding_a_shard_moves_ids_only_to_it() {
    let before = Ring::new(&equal(8)).unwrap();
    let after = Ring::new(&equal(9)).unwrap();
    let added = ShardId::new("shard-8");
    let mut moved = 0usize;
    for id in ids(20_000) {
        let (old, new) = (before.owner(&id), after.owner(&id));
        if old != new {
            assert_eq!(new, &added, "{id} moved between old shards");
            moved += 1;
        }
    }
    // Ideal share: 1/9 of 20 000 ≈ 2 222.
    assert!((2000..2450).contains(&moved), "moved {moved}");
}

#[test]
fn raising_a_weight_moves_ids_only_to_that_shard() {
    let mut shards = equal(8);
    let before = Ring::new(&shards).unwrap();
    shards[5].1 = 3;
    let after = Ring::new(&shards).unwrap();
    for id in ids(20_000) {
        let (old, new) = (before.owner(&id), after.owner(&id));
        if old != new {
            assert_eq!(new, &shards[5].0);
        }
    }
}

#[test]
fn load_is_proportional_to_weight() {
    let weights = [1u32, 2, 3, 4, 10];
    let shards: Vec<_> = weights
        .iter()
        .enumerate()
        .map(|(i, w)| (ShardId::new(format!("w{i}")), *w))
        .collect();
    let r = Ring::new(&shards).unwrap();
    let n = 100_000usize;
    let mut load = vec![0usize; shards.len()];
    for id in ids(n) {
        let o = r.owner(&id);
        load[shards.iter().position(|(s, _)| s == o).unwrap()] += 1;
    }
    let total: u32 = weights.iter().sum();
    for (i, w) in weights.iter().enumerate() {
        let expected = n as f64 * f64::from(*w) / f64::from(total);
        let ratio = load[i] as f64 / expected;
        assert!(
            (0.95..1.05).contains(&ratio),
            "shard w{i} (weight {w}): {ratio:.3}× its share"
        );
    }
}

#[test]
fn equal_weights_spread_evenly() {
    let r = Ring::new(&equal(16)).unwrap();
    let mut load = std::collections::HashMap::new();
    for id in ids(64_000) {
        *load.entry(r.owner(&id).clone()).or_insert(0usize) += 1;
    }
    assert_eq!(load.len(), 16);
    for (shard, n) in load {
        assert!(
            (3600..4400).contains(&n),
            "{shard}: {n} of 64 000 (ideal 4 000)"
        );
    }
}

#[test]
fn invalid_shard_sets_are_refused() {
    assert_eq!(Ring::new(&[]), Err(RingError::NoShards));
    let a = ShardId::new("a");
    let b = ShardId::new("b");
    assert_eq!(
        Ring::new(&[(a.clone(), 1), (b.clone(), 0)]),
        Err(RingError::InvalidWeight {
            shard: b.clone(),
            weight: 0
        })
    );
    assert_eq!(
        Ring::new(&[(a.clone(), MAX_WEIGHT + 1)]),
        Err(RingError::InvalidWeight {
            shard: a.clone(),
            weight: MAX_WEIGHT + 1
        })
    );
    assert_eq!(
        Ring::new(&[(a.clone(), 1), (b.clone(), 2), (a.clone(), 3)]),
        Err(RingError::DuplicateShard(a.clone()))
    );
    assert!(Ring::new(&[(a.clone(), MAX_WEIGHT), (b.clone(), 1)]).is_ok());
}

#[test]
fn accessors_report_the_members() {
    let r = ring(&[("b", 2), ("a", 1)]);
    let listed: Vec<_> = r.shards().map(|(s, w)| (s.as_str(), w)).collect();
    assert_eq!(listed, [("a", 1), ("b", 2)]);
    assert_eq!(r.shards().len(), 2);
    assert_eq!(r.weight(&ShardId::new("b")), Some(2));
    assert_eq!(r.weight(&ShardId::new("c")), None);
}
