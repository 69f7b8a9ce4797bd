//! A shard's certificate signing request for its Ed25519 token-signing key.

use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use rcgen::{CertificateParams, DnType, KeyPair, SanType, PKCS_ED25519};

use crate::error::PkiError;
use crate::names::{check_shard_id, shard_uri};

/// A CSR (PEM) for `key`, naming shard `shard` (URI SAN and common name).
pub fn signing_request(shard: &str, key: &SigningKey) -> Result<String, PkiError> {
    check_shard_id(shard)?;
    let pkcs8 = key
        .to_pkcs8_der()
        .map_err(|e| PkiError::malformed("signing key", e))?;
    let pair = KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8.as_bytes().into(), &PKCS_ED25519)
        .map_err(|e| PkiError::malformed("signing key", e))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, shard);
    params.subject_alt_names =
        vec![SanType::URI(shard_uri(shard).try_into().map_err(
            |e: rcgen::Error| PkiError::Generate(e.to_string()),
        )?)];
    let csr = params.serialize_request(&pair)?;
    Ok(csr.pem()?)
}
