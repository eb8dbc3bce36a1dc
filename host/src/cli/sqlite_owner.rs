//! SQLite serves one server process: a second `omnigent server` on the same database file (from another data dir,
//! say) would interleave its writes with the first's under the same session ids. The server holds an exclusive
//! `flock` on `<database>.server-lock` for as long as it runs (the kernel drops it when the process dies, SIGKILL
//! included) and writes its pid and address there, so a second one is refused with who holds it.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The lock, held until dropped.
pub struct SqliteOwner {
    _file: File,
}

fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".server-lock");
    PathBuf::from(name)
}

/// Takes the database for this process, or says which server has it.
pub fn take(database: &Path, url: &str) -> anyhow::Result<SqliteOwner> {
    let path = lock_path(database);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock on a descriptor this function owns.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        bail!(
            "another omnigent server ({}) is using the SQLite database {}. SQLite serves one server process: stop \
             that one, or use Postgres (DATABASE_URL=postgres://…) to run several servers on one database",
            holder.trim(),
            database.display()
        );
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "pid {} at {url}", std::process::id())?;
    Ok(SqliteOwner { _file: file })
}
