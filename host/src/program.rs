//! Finding a program the way a shell would: the first executable file of that name on this process's PATH.

use std::path::PathBuf;

/// `name` on PATH, if it is there.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}
