//! Issuing and verifying signing certificates, and every rejection.
#![allow(clippy::unwrap_used)]

use ed25519_dalek::SigningKey;
use rcgen::{CertificateParams, KeyPair, SanType, PKCS_ECDSA_P256_SHA256, PKCS_ED25519};

use crate::ca::{ca_paths, FederationCa};
use crate::csr::signing_request;
use crate::error::PkiError;
use crate::{der_to_pem, pem_to_der, CaCert};

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn ca() -> FederationCa {
    FederationCa::generate("test CA", NOW, 3650 * DAY).unwrap()
}

fn rejected(r: Result<impl std::fmt::Debug, PkiError>) -> String {
    match r {
        Err(PkiError::Rejected(m)) => m,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn an_issued_certificate_verifies_and_yields_the_key() {
    let ca = ca();
    let k = key(1);
    let csr = signing_request("s1", &k).unwrap();
    let der = ca.issue(&csr, "s1", NOW, 30 * DAY).unwrap();
    let signer = ca.cert().verify_signer(&der, "s1", NOW).unwrap();
    assert_eq!(signer.key, k.verifying_key());
    assert_eq!(signer.shard, "s1");
    assert_eq!(signer.not_after, NOW + 30 * DAY);
    assert!(signer.not_before <= NOW);
    // The same anchor, reloaded from PEM, verifies it too.
    let anchor = CaCert::from_pem(&ca.cert().pem()).unwrap();
    assert_eq!(anchor.verify_signer(&der, "s1", NOW).unwrap(), signer);
    assert_eq!(pem_to_der(&der_to_pem(&der)).unwrap(), der);
}

#[test]
fn a_certificate_from_another_ca_is_rejected() {
    let (ours, theirs) = (ca(), ca());
    let csr = signing_request("s1", &key(1)).unwrap();
    let der = theirs.issue(&csr, "s1", NOW, DAY).unwrap();
    let m = rejected(ours.cert().verify_signer(&der, "s1", NOW));
    assert!(m.contains("CA"), "{m}");
}

#[test]
fn a_certificate_from_a_ca_with_the_same_name_is_rejected() {
    // Same subject, different key: only the signature tells them apart.
    let ours = ca();
    let impostor = ca();
    let der = impostor
        .issue(&signing_request("s1", &key(1)).unwrap(), "s1", NOW, DAY)
        .unwrap();
    let m = rejected(ours.cert().verify_signer(&der, "s1", NOW));
    assert!(m.contains("not signed by the federation CA"), "{m}");
}

#[test]
fn a_self_made_certificate_is_rejected() {
    let rogue = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI("keyfed:shard:s1".try_into().unwrap())];
    let der = params.self_signed(&rogue).unwrap().der().to_vec();
    rejected(ca().cert().verify_signer(&der, "s1", NOW));
}

#[test]
fn validity_is_enforced() {
    let ca = ca();
    let der = ca
        .issue(&signing_request("s1", &key(1)).unwrap(), "s1", NOW, DAY)
        .unwrap();
    let m = rejected(ca.cert().verify_signer(&der, "s1", NOW + DAY + 1));
    assert!(m.contains("validity"), "{m}");
    let m = rejected(ca.cert().verify_signer(&der, "s1", NOW - DAY));
    assert!(m.contains("validity"), "{m}");
    ca.cert().verify_signer(&der, "s1", NOW + DAY - 1).unwrap();
}

#[test]
fn the_certificate_must_name_the_expected_shard() {
    let ca = ca();
    let der = ca
        .issue(&signing_request("s1", &key(1)).unwrap(), "s1", NOW, DAY)
        .unwrap();
    let m = rejected(ca.cert().verify_signer(&der, "s2", NOW));
    assert!(m.contains("s2"), "{m}");
    rejected(ca.cert().verify_signer(&der, "s1x", NOW));
    rejected(ca.cert().verify_signer(&der, "s1/../s2", NOW));
}

#[test]
fn a_tampered_certificate_is_rejected() {
    let ca = ca();
    let der = ca
        .issue(&signing_request("s1", &key(1)).unwrap(), "s1", NOW, DAY)
        .unwrap();
    // Swap the certified key for another one of the same length.
    let good = key(1).verifying_key().to_bytes();
    let evil = key(2).verifying_key().to_bytes();
    let at = der.windows(32).position(|w| w == good).unwrap();
    let mut swapped = der.clone();
    swapped[at..at + 32].copy_from_slice(&evil);
    rejected(ca.cert().verify_signer(&swapped, "s1", NOW));
    // Flip a bit of the signature (the last bytes).
    let mut flipped = der.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    rejected(ca.cert().verify_signer(&flipped, "s1", NOW));
    // Truncated or extended DER does not parse.
    assert!(matches!(
        ca.cert().verify_signer(&der[..der.len() - 5], "s1", NOW),
        Err(PkiError::Malformed { .. })
    ));
    let mut longer = der.clone();
    longer.push(0);
    assert!(ca.cert().verify_signer(&longer, "s1", NOW).is_err());
}

#[test]
fn the_ca_certificate_itself_cannot_sign_tokens() {
    let ca = ca();
    let m = rejected(ca.cert().verify_signer(ca.cert().der(), "s1", NOW));
    assert!(!m.is_empty());
}

#[test]
fn issuing_refuses_a_csr_for_another_shard_or_key_type() {
    let ca = ca();
    let csr = signing_request("s2", &key(1)).unwrap();
    let m = rejected(ca.issue(&csr, "s1", NOW, DAY));
    assert!(m.contains("s1"), "{m}");
    // An ECDSA CSR naming the right shard.
    let p256 = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI("keyfed:shard:s1".try_into().unwrap())];
    let csr = params.serialize_request(&p256).unwrap().pem().unwrap();
    let m = rejected(ca.issue(&csr, "s1", NOW, DAY));
    assert!(m.contains("Ed25519"), "{m}");
    // A CSR naming two shards.
    let pair = KeyPair::generate_for(&PKCS_ED25519).unwrap();
    params
        .subject_alt_names
        .push(SanType::URI("keyfed:shard:s2".try_into().unwrap()));
    let csr = params.serialize_request(&pair).unwrap().pem().unwrap();
    rejected(ca.issue(&csr, "s1", NOW, DAY));
    // A CSR whose signature does not verify.
    let good = signing_request("s1", &key(1)).unwrap();
    let mut der = pem_block_der(&good);
    let last = der.len() - 1;
    der[last] ^= 1;
    let bad = pem("CERTIFICATE REQUEST", &der);
    rejected(ca.issue(&bad, "s1", NOW, DAY));
    assert!(ca.issue("garbage", "s1", NOW, DAY).is_err());
    rejected(ca.issue(&good, "bad id", NOW, DAY));
}

