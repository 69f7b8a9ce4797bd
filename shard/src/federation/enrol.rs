//! Enrolment of a new shard (`keyfed shard --join URL --join-token T`):
//! before its first start the shard generates its Ed25519 signing key
//! (kept 0600), sends a CSR for it with the join token to an issuer
//! member (`POST /internal/v1/join`), checks the certificate it gets
//! against the federation CA it was configured with (`trust.ca_cert` — the
//! CA is never taken from the answer), and saves it. The issuer has
//! recorded it `joining`; the shard then starts, and turns itself `active`
//! ([`super::activation`]). In an mTLS federation the join also obtains
//! the shard's internal TLS certificate ([`super::enrol_tls`]).

use keyfed_federation::lifecycle::admit::{JoinGrant, JoinRequest};
use keyfed_pki::{pem_to_der, signing_request, CaCert};
use keyfed_shared::time::now_micros;
use std::time::Duration;

use super::enrol_tls::TlsEnrolment;
use crate::config::ShardConfig;
use crate::ShardError;

fn fail(what: impl std::fmt::Display) -> ShardError {
    ShardError::Federation(what.to_string())
}

/// Enrols the shard of `config` through the issuer at `issuer_url` with
/// `join_token`; returns the certificate's path. Refuses when the shard
/// already has a certificate. `config` is validated by its loader. Gives
/// up at the first refusal, including "another shard is joining"; see
/// [`enrol_waiting`].
pub async fn enrol(
    config: &ShardConfig,
    issuer_url: &str,
    join_token: &str,
) -> Result<std::path::PathBuf, ShardError> {
    enrol_waiting(config, issuer_url, join_token, Duration::ZERO).await
}

/// [`enrol`], retrying for up to `wait` while the issuer answers that
/// another shard is joining (409 with `Retry-After`: shards join one at a
/// time), at the pace the issuer asks (at most every 30 s). Any other
/// refusal ends it at once.
pub async fn enrol_waiting(
    config: &ShardConfig,
    issuer_url: &str,
    join_token: &str,
    wait: Duration,
) -> Result<std::path::PathBuf, ShardError> {
    let federation = config
        .federation
        .as_ref()
        .ok_or_else(|| fail("config field `federation`: joining needs a [federation] section"))?;
    let ca_path = config
        .trust
        .ca_cert
        .as_ref()
        .ok_or_else(|| fail("config field `trust.ca_cert`: joining needs the federation CA"))?;
    let ca = keyfed_pki::files::read_text(ca_path)
        .and_then(|pem| CaCert::from_pem(&pem))
        .map_err(|e| fail(format!("trust.ca_cert: {e}")))?;
    let cert_path = config
        .trust
        .certificate_path(&config.tokens.signing_key_file);
    if cert_path.exists() {
        return Err(fail(format!(
            "{} exists: this shard has already joined",
            cert_path.display()
        )));
    }
    let shard = config.shard.id.as_str();
    let key = crate::keys::load_or_create(&config.tokens.signing_key_file)
        .map_err(|e| fail(e.to_string()))?;
    let tls = TlsEnrolment::prepare(config, issuer_url)?;
    let request = JoinRequest {
        shard_id: shard.to_owned(),
        csr: signing_request(shard, &key).map_err(fail)?,
        advertise_url: federation.advertise_url.clone(),
        weight: federation.weight,
        join_token: join_token.to_owned(),
        tls_csr: tls.csr(shard)?,
    };
    let http = tls.client(config)?;
    let url = format!("{}/internal/v1/join", issuer_url.trim_end_matches('/'));
    let deadline = tokio::time::Instant::now() + wait;
    let response = loop {
        let response = http
            .post(&url)
            .json(&request)
            .send()
            .await
            .map_err(|e| fail(format!("joining through {url}: {e}")))?;
        let retry_after = (response.status() == reqwest::StatusCode::CONFLICT)
            .then(|| response.headers().get(reqwest::header::RETRY_AFTER))
            .flatten()
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .map(|secs| Duration::from_secs(secs.clamp(1, 30)));
        match retry_after {
            Some(pause) if tokio::time::Instant::now() + pause <= deadline => {
                tracing::info!(
                    shard,
                    seconds = pause.as_secs(),
                    "another shard is joining; retrying"
                );
                tokio::time::sleep(pause).await;
            }
            _ => break response,
        }
    };
    let status = response.status();
    if !status.is_success() {
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let message = body["error"]["message"].as_str().unwrap_or("no message");
        return Err(fail(format!("the join was refused ({status}): {message}")));
    }
    let grant: JoinGrant = response
        .json()
        .await
        .map_err(|e| fail(format!("the issuer's answer: {e}")))?;
    let der = pem_to_der(&grant.certificate).map_err(fail)?;
    let now = now_micros() / 1_000_000;
    let signer = ca
        .verify_signer(&der, shard, now)
        .map_err(|e| fail(format!("the certificate received: {e}")))?;
    if signer.key != key.verifying_key() {
        return Err(fail("the certificate received certifies another key"));
    }
    // The TLS certificate first: the signing certificate marks the join done.
    tls.save(&ca, shard, grant.tls_certificate.as_deref(), now)?;
    keyfed_pki::files::write_public(&cert_path, grant.certificate.as_bytes()).map_err(fail)?;
    tracing::info!(shard, kid = %grant.kid, path = %cert_path.display(), "joined: certificate saved");
    Ok(cert_path)
}
