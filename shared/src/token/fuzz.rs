//! Fuzz tests of the token parser and verifier: arbitrary strings,
//! mutated and reshaped valid tokens, odd `kid`s, and garbage claims
//! signed with the right key. Nothing panics; nothing but a token signed
//! by the key verifies.
#![allow(clippy::unwrap_used)]

use super::{keystone_body, keystone_body_bytes, parse, Claims, Scope, Signer, TokenError};
use crate::fuzzing::{config, hostile_string, json_value, Mutation};
use crate::global::GlobalData;
use crate::ids::{AuditId, DomainId, ProjectId, RoleId, UserId};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use ed25519_dalek::{Signer as _, SigningKey};
use proptest::prelude::*;
use serde_json::json;

const WORDS: &[&str] = &["EdDSA", "none", "HS256", "s.1", "s1.1", "kid", "alg"];
const CLAIM_KEYS: &[&str] = &[
    "sub", "un", "ud", "m", "iat", "exp", "a", "s", "r", "ss", "p", "d", "u", "y", "i", "n",
];

fn key() -> SigningKey {
    SigningKey::from_bytes(&[3; 32])
}

fn token() -> String {
    let claims = super::body::tests::claims(Scope::Project {
        id: ProjectId::new("p1"),
        name: "demo".into(),
        domain_id: DomainId::new("default"),
    });
    Signer::new("s.1", key()).sign(&claims).unwrap()
}

/// Parses and verifies with the signer's key.
fn check(token: &str) -> Result<Claims, TokenError> {
    let unverified = parse(token)?;
    let _ = unverified.unverified_expiry();
    unverified.verify(&key().verifying_key())
}

/// A compact JWS of `header` and `payload` signed with the test key.
fn signed(header: &[u8], payload: &[u8]) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let signature = key().sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature.to_bytes()))
}

fn base64ish() -> BoxedStrategy<String> {
    prop_oneof![
        "[A-Za-z0-9_-]{0,100}",
        "[A-Za-z0-9_=+/-]{0,100}",
        (0usize..6_000).prop_map(|n| "A".repeat(n)),
    ]
    .boxed()
}

#[test]
fn fuzz_token_arbitrary_strings_are_refused() {
    let dotted =
        (base64ish(), base64ish(), base64ish()).prop_map(|(a, b, c)| format!("{a}.{b}.{c}"));
    let input = prop_oneof![hostile_string(WORDS), dotted.boxed()];
    proptest!(config(512), |(s in input)| {
        prop_assert!(check(&s).is_err(), "{s:?} verified");
    });
}

#[test]
fn fuzz_token_mutated_tokens_are_refused() {
    let valid = token();
    assert!(check(&valid).is_ok());
    proptest!(config(1024), |(m in Mutation::any())| {
        let mutated = m.apply_str(&valid);
        if mutated != valid {
            prop_assert!(check(&mutated).is_err(), "{m:?} verified: {mutated}");
        }
    });
}

#[test]
fn fuzz_token_reshaped_tokens_are_refused() {
    let valid = token();
    let parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    // Segment orders (with repeats), a huge segment, a foreign header.
    let order = prop::collection::vec(0usize..4, 0..6);
    let header = (hostile_string(WORDS), hostile_string(WORDS))
        .prop_map(|(alg, kid)| B64.encode(json!({"alg": alg, "kid": kid}).to_string()));
    let huge = (0usize..3, 1usize..8_000).prop_map(|(i, n)| (i, B64.encode(vec![b'{'; n])));
    proptest!(config(512), |(order in order, header in header, huge in huge)| {
        let segment = |i: usize| match i {
            3 => header.clone(),
            i => parts[i].clone(),
        };
        let reordered: Vec<String> = order.iter().map(|&i| segment(i)).collect();
        let reordered = reordered.join(".");
        if reordered != valid {
            prop_assert!(check(&reordered).is_err(), "{reordered}");
        }
        let mut with_huge = parts.clone();
        with_huge[huge.0] = huge.1.clone();
        prop_assert!(check(&with_huge.join(".")).is_err());
        let mut foreign = parts.clone();
        foreign[0] = header.clone();
        if foreign[0] != parts[0] {
            prop_assert!(check(&foreign.join(".")).is_err());
        }
    });
}

