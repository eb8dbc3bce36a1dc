//! The file tools: `read_file`, `write_file`, `list_dir`. Paths are relative to the working directory and must
//! lie within the session's roots (judged on the real path, symlinks resolved); only regular files are read.

use std::path::{Path, PathBuf};

use super::cap;
use crate::sandbox::Confinement;

/// Largest file `read_file` reads.
const MAX_READ_BYTES: u64 = 8 << 20;

pub(super) async fn read(place: &Confinement, path: &str, max_output: usize) -> Result<String, String> {
    let path = place.reach.readable(&joined(place, path))?;
    let bytes = crate::regular_file::read_async(&path, MAX_READ_BYTES).await.map_err(|e| e.to_string())?;
    Ok(cap(String::from_utf8_lossy(&bytes).into_owned(), max_output))
}

pub(super) async fn write(place: &Confinement, path: &str, content: &str) -> Result<String, String> {
    let path = place.reach.writable(&joined(place, path))?;
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    tokio::fs::write(&path, content).await.map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(format!("wrote {} bytes to {}", content.len(), path.display()))
}

pub(super) async fn list(place: &Confinement, path: &str, max_output: usize) -> Result<String, String> {
    let path = place.reach.readable(&joined(place, path))?;
    let mut dir = tokio::fs::read_dir(&path).await.map_err(|e| format!("cannot list {}: {e}", path.display()))?;
    let mut names = Vec::new();
    while let Ok(Some(entry)) = dir.next_entry().await {
        let mut name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().await.is_ok_and(|t| t.is_dir()) {
            name.push('/');
        }
        names.push(name);
    }
    names.sort();
    Ok(cap(names.join("\n"), max_output))
}

fn joined(place: &Confinement, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() { p.to_path_buf() } else { place.cwd.join(p) }
}
