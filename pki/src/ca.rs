//! The federation CA: created once by `keyfed ca init`, held by the members
//! configured as issuers, it issues shards' signing certificates from their
//! certificate signing requests.
//!
//! On disk a CA is a directory with `ca.pem` (the certificate, 0644) and
//! `ca-key.pem` (its Ed25519 PKCS#8 key, 0600). Creation never overwrites.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, IsCa, Issuer,
    KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_ED25519,
};
use time::OffsetDateTime;

use crate::anchor::{pem_block, CaCert, SignerCert};
use crate::error::PkiError;
use crate::files;
use crate::names::{check_shard_id, shard_uri};

/// The certificate file in a CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The key file in a CA directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// Tolerated clock skew: certificates start this long before issuance.
pub(crate) const BACKDATE_SECS: i64 = 300;

/// A CA that can issue: its certificate and its key.
pub struct FederationCa {
    cert: CaCert,
    key: KeyPair,
}

impl std::fmt::Debug for FederationCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederationCa")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

pub(crate) fn at(secs: i64) -> Result<OffsetDateTime, PkiError> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| PkiError::malformed("time", e))
}

pub(crate) fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // positive
    bytes[0] |= 0x01; // no leading zero byte
    SerialNumber::from_slice(&bytes)
}

/// The paths of a CA directory's certificate and key.
pub fn ca_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join(CA_CERT_FILE), dir.join(CA_KEY_FILE))
}

impl FederationCa {
    /// Generates a CA named `name`, valid from `now` for `validity_secs`.
    pub fn generate(name: &str, now: i64, validity_secs: i64) -> Result<Self, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ED25519)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "keyfed");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = at(now - BACKDATE_SECS)?;
        params.not_after = at(now.saturating_add(validity_secs))?;
        params.serial_number = Some(random_serial());
        let cert = params.self_signed(&key)?;
        let cert = CaCert::from_der(cert.der().to_vec())?;
        Ok(Self { cert, key })
    }

    /// Creates a CA in `dir` (`ca.pem`, `ca-key.pem` mode 0600); refuses if
    /// either file exists.
    pub fn init(dir: &Path, name: &str, now: i64, validity_secs: i64) -> Result<Self, PkiError> {
        let (cert_path, key_path) = ca_paths(dir);
        for p in [&cert_path, &key_path] {
            if p.exists() {
                return Err(PkiError::Exists(p.display().to_string()));
            }
        }
        let ca = Self::generate(name, now, validity_secs)?;
        files::write_private(&key_path, ca.key.serialize_pem().as_bytes())?;
        files::write_public(&cert_path, ca.cert.pem().as_bytes())?;
        Ok(ca)
    }

    /// Loads the CA of `dir`.
    pub fn load(dir: &Path) -> Result<Self, PkiError> {
        let (cert_path, key_path) = ca_paths(dir);
        Self::load_files(&cert_path, &key_path)
    }

    /// Loads a CA from its certificate and key files.
    pub fn load_files(cert: &Path, key: &Path) -> Result<Self, PkiError> {
        let cert = CaCert::from_pem(&files::read_text(cert)?)?;
        let key_pem = files::read_text(key)?;
        let key = KeyPair::from_pkcs8_pem_and_sign_algo(&key_pem, &PKCS_ED25519)
            .map_err(|e| PkiError::malformed("CA key", e))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.der())
            .map_err(|e| PkiError::malformed("CA certificate", e))?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(PkiError::rejected(
                "the CA key does not match its certificate",
            ));
        }
        Ok(Self { cert, key })
    }

    /// The CA certificate (the trust anchor to hand to every member).
    pub fn cert(&self) -> &CaCert {
        &self.cert
    }

    /// The CA key as an Ed25519 signing key, to sign directory entries
    /// only an issuer may write (status attestations, join tokens).
    pub fn entry_signing_key(&self) -> Result<ed25519_dalek::SigningKey, PkiError> {
        use ed25519_dalek::pkcs8::DecodePrivateKey;
        ed25519_dalek::SigningKey::from_pkcs8_der(&self.key.serialize_der())
            .map_err(|e| PkiError::malformed("CA key", e))
    }

    /// The CA key, for issuing within this crate.
    pub(crate) fn key(&self) -> &KeyPair {
        &self.key
    }

    /// Issues the signing certificate of `shard` from its CSR (PEM), valid
    /// from `now` for `validity_secs`. The CSR's signature proves the
    /// requester holds the key; it must name `shard` and carry an Ed25519
    /// key. Only the key is taken from the CSR: every other field of the
    /// certificate is set here. Returns the certificate, DER.
    pub fn issue(
        &self,
        csr_pem: &str,
        shard: &str,
        now: i64,
        validity_secs: i64,
    ) -> Result<Vec<u8>, PkiError> {
        check_shard_id(shard)?;
        let der = pem_block(csr_pem, "CERTIFICATE REQUEST")?;
        let csr = CertificateSigningRequestParams::from_der(&der.into())
            .map_err(|e| PkiError::rejected(format!("certificate signing request: {e}")))?;
        if csr.public_key.algorithm() != &PKCS_ED25519 {
            return Err(PkiError::rejected("the CSR's key is not Ed25519"));
        }
        let expected = shard_uri(shard);
        let names: Vec<&SanType> = csr.params.subject_alt_names.iter().collect();
        let names_shard =
            matches!(names.as_slice(), [SanType::URI(uri)] if uri.as_str() == expected);
        if !names_shard {
            return Err(PkiError::rejected(format!(
                "the CSR does not name shard {shard:?} (and only it)"
            )));
        }
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, shard);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "keyfed");
        params.subject_alt_names =
            vec![SanType::URI(expected.try_into().map_err(
                |e: rcgen::Error| PkiError::Generate(e.to_string()),
            )?)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.use_authority_key_identifier_extension = true;
        params.not_before = at(now - BACKDATE_SECS)?;
        params.not_after = at(now.saturating_add(validity_secs))?;
        params.serial_number = Some(random_serial());
        let issuer = Issuer::from_ca_cert_der(&self.cert.der().into(), &self.key)?;
        let cert = params.signed_by(&csr.public_key, &issuer)?;
        Ok(cert.der().to_vec())
    }

    /// Issues and verifies in one step (for callers that want the result's
    /// expiry at once).
    pub fn issue_verified(
        &self,
        csr_pem: &str,
        shard: &str,
        now: i64,
        validity_secs: i64,
    ) -> Result<(Vec<u8>, SignerCert), PkiError> {
        let der = self.issue(csr_pem, shard, now, validity_secs)?;
        let verified = self.cert.verify_signer(&der, shard, now)?;
        Ok((der, verified))
    }
}
