//! Where the file tools may read and write: under the confinement's roots, never in a hidden path, judged on the
//! real path (symlinks resolved), so a link inside the working directory cannot lead out of it.

use std::path::{Component, Path, PathBuf};

/// The roots of a session's file tools.
#[derive(Clone, Debug, Default)]
pub struct Reach {
    pub(super) read: Vec<PathBuf>,
    pub(super) write: Vec<PathBuf>,
    pub(super) hidden: Vec<PathBuf>,
}

impl Reach {
    /// The real path of `path` if a file tool may read it.
    pub fn readable(&self, path: &Path) -> Result<PathBuf, String> {
        self.check(path, &self.read, "read")
    }

    /// The real path of `path` if a file tool may write it.
    pub fn writable(&self, path: &Path) -> Result<PathBuf, String> {
        self.check(path, &self.write, "write")
    }

    fn check(&self, path: &Path, roots: &[PathBuf], verb: &str) -> Result<PathBuf, String> {
        let real = real_path(path)?;
        if self.hidden.iter().any(|h| real.starts_with(h)) {
            return Err(format!("{} is not visible to this session's tools", path.display()));
        }
        if roots.iter().any(|r| real.starts_with(r)) {
            return Ok(real);
        }
        let roots: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
        let roots = if roots.is_empty() { "none".to_string() } else { roots.join(", ") };
        let shown =
            if real == path { path.display().to_string() } else { format!("{} ({})", path.display(), real.display()) };
        Err(format!(
            "{shown} is outside the paths this session's tools may {verb} ({roots}); os_env.sandbox \
             {}_paths grants more",
            if verb == "read" { "read" } else { "write" }
        ))
    }
}

/// The path with every symlink of its existing part resolved; the rest (a file or folders to be created) is kept
/// as written, and may not climb with `..`.
pub(super) fn real_path(path: &Path) -> Result<PathBuf, String> {
    if !path.is_absolute() {
        return Err(format!("{} is not an absolute path", path.display()));
    }
    let mut existing = path.to_path_buf();
    let mut rest = Vec::new();
    loop {
        match std::fs::canonicalize(&existing) {
            Ok(real) => {
                let mut out = real;
                for part in rest.iter().rev() {
                    out.push(part);
                }
                return Ok(out);
            }
            Err(_) => {
                let (Some(parent), Some(last)) = (existing.parent(), existing.components().next_back()) else {
                    return Err(format!("{} cannot be resolved", path.display()));
                };
                match last {
                    Component::Normal(name) => rest.push(name.to_os_string()),
                    Component::CurDir => {}
                    _ => return Err(format!("{}: '..' past a folder that does not exist", path.display())),
                }
                existing = parent.to_path_buf();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_out_of_a_root_are_refused_and_new_files_are_judged_by_their_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap().join("work");
        let outside = std::fs::canonicalize(dir.path()).unwrap().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let reach = Reach { read: vec![root.clone()], write: vec![root.clone()], hidden: vec![] };
        assert_eq!(reach.writable(&root.join("new/dir/file.txt")).unwrap(), root.join("new/dir/file.txt"));
        let err = reach.writable(&root.join("link/escape.txt")).unwrap_err();
        assert!(err.contains("outside the paths") && err.contains("outside/escape.txt"), "{err}");
        assert!(reach.readable(&root.join("../outside")).is_err());
        let err = reach.writable(&root.join("nope/../../outside/x")).unwrap_err();
        assert!(err.contains("'..'"), "{err}");
        let hidden = Reach { hidden: vec![root.join("secret")], ..reach };
        assert!(hidden.readable(&root.join("secret/db.sqlite")).unwrap_err().contains("not visible"));
    }
}
