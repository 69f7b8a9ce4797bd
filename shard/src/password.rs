//! Password hashing with argon2id on a small dedicated pool of threads.
//!
//! Each pool thread keeps its argon2 working memory and reuses it for every
//! hash, so a burst of logins neither starves the async workers nor makes
//! the allocator hoard tens of MiB per blocking thread (measured: up to
//! 1.3 GB resident with tokio's blocking pool). At most
//! `password.max_concurrent` hashes run at once; further requests wait in a
//! bounded queue. Verification compares digests in constant time.

use crate::config::PasswordConfig;
use crate::error::{Error, Result};
use argon2::password_hash::{rand_core::OsRng, Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use keyfed_shared::auth::Secret;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use subtle::ConstantTimeEq;
use tokio::sync::{oneshot, Semaphore};

/// Requests allowed to wait for a hashing thread, per thread.
const QUEUE_PER_THREAD: usize = 64;

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// Hashes and verifies passwords.
pub struct Hasher {
    params: Params,
    jobs: Mutex<mpsc::Sender<Job>>,
    queue: Arc<Semaphore>,
    /// A hash of a random password, verified against when the user does not
    /// exist so that both paths cost the same time.
    dummy: String,
}

impl Hasher {
    /// Starts the hashing threads with the configured cost.
    pub fn new(config: &PasswordConfig) -> Result<Self> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))?;
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..config.max_concurrent {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("keyfed-hash-{i}"))
                .spawn(move || worker(&rx))
                .map_err(|e| Error::Internal(format!("starting hashing thread: {e}")))?;
        }
        let dummy = hash_with(&params, &uuid::Uuid::new_v4().to_string(), &mut Vec::new())?;
        Ok(Self {
            params,
            jobs: Mutex::new(tx),
            queue: Arc::new(Semaphore::new(config.max_concurrent * QUEUE_PER_THREAD)),
            dummy,
        })
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: &Secret) -> Result<String> {
        let params = self.params.clone();
        let password = password.clone();
        self.run(move |mem| hash_with(&params, password.expose(), mem))
            .await?
    }

    /// Whether `password` matches `stored` (a PHC string). With no stored
    /// hash, a dummy verification runs so the answer takes as long.
    pub async fn verify(&self, password: &Secret, stored: Option<&str>) -> Result<bool> {
        let present = stored.is_some();
        let stored = stored.unwrap_or(&self.dummy).to_owned();
        let password = password.clone();
        let ok = self
            .run(move |mem| verify_with(password.expose(), &stored, mem))
            .await?;
        Ok(ok && present)
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Vec<Block>) -> T + Send + 'static,
    ) -> Result<T> {
        let _permit = self
            .queue
            .acquire()
            .await
            .map_err(|_| Error::Internal("hashing queue closed".into()))?;
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |mem| {
            let _ = tx.send(f(mem));
        });
        self.jobs
            .lock()
            .map_err(|_| Error::Internal("hashing queue poisoned".into()))?
            .send(job)
            .map_err(|_| Error::Internal("hashing threads stopped".into()))?;
        rx.await
            .map_err(|_| Error::Internal("hashing job dropped".into()))
    }
}

fn worker(rx: &Mutex<mpsc::Receiver<Job>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(&mut memory),
            Err(_) => return,
        }
    }
}

fn compute(
    algorithm: Algorithm,
    version: Version,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Vec<Block>,
) -> std::result::Result<(), argon2::Error> {
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, Block::new());
    }
    Argon2::new(algorithm, version, params.clone()).hash_password_into_with_memory(
        password,
        salt,
        out,
        &mut memory[..blocks],
    )
}

fn hash_with(params: &Params, password: &str, memory: &mut Vec<Block>) -> Result<String> {
    let fail = |e: &dyn std::fmt::Display| Error::Internal(format!("argon2: {e}"));
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt.decode_b64(&mut salt_bytes).map_err(|e| fail(&e))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    compute(
        Algorithm::Argon2id,
        Version::V0x13,
        params,
        password.as_bytes(),
        salt_raw,
        &mut out,
        memory,
    )
    .map_err(|e| fail(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| fail(&e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| fail(&e))?),
    };
    Ok(phc.to_string())
}

fn verify_with(password: &str, stored: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(phc) = PasswordHash::new(stored) else {
        return false;
    };
    let (Ok(algorithm), Ok(params), Some(salt), Some(expected)) = (
        Algorithm::try_from(phc.algorithm),
        Params::try_from(&phc),
        phc.salt,
        phc.hash,
    ) else {
        return false;
    };
    let version = phc
        .version
        .and_then(|v| Version::try_from(v).ok())
        .unwrap_or(Version::V0x13);
    let mut salt_bytes = [0u8; 64];
    let Ok(salt_raw) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    if compute(
        algorithm,
        version,
        &params,
        password.as_bytes(),
        salt_raw,
        &mut out,
        memory,
    )
    .is_err()
    {
        return false;
    }
    out.as_slice().ct_eq(expected.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use argon2::PasswordHasher as _;

    fn cheap() -> PasswordConfig {
        PasswordConfig {
            memory_kib: 64,
            iterations: 1,
            ..PasswordConfig::default()
        }
    }

    #[tokio::test]
    async fn hashes_verify_and_reject() {
        let hasher = Hasher::new(&cheap()).unwrap();
        let pw = Secret::new("correct horse");
        let stored = hasher.hash(&pw).await.unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{stored}"
        );
        assert!(!stored.contains("correct"));
        assert!(hasher.verify(&pw, Some(&stored)).await.unwrap());
        assert!(!hasher
            .verify(&Secret::new("wrong"), Some(&stored))
            .await
            .unwrap());
        assert!(!hasher.verify(&pw, None).await.unwrap());
        assert!(!hasher.verify(&pw, Some("garbage")).await.unwrap());
    }

    #[tokio::test]
    async fn verifies_hashes_made_by_the_reference_implementation() {
        let hasher = Hasher::new(&cheap()).unwrap();
        let params = Params::new(256, 2, 1, None).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(b"s3cret", &salt)
            .unwrap()
            .to_string();
        assert!(hasher
            .verify(&Secret::new("s3cret"), Some(&reference))
            .await
            .unwrap());
        assert!(!hasher
            .verify(&Secret::new("s3creT"), Some(&reference))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn many_concurrent_hashes_complete() {
        let hasher = Arc::new(Hasher::new(&cheap()).unwrap());
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let h = hasher.clone();
                tokio::spawn(async move { h.hash(&Secret::new(format!("pw{i}"))).await })
            })
            .collect();
        for t in tasks {
            assert!(t.await.unwrap().unwrap().starts_with("$argon2id$"));
        }
    }
}
