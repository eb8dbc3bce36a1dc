//! Files and folders only their owner may read: the data dir, the credentials file, a native session's folder.
//! A file is written whole or not at all (through a temporary file in the same folder).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `bytes` to `path` through a temporary file in the same folder, readable by the owner only (0600).
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, path)
}

/// Creates a folder (and its parents) that only the owner may enter (0700; an existing one is tightened).
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
}

/// Creates the file at `path` if need be, and makes it readable by its owner only (0600) whatever it was.
pub fn touch_private(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// Whether others than the owner may read or write a file of these metadata (any group or other permission bit).
pub fn open_to_others(meta: &std::fs::Metadata) -> bool {
    meta.permissions().mode() & 0o077 != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_0600_and_folders_0700() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        write_private(&p, b"secret").unwrap();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        let open = dir.path().join("log");
        std::fs::write(&open, b"kept").unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        touch_private(&open).unwrap();
        assert_eq!(std::fs::metadata(&open).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(&open).unwrap(), b"kept", "an existing file keeps its contents");
        assert_eq!(std::fs::read(&p).unwrap(), b"secret");
        assert!(!open_to_others(&std::fs::metadata(&p).unwrap()));
        let sub = dir.path().join("a/b");
        private_dir(&sub).unwrap();
        assert_eq!(std::fs::metadata(&sub).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
