//! Certificates that follow their files. A [`TlsReloader`] builds the
//! rustls configs of a process; each config reads its certificate and key
//! (and, for mTLS, its trusted CA) from an `ArcSwap` at every handshake,
//! so a renewed file is used by the next handshake while established
//! connections keep the session they negotiated.
//!
//! The files are read again on [`TlsReloader::check_now`]: every
//! `interval` and on `SIGHUP` once [`TlsReloader::spawn`] runs. Only a
//! change of content is acted on. A changed set that does not load — a
//! file unreadable or not PEM, a key that does not match its certificate,
//! a CA file without a usable certificate — keeps the previous one in
//! service, logs a warning naming the files (never their content) and
//! counts a failure (`tls_reload_failures_total{files}`); it is tried again
//! when the files change again (a certificate written before its key is
//! picked up at the check after the key).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig,
    SignatureScheme,
};

use super::{
    parse_certs, parse_key, parse_roots, provider, read, MtlsFiles, PeerCheck, TlsError, TlsFiles,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FilesLabels {
    files: &'static str,
}

/// Builds a process's rustls configs over files it reads again when they
/// change (module doc). Cloning shares the watched files and counters.
#[derive(Clone, Default)]
pub struct TlsReloader {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    watched: Mutex<Vec<Arc<dyn Check>>>,
    reloads: Family<FilesLabels, Counter>,
    failures: Family<FilesLabels, Counter>,
}

impl std::fmt::Debug for TlsReloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsReloader")
    }
}

/// What one check of the files found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// File sets that changed and were loaded.
    pub reloaded: usize,
    /// File sets that changed and could not be loaded (the previous ones
    /// stay in service).
    pub failed: usize,
}

impl TlsReloader {
    /// A reloader watching nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A public listener's config ([`super::server_config`]) whose
    /// certificate follows `files`. `field` names them in logs and metrics.
    pub fn server_config(
        &self,
        field: &'static str,
        files: &TlsFiles,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let identity = self.identity(field, files)?;
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(identity);
        Ok(super::http1_only(config))
    }

    /// An internal listener's config ([`super::mtls_server_config`]) whose
    /// certificate and trusted CA follow `files`.
    pub fn mtls_server_config(
        &self,
        field: &'static str,
        files: &MtlsFiles,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let verifier = self.watch_ca(field, &files.ca, |roots| {
            WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| e.to_string())
        })?;
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(Arc::new(ClientCa {
                current: verifier,
                algorithms: provider().signature_verification_algorithms,
            }))
            .with_cert_resolver(self.identity(field, &files.identity())?);
        Ok(super::http1_only(config))
    }

    /// An internal client's config ([`super::member_client_config`]) whose
    /// certificate and trusted CA follow `files`.
    pub fn member_client_config(
        &self,
        field: &'static str,
        files: &MtlsFiles,
        check: PeerCheck,
    ) -> Result<ClientConfig, TlsError> {
        let inner = self.watch_ca(field, &files.ca, |roots| {
            WebPkiServerVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| e.to_string())
        })?;
        let config = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(MemberVerifier {
                inner,
                check,
                algorithms: provider().signature_verification_algorithms,
            }))
            .with_client_cert_resolver(self.identity(field, &files.identity())?);
        Ok(config)
    }

    /// Reads every watched file set and loads those whose content changed.
    pub fn check_now(&self) -> CheckReport {
        let watched = self
            .inner
            .watched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let mut report = CheckReport::default();
        for w in watched {
            let labels = FilesLabels { files: w.field() };
            match w.check() {
                None => {}
                Some(Ok(())) => {
                    report.reloaded += 1;
                    self.inner.reloads.get_or_create(&labels).inc();
                    tracing::info!(files = w.field(), "TLS files changed: reloaded");
                }
                Some(Err(e)) => {
                    report.failed += 1;
                    self.inner.failures.get_or_create(&labels).inc();
                    // The error names a file and the problem, never key
                    // material.
                    tracing::warn!(
                        files = w.field(),
                        error = %e,
                        "TLS files changed but do not load; still using the previous ones"
                    );
                }
            }
        }
        report
    }

    /// Checks the files every `interval` (never if zero) and on each
    /// `SIGHUP`, until every clone of this reloader is dropped. Does
    /// nothing if no file is watched (a plain-HTTP process keeps the
    /// default action of `SIGHUP`).
    pub fn spawn(&self, interval: Duration) {
        let watching = !self
            .inner
            .watched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .is_empty();
        if !watching {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(poll(weak, interval));
    }

    /// Registers `tls_reloads_total` and `tls_reload_failures_total` (by
    /// `files`, the config field) in `registry`.
    pub fn register_metrics(&self, registry: &mut Registry) {
        registry.register(
            "tls_reloads",
            "TLS file sets reloaded after a change, by config field",
            self.inner.reloads.clone(),
        );
        registry.register(
            "tls_reload_failures",
            "Changed TLS file sets that did not load (the previous ones stay in use)",
            self.inner.failures.clone(),
        );
    }

    /// The certificate and key of `files`, followed.
    fn identity(&self, field: &'static str, files: &TlsFiles) -> Result<Arc<Identity>, TlsError> {
        let files = files.clone();
        let paths = vec![files.cert.clone(), files.key.clone()];
        let watched = self.watch(field, paths, move |bytes| {
            certified_key(&files, &bytes[0], &bytes[1])
        })?;
        Ok(Arc::new(Identity(watched)))
    }

    /// A verifier built by `build` over the trust anchors of the CA file
    /// `ca`, followed.
    fn watch_ca<V: Send + Sync + 'static>(
        &self,
        field: &'static str,
        ca: &Path,
        build: fn(Arc<RootCertStore>) -> Result<V, String>,
    ) -> Result<Arc<Watched<V>>, TlsError> {
        let path = ca.to_owned();
        self.watch(field, vec![path.clone()], move |bytes| {
            let roots = parse_roots(&path, &bytes[0])?;
            build(Arc::new(roots)).map_err(TlsError::Verifier)
        })
    }

    fn watch<T: Send + Sync + 'static>(
        &self,
        field: &'static str,
        paths: Vec<PathBuf>,
        load: impl Fn(&[Vec<u8>]) -> Result<T, TlsError> + Send + Sync + 'static,
    ) -> Result<Arc<Watched<T>>, TlsError> {
        let contents = paths
            .iter()
            .map(|p| read(p))
            .collect::<Result<Vec<_>, _>>()?;
        let first = load(&contents)?;
        let watched = Arc::new(Watched {
            field,
            paths,
            load: Box::new(load),
            seen: Mutex::new(contents.into_iter().map(Some).collect()),
            current: ArcSwap::from_pointee(first),
        });
        self.inner
            .watched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(watched.clone());
        Ok(watched)
    }
}

