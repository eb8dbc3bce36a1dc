//! The `sessions` table: each session's cached fold (status, title, labels, usage, policy state, the log's head).

use serde_json::{Map, Value};
use sqlx::AssertSqlSafe;

use super::retry::retrying;
use super::{Backend, Page, Result, Store, StoreError, json_text, on_pool, parse_json, row};
use crate::ids::SessionId;
use crate::record::{PolicyFold, SessionKind, SessionRecord, SessionStatus, TaskError};

/// Which sessions a list returns, and by which time it orders them.
#[derive(Clone, Debug, Default)]
pub struct SessionFilter {
    pub status: Option<SessionStatus>,
    /// None for every kind.
    pub kind: Option<SessionKind>,
    pub agent_id: Option<String>,
    /// Some(false): not archived; Some(true): archived only; None: both.
    pub archived: Option<bool>,
    /// Sessions whose title contains this text (ASCII case ignored).
    pub title_contains: Option<String>,
    pub sort: SessionSort,
}

/// The time a session list is ordered by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SessionSort {
    #[default]
    Created,
    Updated,
}

impl SessionSort {
    fn column(self) -> &'static str {
        match self {
            SessionSort::Created => "created_at_us",
            SessionSort::Updated => "updated_at_us",
        }
    }
}

/// `text` as a LIKE pattern that matches it anywhere, its own `%`, `_` and `\` taken literally.
fn contains_pattern(text: &str) -> String {
    let escaped = text.to_ascii_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

impl From<Option<SessionStatus>> for SessionFilter {
    fn from(status: Option<SessionStatus>) -> Self {
        SessionFilter { status, ..SessionFilter::default() }
    }
}

row! {
    struct SessionRow {
        id: String,
        created_at_us: i64,
        updated_at_us: i64,
        title: Option<String>,
        labels: String,
        status: String,
        last_task_error: Option<String>,
        config: String,
        agent_id: Option<String>,
        kind: String,
        parent_session_id: Option<String>,
        last_seq: i64,
        active_response_id: Option<String>,
        usage_by_model: String,
        policy: String,
        archived: i32,
        settings: String,
        writer_epoch: i64,
    }
}

/// A session from a Postgres row that has the session's columns by name (the cluster's claim returns one from the
/// statement that fences the session's previous writer).
pub(crate) fn session_of_pg_row(row: &sqlx::postgres::PgRow) -> Result<SessionRecord> {
    use sqlx::FromRow;
    SessionRow::from_row(row)?.record()
}

const SESSION_COLUMNS: &str = "id, created_at_us, updated_at_us, title, labels, status, last_task_error, config, \
                               agent_id, kind, parent_session_id, last_seq, active_response_id, usage_by_model, policy, \
                               archived, settings, writer_epoch";

impl Store {
    pub async fn create_session(&self, s: &SessionRecord) -> Result<()> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO sessions (id, created_at_us, updated_at_us, title, labels, status, last_task_error, \
                 config, agent_id, kind, parent_session_id, last_seq, settings) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(s.id.as_str())
            .bind(s.created_at_us)
            .bind(s.updated_at_us)
            .bind(&s.title)
            .bind(json_text(&Value::Object(s.labels.clone())))
            .bind(s.status.as_str())
            .bind(s.last_task_error.as_ref().map(|e| json_text(&serde_json::to_value(e).unwrap_or_default())))
            .bind(json_text(&s.config))
            .bind(&s.agent_id)
            .bind(s.kind.as_str())
            .bind(s.parent_session_id.as_ref().map(|p| p.as_str().to_string()))
            .bind(s.last_seq)
            .bind(json_text(&serde_json::to_value(&s.settings).unwrap_or_default()))
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    pub async fn get_session(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
        let row: Option<SessionRow> = retrying("reading a session", |_| async move {
            let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
            Ok(on_pool!(self, pool => { sqlx::query_as(AssertSqlSafe(sql)).bind(id.as_str()).fetch_optional(pool).await? }))
        })
        .await?;
        row.map(SessionRow::record).transpose()
    }

    /// Lists sessions by creation time (then id), optionally filtered. Returns the page and whether more rows lie
    /// beyond it.
    pub async fn list_sessions(
        &self,
        page: &Page,
        filter: impl Into<SessionFilter>,
    ) -> Result<(Vec<SessionRecord>, bool)> {
        let SessionFilter { status, kind, agent_id, archived, title_contains, sort } = filter.into();
        let key = sort.column();
        let cursor = match page.cursor() {
            Some(c) => {
                let sql = format!("SELECT {key}, id FROM sessions WHERE id = $1");
                let id = SessionId::parse(c).map_err(|_| StoreError::UnknownCursor(c.to_string()))?;
                let found: Option<(i64, String)> = on_pool!(self, pool => {
                    sqlx::query_as(AssertSqlSafe(sql)).bind(id.as_str()).fetch_optional(pool).await?
                });
                Some(found.ok_or_else(|| StoreError::UnknownCursor(c.to_string()))?)
            }
            None => None,
        };
        let (keyset, tail) = page.sql(key, 1);
        let mut conditions: Vec<String> = keyset.into_iter().collect();
        let mut n = conditions.len() * 2;
        for (present, column) in [
            (status.is_some(), "status = "),
            (kind.is_some(), "kind = "),
            (agent_id.is_some(), "agent_id = "),
            (archived.is_some(), "archived = "),
            (title_contains.is_some(), "LOWER(title) LIKE "),
        ] {
            if present {
                n += 1;
                let escape = if column.contains("LIKE") { " ESCAPE '\\'" } else { "" };
                conditions.push(format!("{column}${n}{escape}"));
            }
        }
        let filter = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions {filter} {tail}");
        let rows: Vec<SessionRow> = on_pool!(self, pool => {
            let mut q = sqlx::query_as(AssertSqlSafe(sql));
            if let Some((at, id)) = &cursor {
                q = q.bind(*at).bind(id.clone());
            }
            if let Some(s) = status {
                q = q.bind(s.as_str());
            }
            if let Some(k) = kind {
                q = q.bind(k.as_str());
            }
            if let Some(a) = &agent_id {
                q = q.bind(a.clone());
            }
            if let Some(a) = archived {
                q = q.bind(i32::from(a));
            }
            if let Some(t) = &title_contains {
                q = q.bind(contains_pattern(t));
            }
            q.fetch_all(pool).await?
        });
        let (rows, has_more) = page.finish(rows);
        Ok((rows.into_iter().map(SessionRow::record).collect::<Result<_>>()?, has_more))
    }

    /// A session's child sessions (sub-agents), newest first.
    pub async fn list_children(&self, parent: &SessionId, limit: u32) -> Result<Vec<SessionRecord>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE parent_session_id = $1 \
             ORDER BY created_at_us DESC, id DESC LIMIT {limit}"
        );
        let rows: Vec<SessionRow> = on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(parent.as_str()).fetch_all(pool).await?
        });
        rows.into_iter().map(SessionRow::record).collect()
    }

    /// Deletes a session with its log, items, comments and files. Returns false when it did not exist.
    pub async fn delete_session(&self, id: &SessionId) -> Result<bool> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // Children first, so large logs go in the same transaction whatever the FK settings.
            for table in ["files", "comments", "items", "events"] {
                let sql = format!("DELETE FROM {table} WHERE session_id = $1");
                sqlx::query(AssertSqlSafe(sql)).bind(id.as_str()).execute(&mut *tx).await?;
            }
            let done = sqlx::query("DELETE FROM sessions WHERE id = $1").bind(id.as_str()).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Number of stored sessions.
    pub async fn count_sessions(&self) -> Result<i64> {
        let (n,): (i64,) = on_pool!(self, pool => {
            sqlx::query_as("SELECT COUNT(*) FROM sessions").fetch_one(pool).await?
        });
        Ok(n)
    }
}

