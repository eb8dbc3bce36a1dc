//! The `files` table: a session's uploads and harness artifacts. Rows are written only with the event that
//! announces them, through the session's actor (`commit`); here they are read.

use sqlx::AssertSqlSafe;

use super::{Backend, Page, Result, Store, StoreError, on_pool, row};
use crate::ids::SessionId;

/// Where a file came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileSource {
    /// Uploaded by a client.
    Upload,
    /// Written by a harness.
    Harness,
}

impl FileSource {
    pub fn as_str(self) -> &'static str {
        match self {
            FileSource::Upload => "upload",
            FileSource::Harness => "harness",
        }
    }

    fn parse(s: &str) -> Option<FileSource> {
        [FileSource::Upload, FileSource::Harness].into_iter().find(|f| f.as_str() == s)
    }
}

/// A session file's metadata (its content is read separately).
#[derive(Clone, Debug, PartialEq)]
pub struct FileMeta {
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub bytes: i64,
    pub source: FileSource,
    pub created_at_us: i64,
}

/// A change to a session's files, committed with its event.
#[derive(Clone, Debug, PartialEq)]
pub enum FileChange {
    Put { meta: FileMeta, content: Vec<u8> },
    Delete { id: String },
}

row! {
    struct FileRow {
        id: String,
        name: String,
        content_type: String,
        bytes: i64,
        source: String,
        created_at_us: i64,
    }
}

const FILE_COLUMNS: &str = "id, name, content_type, bytes, source, created_at_us";

impl FileRow {
    fn meta(self) -> Result<FileMeta> {
        let source = FileSource::parse(&self.source)
            .ok_or_else(|| StoreError::Corrupt(format!("files.source '{}'", self.source)))?;
        Ok(FileMeta {
            id: self.id,
            name: self.name,
            content_type: self.content_type,
            bytes: self.bytes,
            source,
            created_at_us: self.created_at_us,
        })
    }
}

impl Store {
    pub async fn get_file(&self, session: &SessionId, id: &str) -> Result<Option<FileMeta>> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE session_id = $1 AND id = $2");
        let row: Option<FileRow> = on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(session.as_str()).bind(id).fetch_optional(pool).await?
        });
        row.map(FileRow::meta).transpose()
    }

    pub async fn file_content(&self, session: &SessionId, id: &str) -> Result<Option<Vec<u8>>> {
        let row: Option<(Vec<u8>,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT content FROM files WHERE session_id = $1 AND id = $2")
                .bind(session.as_str())
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(|(c,)| c))
    }

    /// A page of a session's files, newest first by default.
    pub async fn list_files(&self, session: &SessionId, page: &Page) -> Result<(Vec<FileMeta>, bool)> {
        let cursor = match page.cursor() {
            Some(c) => {
                let found = self.get_file(session, c).await?.ok_or_else(|| StoreError::UnknownCursor(c.to_string()))?;
                Some((found.created_at_us, found.id))
            }
            None => None,
        };
        let (keyset, tail) = page.sql("created_at_us", 2);
        let keyset = keyset.map(|k| format!("AND {k}")).unwrap_or_default();
        let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE session_id = $1 {keyset} {tail}");
        let rows: Vec<FileRow> = on_pool!(self, pool => {
            let mut q = sqlx::query_as(AssertSqlSafe(sql)).bind(session.as_str());
            if let Some((at, id)) = &cursor {
                q = q.bind(*at).bind(id.clone());
            }
            q.fetch_all(pool).await?
        });
        let (rows, has_more) = page.finish(rows);
        Ok((rows.into_iter().map(FileRow::meta).collect::<Result<_>>()?, has_more))
    }
}
