//! Writing key and certificate files: never over an existing file, private
//! keys readable by their owner only (mode 0600), synced before returning.

use std::io::Write;
use std::path::Path;

use crate::error::PkiError;

/// Writes a private file (mode 0600); fails if `path` exists.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    write_new(path, bytes, 0o600)
}

/// Writes a public file (mode 0644); fails if `path` exists.
pub fn write_public(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    write_new(path, bytes, 0o644)
}

/// Replaces `path` atomically with a private file (mode 0600): written
/// beside it, synced, then renamed over it. For renewed certificates.
pub fn replace_private(path: &Path, bytes: &[u8]) -> Result<(), PkiError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, bytes, 0o600)?;
    std::fs::rename(&tmp, path).map_err(|e| PkiError::io(path, e))
}

fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), PkiError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| PkiError::io(dir, e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            PkiError::Exists(path.display().to_string())
        } else {
            PkiError::io(path, e)
        }
    })?;
    file.write_all(bytes).map_err(|e| PkiError::io(path, e))?;
    file.sync_all().map_err(|e| PkiError::io(path, e))
}

/// Reads a text file (PEM).
pub fn read_text(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|e| PkiError::io(path, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn private_files_are_0600_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/key.pem");
        write_private(&path, b"secret").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            write_private(&path, b"other"),
            Err(PkiError::Exists(_))
        ));
        assert_eq!(read_text(&path).unwrap(), "secret");
        replace_private(&path, b"renewed").unwrap();
        assert_eq!(read_text(&path).unwrap(), "renewed");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
