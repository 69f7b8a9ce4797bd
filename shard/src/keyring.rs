//! The shard's signing keys by serial: serial 1 is the configured
//! `tokens.signing_key_file` (and its certificate the configured
//! `trust.certificate`); serial `n ≥ 2`, made by a key rotation, lives next
//! to it as `<stem>.<n>.<ext>` (key mode 0600). Tokens carry the kid
//! `<shard-id>.<serial>`. The shard signs with the newest serial that has
//! its key and — past serial 1 — its certificate (a key whose certificate
//! never arrived is an unfinished rotation, reused by the next one).

use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use keyfed_shared::token::Signer;

use crate::error::Result;

/// Serials above this are not looked for (a rotation a day for 27 years).
const MAX_SERIAL: u32 = 10_000;

/// The key (and signer) the shard signs new tokens with.
pub struct OwnKey {
    /// Its serial (the kid's suffix).
    pub serial: u32,
    /// The private key, for proving possession when renewing.
    pub key: SigningKey,
    /// Signs tokens with kid `<shard-id>.<serial>`.
    pub signer: Signer,
}

impl OwnKey {
    /// Shard `shard`'s key `key`, serial `serial`.
    pub fn new(shard: &str, serial: u32, key: SigningKey) -> Self {
        Self {
            serial,
            signer: Signer::new(kid(shard, serial), key.clone()),
            key,
        }
    }

    /// Its kid.
    pub fn kid(&self) -> &str {
        self.signer.kid()
    }
}

/// The kid of `shard`'s key `serial`.
pub fn kid(shard: &str, serial: u32) -> String {
    format!("{shard}.{serial}")
}

/// `base` for serial 1, else `<stem>.<serial>.<ext>` beside it.
pub fn serial_path(base: &Path, serial: u32) -> PathBuf {
    if serial <= 1 {
        return base.to_path_buf();
    }
    let stem = base
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match base.extension() {
        Some(ext) => format!("{stem}.{serial}.{}", ext.to_string_lossy()),
        None => format!("{stem}.{serial}"),
    };
    base.with_file_name(name)
}

/// The newest serial with a key at `key_base` and, past 1, a certificate
/// at `cert_base` (1 when none is found).
pub fn current_serial(key_base: &Path, cert_base: &Path) -> u32 {
    let mut current = 1;
    for serial in 2..=MAX_SERIAL {
        let key = serial_path(key_base, serial);
        if !key.exists() {
            break;
        }
        if serial_path(cert_base, serial).exists() {
            current = serial;
        }
    }
    current
}

/// Loads key `serial` of `key_base`, creating it (0600) when missing.
pub fn load_or_create(key_base: &Path, serial: u32) -> Result<SigningKey> {
    crate::keys::load_or_create(&serial_path(key_base, serial))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn serials_live_beside_the_first_key_and_need_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k.pem");
        let cert = dir.path().join("k.crt");
        assert_eq!(serial_path(&key, 1), key);
        assert_eq!(serial_path(&key, 3), dir.path().join("k.3.pem"));
        assert_eq!(current_serial(&key, &cert), 1);
        let first = load_or_create(&key, 1).unwrap();
        let second = load_or_create(&key, 2).unwrap();
        assert_ne!(first.to_bytes(), second.to_bytes());
        // A key without its certificate is an unfinished rotation.
        assert_eq!(current_serial(&key, &cert), 1);
        std::fs::write(serial_path(&cert, 2), "x").unwrap();
        assert_eq!(current_serial(&key, &cert), 2);
        assert_eq!(
            load_or_create(&key, 2).unwrap().to_bytes(),
            second.to_bytes()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(serial_path(&key, 2))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(OwnKey::new("s1", 2, second).kid(), "s1.2");
    }
}
