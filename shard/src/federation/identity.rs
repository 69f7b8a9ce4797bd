//! A federated shard's standing in the federation PKI, settled at start:
//! the CA it trusts member keys on, its own signing certificate (loaded,
//! or — on an issuer, a shard holding the CA key — issued for itself), and
//! the CA itself when it is an issuer (to admit joining shards).
//!
//! A certificate that does not certify this shard's signing key, names
//! another shard, or is outside its validity is refused at start: a shard
//! never registers a record that the federation's views would ignore. An
//! issuer replaces its own certificate when it is missing, invalid, or in
//! the last third of its validity.

use std::path::Path;
use std::sync::Arc;

use keyfed_federation::seal::{EntryCheck, EntrySigner, Signers};

use ed25519_dalek::SigningKey;
use keyfed_federation::view::Trust;
use keyfed_pki::{der_to_pem, pem_to_der, signing_request, CaCert, FederationCa};
use keyfed_shared::federation::MemberCert;

use crate::config::ShardConfig;
use crate::ShardError;

/// What a federated shard trusts and presents.
pub struct Identity {
    /// The `kid` of the tokens it signs.
    pub kid: String,
    /// Its token-verification key.
    pub public_key: ed25519_dalek::VerifyingKey,
    /// How its view trusts member keys.
    pub trust: Trust,
    /// The certificates to put in its member record.
    pub certificates: Vec<MemberCert>,
    /// The CA, when this shard is an issuer.
    pub issuer: Option<Arc<FederationCa>>,
    /// Validity of certificates it issues, seconds.
    pub validity_secs: i64,
    /// The client for internal calls to other members (see
    /// [`super::internal_client`]).
    pub internal_http: reqwest::Client,
    /// The federation CA certificate (none with registry trust: no
    /// certificates, no rotation).
    pub ca: Option<Arc<CaCert>>,
    /// How directory entries are checked (against the CA, when there is
    /// one).
    pub check: EntryCheck,
    /// The keys it signs directory entries with: its own, and the CA key
    /// on an issuer.
    pub signers: Arc<Signers>,
    /// How long a key replaced by a rotation stays in the member record:
    /// the token lifetime plus the allow-expired window, plus 15 s for
    /// the switch to the new key.
    pub retention_secs: i64,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("certificates", &self.certificates.len())
            .field("issuer", &self.issuer.is_some())
            .finish_non_exhaustive()
    }
}

/// Margin between writing a rotated key's record and signing with it, in
/// seconds, counted in the old key's retention.
const SWITCH_MARGIN_SECS: u64 = 15;

fn fail(what: impl std::fmt::Display) -> ShardError {
    ShardError::Federation(what.to_string())
}

