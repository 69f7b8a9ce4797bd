//! A member's TLS certificate obtained by request, as a joining shard does:
//! the member generates its TLS key and sends a CSR naming it
//! ([`tls_request`]); the CA takes only the key from the CSR and sets
//! every other field itself, the hosts included
//! ([`FederationCa::issue_tls_for`]); the member checks what it gets
//! against the CA it was configured with ([`CaCert::verify_member_tls`]).
//! No private key leaves the member.

use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DnType, Issuer, KeyPair, SanType,
    PKCS_ED25519,
};
use x509_parser::extensions::GeneralName;

use crate::anchor::{der_to_pem, parse, pem_block, CaCert};
use crate::ca::FederationCa;
use crate::error::PkiError;
use crate::names::check_shard_id;
use crate::tls::{tls_params, MemberKind};

/// A new Ed25519 TLS key, PKCS#8 PEM (secret: write it 0600).
pub fn generate_tls_key() -> Result<String, PkiError> {
    Ok(KeyPair::generate_for(&PKCS_ED25519)?.serialize_pem())
}

/// The raw public key of the TLS key `key_pem` (Ed25519, PKCS#8 PEM).
pub fn tls_public_key(key_pem: &str) -> Result<Vec<u8>, PkiError> {
    let key = KeyPair::from_pkcs8_pem_and_sign_algo(key_pem, &PKCS_ED25519)
        .map_err(|e| PkiError::malformed("TLS key", e))?;
    Ok(key.public_key_raw().to_vec())
}

/// A CSR (PEM) for the TLS key `key_pem` (Ed25519, PKCS#8 PEM) of member
/// `id` of `kind`, naming it by URI only (the CA adds the hosts).
pub fn tls_request(kind: MemberKind, id: &str, key_pem: &str) -> Result<String, PkiError> {
    check_shard_id(id)?;
    let key = KeyPair::from_pkcs8_pem_and_sign_algo(key_pem, &PKCS_ED25519)
        .map_err(|e| PkiError::malformed("TLS key", e))?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, id);
    params.subject_alt_names = vec![SanType::URI(kind.uri(id).try_into()?)];
    Ok(params.serialize_request(&key)?.pem()?)
}

/// The host (DNS name or IP address, IPv6 without brackets) of an
/// `http://` or `https://` URL, for a TLS certificate's names.
pub fn url_host(url: &str) -> Result<String, PkiError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| PkiError::rejected(format!("{url:?} is not an http(s) URL")))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(PkiError::rejected("a member URL carries no user info"));
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return Err(PkiError::rejected(format!("{url:?} names no host")));
    }
    Ok(host.to_owned())
}

impl FederationCa {
    /// Issues member `id`'s TLS certificate (PEM) for the key of
    /// `csr_pem`, for `hosts`, valid from `now` for `validity_secs`. The
    /// CSR's signature proves the requester holds the key; it must carry
    /// an Ed25519 key and name exactly `id` of `kind`. Only the key is
    /// taken from it.
    pub fn issue_tls_for(
        &self,
        csr_pem: &str,
        kind: MemberKind,
        id: &str,
        hosts: &[String],
        now: i64,
        validity_secs: i64,
    ) -> Result<String, PkiError> {
        check_shard_id(id)?;
        let der = pem_block(csr_pem, "CERTIFICATE REQUEST")?;
        let csr = CertificateSigningRequestParams::from_der(&der.into())
            .map_err(|e| PkiError::rejected(format!("TLS certificate signing request: {e}")))?;
        if csr.public_key.algorithm() != &PKCS_ED25519 {
            return Err(PkiError::rejected("the TLS CSR's key is not Ed25519"));
        }
        let expected = kind.uri(id);
        let names_member = matches!(
            csr.params.subject_alt_names.as_slice(),
            [SanType::URI(uri)] if uri.as_str() == expected
        );
        if !names_member {
            return Err(PkiError::rejected(format!(
                "the TLS CSR does not name {expected} (and only it)"
            )));
        }
        let params = tls_params(kind, id, hosts, now, validity_secs)?;
        let issuer = Issuer::from_ca_cert_der(&self.cert().der().into(), self.key())?;
        let cert = params.signed_by(&csr.public_key, &issuer)?;
        Ok(der_to_pem(cert.der()))
    }
}

