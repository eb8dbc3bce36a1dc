//! The `comments` table: a fold of a session's `session.comment.*` events, written with them (`commit`).

use serde_json::Value;

use super::{Backend, Result, Store, on_pool, parse_json};
use crate::ids::SessionId;

/// A change to the comments fold.
#[derive(Clone, Debug, PartialEq)]
pub enum CommentChange {
    /// The comment's full current form (`data` is the wire dict).
    Upsert {
        id: String,
        path: String,
        data: Value,
        created_at_us: i64,
    },
    Delete {
        id: String,
    },
}

impl Store {
    /// A session's comments, oldest first, optionally only those on `path`.
    pub async fn list_comments(&self, session: &SessionId, path: Option<&str>) -> Result<Vec<Value>> {
        let rows: Vec<(String,)> = on_pool!(self, pool => {
            match path {
                Some(p) => sqlx::query_as(
                    "SELECT data FROM comments WHERE session_id = $1 AND path = $2 ORDER BY created_at_us, id",
                )
                .bind(session.as_str())
                .bind(p)
                .fetch_all(pool)
                .await?,
                None => sqlx::query_as("SELECT data FROM comments WHERE session_id = $1 ORDER BY created_at_us, id")
                    .bind(session.as_str())
                    .fetch_all(pool)
                    .await?,
            }
        });
        rows.into_iter().map(|(d,)| parse_json(&d, "comments.data")).collect()
    }

    pub async fn get_comment(&self, session: &SessionId, id: &str) -> Result<Option<Value>> {
        let row: Option<(String,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT data FROM comments WHERE session_id = $1 AND id = $2")
                .bind(session.as_str())
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.map(|(d,)| parse_json(&d, "comments.data")).transpose()
    }
}