impl Identity {
    /// Settles the identity of the shard of `config`, whose signing key is
    /// `key` (its `kid` `kid`, its certificate at `cert_path`), at `now`
    /// (unix seconds).
    pub fn load(
        config: &ShardConfig,
        key: &SigningKey,
        kid: &str,
        cert_path: &Path,
        now: i64,
    ) -> Result<Self, ShardError> {
        let t = &config.trust;
        let validity_secs = i64::from(t.certificate_validity_days) * 86_400;
        let retention_secs = (config.tokens.expiration_secs
            + config.tokens.allow_expired_window_secs
            + SWITCH_MARGIN_SECS)
            .try_into()
            .unwrap_or(i64::MAX);
        let internal_http =
            super::internal_client::internal_client(config, std::time::Duration::from_secs(30))?;
        let Some(ca_path) = &t.ca_cert else {
            tracing::warn!(
                "trust.insecure_registry_trust: member keys are trusted without a CA; \
                 never use this in production"
            );
            return Ok(Self {
                kid: kid.to_owned(),
                public_key: key.verifying_key(),
                trust: Trust::Registry,
                certificates: vec![],
                issuer: None,
                validity_secs,
                internal_http,
                ca: None,
                check: EntryCheck::Unchecked,
                signers: Arc::new(Signers::default()),
                retention_secs,
            });
        };
        let shard = config.shard.id.as_str();
        let issuer = match &t.ca_key {
            Some(ca_key) => Some(Arc::new(
                FederationCa::load_files(ca_path, ca_key)
                    .map_err(|e| fail(format!("trust.ca_key: {e}")))?,
            )),
            None => None,
        };
        let ca = match &issuer {
            Some(ca) => ca.cert().clone(),
            None => CaCert::from_pem(
                &keyfed_pki::files::read_text(ca_path)
                    .map_err(|e| fail(format!("trust.ca_cert: {e}")))?,
            )
            .map_err(|e| fail(format!("trust.ca_cert: {e}")))?,
        };
        // An issuer renews in the last third of the validity; any other
        // shard uses its certificate until it expires (warned below).
        let renew_within = if issuer.is_some() {
            validity_secs / 3
        } else {
            0
        };
        let current = own_certificate(&ca, cert_path, shard, key, now, renew_within);
        let der = match (current, &issuer) {
            (Ok(der), _) => der,
            (Err(why), Some(ca)) => {
                tracing::info!(%why, path = %cert_path.display(), "issuing this issuer's own signing certificate");
                let csr = signing_request(shard, key).map_err(fail)?;
                let (der, _) = ca
                    .issue_verified(&csr, shard, now, validity_secs)
                    .map_err(fail)?;
                keyfed_pki::files::replace_private(cert_path, der_to_pem(&der).as_bytes())
                    .map_err(fail)?;
                der
            }
            (Err(why), None) => {
                return Err(fail(format!(
                    "trust.certificate {}: {why}; a new shard obtains one with \
                     `keyfed shard --config F --join URL --join-token T`",
                    cert_path.display()
                )))
            }
        };
        let ca = Arc::new(ca);
        let ca_signer = match &issuer {
            Some(issuer) => Some(EntrySigner::Ca(
                issuer
                    .entry_signing_key()
                    .map_err(|e| fail(format!("trust.ca_key: {e}")))?,
            )),
            None => None,
        };
        let member_signer = EntrySigner::Member {
            kid: kid.to_owned(),
            key: key.clone(),
            cert: Arc::new(der.clone()),
        };
        Ok(Self {
            check: EntryCheck::new(Some(ca.clone()))
                .map_err(|e| fail(format!("trust.ca_cert: {e}")))?,
            signers: Arc::new(Signers::new(Some(member_signer), ca_signer)),
            kid: kid.to_owned(),
            public_key: key.verifying_key(),
            trust: Trust::Ca(ca.clone()),
            certificates: vec![MemberCert::new(kid, &der)],
            issuer,
            validity_secs,
            internal_http,
            ca: Some(ca),
            retention_secs,
        })
    }
}

/// How the administration CLI, acting with shard config `config`, checks
/// and signs directory entries: against `[trust] ca_cert`; with the CA key
/// when the config has `[trust] ca_key` (retire, revoke, join tokens),
/// and with the shard's current signing key when its certificate is in
/// place (admin call tokens). Nothing is created or issued.
pub fn directory_seal(config: &ShardConfig, now: i64) -> Result<(EntryCheck, Signers), ShardError> {
    let t = &config.trust;
    let Some(ca_path) = &t.ca_cert else {
        return Ok((EntryCheck::Unchecked, Signers::default()));
    };
    let (ca, ca_signer) = match &t.ca_key {
        Some(ca_key) => {
            let issuer = FederationCa::load_files(ca_path, ca_key)
                .map_err(|e| fail(format!("trust.ca_key: {e}")))?;
            let signer = issuer
                .entry_signing_key()
                .map_err(|e| fail(format!("trust.ca_key: {e}")))?;
            (issuer.cert().clone(), Some(EntrySigner::Ca(signer)))
        }
        None => (
            CaCert::from_pem(
                &keyfed_pki::files::read_text(ca_path)
                    .map_err(|e| fail(format!("trust.ca_cert: {e}")))?,
            )
            .map_err(|e| fail(format!("trust.ca_cert: {e}")))?,
            None,
        ),
    };
    let key_base = &config.tokens.signing_key_file;
    let cert_base = t.certificate_path(key_base);
    let serial = crate::keyring::current_serial(key_base, &cert_base);
    let shard = config.shard.id.as_str();
    let key_path = crate::keyring::serial_path(key_base, serial);
    let member_signer = if key_path.exists() {
        let key = crate::keyring::load_or_create(key_base, serial).map_err(fail)?;
        own_certificate(
            &ca,
            &crate::keyring::serial_path(&cert_base, serial),
            shard,
            &key,
            now,
            0,
        )
        .ok()
        .map(|der| EntrySigner::Member {
            kid: crate::keyring::kid(shard, serial),
            key,
            cert: Arc::new(der),
        })
    } else {
        None
    };
    let check =
        EntryCheck::new(Some(Arc::new(ca))).map_err(|e| fail(format!("trust.ca_cert: {e}")))?;
    Ok((check, Signers::new(member_signer, ca_signer)))
}

