//! The federation CA certificate as a trust anchor, and verification of a
//! shard's signing certificate against it.
//!
//! A signing certificate is accepted only if, at the given time: it parses
//! completely; its issuer is the CA's subject and its signature verifies
//! with the CA's key; it is within its validity window; it is not a CA; its
//! key usage (when present) allows digital signatures; it names exactly one
//! shard, the expected one (URI SAN `keyfed:shard:<id>`); and its key is
//! Ed25519. The result is the key that token signatures must verify with.

use ed25519_dalek::VerifyingKey;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::oid_registry::OID_SIG_ED25519;
use x509_parser::prelude::FromDer;

use crate::error::PkiError;
use crate::names::{check_shard_id, shard_uri, SHARD_URI_PREFIX};

/// The federation CA's certificate, checked when loaded: a self-signed
/// Ed25519 CA certificate. Cheap to clone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaCert {
    der: Vec<u8>,
    not_after: i64,
}

/// A verified signing certificate: who it names, the key it certifies and
/// when it is valid (cut to the CA's own validity).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignerCert {
    /// The shard it names.
    pub shard: String,
    /// The Ed25519 key token signatures must verify with.
    pub key: VerifyingKey,
    /// Start of validity, unix seconds.
    pub not_before: i64,
    /// End of validity, unix seconds.
    pub not_after: i64,
    /// Serial number, hex.
    pub serial: String,
}

/// Decodes a PEM `CERTIFICATE` block into DER.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    let block = pem_block(pem, "CERTIFICATE")?;
    Ok(block)
}

/// Encodes DER as a PEM `CERTIFICATE` block.
pub fn der_to_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The body of the first PEM block labelled `label`.
pub(crate) fn pem_block(pem: &str, label: &'static str) -> Result<Vec<u8>, PkiError> {
    use base64::Engine;
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| PkiError::malformed("PEM", format!("no {label} block")))?
        + begin.len();
    let stop = pem[start..]
        .find(&end)
        .ok_or_else(|| PkiError::malformed("PEM", format!("unterminated {label} block")))?
        + start;
    let body: String = pem[start..stop]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| PkiError::malformed("PEM", e))
}

pub(crate) fn parse(der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    let (rest, cert) =
        X509Certificate::from_der(der).map_err(|e| PkiError::malformed("certificate", e))?;
    if !rest.is_empty() {
        return Err(PkiError::malformed("certificate", "trailing data"));
    }
    Ok(cert)
}

fn ed25519_key(cert: &X509Certificate<'_>) -> Result<VerifyingKey, PkiError> {
    let spki = cert.public_key();
    if spki.algorithm.algorithm != OID_SIG_ED25519 {
        return Err(PkiError::rejected("the certified key is not Ed25519"));
    }
    let bytes: [u8; 32] = spki
        .subject_public_key
        .data
        .as_ref()
        .try_into()
        .map_err(|_| PkiError::rejected("the certified key is not 32 bytes"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| PkiError::rejected("invalid Ed25519 key"))
}

impl CaCert {
    /// Loads and checks a CA certificate from PEM.
    pub fn from_pem(pem: &str) -> Result<Self, PkiError> {
        Self::from_der(pem_to_der(pem)?)
    }

    /// Loads and checks a CA certificate from DER.
    pub fn from_der(der: Vec<u8>) -> Result<Self, PkiError> {
        let cert = parse(&der)?;
        let is_ca = cert
            .basic_constraints()
            .map_err(|e| PkiError::malformed("CA certificate", e))?
            .is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(PkiError::rejected("the CA certificate is not a CA"));
        }
        if cert.issuer().as_raw() != cert.subject().as_raw() {
            return Err(PkiError::rejected("the CA certificate is not self-signed"));
        }
        ed25519_key(&cert)?;
        cert.verify_signature(None)
            .map_err(|_| PkiError::rejected("the CA certificate's signature does not verify"))?;
        let not_after = cert.validity().not_after.timestamp();
        drop(cert);
        Ok(Self { der, not_after })
    }

    /// The certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The certificate, PEM.
    pub fn pem(&self) -> String {
        der_to_pem(&self.der)
    }

    /// The CA's own Ed25519 public key: it verifies what issuers sign with
    /// the CA key besides certificates (directory entries).
    pub fn public_key(&self) -> Result<VerifyingKey, PkiError> {
        ed25519_key(&parse(&self.der)?)
    }

    /// End of the CA's validity, unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }

    /// Verifies `cert` (DER) as the signing certificate of `shard` at `now`
    /// (unix seconds); see the module doc.
    pub fn verify_signer(
        &self,
        cert: &[u8],
        shard: &str,
        now: i64,
    ) -> Result<SignerCert, PkiError> {
        let signer = self.verify_signer_untimed(cert, shard)?;
        if !(signer.not_before <= now && now <= signer.not_after) {
            return Err(PkiError::rejected("outside its validity period"));
        }
        Ok(signer)
    }

    /// Every check of [`CaCert::verify_signer`] but time: for callers that
    /// check the validity window themselves, later and repeatedly. The
    /// window returned is the certificate's, cut to the CA's.
    pub fn verify_signer_untimed(&self, cert: &[u8], shard: &str) -> Result<SignerCert, PkiError> {
        check_shard_id(shard)?;
        let ca = parse(&self.der)?;
        let leaf = parse(cert)?;
        if leaf.issuer().as_raw() != ca.subject().as_raw() {
            return Err(PkiError::rejected("not issued by the federation CA"));
        }
        leaf.verify_signature(Some(ca.public_key()))
            .map_err(|_| PkiError::rejected("not signed by the federation CA"))?;
        let bc = leaf
            .basic_constraints()
            .map_err(|e| PkiError::malformed("certificate", e))?;
        if bc.is_some_and(|bc| bc.value.ca) {
            return Err(PkiError::rejected("a CA certificate cannot sign tokens"));
        }
        let usage = leaf
            .key_usage()
            .map_err(|e| PkiError::malformed("certificate", e))?;
        if usage.is_some_and(|u| !u.value.digital_signature()) {
            return Err(PkiError::rejected(
                "its key usage does not allow signatures",
            ));
        }
        let named = shard_names(&leaf)?;
        let expected = shard_uri(shard);
        if named.len() != 1 || named[0] != expected {
            return Err(PkiError::rejected(format!(
                "it does not name shard {shard:?}"
            )));
        }
        let key = ed25519_key(&leaf)?;
        let (leaf_v, ca_v) = (leaf.validity(), ca.validity());
        Ok(SignerCert {
            shard: shard.to_owned(),
            key,
            not_before: leaf_v
                .not_before
                .timestamp()
                .max(ca_v.not_before.timestamp()),
            not_after: leaf_v.not_after.timestamp().min(ca_v.not_after.timestamp()),
            serial: leaf.raw_serial_as_string(),
        })
    }
}

/// The `keyfed:shard:` URIs a certificate names.
fn shard_names(cert: &X509Certificate<'_>) -> Result<Vec<String>, PkiError> {
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::malformed("certificate", e))?;
    Ok(san
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(uri) if uri.starts_with(SHARD_URI_PREFIX) => {
                        Some((*uri).to_owned())
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default())
}

/// The end of a certificate's validity (unix seconds), read without any
/// verification: for display only.
pub fn not_after(der: &[u8]) -> Option<i64> {
    parse(der).ok().map(|c| c.validity().not_after.timestamp())
}
