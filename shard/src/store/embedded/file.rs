//! The snapshot file: `state.json` in the store's directory.
//!
//! A save writes the whole state to `state.json.tmp`, fsyncs it, renames it
//! over `state.json` and fsyncs the directory, so after a crash the file
//! holds either the previous or the new state, never a mix.

use super::state::State;
use crate::store::{StoreError, StoreResult};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::Path;

/// The snapshot's file name.
pub(super) const STATE_FILE: &str = "state.json";
/// Where a snapshot is written before it replaces [`STATE_FILE`].
const TEMP_FILE: &str = "state.json.tmp";
/// The snapshot format this code reads and writes.
const FORMAT: u32 = 1;

/// What is written.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    format: u32,
    state: &'a State,
}

/// What is read.
#[derive(Deserialize)]
struct Snapshot {
    format: u32,
    state: State,
}

fn io_error(action: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{action} {}: {e}", path.display()))
}

/// Loads the state saved in `dir`, or an empty state if there is none yet.
pub(super) fn load(dir: &Path) -> StoreResult<State> {
    let path = dir.join(STATE_FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(State::default()),
        Err(e) => return Err(io_error("reading", &path, e)),
    };
    let snapshot: Snapshot = serde_json::from_slice(&bytes)
        .map_err(|e| StoreError::Backend(format!("parsing {}: {e}", path.display())))?;
    if snapshot.format != FORMAT {
        return Err(StoreError::Backend(format!(
            "{} has format {}, this binary reads format {FORMAT}",
            path.display(),
            snapshot.format
        )));
    }
    Ok(snapshot.state)
}

/// Durably replaces the state saved in `dir` with `state`.
pub(super) fn save(dir: &Path, state: &State) -> StoreResult<()> {
    let bytes = serde_json::to_vec(&SnapshotRef {
        format: FORMAT,
        state,
    })
    .map_err(|e| StoreError::Backend(format!("serializing the store: {e}")))?;
    let temp = dir.join(TEMP_FILE);
    let path = dir.join(STATE_FILE);
    let mut file = keyfed_directory::private_files::create_private_file(&temp)
        .map_err(|e| io_error("creating", &temp, e))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("writing", &temp, e))?;
    drop(file);
    fs::rename(&temp, &path).map_err(|e| io_error("renaming over", &path, e))?;
    sync_dir(dir)
}

/// Makes the rename durable: fsync the directory that holds the entry.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> StoreResult<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("syncing directory", dir, e))
}

/// Directories cannot be opened for syncing on this platform; the rename is
/// as durable as the file system makes it.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> StoreResult<()> {
    Ok(())
}