#[test]
fn fuzz_token_odd_kids_parse_as_signed_or_are_refused() {
    let payload = B64.decode(token().split('.').nth(1).unwrap()).unwrap();
    proptest!(config(512), |(alg in hostile_string(WORDS), kid in hostile_string(WORDS))| {
        let header = json!({"alg": alg, "kid": kid}).to_string();
        let token = signed(header.as_bytes(), &payload);
        match parse(&token) {
            Ok(unverified) => {
                prop_assert_eq!(unverified.kid(), kid.as_str());
                prop_assert_eq!(alg.as_str(), "EdDSA");
                prop_assert!(unverified.verify(&key().verifying_key()).is_ok());
            }
            Err(e) => prop_assert!(matches!(
                e,
                TokenError::Malformed(_) | TokenError::UnsupportedAlgorithm
            )),
        }
    });
}

#[test]
fn fuzz_token_signed_garbage_claims_decode_or_are_refused() {
    let header = br#"{"alg":"EdDSA","kid":"s.1"}"#;
    let global = GlobalData::default();
    let payload = json_value(CLAIM_KEYS, WORDS);
    proptest!(config(512), |(payload in payload, now in any::<i64>(), skew in any::<i64>())| {
        let token = signed(header, payload.to_string().as_bytes());
        match check(&token) {
            Ok(claims) => {
                let _ = claims.check_time(now, skew, skew);
                let _ = claims.facts();
                let _ = keystone_body(&claims, &global, true);
                let _ = keystone_body_bytes(&claims, &global, false);
            }
            Err(e) => prop_assert!(matches!(e, TokenError::Malformed(_)), "{e:?}"),
        }
    });
}

fn any_claims() -> impl Strategy<Value = Claims> {
    let s = || hostile_string(WORDS);
    let time = || {
        prop_oneof![
            any::<i64>(),
            Just(i64::MIN),
            Just(i64::MAX),
            Just(0),
            Just(1_700_000_000_000_000)
        ]
    };
    let scope = prop_oneof![
        Just(Scope::Unscoped),
        Just(Scope::System),
        s().prop_map(|id| Scope::Domain {
            id: DomainId::new(id)
        }),
        (s(), s(), s()).prop_map(|(id, name, d)| Scope::Project {
            id: ProjectId::new(id),
            name,
            domain_id: DomainId::new(d),
        }),
    ];
    (
        (s(), s(), s(), prop::collection::vec(s(), 0..3)),
        (time(), time(), prop::collection::vec(s(), 0..3), scope),
        (
            prop::collection::vec(s(), 0..4),
            prop::collection::vec(s(), 0..3),
        ),
    )
        .prop_map(
            |((sub, un, ud, methods), (iat, exp, audit, scope), (roles, shards))| Claims {
                user_id: UserId::new(sub),
                user_name: un,
                user_domain_id: DomainId::new(ud),
                methods,
                issued_at: iat,
                expires_at: exp,
                audit_ids: audit.into_iter().map(AuditId::new).collect(),
                scope,
                roles: roles.into_iter().map(RoleId::new).collect(),
                shard_set: shards.into_iter().map(crate::ids::ShardId::new).collect(),
            },
        )
}

#[test]
fn fuzz_token_hostile_signed_claims_round_trip_and_render() {
    let signer = Signer::new("s.1", key());
    let global = GlobalData::default();
    proptest!(config(256), |(claims in any_claims(), now in any::<i64>())| {
        let token = signer.sign(&claims).unwrap();
        match check(&token) {
            Ok(decoded) => prop_assert_eq!(&decoded, &claims),
            // Longer than any token accepted (huge strings).
            Err(e) => prop_assert_eq!(e, TokenError::Malformed("too long")),
        }
        let _ = claims.check_time(now, 0, 60_000_000);
        let _ = keystone_body(&claims, &global, true);
        let _ = keystone_body_bytes(&claims, &global, true);
    });
}
