//! Session files: uploads and artifacts written by harnesses. Limits on size and type, and their wire shape.

use serde_json::{Value, json};

use crate::ids::{SessionId, prefixed};
use crate::protocol;
use crate::record::{now_us, secs};
use crate::session::{SessionError, Sessions};
use crate::store::{FileChange, FileMeta, FileSource};

/// Largest file a session accepts.
pub const MAX_FILE_BYTES: usize = 25 << 20;
const MAX_NAME_CHARS: usize = 255;

/// Media types a session stores (anything else is refused with 415).
fn accepted(content_type: &str) -> bool {
    let t = content_type.split(';').next().unwrap_or("").trim();
    t.starts_with("text/")
        || matches!(
            t,
            "image/png"
                | "image/jpeg"
                | "image/gif"
                | "image/webp"
                | "image/svg+xml"
                | "application/pdf"
                | "application/json"
                | "application/xml"
                | "application/yaml"
                | "application/x-yaml"
                | "application/zip"
                | "application/gzip"
                | "application/x-tar"
                | "application/octet-stream"
                | "application/javascript"
                | "application/toml"
                | "application/x-ndjson"
        )
}

/// A media type from a file name, for files that come without one.
pub fn guess_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "txt" | "log" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "rs" | "py" | "js" | "ts" | "go" | "c" | "h" | "cpp" | "java" | "sh" | "rb" | "toml" | "ini" => "text/plain",
        "json" => "application/json",
        "yaml" | "yml" => "application/yaml",
        "xml" => "application/xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "tar" => "application/x-tar",
        _ => "application/octet-stream",
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("the file is {0} bytes; the limit is {MAX_FILE_BYTES}")]
    TooLarge(usize),
    #[error("files of type '{0}' are not accepted (text, images, PDF, JSON/YAML/XML and archives are)")]
    Refused(String),
    #[error("a file needs a name of 1 to {MAX_NAME_CHARS} characters without '/' or control characters")]
    BadName,
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// Checks a file (name, size, type) and gives it an id: its metadata, ready to store.
pub fn check(
    name: &str,
    content_type: Option<&str>,
    content: &[u8],
    source: FileSource,
) -> Result<FileMeta, FileError> {
    if name.is_empty() || name.contains('/') || crate::ids::check_short_text("name", name, MAX_NAME_CHARS).is_err() {
        return Err(FileError::BadName);
    }
    if content.len() > MAX_FILE_BYTES {
        return Err(FileError::TooLarge(content.len()));
    }
    let content_type = match content_type.map(str::trim).filter(|t| !t.is_empty()) {
        None | Some("application/octet-stream") => guess_type(name).to_string(),
        Some(t) => t.to_string(),
    };
    if !accepted(&content_type) {
        return Err(FileError::Refused(content_type));
    }
    Ok(FileMeta {
        id: prefixed("file"),
        name: name.to_string(),
        content_type,
        bytes: content.len() as i64,
        source,
        created_at_us: now_us(),
    })
}

/// Checks, stores and announces an upload (`session.resource.created`), in one transaction with its event.
/// (A harness's files go through its turn's journal: `turn::session_import`.)
pub async fn upload(
    sessions: &Sessions,
    session: &SessionId,
    name: &str,
    content_type: Option<&str>,
    content: Vec<u8>,
) -> Result<FileMeta, FileError> {
    let meta = check(name, content_type, &content, FileSource::Upload)?;
    let event = protocol::resource_created(resource(session, &meta));
    sessions
        .record_with_files(session, vec![event], Vec::new(), vec![FileChange::Put { meta: meta.clone(), content }])
        .await?;
    Ok(meta)
}

/// Omnigent's `session.resource` shape of a file.
pub fn resource(session: &SessionId, meta: &FileMeta) -> Value {
    json!({
        "id": meta.id,
        "object": protocol::object::SESSION_RESOURCE,
        "type": "file",
        "session_id": session.as_str(),
        "name": meta.name,
        "metadata": {
            "filename": meta.name,
            "bytes": meta.bytes,
            "created_at": secs(meta.created_at_us),
            "content_type": meta.content_type,
            "source": meta.source.as_str(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_guessed_and_checked() {
        assert_eq!(guess_type("notes.MD"), "text/markdown");
        assert_eq!(guess_type("x"), "application/octet-stream");
        assert!(accepted("text/plain; charset=utf-8"));
        assert!(accepted("image/png"));
        assert!(!accepted("application/x-msdownload"));
        assert!(!accepted("video/mp4"));
    }
}
