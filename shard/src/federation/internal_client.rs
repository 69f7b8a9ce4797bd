//! The HTTP client for federation-internal calls made outside request
//! handling (activation's listings, enrolment, administration): with
//! `[internal_tls]` it presents the member's TLS certificate and trusts
//! only the federation CA, as the shard's peer client does; otherwise plain
//! HTTP, which the config chose explicitly.

use std::time::Duration;

use crate::config::ShardConfig;
use crate::ShardError;

/// A client for internal calls, each bounded by `timeout`.
pub fn internal_client(
    config: &ShardConfig,
    timeout: Duration,
) -> Result<reqwest::Client, ShardError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(timeout);
    if let Some(files) = &config.internal_tls {
        let tls =
            keyfed_http::tls::member_client_config(files, crate::federation::peer_is_a_shard())
                .map_err(|e| ShardError::Federation(format!("internal_tls: {e}")))?;
        builder = builder.use_preconfigured_tls(tls);
    }
    builder
        .build()
        .map_err(|e| ShardError::Federation(format!("http client: {e}")))
}
