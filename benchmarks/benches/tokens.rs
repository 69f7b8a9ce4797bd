//! Token hot paths: issue (sign) and validation (parse, verify, expiry and
//! revocation, claims → Keystone body).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use futures::FutureExt;
use keyfed_benchmarks::{signer, typical_claims};
use keyfed_shard::config::{BootstrapConfig, ShardConfig, StorageKind};
use keyfed_shared::time::now_micros;
use keyfed_shared::token;

fn bench_tokens(c: &mut Criterion) {
    let s = signer("shard-1.1");
    let claims = typical_claims(now_micros(), vec![]);
    c.bench_function("token/sign", |b| b.iter(|| s.sign(black_box(&claims))));

    let t = s.sign(&claims).expect("sign");
    let key = s.verifying_key();
    c.bench_function("token/parse", |b| {
        b.iter(|| token::parse(black_box(&t)).map(|u| u.kid().len()))
    });
    c.bench_function("token/parse+verify", |b| {
        b.iter(|| token::parse(black_box(&t)).and_then(|u| u.verify(&key)))
    });
}

fn bench_shard_validation(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = ShardConfig::default();
    config.server.insecure_plain_http = true;
    config.storage.kind = StorageKind::Embedded;
    config.storage.path = dir.path().join("store");
    config.tokens.signing_key_file = dir.path().join("key.pem");
    config.password.memory_kib = 64;
    config.password.iterations = 1;
    config.bootstrap = Some(BootstrapConfig {
        admin_password: Some("bench".into()),
        ..BootstrapConfig::default()
    });
    let shard = rt
        .block_on(keyfed_shard::server::build(config))
        .expect("shard");
    let global = shard.global();
    let roles = global.effective_roles(global.role_by_name("admin").map(|r| &r.id));
    let claims = typical_claims(now_micros(), roles);
    let t = shard.sign(&claims).expect("sign");
    println!("typical token: {} bytes", t.len());
    c.bench_function("shard/issue (sign)", |b| {
        b.iter(|| shard.sign(black_box(&claims)))
    });
    c.bench_function("shard/validate (parse+verify+expiry+revocation)", |b| {
        // A known signer: the validation completes without waiting.
        b.iter(|| shard.validate(black_box(&t), false).now_or_never())
    });
    c.bench_function("shard/claims to Keystone body", |b| {
        b.iter(|| serde_json::to_vec(&shard.token_body(black_box(&claims), true)))
    });
    c.bench_function("shard/validate + body", |b| {
        b.iter(|| {
            let claims = shard
                .validate(black_box(&t), false)
                .now_or_never()
                .expect("no wait")
                .expect("valid");
            serde_json::to_vec(&shard.token_body(&claims, true))
        })
    });
}

criterion_group!(benches, bench_tokens, bench_shard_validation);
criterion_main!(benches);
