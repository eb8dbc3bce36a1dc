//! Reading a file a user names (harness and policy components, config files): only a regular file, and at most
//! a cap of bytes, so a FIFO, a device or an endless file is refused at once instead of hanging a request or
//! filling memory.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

/// Longest an async read may take (a regular file on a slow or hung network mount).
const READ_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path} is not a regular file (it is {kind}); give the path of a file")]
    NotRegular { path: String, kind: &'static str },
    #[error("{path} is larger than {limit} bytes")]
    TooLarge { path: String, limit: u64 },
    #[error("reading {path} took longer than {}s", READ_TIMEOUT.as_secs())]
    TimedOut { path: String },
}

impl ReadError {
    /// The file is not there (or not readable), as opposed to being the wrong kind of file.
    pub fn is_missing(&self) -> bool {
        matches!(self, ReadError::Io { .. })
    }
}

/// Reads a regular file of at most `limit` bytes.
pub fn read(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let name = || path.display().to_string();
    let io = |source| ReadError::Io { path: name(), source };
    // O_NONBLOCK: opening a FIFO must not wait for a writer. It changes nothing for a regular file.
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular { path: name(), kind: kind_of(&meta.file_type()) });
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge { path: name(), limit });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // The cap holds even for a file that grows while it is read.
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { path: name(), limit });
    }
    Ok(bytes)
}

/// [`read`] off the async workers, bounded in time.
pub async fn read_async(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let owned = path.to_path_buf();
    let reading = tokio::task::spawn_blocking(move || read(&owned, limit));
    match tokio::time::timeout(READ_TIMEOUT, reading).await {
        Ok(Ok(result)) => result,
        Ok(Err(e)) => Err(ReadError::Io { path: path.display().to_string(), source: std::io::Error::other(e) }),
        Err(_) => Err(ReadError::TimedOut { path: path.display().to_string() }),
    }
}

fn kind_of(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_and_everything_else_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.wasm");
        std::fs::write(&file, b"1234").unwrap();
        assert_eq!(read(&file, 4).unwrap(), b"1234");
        assert!(matches!(read(&file, 3), Err(ReadError::TooLarge { limit: 3, .. })));
        let fifo = dir.path().join("fifo.wasm");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert!(matches!(read(&fifo, 10), Err(ReadError::NotRegular { kind: "a FIFO", .. })), "no writer, no hang");
        let zero = dir.path().join("zero.wasm");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        assert!(matches!(read(&zero, 10), Err(ReadError::NotRegular { kind: "a device", .. })));
        assert!(matches!(read(dir.path(), 10), Err(ReadError::NotRegular { kind: "a directory", .. })));
        let missing = read(&dir.path().join("missing.wasm"), 10).unwrap_err();
        assert!(missing.is_missing() && missing.to_string().contains("missing.wasm"), "{missing}");
    }
}
