//! Signed directory entries (`keyfed_federation::seal`): the cost of
//! sealing a typical global entry (an endpoint) with a member's key, and of
//! opening it — envelope parse, certificate chain and name check against
//! the federation CA, signature — as every view and shard mirror does per
//! entry it loads or follows; and a CA-signed entry (no certificate).
//! Figures: `benchmarks/README.md`, section "Signed directory entries".

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use keyfed_directory::Bucket;
use keyfed_federation::seal::{EntryCheck, EntrySigner};
use keyfed_pki::{signing_request, FederationCa};

const ENDPOINT: &[u8] = br#"{"id":"38081067a8796fd8535c78dbb0d4559a","interface":"public","service_id":"5d6d2fac92aa2766579e3da82ea975f2","region_id":"RegionOne","url":"https://compute.example.com:8774/v2.1","enabled":true}"#;
const KEY: &str = "endpoint/38081067a8796fd8535c78dbb0d4559a";

fn bench_seal(c: &mut Criterion) {
    let now = 1_900_000_000;
    let ca = FederationCa::generate("bench CA", now - 10, 86_400).expect("CA");
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let der = ca
        .issue(
            &signing_request("shard-1", &key).expect("CSR"),
            "shard-1",
            now - 10,
            86_400,
        )
        .expect("certificate");
    let member = EntrySigner::Member {
        kid: "shard-1.1".into(),
        key,
        cert: Arc::new(der),
    };
    let by_ca = EntrySigner::Ca(ca.entry_signing_key().expect("CA key"));
    let check = EntryCheck::new(Some(Arc::new(ca.cert().clone()))).expect("check");
    let sealed = member
        .seal(Bucket::Global, KEY, ENDPOINT, now)
        .expect("sealed");
    let sealed_by_ca = by_ca
        .seal(Bucket::Global, KEY, ENDPOINT, now)
        .expect("sealed");
    println!(
        "entry {} bytes; sealed by a member {} bytes, by the CA {} bytes",
        ENDPOINT.len(),
        sealed.len(),
        sealed_by_ca.len()
    );
    let mut group = c.benchmark_group("seal");
    group.bench_function("seal (member key)", |b| {
        b.iter(|| member.seal(Bucket::Global, KEY, black_box(ENDPOINT), now))
    });
    group.bench_function("open (member key: certificate + signature)", |b| {
        b.iter(|| check.open(Bucket::Global, KEY, black_box(&sealed), now))
    });
    group.bench_function("open (CA key)", |b| {
        b.iter(|| check.open(Bucket::Global, KEY, black_box(&sealed_by_ca), now))
    });
    group.finish();
}

criterion_group!(benches, bench_seal);
criterion_main!(benches);
