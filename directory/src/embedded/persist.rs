//! On-disk state of the embedded directory: one JSON document per bucket and
//! one for the revocation stream, each replaced atomically on every write
//! (write a temporary file, fsync it, rename it over the old one, fsync the
//! directory). A crash leaves either the old or the new document.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::DirectoryError;

/// A bucket as stored on disk.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct BucketFile {
    /// The bucket's last revision.
    pub revision: u64,
    /// Every key with its newest value; `value` is absent for a deletion.
    pub entries: Vec<StoredSlot>,
}

/// A key's newest state as stored on disk.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StoredSlot {
    pub key: String,
    /// Base64 of the value; `None` marks a deletion.
    pub value: Option<String>,
    pub revision: u64,
}

/// The revocation stream as stored on disk.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RevocationFile {
    /// The sequence of the newest event ever published.
    pub sequence: u64,
    /// The retained events, oldest first.
    pub events: Vec<StoredEvent>,
}

/// A revocation event as stored on disk.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StoredEvent {
    pub sequence: u64,
    /// Publication time, milliseconds since the Unix epoch.
    pub published_ms: u64,
    /// Base64 of the payload.
    pub payload: String,
}

pub(super) fn encode_bytes(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub(super) fn decode_bytes(path: &Path, text: &str) -> Result<Bytes, DirectoryError> {
    STANDARD
        .decode(text)
        .map(Bytes::from)
        .map_err(|e| corrupt(path, &e))
}

fn corrupt(path: &Path, error: &dyn std::fmt::Display) -> DirectoryError {
    DirectoryError::Unavailable(format!("corrupt state file {}: {error}", path.display()))
}

/// Reads a state document, or the default when the file does not exist.
pub(super) fn load<T: Default + for<'de> Deserialize<'de>>(
    path: &Path,
) -> Result<T, DirectoryError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| corrupt(path, &e)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(DirectoryError::Unavailable(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Serializes a state document (kept separate from [`write_atomic`] so the
/// bytes can be produced under a lock and written on a blocking thread).
pub(super) fn to_bytes<T: Serialize>(document: &T) -> Result<Vec<u8>, DirectoryError> {
    serde_json::to_vec(document)
        .map_err(|e| DirectoryError::Unavailable(format!("cannot serialize state: {e}")))
}

/// Replaces `path` with `bytes` atomically and durably, on a blocking thread.
pub(super) async fn write_atomic(path: PathBuf, bytes: Vec<u8>) -> Result<(), DirectoryError> {
    let shown = path.display().to_string();
    tokio::task::spawn_blocking(move || write_atomic_blocking(&path, &bytes))
        .await
        .map_err(|e| DirectoryError::Unavailable(format!("persisting {shown}: {e}")))?
        .map_err(|e| DirectoryError::Unavailable(format!("cannot persist {shown}: {e}")))
}

fn write_atomic_blocking(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    {
        let mut file = crate::private_files::create_private_file(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&temporary, path)?;
    if let Some(parent) = path.parent() {
        // Make the rename itself durable.
        fs::File::open(parent)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn documents_round_trip_and_missing_files_are_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bucket.json");
        let empty: BucketFile = load(&path).unwrap();
        assert_eq!(empty.revision, 0);

        let document = BucketFile {
            revision: 7,
            entries: vec![StoredSlot {
                key: "k".into(),
                value: Some(encode_bytes(b"v")),
                revision: 7,
            }],
        };
        write_atomic(path.clone(), to_bytes(&document).unwrap())
            .await
            .unwrap();
        let loaded: BucketFile = load(&path).unwrap();
        assert_eq!(loaded.revision, 7);
        let value = loaded.entries[0].value.as_deref().unwrap();
        assert_eq!(
            decode_bytes(&path, value).unwrap(),
            Bytes::from_static(b"v")
        );
    }

    #[test]
    fn corrupt_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bucket.json");
        fs::write(&path, b"{not json").unwrap();
        let error = load::<BucketFile>(&path).unwrap_err();
        assert!(error.to_string().contains("corrupt"), "{error}");
    }
}