async fn poll(inner: Weak<Inner>, interval: Duration) {
    let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; TLS files are only polled");
            None
        }
    };
    let period = if interval.is_zero() {
        Duration::from_secs(365 * 86_400)
    } else {
        interval
    };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            Some(()) = async {
                match hangup.as_mut() {
                    Some(s) => s.recv().await,
                    None => std::future::pending().await,
                }
            } => tracing::info!("SIGHUP: checking TLS files"),
        }
        let Some(inner) = inner.upgrade() else { break };
        TlsReloader { inner }.check_now();
    }
}

/// A certificate chain and key whose key must match the leaf.
fn certified_key(files: &TlsFiles, cert: &[u8], key: &[u8]) -> Result<CertifiedKey, TlsError> {
    let chain = parse_certs(&files.cert, cert)?;
    let key = parse_key(&files.key, key)?;
    let certified =
        CertifiedKey::from_der(chain, key, &provider()).map_err(|e| mismatch(files, e))?;
    certified.keys_match().map_err(|e| mismatch(files, e))?;
    Ok(certified)
}

fn mismatch(files: &TlsFiles, e: rustls::Error) -> TlsError {
    TlsError::Pem {
        path: files.key.display().to_string(),
        problem: format!(
            "not usable with the certificate of {} ({e})",
            files.cert.display()
        ),
    }
}

/// One set of files and what was loaded from them.
trait Check: Send + Sync {
    fn field(&self) -> &'static str;
    /// `None` if the content is what was last seen, else the outcome of
    /// loading the new content.
    fn check(&self) -> Option<Result<(), TlsError>>;
}

type Loader<T> = Box<dyn Fn(&[Vec<u8>]) -> Result<T, TlsError> + Send + Sync>;

struct Watched<T> {
    field: &'static str,
    paths: Vec<PathBuf>,
    load: Loader<T>,
    /// The content last seen (`None`: unreadable), loaded or not.
    seen: Mutex<Vec<Option<Vec<u8>>>>,
    current: ArcSwap<T>,
}

impl<T> Watched<T> {
    fn current(&self) -> Arc<T> {
        self.current.load_full()
    }
}

impl<T: Send + Sync> Check for Watched<T> {
    fn field(&self) -> &'static str {
        self.field
    }

    fn check(&self) -> Option<Result<(), TlsError>> {
        let now: Vec<Result<Vec<u8>, TlsError>> = self.paths.iter().map(|p| read(p)).collect();
        let fingerprint: Vec<Option<Vec<u8>>> =
            now.iter().map(|r| r.as_ref().ok().cloned()).collect();
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if *seen == fingerprint {
            return None;
        }
        *seen = fingerprint;
        let loaded = now
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .and_then(|bytes| (self.load)(&bytes));
        Some(loaded.map(|value| self.current.store(Arc::new(value))))
    }
}

impl<T> std::fmt::Debug for Watched<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Watched({})", self.field)
    }
}

/// The handshake-signature methods of a certificate verifier: checked
/// with the provider's algorithms (`self.algorithms`), which do not depend
/// on the CA.
macro_rules! handshake_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    };
}

/// The current certificate and key, for a listener or a client.
#[derive(Debug)]
struct Identity(Arc<Watched<CertifiedKey>>);

impl ResolvesServerCert for Identity {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }
}

impl ResolvesClientCert for Identity {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The client-certificate verifier of the current CA file. Sends no CA
/// hints (they would borrow from a verifier that may be swapped): members
/// present their one certificate whatever the hints.
#[derive(Debug)]
struct ClientCa {
    current: Arc<Watched<Arc<dyn ClientCertVerifier>>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for ClientCa {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current
            .current()
            .verify_client_cert(end_entity, intermediates, now)
    }

    handshake_signatures!();
}

/// WebPKI verification over the current CA file, then the [`PeerCheck`].
struct MemberVerifier {
    inner: Arc<Watched<Arc<WebPkiServerVerifier>>>,
    check: PeerCheck,
    algorithms: WebPkiSupportedAlgorithms,
}

impl std::fmt::Debug for MemberVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemberVerifier")
    }
}

impl ServerCertVerifier for MemberVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.current().verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let host = match server_name {
            ServerName::DnsName(name) => name.as_ref().to_owned(),
            ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
            _ => String::new(),
        };
        if (self.check)(end_entity.as_ref(), &host) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    handshake_signatures!();
}
