//! The TLS side of enrolment in an mTLS federation (`[internal_tls]`): a
//! shard without its TLS certificate generates its TLS key (written 0600
//! where `[internal_tls] key` points; an existing key is reused, so a
//! failed join can be retried) and sends a CSR for it with its join
//! request; it reaches the issuer over TLS that trusts only the federation
//! CA of `[internal_tls] ca`, without a client certificate (the issuer's
//! join listener, `[trust] join_listen`). The certificate it gets back is
//! checked against `trust.ca_cert` — it must certify this key and name
//! this shard — and written where `[internal_tls] cert` points.

use std::time::Duration;

use keyfed_http::tls::MtlsFiles;
use keyfed_pki::tls_request::{generate_tls_key, tls_public_key, tls_request};
use keyfed_pki::{files, pem_to_der, CaCert, MemberKind};

use crate::config::ShardConfig;
use crate::ShardError;

fn fail(what: impl std::fmt::Display) -> ShardError {
    ShardError::Federation(what.to_string())
}

/// What a joining shard needs for its TLS certificate.
pub enum TlsEnrolment {
    /// Plain HTTP federation, or the certificate exists already
    /// (`keyfed ca issue-tls`): nothing to request.
    Nothing,
    /// Request one: the key (PEM, secret) and where the certificate goes.
    Request { key_pem: String, files: MtlsFiles },
}

impl std::fmt::Debug for TlsEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsEnrolment::Nothing => "TlsEnrolment::Nothing",
            TlsEnrolment::Request { .. } => "TlsEnrolment::Request",
        })
    }
}

impl TlsEnrolment {
    /// Prepares the TLS side of `config`'s join through `issuer_url`:
    /// loads or creates the TLS key when the certificate is missing.
    pub fn prepare(config: &ShardConfig, issuer_url: &str) -> Result<Self, ShardError> {
        let Some(m) = &config.internal_tls else {
            return Ok(TlsEnrolment::Nothing);
        };
        if !issuer_url.starts_with("https://") {
            return Err(fail(
                "with [internal_tls] the join goes over TLS: give --join an https:// URL \
                 (an issuer's join listener, `[trust] join_listen`)",
            ));
        }
        if m.cert.exists() {
            return Ok(TlsEnrolment::Nothing);
        }
        let key_pem = if m.key.exists() {
            files::read_text(&m.key).map_err(fail)?
        } else {
            let pem = generate_tls_key().map_err(fail)?;
            files::write_private(&m.key, pem.as_bytes()).map_err(fail)?;
            pem
        };
        Ok(TlsEnrolment::Request {
            key_pem,
            files: m.clone(),
        })
    }

    /// The CSR to send, if any.
    pub fn csr(&self, shard: &str) -> Result<Option<String>, ShardError> {
        match self {
            TlsEnrolment::Nothing => Ok(None),
            TlsEnrolment::Request { key_pem, files } => {
                tls_request(MemberKind::Shard, shard, key_pem)
                    .map(Some)
                    .map_err(|e| fail(format!("{}: {e}", files.key.display())))
            }
        }
    }

    /// The client for the join call: without a TLS certificate, TLS
    /// trusting only the federation CA and presenting nothing; otherwise
    /// the shard's internal client.
    pub fn client(&self, config: &ShardConfig) -> Result<reqwest::Client, ShardError> {
        let TlsEnrolment::Request { files, .. } = self else {
            return super::internal_client::internal_client(config, Duration::from_secs(30));
        };
        let tls = keyfed_http::tls::server_auth_client_config(&files.ca)
            .map_err(|e| fail(format!("internal_tls: {e}")))?;
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(30))
            .use_preconfigured_tls(tls)
            .build()
            .map_err(|e| fail(format!("http client: {e}")))
    }

    /// Checks the TLS certificate of the grant against `ca` and writes it.
    pub fn save(
        &self,
        ca: &CaCert,
        shard: &str,
        certificate: Option<&str>,
        now: i64,
    ) -> Result<(), ShardError> {
        let TlsEnrolment::Request { key_pem, files } = self else {
            return Ok(());
        };
        let pem = certificate.ok_or_else(|| fail("the issuer returned no TLS certificate"))?;
        let der = pem_to_der(pem).map_err(fail)?;
        let certified = ca
            .verify_member_tls(&der, MemberKind::Shard, shard, now)
            .map_err(|e| fail(format!("the TLS certificate received: {e}")))?;
        if certified != tls_public_key(key_pem).map_err(fail)? {
            return Err(fail("the TLS certificate received certifies another key"));
        }
        files::write_public(&files.cert, pem.as_bytes()).map_err(fail)?;
        tracing::info!(shard, path = %files.cert.display(), "joined: TLS certificate saved");
        Ok(())
    }
}
