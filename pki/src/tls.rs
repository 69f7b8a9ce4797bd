//! TLS certificates under the federation CA, for internal mTLS: one
//! certificate per member that serves (shards) and calls (shards and
//! gateways), with extended key usages serverAuth and clientAuth.
//!
//! Subject alternative names: the URI naming the member
//! (`keyfed:shard:<id>`, `keyfed:gateway:<id>`) and the DNS names or IP
//! addresses of its advertise URL. The key is Ed25519, generated here and
//! written beside the certificate with mode 0600.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType, PKCS_ED25519,
};

use crate::ca::{at, random_serial, FederationCa, BACKDATE_SECS};
use crate::error::PkiError;
use crate::files;
use crate::names::{check_shard_id, gateway_uri, shard_uri};

/// What kind of member a TLS certificate names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberKind {
    /// A shard: serves peers and gateways, calls peers.
    Shard,
    /// A gateway: calls shards.
    Gateway,
}

impl MemberKind {
    /// The URI naming member `id` of this kind.
    pub fn uri(self, id: &str) -> String {
        match self {
            MemberKind::Shard => shard_uri(id),
            MemberKind::Gateway => gateway_uri(id),
        }
    }
}

impl std::str::FromStr for MemberKind {
    type Err = PkiError;

    fn from_str(s: &str) -> Result<Self, PkiError> {
        match s {
            "shard" => Ok(MemberKind::Shard),
            "gateway" => Ok(MemberKind::Gateway),
            other => Err(PkiError::Rejected(format!(
                "member kind {other:?} is not `shard` or `gateway`"
            ))),
        }
    }
}

/// The member a TLS peer's certificate names: its one `keyfed:` URI SAN
/// (`keyfed:shard:<id>` or `keyfed:gateway:<id>`, with a valid id). `None`
/// for a certificate that does not parse or names no member, or more than
/// one. The certificate is not verified here: call this on a certificate
/// the TLS handshake verified against the federation CA.
pub fn peer_member(der: &[u8]) -> Option<(MemberKind, String)> {
    let cert = crate::anchor::parse(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    let mut named = san.value.general_names.iter().filter_map(|n| match n {
        x509_parser::extensions::GeneralName::URI(uri) => {
            if let Some(id) = uri.strip_prefix(crate::names::SHARD_URI_PREFIX) {
                Some((MemberKind::Shard, id))
            } else {
                uri.strip_prefix(crate::names::GATEWAY_URI_PREFIX)
                    .map(|id| (MemberKind::Gateway, id))
            }
        }
        _ => None,
    });
    let (kind, id) = named.next()?;
    if named.next().is_some() || check_shard_id(id).is_err() {
        return None;
    }
    Some((kind, id.to_owned()))
}

/// A member's TLS certificate and its key, PEM.
pub struct TlsIdentity {
    /// The certificate (PEM).
    pub cert_pem: String,
    /// The private key (PKCS#8 PEM). Secret.
    pub key_pem: String,
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsIdentity").finish_non_exhaustive()
    }
}

/// Where [`TlsIdentity::write`] put the files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsPaths {
    /// `<dir>/<name>.pem`, mode 0644.
    pub cert: PathBuf,
    /// `<dir>/<name>-key.pem`, mode 0600.
    pub key: PathBuf,
}

impl TlsIdentity {
    /// Writes `<dir>/<name>.pem` and `<dir>/<name>-key.pem` (0600); refuses
    /// if either exists.
    pub fn write(&self, dir: &Path, name: &str) -> Result<TlsPaths, PkiError> {
        check_shard_id(name)?;
        let paths = TlsPaths {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
        };
        for p in [&paths.cert, &paths.key] {
            if p.exists() {
                return Err(PkiError::Exists(p.display().to_string()));
            }
        }
        files::write_private(&paths.key, self.key_pem.as_bytes())?;
        files::write_public(&paths.cert, self.cert_pem.as_bytes())?;
        Ok(paths)
    }
}

/// A host name or address as a subject alternative name.
fn host_name(host: &str) -> Result<SanType, PkiError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !ok {
        return Err(PkiError::Rejected(format!(
            "{host:?} is neither an IP address nor a DNS name"
        )));
    }
    Ok(SanType::DnsName(host.to_ascii_lowercase().try_into()?))
}

/// Every field of member `id`'s TLS certificate but its key: names, usages,
/// validity, serial (see the module doc).
pub(crate) fn tls_params(
    kind: MemberKind,
    id: &str,
    hosts: &[String],
    now: i64,
    validity_secs: i64,
) -> Result<CertificateParams, PkiError> {
    check_shard_id(id)?;
    if kind == MemberKind::Shard && hosts.is_empty() {
        return Err(PkiError::Rejected(
            "a shard's TLS certificate needs at least one host (its advertise URL's)".into(),
        ));
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, id);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "keyfed");
    params.subject_alt_names = vec![SanType::URI(kind.uri(id).try_into()?)];
    for host in hosts {
        params.subject_alt_names.push(host_name(host)?);
    }
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    // A gateway only calls shards: its certificate is a client's alone, so
    // no TLS client accepts it as a server's (it cannot impersonate a
    // shard). A shard both serves and calls peers.
    params.extended_key_usages = match kind {
        MemberKind::Shard => vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ],
        MemberKind::Gateway => vec![ExtendedKeyUsagePurpose::ClientAuth],
    };
    params.use_authority_key_identifier_extension = true;
    params.not_before = at(now - BACKDATE_SECS)?;
    params.not_after = at(now.saturating_add(validity_secs))?;
    params.serial_number = Some(random_serial());
    Ok(params)
}

