//! Fuzz tests of what an issuer parses for a joining or renewing shard:
//! join requests, renewal requests, the CSRs (PEM) they carry, signing
//! certificates (DER) and advertise URLs. Nothing panics; every refusal
//! is a client error (401, 400, 409), never a directory failure.
#![allow(clippy::unwrap_used)]

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::SigningKey;
use keyfed_pki::join_token::Purpose;
use keyfed_pki::tls_request::{generate_tls_key, tls_request, url_host};
use keyfed_pki::{pem_to_der, signing_request, MemberKind};
use keyfed_shared::fuzzing::{config, hostile_string, Mutation};
use keyfed_shared::ring::MAX_WEIGHT;
use proptest::prelude::*;

use super::admit::{admit, JoinRequest};
use super::credentials::issue;
use super::renew::{renew, RenewRequest, MAX_SKEW_SECS};
use super::renew_tests::{setup, DAY, NOW};
use super::LifecycleError;
use crate::testutil::signing_key;

const WORDS: &[&str] = &[
    "s1",
    "s2",
    "s3",
    "s1.1",
    "http://s2.invalid",
    "https://[::1]:1",
];

/// A runtime, and an embedded directory with member `s1` certified by
/// the CA (keep the guard).
fn issuer() -> (
    tokio::runtime::Runtime,
    tempfile::TempDir,
    std::sync::Arc<dyn keyfed_directory::Directory>,
    keyfed_pki::FederationCa,
) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (tmp, dir, ca) = rt.block_on(setup());
    (rt, tmp, dir, ca)
}

/// Refusals a caller may get; a directory failure or panic is a bug.
fn client_error<T>(r: &Result<T, LifecycleError>) -> bool {
    !matches!(r, Err(LifecycleError::Directory(_)))
}

/// The DER inside a PEM block.
fn pem_body(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    B64.decode(b64).unwrap()
}

/// `der` as a PEM block labelled `label`.
fn pem(label: &str, der: &[u8]) -> String {
    keyfed_pki::der_to_pem(der).replace("CERTIFICATE", label)
}

/// A PEM document derived from the valid `good`: itself, its text
/// mutated, its DER mutated and re-wrapped, or anything at all.
fn pem_like(good: String, label: &'static str) -> BoxedStrategy<String> {
    let der = pem_body(&good);
    prop_oneof![
        2 => Just(good.clone()),
        2 => Mutation::any().prop_map(move |m| m.apply_str(&good)),
        4 => Mutation::any().prop_map(move |m| pem(label, &m.apply(&der))),
        1 => hostile_string(WORDS),
    ]
    .boxed()
}

fn url() -> BoxedStrategy<String> {
    prop_oneof![
        Just("http://s2.invalid/".to_owned()),
        hostile_string(WORDS),
        hostile_string(WORDS).prop_map(|s| format!("https://{s}")),
        hostile_string(WORDS).prop_map(|s| format!("http://[{s}]:5000/x")),
    ]
    .boxed()
}

#[test]
fn fuzz_join_requests_are_admitted_or_refused() {
    let (rt, _tmp, dir, ca) = issuer();
    let d = dir.as_ref();
    let id = prop_oneof![3 => Just("s2".to_owned()), 1 => hostile_string(WORDS)];
    let csr = pem_like(
        signing_request("s2", &signing_key("s2")).unwrap(),
        "CERTIFICATE REQUEST",
    );
    let tls_key = generate_tls_key().unwrap();
    let tls_csr = pem_like(
        tls_request(MemberKind::Shard, "s2", &tls_key).unwrap(),
        "CERTIFICATE REQUEST",
    );
    let weight = prop_oneof![Just(1u32), Just(0), Just(MAX_WEIGHT + 1), any::<u32>()];
    // Mostly a valid token, so the rest of the request is looked at.
    let token = prop_oneof![3 => Just(None), 1 => hostile_string(WORDS).prop_map(Some)];
    let request = (id, csr, url(), weight, prop::option::of(tls_csr), token);
    proptest!(config(96), |((shard_id, csr, advertise_url, weight, tls_csr, token) in request)| {
        let join_token = match token {
            Some(t) => t,
            None => rt.block_on(issue(d, Purpose::Join, NOW, 600)).unwrap(),
        };
        let req = JoinRequest { shard_id, csr, advertise_url, weight, join_token, tls_csr };
        let r = rt.block_on(admit(d, &ca, &req, NOW, DAY));
        prop_assert!(client_error(&r), "{r:?}");
    });
}

