//! Admitting a joining shard, done by an issuer member (one configured with
//! the CA key) on the shard's request: the CSR is checked and a signing
//! certificate issued (and, when the shard sent a second CSR for its TLS
//! key, its internal TLS certificate for the host of its advertise URL),
//! the join lease taken ([`super::lease`]: one join at a time, held until
//! the shard is active), the join token consumed (single use), and the
//! member recorded as `joining` with its certificate — created only if no
//! member has that id. Watchers of the members bucket (every gateway and
//! shard) learn of it from there: that is the announcement.

use bytes::Bytes;
use keyfed_directory::{Bucket, Directory, DirectoryError};
use keyfed_pki::tls_request::url_host;
use keyfed_pki::{der_to_pem, FederationCa, MemberKind};
use keyfed_shared::federation::{Member, MemberCert, MemberStatus};
use keyfed_shared::ids::ShardId;
use keyfed_shared::ring::MAX_WEIGHT;
use serde::{Deserialize, Serialize};

use super::{credentials, lease, LifecycleError};

/// How long a join lease lasts unless renewed: the joiner renews it on
/// each activation pass and releases it once active.
pub const JOIN_LEASE_SECS: i64 = 300;

/// What a joining shard sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    /// The id it will have.
    pub shard_id: String,
    /// Its CSR (PEM) for its Ed25519 token-signing key, naming `shard_id`.
    pub csr: String,
    /// Where gateways and peers will reach it.
    pub advertise_url: String,
    /// Its relative share of new tenants.
    pub weight: u32,
    /// The join token from `keyfed join-token create`.
    pub join_token: String,
    /// Its CSR (PEM) for its internal TLS key (Ed25519), naming
    /// `keyfed:shard:<shard_id>`, when it joins an mTLS federation without
    /// a TLS certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_csr: Option<String>,
}

/// What it gets back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinGrant {
    /// The `kid` its tokens must carry.
    pub kid: String,
    /// Its signing certificate, PEM.
    pub certificate: String,
    /// The federation CA certificate, PEM.
    pub ca_certificate: String,
    /// The directory namespace of the federation.
    pub namespace: String,
    /// Its internal TLS certificate, PEM (serverAuth and clientAuth, for
    /// the host of its advertise URL), when it sent `tls_csr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_certificate: Option<String>,
}

fn check(req: &JoinRequest) -> Result<(), LifecycleError> {
    keyfed_pki::names::check_shard_id(&req.shard_id)?;
    let url = &req.advertise_url;
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2048 {
        return Err(LifecycleError::Invalid(
            "advertise_url must be an http:// or https:// URL".into(),
        ));
    }
    if !(1..=MAX_WEIGHT).contains(&req.weight) {
        return Err(LifecycleError::Invalid(format!(
            "weight must be between 1 and {MAX_WEIGHT}"
        )));
    }
    Ok(())
}

/// Spends the join token and creates the `joining` member record (only if
/// no member has that id); returns the kid.
async fn record(
    dir: &dyn Directory,
    req: &JoinRequest,
    now: i64,
    der: &[u8],
    key: &ed25519_dalek::VerifyingKey,
) -> Result<String, LifecycleError> {
    credentials::consume_join_token(dir, &req.join_token, now).await?;
    let kid = format!("{}.1", req.shard_id);
    let member = Member {
        id: ShardId::new(&req.shard_id),
        url: req.advertise_url.trim_end_matches('/').to_owned(),
        weight: req.weight,
        status: MemberStatus::Joining,
        kid: kid.clone(),
        public_key: Member::encode_key(key),
        certificates: vec![MemberCert::new(&kid, der)],
        trusted_until: None,
    };
    let record = serde_json::to_vec(&member)
        .map_err(|e| LifecycleError::Invalid(format!("encoding member record: {e}")))?;
    let members = dir.kv(Bucket::Members);
    match members.create(&req.shard_id, Bytes::from(record)).await {
        Ok(_) => {}
        Err(DirectoryError::AlreadyExists) => {
            return Err(LifecycleError::Conflict(format!(
                "a member named {:?} already exists",
                req.shard_id
            )))
        }
        Err(e) => return Err(e.into()),
    }
    Ok(kid)
}

/// Admits the shard of `req` at `now`, its certificate valid for
/// `validity_secs`; see the module doc.
pub async fn admit(
    dir: &dyn Directory,
    ca: &FederationCa,
    req: &JoinRequest,
    now: i64,
    validity_secs: i64,
) -> Result<JoinGrant, LifecycleError> {
    // The token first: without a valid one nothing about the request is
    // looked at, so nothing about joins or members is told.
    credentials::check_join_token(dir, &req.join_token, now).await?;
    check(req)?;
    let members = dir.kv(Bucket::Members);
    if members.get(&req.shard_id).await?.is_some() {
        return Err(LifecycleError::Conflict(format!(
            "a member named {:?} already exists",
            req.shard_id
        )));
    }
    // Checks the CSR (and issues) before the token is spent.
    let (der, signer) = ca.issue_verified(&req.csr, &req.shard_id, now, validity_secs)?;
    let tls_certificate = match &req.tls_csr {
        Some(csr) => {
            let hosts = [url_host(&req.advertise_url)?];
            let pem = ca.issue_tls_for(
                csr,
                MemberKind::Shard,
                &req.shard_id,
                &hosts,
                now,
                validity_secs,
            )?;
            Some(pem)
        }
        None => None,
    };
    // One join at a time: the lease is this shard's until it is active
    // (refused, the token unspent, while another shard is joining).
    lease::acquire(dir, &req.shard_id, now, JOIN_LEASE_SECS).await?;
    let admitted = record(dir, req, now, &der, &signer.key).await;
    if admitted.is_err() {
        let _ = lease::release(dir, &req.shard_id).await;
    }
    let kid = admitted?;
    tracing::info!(
        shard = %req.shard_id,
        serial = %signer.serial,
        tls = tls_certificate.is_some(),
        "shard admitted as joining"
    );
    Ok(JoinGrant {
        kid,
        certificate: der_to_pem(&der),
        ca_certificate: ca.cert().pem(),
        namespace: dir.namespace().to_owned(),
        tls_certificate,
    })
}