fn pem_block_der(pem: &str) -> Vec<u8> {
    crate::anchor::pem_block(pem, "CERTIFICATE REQUEST").unwrap()
}

fn pem(label: &str, der: &[u8]) -> String {
    der_to_pem(der).replace("CERTIFICATE", label)
}

#[test]
fn ca_init_writes_private_key_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let ca = FederationCa::init(dir.path(), "keyfed CA", NOW, 10 * DAY).unwrap();
    let (cert_path, key_path) = ca_paths(dir.path());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let before = std::fs::read(&key_path).unwrap();
    assert!(matches!(
        FederationCa::init(dir.path(), "again", NOW, DAY),
        Err(PkiError::Exists(_))
    ));
    assert_eq!(std::fs::read(&key_path).unwrap(), before);
    let loaded = FederationCa::load(dir.path()).unwrap();
    assert_eq!(loaded.cert(), ca.cert());
    let der = loaded
        .issue(&signing_request("s1", &key(1)).unwrap(), "s1", NOW, DAY)
        .unwrap();
    ca.cert().verify_signer(&der, "s1", NOW).unwrap();
    // A key that does not belong to the certificate is refused.
    let other = tempfile::tempdir().unwrap();
    FederationCa::init(other.path(), "other", NOW, DAY).unwrap();
    let (_, other_key) = ca_paths(other.path());
    let m = rejected(FederationCa::load_files(&cert_path, &other_key));
    assert!(m.contains("does not match"), "{m}");
}

#[test]
fn a_leaf_is_not_accepted_as_a_ca() {
    let ca = ca();
    let der = ca
        .issue(&signing_request("s1", &key(1)).unwrap(), "s1", NOW, DAY)
        .unwrap();
    rejected(CaCert::from_der(der));
    assert!(CaCert::from_pem("not pem").is_err());
}