impl FederationCa {
    /// Issues member `id`'s TLS certificate (a new Ed25519 key) for
    /// `hosts` (DNS names or IP addresses of its advertise URL; at least one
    /// for a shard, which serves), valid from `now` for `validity_secs`.
    pub fn issue_tls(
        &self,
        kind: MemberKind,
        id: &str,
        hosts: &[String],
        now: i64,
        validity_secs: i64,
    ) -> Result<TlsIdentity, PkiError> {
        let key = KeyPair::generate_for(&PKCS_ED25519)?;
        let params = tls_params(kind, id, hosts, now, validity_secs)?;
        let issuer = Issuer::from_ca_cert_der(&self.cert().der().into(), self.key())?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(TlsIdentity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::*;

    const NOW: i64 = 1_800_000_000;

    fn ca() -> FederationCa {
        FederationCa::generate("test CA", NOW, 86_400 * 365).unwrap()
    }

    #[test]
    fn a_shard_certificate_names_the_member_and_its_hosts_for_both_uses() {
        let ca = ca();
        let hosts = vec!["127.0.0.1".to_owned(), "Shard-1.Example.org".to_owned()];
        let id = ca
            .issue_tls(MemberKind::Shard, "shard-1", &hosts, NOW, 86_400)
            .unwrap();
        let der = crate::pem_to_der(&id.cert_pem).unwrap();
        let (_, cert) = parse_x509_certificate(&der).unwrap();
        let (_, ca_cert) = parse_x509_certificate(ca.cert().der()).unwrap();
        cert.verify_signature(Some(ca_cert.public_key())).unwrap();
        assert_eq!(cert.issuer(), ca_cert.subject());
        let san = cert.subject_alternative_name().unwrap().unwrap();
        let names: Vec<String> = san
            .value
            .general_names
            .iter()
            .map(|n| match n {
                GeneralName::URI(u) => format!("uri:{u}"),
                GeneralName::DNSName(d) => format!("dns:{d}"),
                GeneralName::IPAddress(ip) => format!("ip:{ip:?}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            names,
            [
                "uri:keyfed:shard:shard-1",
                "ip:[127, 0, 0, 1]",
                "dns:shard-1.example.org"
            ]
        );
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!cert.is_ca());
        let validity = cert.validity();
        assert_eq!(validity.not_after.timestamp(), NOW + 86_400);
        assert!(validity.not_before.timestamp() < NOW);
        // The key in the PEM is the certificate's.
        let key = KeyPair::from_pem(&id.key_pem).unwrap();
        assert_eq!(
            key.public_key_raw(),
            cert.public_key().subject_public_key.data.as_ref()
        );
        assert!(!format!("{id:?}").contains("PRIVATE"));
    }

    #[test]
    fn a_gateway_certificate_needs_no_host_and_a_shard_one_does() {
        let ca = ca();
        let id = ca
            .issue_tls(MemberKind::Gateway, "gw-1", &[], NOW, 86_400)
            .unwrap();
        let der = crate::pem_to_der(&id.cert_pem).unwrap();
        let (_, cert) = parse_x509_certificate(&der).unwrap();
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert!(matches!(
            san.value.general_names.as_slice(),
            [GeneralName::URI("keyfed:gateway:gw-1")]
        ));
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(
            eku.client_auth && !eku.server_auth,
            "a gateway certificate cannot serve"
        );
        assert!(ca
            .issue_tls(MemberKind::Shard, "shard-1", &[], NOW, 86_400)
            .is_err());
    }

    #[test]
    fn a_peer_certificate_names_its_member() {
        let ca = ca();
        let hosts = ["127.0.0.1".to_owned()];
        for (kind, id) in [
            (MemberKind::Shard, "shard-1"),
            (MemberKind::Gateway, "gw-1"),
        ] {
            let issued = ca.issue_tls(kind, id, &hosts, NOW, 86_400).unwrap();
            let der = crate::pem_to_der(&issued.cert_pem).unwrap();
            assert_eq!(super::peer_member(&der), Some((kind, id.to_owned())));
        }
        assert_eq!(
            super::peer_member(ca.cert().der()),
            None,
            "a CA names no member"
        );
        assert_eq!(super::peer_member(b"not a certificate"), None);
    }

    #[test]
    fn bad_names_and_hosts_are_refused() {
        let ca = ca();
        for host in ["", "a b", "-x.org", "x..org", "x/y"] {
            let e = ca
                .issue_tls(MemberKind::Shard, "s", &[host.to_owned()], NOW, 60)
                .unwrap_err();
            assert!(matches!(e, PkiError::Rejected(_)), "{host:?}: {e}");
        }
        assert!(ca
            .issue_tls(MemberKind::Shard, "a:b", &["x".into()], NOW, 60)
            .is_err());
        assert!("router".parse::<MemberKind>().is_err());
        assert_eq!(
            "gateway".parse::<MemberKind>().unwrap(),
            MemberKind::Gateway
        );
        let v6 = ca
            .issue_tls(MemberKind::Shard, "s", &["[::1]".into()], NOW, 60)
            .unwrap();
        assert!(v6.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn files_are_written_once_with_a_private_key() {
        let ca = ca();
        let dir = tempfile::tempdir().unwrap();
        let id = ca
            .issue_tls(MemberKind::Shard, "shard-1", &["localhost".into()], NOW, 60)
            .unwrap();
        let paths = id.write(dir.path(), "shard-1").unwrap();
        assert_eq!(paths.cert, dir.path().join("shard-1.pem"));
        assert_eq!(paths.key, dir.path().join("shard-1-key.pem"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&paths.key), 0o600);
            assert_eq!(mode(&paths.cert), 0o644);
        }
        assert_eq!(files::read_text(&paths.key).unwrap(), id.key_pem);
        assert!(matches!(
            id.write(dir.path(), "shard-1"),
            Err(PkiError::Exists(_))
        ));
    }
}
