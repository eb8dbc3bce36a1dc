//! The credentials file, `<data-dir>/credentials.json`: every stored key by name, readable by its owner only.
//! The CLI writes it (`omnigent auth set | remove`, under a lock, whole or not at all); the server reads it when a
//! turn needs a key, so a change applies to the next model call without a restart.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::private_files::{open_to_others, write_private};

/// The file's name in the data dir.
pub const FILE_NAME: &str = "credentials.json";
/// Largest credentials file read.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// The file's contents.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialFile {
    #[serde(default)]
    pub credentials: BTreeMap<String, Stored>,
}

/// One stored credential.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Stored {
    pub api_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// When it was set (ISO-8601, UTC).
    pub updated_at: String,
}

/// The key never shows in debug output.
impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stored")
            .field("api_key", &crate::config::REDACTED)
            .field("base_url", &self.base_url)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// What identifies one version of the file on disk: a write (a rename) or a `chmod` changes it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Stamp {
    inode: u64,
    len: u64,
    modified_ns: i128,
    mode: u32,
}

/// The stamp of the file at `path`; None when there is no file.
pub fn stamp(path: &Path) -> Result<Option<Stamp>, String> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(Stamp {
            inode: m.ino(),
            len: m.len(),
            modified_ns: m.mtime() as i128 * 1_000_000_000 + m.mtime_nsec() as i128,
            mode: m.mode(),
        })),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read the credentials file {}: {e}", path.display())),
    }
}

/// Reads the file (a missing one is empty). A file others may read is refused, as ssh refuses such a key: the
/// keys in it may already have leaked, and using them would hide that.
pub fn read(path: &Path) -> Result<CredentialFile, String> {
    let shown = path.display();
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CredentialFile::default()),
        Err(e) => return Err(format!("cannot read the credentials file {shown}: {e}")),
    };
    if open_to_others(&meta) && meta.is_file() {
        return Err(format!(
            "the credentials file {shown} may be read by other users (mode {:o}): its keys are not used until you \
             run `chmod 600 {shown}` (and consider replacing them)",
            meta.mode() & 0o777
        ));
    }
    let bytes = crate::regular_file::read(path, MAX_FILE_BYTES)
        .map_err(|e| format!("cannot read the credentials file: {e}"))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        format!("the credentials file {shown} is not valid ({e}); fix it, or remove it and set the keys again")
    })
}

/// Changes the file under an exclusive lock (concurrent `auth set`s both land), writing it whole, 0600.
pub fn edit<T>(path: &Path, change: impl FnOnce(&mut CredentialFile) -> Result<T, String>) -> Result<T, String> {
    let _lock = Lock::take(&lock_path(path))?;
    let mut file = read(path)?;
    let out = change(&mut file)?;
    let text = serde_json::to_vec_pretty(&file).expect("credentials serialize");
    write_private(path, &text).map_err(|e| format!("cannot write the credentials file {}: {e}", path.display()))?;
    Ok(out)
}

fn lock_path(path: &Path) -> PathBuf {
    path.with_extension("lock")
}

/// An exclusive `flock` on a file next to the credentials, released when dropped.
struct Lock(std::fs::File);

impl Lock {
    fn take(path: &Path) -> Result<Lock, String> {
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("cannot lock the credentials file ({}): {e}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(format!("cannot lock {}: {}", path.display(), std::io::Error::last_os_error()));
        }
        Ok(Lock(file))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        use std::os::unix::io::AsRawFd;
        // SAFETY: unlocking the descriptor this lock owns.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn entry(key: &str) -> Stored {
        Stored { api_key: key.into(), base_url: None, updated_at: "2026-01-01T00:00:00Z".into() }
    }

    #[test]
    fn edits_land_whole_private_and_concurrent_ones_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        assert!(read(&path).unwrap().credentials.is_empty(), "no file: nothing stored");
        let writers: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    edit(&path, |f| {
                        f.credentials.insert(format!("p{i}"), entry(&format!("k{i}")));
                        Ok(())
                    })
                    .unwrap()
                })
            })
            .collect();
        writers.into_iter().for_each(|w| w.join().unwrap());
        let file = read(&path).unwrap();
        assert_eq!(file.credentials.len(), 8, "{:?}", file.credentials.keys());
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!format!("{:?}", file.credentials).contains("k1"), "debug output hides keys");
    }

    #[test]
    fn a_file_others_can_read_or_a_broken_one_is_refused_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        edit(&path, |f| {
            f.credentials.insert("openai".into(), entry("sk-1"));
            Ok(())
        })
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read(&path).unwrap_err();
        assert!(e.contains("chmod 600") && e.contains("644"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&path, "{not json").unwrap();
        let e = read(&path).unwrap_err();
        assert!(e.contains("is not valid"), "{e}");
    }
}
