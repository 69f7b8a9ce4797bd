//! Password hashing with argon2id on a bounded pool of blocking threads, so
//! a burst of logins can neither starve the async workers nor exhaust memory.

use crate::config::PasswordConfig;
use crate::error::{Error, Result};
use argon2::password_hash::{rand_core::OsRng, PasswordHash, PasswordHasher as _, SaltString};
use argon2::{Algorithm, Argon2, Params, PasswordVerifier, Version};
use keyfed_shared::auth::Secret;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Hashes and verifies passwords.
pub struct Hasher {
    params: Params,
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified against when the user does not
    /// exist so that both paths cost the same time.
    dummy: String,
}

impl Hasher {
    /// A hasher with the configured cost.
    pub fn new(config: &PasswordConfig) -> Result<Self> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))?;
        let dummy = hash_blocking(&params, &uuid::Uuid::new_v4().to_string())?;
        Ok(Self {
            params,
            permits: Arc::new(Semaphore::new(config.max_concurrent)),
            dummy,
        })
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: &Secret) -> Result<String> {
        let params = self.params.clone();
        let password = password.clone();
        self.run(move || hash_blocking(&params, password.expose()))
            .await?
    }

    /// Whether `password` matches `stored` (a PHC string). With no stored
    /// hash, a dummy verification runs so the answer takes as long.
    pub async fn verify(&self, password: &Secret, stored: Option<&str>) -> Result<bool> {
        let present = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy).to_owned();
        let password = password.clone();
        let ok = self
            .run(move || {
                PasswordHash::new(&stored)
                    .map(|h| {
                        Argon2::default()
                            .verify_password(password.expose().as_bytes(), &h)
                            .is_ok()
                    })
                    .unwrap_or(false)
            })
            .await?;
        Ok(ok && present)
    }

    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| Error::Internal("hashing pool closed".into()))?;
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|e| Error::Internal(format!("hashing task failed: {e}")))
    }
}

fn hash_blocking(params: &Params, password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("argon2: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_reject() {
        let config = PasswordConfig {
            memory_kib: 64,
            iterations: 1,
            ..PasswordConfig::default()
        };
        let hasher = Hasher::new(&config).unwrap();
        let pw = Secret::new("correct horse");
        let stored = hasher.hash(&pw).await.unwrap();
        assert!(stored.starts_with("$argon2id$"));
        assert!(!stored.contains("correct"));
        assert!(hasher.verify(&pw, Some(&stored)).await.unwrap());
        assert!(!hasher
            .verify(&Secret::new("wrong"), Some(&stored))
            .await
            .unwrap());
        assert!(!hasher.verify(&pw, None).await.unwrap());
        assert!(!hasher.verify(&pw, Some("garbage")).await.unwrap());
    }
}
