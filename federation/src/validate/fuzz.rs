//! Fuzz tests of the validator: whatever the token — arbitrary strings,
//! mutated member tokens, odd `kid`s naming members or not, signed by a
//! member's key or not — validation (and the look-up of an unknown
//! signer) never panics, and only an unmodified member token validates.
#![allow(clippy::unwrap_used)]

use ed25519_dalek::SigningKey;
use keyfed_shared::fuzzing::{config, hostile_string, Mutation};
use keyfed_shared::ids::ProjectId;
use keyfed_shared::time::now_micros;
use keyfed_shared::token::Signer;
use proptest::prelude::*;

use super::tests::fixture;
use crate::testutil::{claims, signer, signing_key};

const WORDS: &[&str] = &["s1.1", "s2.1", "s9.1", "s1", "s1.", ".1", "s1.1.1", "s1.x"];
const HOUR: i64 = 3_600_000_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn fuzz_validator_refuses_all_but_member_tokens() {
    let rt = runtime();
    let f = rt.block_on(fixture());
    let now = now_micros();
    let valid = signer("s1")
        .sign(&claims(Some(ProjectId::new("p1")), now - 1, now + HOUR))
        .unwrap();
    assert!(f.validator.validate(&valid, false).is_ok());
    let input = prop_oneof![
        hostile_string(WORDS).prop_map(|s| (s, false)),
        Mutation::any().prop_map(move |m| {
            let mutated = m.apply_str(&valid);
            let unchanged = mutated == valid;
            (mutated, unchanged)
        }),
    ];
    proptest!(config(512), |((token, valid) in input, allow_expired in any::<bool>())| {
        let sync = f.validator.validate(&token, allow_expired);
        let looked_up = rt.block_on(f.validator.validate_token(&token, allow_expired));
        prop_assert_eq!(sync.is_ok(), valid);
        prop_assert_eq!(looked_up.is_ok(), valid);
        if let Ok(v) = looked_up {
            let _ = f.validator.body(&v, true);
        }
    });
}

#[test]
fn fuzz_validator_odd_kids_never_validate_with_a_foreign_key() {
    let rt = runtime();
    let f = rt.block_on(fixture());
    let now = now_micros();
    let key = prop_oneof![
        Just(signing_key("s1")),
        Just(signing_key("s2")),
        Just(SigningKey::from_bytes(&[42; 32])),
    ];
    let expiry = prop_oneof![Just(now + HOUR), Just(now - HOUR), any::<i64>()];
    proptest!(config(256), |(kid in hostile_string(WORDS), key in key, exp in expiry)| {
        let token = Signer::new(kid.clone(), key.clone())
            .sign(&claims(None, now - 1, exp))
            .unwrap();
        let sync = f.validator.validate(&token, true);
        let looked_up = rt.block_on(f.validator.validate_token(&token, true));
        // Only a member's own kid with its own key, unexpired or expired
        // within the fixture's allow-expired window (2 h), validates.
        let genuine = [("s1.1", "s1"), ("s2.1", "s2")]
            .iter()
            .any(|(k, m)| kid == *k && key == signing_key(m))
            && exp > now - 2 * HOUR;
        if !genuine {
            prop_assert!(sync.is_err(), "{kid:?} validated");
            prop_assert!(looked_up.is_err(), "{kid:?} validated after a look-up");
        }
    });
}