/// The shard's current certificate, if it certifies `key` for `shard` now
/// and does not expire within `renew_within` seconds.
fn own_certificate(
    ca: &CaCert,
    path: &Path,
    shard: &str,
    key: &SigningKey,
    now: i64,
    renew_within: i64,
) -> Result<Vec<u8>, String> {
    let pem = keyfed_pki::files::read_text(path).map_err(|e| e.to_string())?;
    let der = pem_to_der(&pem).map_err(|e| e.to_string())?;
    let signer = ca
        .verify_signer(&der, shard, now)
        .map_err(|e| e.to_string())?;
    if signer.key != key.verifying_key() {
        return Err("it certifies another key than the signing key".into());
    }
    if signer.not_after - now < renew_within {
        return Err(format!("it expires soon (unix {})", signer.not_after));
    }
    if signer.not_after - now < 30 * 86_400 {
        tracing::warn!(path = %path.display(), not_after = signer.not_after,
            "this shard's signing certificate expires within 30 days");
    }
    Ok(der)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::FederationConfig;

    fn config(dir: &Path, issuer: bool) -> ShardConfig {
        let mut c = ShardConfig::default();
        c.shard.id = "s1".into();
        c.tokens.signing_key_file = dir.join("key.pem");
        c.trust.ca_cert = Some(dir.join("ca/ca.pem"));
        if issuer {
            c.trust.ca_key = Some(dir.join("ca/ca-key.pem"));
        }
        c.federation = Some(FederationConfig {
            advertise_url: "http://s1.invalid".into(),
            weight: 1,
            nats: None,
            embedded: Some(keyfed_directory::EmbeddedConfig::new(dir.join("d"))),
            name_audit_interval_secs: crate::config::DEFAULT_NAME_AUDIT_INTERVAL_SECS,
        });
        c
    }

    fn crt(dir: &Path) -> std::path::PathBuf {
        dir.join("key.crt")
    }

    #[test]
    fn an_issuer_certifies_itself_once_and_others_need_a_certificate() {
        let tmp = tempfile::tempdir().unwrap();
        let now = 1_900_000_000;
        let ca = FederationCa::init(&tmp.path().join("ca"), "t", now, 86_400 * 3650).unwrap();
        let key = SigningKey::from_bytes(&[7; 32]);
        let issuer = Identity::load(
            &config(tmp.path(), true),
            &key,
            "s1.1",
            &crt(tmp.path()),
            now,
        )
        .unwrap();
        assert!(issuer.issuer.is_some());
        let der = issuer.certificates[0].der_bytes().unwrap();
        assert_eq!(
            ca.cert().verify_signer(&der, "s1", now).unwrap().key,
            key.verifying_key()
        );
        // Reloaded as is while valid, by an issuer or not.
        let again = Identity::load(
            &config(tmp.path(), false),
            &key,
            "s1.1",
            &crt(tmp.path()),
            now + 60,
        )
        .unwrap();
        assert_eq!(again.certificates, issuer.certificates);
        assert!(again.issuer.is_none());
        // Another key: refused without the CA key, re-issued with it.
        let other = SigningKey::from_bytes(&[8; 32]);
        let err = Identity::load(
            &config(tmp.path(), false),
            &other,
            "s1.1",
            &crt(tmp.path()),
            now,
        )
        .unwrap_err();
        assert!(err.to_string().contains("--join"), "{err}");
        let renewed = Identity::load(
            &config(tmp.path(), true),
            &other,
            "s1.1",
            &crt(tmp.path()),
            now,
        )
        .unwrap();
        assert_ne!(renewed.certificates, issuer.certificates);
        // Late in its validity a non-issuer keeps it, an issuer renews.
        let late = now + 300 * 86_400;
        let kept = Identity::load(
            &config(tmp.path(), false),
            &other,
            "s1.1",
            &crt(tmp.path()),
            late,
        )
        .unwrap();
        assert_eq!(kept.certificates, renewed.certificates);
        let later = Identity::load(
            &config(tmp.path(), true),
            &other,
            "s1.1",
            &crt(tmp.path()),
            late,
        )
        .unwrap();
        assert_ne!(later.certificates, renewed.certificates);
    }
}
