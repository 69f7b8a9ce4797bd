//! The integer primitives of the placement function, each exactly as
//! specified in the [module documentation](super). Nothing here may change
//! without a data migration: the golden vectors in `tests.rs` pin every step.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// XXH3-64 seed for entity ids: the ASCII bytes `keyfed:e` read as a
/// big-endian integer.
pub const ENTITY_SEED: u64 = 0x6b65_7966_6564_3a65;

/// XXH3-64 seed for shard ids: the ASCII bytes `keyfed:s` read as a
/// big-endian integer.
pub const SHARD_SEED: u64 = 0x6b65_7966_6564_3a73;

/// `LOG2_TABLE[k] = round(2^32 · log2(1 + k/64))` for `k` in `0..=64`
/// (computed with 60-digit decimal arithmetic; no entry is near a rounding
/// tie). `LOG2_TABLE[0] = 0` and `LOG2_TABLE[64] = 2^32`.
pub const LOG2_TABLE: [u64; 65] = [
    0, 96069025, 190671291, 283850912, //
    375650043, 466108993, 555266330, 643158981, //
    729822324, 815290272, 899595355, 982768792, //
    1064840562, 1145839467, 1225793196, 1304728379, //
    1382670639, 1459644648, 1535674166, 1610782092, //
    1684990500, 1758320682, 1830793181, 1902427829, //
    1973243777, 2043259528, 2112492963, 2180961373, //
    2248681479, 2315669461, 2381940981, 2447511201, //
    2512394810, 2576606038, 2640158677, 2703066101, //
    2765341278, 2826996792, 2888044853, 2948497313, //
    3008365682, 3067661140, 3126394546, 3184576458, //
    3242217134, 3299326552, 3355914416, 3411990165, //
    3467562987, 3522641820, 3577235372, 3631352118, //
    3685000315, 3738188006, 3790923031, 3843213029, //
    3895065449, 3946487554, 3997486426, 4048068976, //
    4098241947, 4148011918, 4197385310, 4246368396, //
    4294967296,
];

/// `2^38 = 64 · 2^32`: the largest value [`neg_log2`] returns.
pub const NEG_LOG2_MAX: u64 = 64 << 32;

/// Step 1: `h_e = XXH3_64(id, seed = ENTITY_SEED)`.
pub fn entity_hash(id: &[u8]) -> u64 {
    xxh3_64_with_seed(id, ENTITY_SEED)
}

/// Step 2: `h_s = XXH3_64(utf8(shard id), seed = SHARD_SEED)`.
pub fn shard_hash(shard_id: &str) -> u64 {
    xxh3_64_with_seed(shard_id.as_bytes(), SHARD_SEED)
}

/// Step 3: one output of SplitMix64 whose state was `state` before the call
/// (golden-gamma increment, then Stafford's "Mix13" finalizer), all
/// arithmetic modulo 2^64.
pub fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Step 4: `≈ 2^32 · −log2((x + 1) / 2^64)`, in `0..=2^38`, integer only.
///
/// `log2` is evaluated as the exponent plus a piecewise-linear interpolation
/// of [`LOG2_TABLE`] over the top 6 bits of the mantissa, with the next 32
/// bits as the interpolation weight (absolute error < 4.5·10⁻⁵ in log2
/// units). Non-increasing in `x`.
pub fn neg_log2(x: u64) -> u64 {
    if x == u64::MAX {
        // x + 1 = 2^64: −log2(1) = 0.
        return 0;
    }
    let y = x + 1; // 1..=2^64 − 1
    let e = u64::from(63 - y.leading_zeros()); // floor(log2 y), 0..=63
    let f = (y << (63 - e)) & (u64::MAX >> 1); // the 63 bits after the leading one
    let i = (f >> 57) as usize; // 0..=63
    let r = (f >> 25) & 0xffff_ffff;
    let (lo, hi) = (LOG2_TABLE[i], LOG2_TABLE[i + 1]);
    let m = lo + (((hi - lo) * r) >> 32); // < 2^32
    NEG_LOG2_MAX - ((e << 32) + m)
}
