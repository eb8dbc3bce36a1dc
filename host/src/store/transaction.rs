//! A commit with comment or file rows (rare), or a journal cleared and refilled at once: its rows written the way
//! each backend writes a commit alone (group_sqlite.rs, group_postgres.rs), then its comment and file changes, in
//! one explicit transaction.

use sqlx::{PgConnection, SqliteConnection};

use super::commit::Commit;
use super::rows::Rows;
use super::{Backend, CommentChange, FileChange, Result, Store, group_postgres, group_sqlite, json_text, on_pool};

/// A commit's rows inside the caller's transaction, as each backend writes them.
trait WriteRows {
    async fn write_rows(&mut self, rows: &Rows) -> Result<()>;
}

impl WriteRows for SqliteConnection {
    async fn write_rows(&mut self, rows: &Rows) -> Result<()> {
        // Statement by statement: a journal cleared and refilled is deleted before it is inserted.
        group_sqlite::write_in(self, &[rows]).await
    }
}

impl WriteRows for PgConnection {
    async fn write_rows(&mut self, rows: &Rows) -> Result<()> {
        let refilled = rows.clear_journal && !rows.journal.is_empty();
        if refilled {
            // One statement cannot delete and insert the same journal rows: clear it first.
            sqlx::query("DELETE FROM turn_journal WHERE session_id = $1")
                .bind(rows.id.as_str())
                .execute(&mut *self)
                .await?;
        }
        group_postgres::write_one(self, rows, rows.clear_journal && !refilled).await
    }
}

impl Store {
    /// A commit in an explicit transaction with its comment and file changes: the way for commits that do not fit
    /// a group (rows.rs `fits`).
    pub(super) async fn commit_in_transaction(&self, c: &Commit<'_>) -> Result<()> {
        let rows = Rows::of(c);
        let id = c.session.id.as_str();
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            tx.write_rows(&rows).await?;
            for change in c.comments {
                match change {
                    CommentChange::Upsert { id: comment, path, data, created_at_us } => {
                        sqlx::query(
                            "INSERT INTO comments (session_id, id, path, data, created_at_us) VALUES ($1, $2, $3, $4, $5) \
                             ON CONFLICT (session_id, id) DO UPDATE SET path = excluded.path, data = excluded.data",
                        )
                        .bind(id)
                        .bind(comment)
                        .bind(path)
                        .bind(json_text(data))
                        .bind(*created_at_us)
                        .execute(&mut *tx)
                        .await?;
                    }
                    CommentChange::Delete { id: comment } => {
                        sqlx::query("DELETE FROM comments WHERE session_id = $1 AND id = $2")
                            .bind(id)
                            .bind(comment)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
            for change in c.files {
                match change {
                    FileChange::Put { meta, content } => {
                        sqlx::query(
                            "INSERT INTO files (session_id, id, name, content_type, bytes, content, source, \
                             created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        )
                        .bind(id)
                        .bind(&meta.id)
                        .bind(&meta.name)
                        .bind(&meta.content_type)
                        .bind(meta.bytes)
                        .bind(content)
                        .bind(meta.source.as_str())
                        .bind(meta.created_at_us)
                        .execute(&mut *tx)
                        .await?;
                    }
                    FileChange::Delete { id: file } => {
                        sqlx::query("DELETE FROM files WHERE session_id = $1 AND id = $2")
                            .bind(id)
                            .bind(file)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }
}
