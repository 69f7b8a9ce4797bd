//! TLS for keyfed's listeners and internal clients, on rustls with the
//! `ring` provider handed to every config (no process-wide default is read
//! or installed).
//!
//! - [`server_config`]: a public listener, from a certificate chain and key
//!   (PEM files, from any CA).
//! - [`mtls_server_config`]: an internal listener that requires a client
//!   certificate chaining to the federation CA (and nothing else).
//! - [`client_config`]: an internal client presenting the member's
//!   certificate and trusting only the federation CA.
//! - [`server_auth_client_config`]: a joining shard's client, before it has
//!   a certificate: trusts only the federation CA, presents nothing.
//!
//! The first three read their files once; the same configs built by a
//! [`TlsReloader`] follow them, so renewed certificates are served without
//! a restart (`reload`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use serde::{Deserialize, Serialize};

mod reload;

pub use reload::{CheckReport, TlsReloader};
pub use tokio_rustls::TlsAcceptor;

/// A certificate chain and its private key, PEM files: the identity of a
/// public TLS listener (`[server] tls = { cert, key }`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM: PKCS#8, SEC1 or PKCS#1). Keep it mode 0600.
    pub key: PathBuf,
}

/// A member's internal TLS identity (`[internal_tls]`): the federation CA,
/// the only issuer trusted for peers and clients, and this member's
/// certificate and key, issued by it (`keyfed ca issue-tls`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtlsFiles {
    /// The federation CA certificate (PEM, `ca.pem`).
    pub ca: PathBuf,
    /// This member's certificate (PEM), issued by the CA.
    pub cert: PathBuf,
    /// Its private key (PEM). Keep it mode 0600.
    pub key: PathBuf,
}

impl MtlsFiles {
    /// This member's certificate and key.
    pub fn identity(&self) -> TlsFiles {
        TlsFiles {
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }
}

/// Why a TLS configuration could not be built. Messages name the file,
/// never key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// A file holds no usable PEM item of the expected kind.
    #[error("{path}: {problem}")]
    Pem { path: String, problem: String },
    /// rustls refused the certificate, key or settings.
    #[error("TLS settings: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built (e.g. no CA).
    #[error("client certificate verifier: {0}")]
    Verifier(String),
}

/// The crypto provider of every keyfed TLS config: `ring`, as the rest of
/// the workspace (no aws-lc).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn pem_error(path: &Path, problem: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

/// Reads every certificate of a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    parse_certs(path, &read(path)?)
}

/// The certificates of `bytes`, read from `path` (named in errors).
fn parse_certs(path: &Path, bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, format!("not a PEM certificate file ({e})")))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// Reads the private key of a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    parse_key(path, &read(path)?)
}

/// The private key of `bytes`, read from `path` (named in errors).
fn parse_key(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    // The parse error names the PEM problem only, never the key's content.
    PrivateKeyDer::from_pem_slice(bytes)
        .map_err(|e| pem_error(path, format!("no usable private key ({e})")))
}

/// The trust anchors of a CA file.
fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    parse_roots(path, &read(path)?)
}

/// The trust anchors of `bytes`, read from the CA file `path`.
fn parse_roots(path: &Path, bytes: &[u8]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(path, bytes)? {
        roots
            .add(cert)
            .map_err(|e| pem_error(path, format!("not a usable CA certificate ({e})")))?;
    }
    Ok(roots)
}

fn http1_only(mut config: ServerConfig) -> Arc<ServerConfig> {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A public TLS listener's config: `files`' chain and key, no client
/// certificates asked for. Read once; [`TlsReloader::server_config`]
/// follows the files.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    TlsReloader::new().server_config("tls", files)
}

/// An internal listener's config: this member's certificate and key, and
/// every client must present a certificate chaining to the federation CA
/// (a handshake without one fails). Read once;
/// [`TlsReloader::mtls_server_config`] follows the files.
pub fn mtls_server_config(files: &MtlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    TlsReloader::new().mtls_server_config("internal_tls", files)
}

/// An internal client's config: presents this member's certificate and
/// trusts only servers certified by the federation CA.
pub fn client_config(files: &MtlsFiles) -> Result<ClientConfig, TlsError> {
    member_client_config(files, Arc::new(|_, _| true))
}

/// What an internal client requires of a server's certificate beyond the
/// CA chain and the host name: called with the leaf (DER) and the host the
/// client asked for (a DNS name, or an IP address without brackets).
/// Shards and gateways pass a check that the certificate names the member
/// the directory has at that address (`keyfed_pki::tls::peer_member`).
pub type PeerCheck = Arc<dyn Fn(&[u8], &str) -> bool + Send + Sync>;

/// An internal client's config whose servers must also pass `check`
/// ([`PeerCheck`]): [`client_config`] with a server verifier that runs
/// rustls' WebPKI verification, then `check`. Read once;
/// [`TlsReloader::member_client_config`] follows the files.
pub fn member_client_config(files: &MtlsFiles, check: PeerCheck) -> Result<ClientConfig, TlsError> {
    TlsReloader::new().member_client_config("internal_tls", files, check)
}

/// A client's config for reaching an issuer's join listener before the
/// member has a certificate: trusts only servers certified by the
/// federation CA (`ca`), presents no certificate.
pub fn server_auth_client_config(ca: &Path) -> Result<ClientConfig, TlsError> {
    let roots = load_roots(ca)?;
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// How a listener speaks: plain HTTP, or TLS with an acceptor built from
/// [`server_config`] or [`mtls_server_config`].
#[derive(Clone)]
pub enum Transport {
    /// Plain HTTP (only where the config says so explicitly).
    Plain,
    /// TLS (mTLS when the config asks for client certificates).
    Tls(TlsAcceptor),
}

impl Transport {
    /// TLS with `config`.
    pub fn tls(config: Arc<ServerConfig>) -> Self {
        Transport::Tls(TlsAcceptor::from(config))
    }

    /// The URL scheme clients use: `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        match self {
            Transport::Plain => "http",
            Transport::Tls(_) => "https",
        }
    }
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Plain => "Transport::Plain",
            Transport::Tls(_) => "Transport::Tls",
        })
    }
}