#[test]
fn fuzz_renew_requests_are_granted_or_refused() {
    let (rt, _tmp, dir, ca) = issuer();
    let d = dir.as_ref();
    let current = signing_key("s1");
    let new_csr = signing_request("s1", &SigningKey::from_bytes(&[99; 32])).unwrap();
    let s = || prop_oneof![3 => Just(None), 1 => hostile_string(WORDS).prop_map(Some)];
    let time = prop_oneof![
        3 => Just(0i64),
        1 => -2 * MAX_SKEW_SECS..2 * MAX_SKEW_SECS,
        1 => prop::sample::select(&[i64::MIN, i64::MAX, -NOW, NOW][..]),
        1 => any::<i64>(),
    ];
    let signature = prop_oneof![
        3 => Just(None),
        1 => Mutation::any().prop_map(Some),
    ];
    let fields = (
        (s(), s(), pem_like(new_csr, "CERTIFICATE REQUEST"), time),
        (s(), signature, any::<[u8; 16]>(), any::<bool>()),
    );
    proptest!(config(128), |(((shard_id, kid, csr, dt), (nonce, signature, fresh, resign)) in fields)| {
        let mut req = RenewRequest::signed(
            "s1", "s1.1", csr, &current, NOW.saturating_add(dt), fresh,
        );
        if let Some(id) = shard_id { req.shard_id = id; }
        if let Some(k) = kid { req.kid = k; }
        if let Some(n) = nonce { req.nonce = n; }
        if resign {
            // Changed fields, signed again: the checks after the signature run.
            req = RenewRequest { signature: String::new(), ..req };
            let signed = RenewRequest::signed(
                &req.shard_id, &req.kid, req.csr.clone(), &current, req.timestamp, fresh,
            );
            req.signature = signed.signature;
        }
        if let Some(m) = signature { req.signature = m.apply_str(&req.signature); }
        let r = rt.block_on(renew(d, &ca, &req, NOW, DAY));
        prop_assert!(client_error(&r), "{r:?}");
    });
}

#[test]
fn fuzz_certificates_and_urls_parse_or_are_refused() {
    let (_rt, _tmp, _dir, ca) = issuer();
    let csr = signing_request("s2", &signing_key("s2")).unwrap();
    let cert = keyfed_pki::der_to_pem(&ca.issue(&csr, "s2", NOW, DAY).unwrap());
    let tls_key = generate_tls_key().unwrap();
    let tls_csr = tls_request(MemberKind::Shard, "s2", &tls_key).unwrap();
    let tls_cert = ca
        .issue_tls_for(
            &tls_csr,
            MemberKind::Shard,
            "s2",
            &["s2.invalid".into()],
            NOW,
            DAY,
        )
        .unwrap();
    let inputs = (
        pem_like(cert, "CERTIFICATE"),
        pem_like(tls_cert, "CERTIFICATE"),
        pem_like(csr, "CERTIFICATE REQUEST"),
        pem_like(tls_csr, "CERTIFICATE REQUEST"),
        url(),
    );
    proptest!(config(256), |((cert, tls_cert, csr, tls_csr, url) in inputs)| {
        if let Ok(der) = pem_to_der(&cert) {
            let _ = ca.cert().verify_signer(&der, "s2", NOW);
            let _ = ca.cert().verify_signer_untimed(&der, "s2");
            let _ = keyfed_pki::anchor::not_after(&der);
        }
        if let Ok(der) = pem_to_der(&tls_cert) {
            let _ = ca.cert().verify_member_tls(&der, MemberKind::Shard, "s2", NOW);
        }
        let _ = ca.issue_verified(&csr, "s2", NOW, DAY);
        let hosts = url_host(&url).map(|h| vec![h]).unwrap_or_default();
        let _ = ca.issue_tls_for(&tls_csr, MemberKind::Shard, "s2", &hosts, NOW, DAY);
    });
}