impl SessionRow {
    fn record(self) -> Result<SessionRecord> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("sessions.{what}: {e}"));
        let object = |text: &str, what: &str| -> Result<Map<String, Value>> {
            Ok(match parse_json(text, what)? {
                Value::Object(m) => m,
                _ => Map::new(),
            })
        };
        let policy: PolicyFold = serde_json::from_str(&self.policy).map_err(|e| corrupt("policy", &e))?;
        let last_task_error: Option<TaskError> = match self.last_task_error {
            Some(text) => Some(serde_json::from_str(&text).map_err(|e| corrupt("last_task_error", &e))?),
            None => None,
        };
        Ok(SessionRecord {
            id: SessionId::parse(&self.id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            created_at_us: self.created_at_us,
            updated_at_us: self.updated_at_us,
            title: self.title,
            labels: object(&self.labels, "sessions.labels")?,
            status: SessionStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Corrupt(format!("sessions.status '{}'", self.status)))?,
            last_task_error,
            config: parse_json(&self.config, "sessions.config")?,
            agent_id: self.agent_id,
            kind: SessionKind::parse(&self.kind)
                .ok_or_else(|| StoreError::Corrupt(format!("sessions.kind '{}'", self.kind)))?,
            parent_session_id: self
                .parent_session_id
                .map(|p| SessionId::parse(&p))
                .transpose()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            last_seq: self.last_seq,
            active_response_id: self.active_response_id,
            usage_by_model: object(&self.usage_by_model, "sessions.usage_by_model")?,
            policy,
            archived: self.archived != 0,
            settings: serde_json::from_str(&self.settings).map_err(|e| corrupt("settings", &e))?,
            writer_epoch: self.writer_epoch,
        })
    }
}