impl CaCert {
    /// Checks a member's TLS certificate (DER): issued and signed by this
    /// CA, within its validity at `now`, not a CA, usable for both server
    /// and client authentication, naming `id` of `kind`. Returns the
    /// certified public key (raw bytes).
    pub fn verify_member_tls(
        &self,
        der: &[u8],
        kind: MemberKind,
        id: &str,
        now: i64,
    ) -> Result<Vec<u8>, PkiError> {
        check_shard_id(id)?;
        let ca = parse(self.der())?;
        let leaf = parse(der)?;
        if leaf.issuer().as_raw() != ca.subject().as_raw() {
            return Err(PkiError::rejected("not issued by the federation CA"));
        }
        leaf.verify_signature(Some(ca.public_key()))
            .map_err(|_| PkiError::rejected("not signed by the federation CA"))?;
        let validity = leaf.validity();
        if !(validity.not_before.timestamp() <= now && now <= validity.not_after.timestamp()) {
            return Err(PkiError::rejected("outside its validity period"));
        }
        let malformed = |e| PkiError::malformed("certificate", e);
        if leaf
            .basic_constraints()
            .map_err(malformed)?
            .is_some_and(|b| b.value.ca)
        {
            return Err(PkiError::rejected("a CA certificate is no member's"));
        }
        let eku = leaf.extended_key_usage().map_err(malformed)?;
        if !eku.is_some_and(|e| e.value.server_auth && e.value.client_auth) {
            return Err(PkiError::rejected(
                "it is not for both server and client authentication",
            ));
        }
        let expected = kind.uri(id);
        let names = leaf.subject_alternative_name().map_err(malformed)?;
        let named = names.is_some_and(|san| {
            san.value
                .general_names
                .iter()
                .any(|n| matches!(n, GeneralName::URI(u) if *u == expected))
        });
        if !named {
            return Err(PkiError::rejected(format!("it does not name {expected}")));
        }
        Ok(leaf.public_key().subject_public_key.data.to_vec())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::pem_to_der;

    const NOW: i64 = 1_800_000_000;

    fn ca() -> FederationCa {
        FederationCa::generate("test CA", NOW, 86_400 * 365).unwrap()
    }

    #[test]
    fn a_requested_certificate_certifies_the_requesters_key_for_the_cas_hosts() {
        let ca = ca();
        let key_pem = generate_tls_key().unwrap();
        let csr = tls_request(MemberKind::Shard, "s3", &key_pem).unwrap();
        let hosts = vec!["127.0.0.1".to_owned()];
        let pem = ca
            .issue_tls_for(&csr, MemberKind::Shard, "s3", &hosts, NOW, 3600)
            .unwrap();
        let der = pem_to_der(&pem).unwrap();
        let key = ca
            .cert()
            .verify_member_tls(&der, MemberKind::Shard, "s3", NOW)
            .unwrap();
        assert_eq!(key, tls_public_key(&key_pem).unwrap());
        // Another name, another kind, another time, another CA: refused.
        let cert = ca.cert();
        assert!(cert
            .verify_member_tls(&der, MemberKind::Shard, "s4", NOW)
            .is_err());
        assert!(cert
            .verify_member_tls(&der, MemberKind::Gateway, "s3", NOW)
            .is_err());
        assert!(cert
            .verify_member_tls(&der, MemberKind::Shard, "s3", NOW + 7200)
            .is_err());
        assert!(FederationCa::generate("other", NOW, 86_400)
            .unwrap()
            .cert()
            .verify_member_tls(&der, MemberKind::Shard, "s3", NOW)
            .is_err());
        // A signing certificate (no serverAuth/clientAuth) is no TLS one.
        let signing =
            crate::signing_request("s3", &ed25519_dalek::SigningKey::from_bytes(&[7; 32]));
        let signing = ca.issue(&signing.unwrap(), "s3", NOW, 3600).unwrap();
        assert!(cert
            .verify_member_tls(&signing, MemberKind::Shard, "s3", NOW)
            .is_err());
    }

    #[test]
    fn a_csr_for_another_member_or_without_hosts_is_refused() {
        let ca = ca();
        let key_pem = generate_tls_key().unwrap();
        let hosts = vec!["shard.example.org".to_owned()];
        let other = tls_request(MemberKind::Shard, "s4", &key_pem).unwrap();
        let e = ca
            .issue_tls_for(&other, MemberKind::Shard, "s3", &hosts, NOW, 60)
            .unwrap_err();
        assert!(matches!(e, PkiError::Rejected(_)), "{e}");
        let gw = tls_request(MemberKind::Gateway, "s3", &key_pem).unwrap();
        assert!(ca
            .issue_tls_for(&gw, MemberKind::Shard, "s3", &hosts, NOW, 60)
            .is_err());
        let mine = tls_request(MemberKind::Shard, "s3", &key_pem).unwrap();
        assert!(ca
            .issue_tls_for(&mine, MemberKind::Shard, "s3", &[], NOW, 60)
            .is_err());
        assert!(ca
            .issue_tls_for("garbage", MemberKind::Shard, "s3", &hosts, NOW, 60)
            .is_err());
    }

    #[test]
    fn url_hosts() {
        assert_eq!(url_host("https://10.0.0.1:5000/x").unwrap(), "10.0.0.1");
        assert_eq!(url_host("https://[::1]:5000").unwrap(), "::1");
        assert_eq!(
            url_host("http://shard-1.example.org").unwrap(),
            "shard-1.example.org"
        );
        for bad in ["ftp://x", "https://", "https://u@h/", "https://:80"] {
            assert!(url_host(bad).is_err(), "{bad}");
        }
    }
}
