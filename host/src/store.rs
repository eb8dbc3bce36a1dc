//! Durable storage: one store with two backends (SQLite by default, Postgres when the URL says so).
//!
//! Both backends run the same SQL text (`$N` placeholders work in both), so every query is written once and
//! `on_pool!` expands it per backend. Migrations are embedded from `migrations/<backend>/` and run on connect.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{AssertSqlSafe, PgPool, SqlitePool};

use crate::ids::SessionId;
use crate::model::{Item, PolicyFold, SessionRecord, SessionStatus, StoredEvent, TaskError};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "the database was migrated by a newer omnigent (schema version {found}, this binary knows up to {known}); \
         upgrade omnigent"
    )]
    TooNew { found: i64, known: i64 },
    /// The session's log moved on (or the session was deleted) since the writer last read it.
    #[error("session {0} was changed by another writer or deleted")]
    Conflict(SessionId),
    #[error("unknown cursor '{0}'")]
    UnknownCursor(String),
    #[error("an agent named '{0}' already exists")]
    NameTaken(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which backend a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same block of code against whichever pool the store has.
macro_rules! on_pool {
    ($self:expr, $pool:ident => $body:expr) => {
        match &$self.backend {
            Backend::Sqlite($pool) => $body,
            Backend::Postgres($pool) => $body,
        }
    };
}

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

const SQLITE_MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "sessions", sql: include_str!("../../migrations/sqlite/0001_sessions.sql") },
    Migration { version: 2, name: "agents", sql: include_str!("../../migrations/sqlite/0002_agents.sql") },
    Migration { version: 3, name: "files", sql: include_str!("../../migrations/sqlite/0003_files.sql") },
    Migration { version: 4, name: "comments", sql: include_str!("../../migrations/sqlite/0004_comments.sql") },
    Migration { version: 5, name: "children", sql: include_str!("../../migrations/sqlite/0005_children.sql") },
    Migration { version: 6, name: "turn_state", sql: include_str!("../../migrations/sqlite/0006_turn_state.sql") },
    Migration { version: 7, name: "policies", sql: include_str!("../../migrations/sqlite/0007_policies.sql") },
];

const POSTGRES_MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "sessions", sql: include_str!("../../migrations/postgres/0001_sessions.sql") },
    Migration { version: 2, name: "agents", sql: include_str!("../../migrations/postgres/0002_agents.sql") },
    Migration { version: 3, name: "files", sql: include_str!("../../migrations/postgres/0003_files.sql") },
    Migration { version: 4, name: "comments", sql: include_str!("../../migrations/postgres/0004_comments.sql") },
    Migration { version: 5, name: "children", sql: include_str!("../../migrations/postgres/0005_children.sql") },
    Migration { version: 6, name: "turn_state", sql: include_str!("../../migrations/postgres/0006_turn_state.sql") },
    Migration { version: 7, name: "policies", sql: include_str!("../../migrations/postgres/0007_policies.sql") },
];

/// A session file's metadata (its content is read separately).
#[derive(Clone, Debug, PartialEq)]
pub struct FileMeta {
    pub id: String,
    pub name: String,
    pub content_type: String,
    pub bytes: i64,
    /// `upload` or `harness`.
    pub source: String,
    pub created_at_us: i64,
}

type FileTuple = (String, String, String, i64, String, i64);
const FILE_COLUMNS: &str = "id, name, content_type, bytes, source, created_at_us";

fn file_from_tuple((id, name, content_type, bytes, source, created_at_us): FileTuple) -> FileMeta {
    FileMeta { id, name, content_type, bytes, source, created_at_us }
}

/// A named session config.
#[derive(Clone, Debug, PartialEq)]
pub struct Agent {
    pub id: String,
    pub name: String,
    pub config: Value,
    pub created_at_us: i64,
}

/// Which sessions to list, and in which order.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub limit: u32,
    pub after: Option<String>,
    pub before: Option<String>,
    pub descending: bool,
}

/// Which sessions a list returns.
#[derive(Clone, Debug, Default)]
pub struct SessionFilter {
    pub status: Option<SessionStatus>,
    /// `default` or `sub_agent`; None for both.
    pub kind: Option<String>,
    pub agent_id: Option<String>,
}

impl From<Option<SessionStatus>> for SessionFilter {
    fn from(status: Option<SessionStatus>) -> Self {
        SessionFilter { status, ..SessionFilter::default() }
    }
}

/// One transaction's worth of writes to one session, produced by its actor.
pub struct Commit<'a> {
    /// The session's `last_seq` as the writer knows it; the commit fails with `Conflict` if it moved.
    pub expected_last_seq: i64,
    /// The session's cached fold after these events (status, title, labels, `last_seq`, …).
    pub session: &'a SessionRecord,
    pub events: &'a [StoredEvent],
    /// Items created or updated by these events.
    pub items: &'a [Item],
    /// Comments created, changed or deleted by these events.
    pub comments: &'a [CommentChange],
    /// Host-call results of the running turn recorded with these events.
    pub journal: &'a [JournalEntry],
    /// The turn ended: its journal is no longer needed.
    pub clear_journal: bool,
}

/// One recorded harness host call of the turn in progress (see `turn` for the replay).
#[derive(Clone, Debug, PartialEq)]
pub struct JournalEntry {
    pub idx: i64,
    pub response_id: String,
    /// `{"kind": …, …}`
    pub entry: Value,
}

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

#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// SQLite has one writer at a time; contending writers would sleep in SQLite's busy handler (milliseconds).
    /// Queueing them here instead keeps write latency flat under load. None for Postgres.
    write_gate: Option<Arc<tokio::sync::Mutex<()>>>,
}

type SessionTuple = (
    String,
    i64,
    i64,
    Option<String>,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    String,
    Option<String>,
    i64,
    Option<String>,
    String,
    String,
);
const SESSION_COLUMNS: &str = "id, created_at_us, updated_at_us, title, labels, status, last_task_error, config, \
                               agent_id, kind, parent_session_id, last_seq, active_response_id, usage_by_model, policy";

type ItemTuple = (String, i64, Option<String>, String, String, i64, String, Option<String>);
const ITEM_COLUMNS: &str = "id, position, response_id, type, status, created_at_us, data, created_by";

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        let backend = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // In WAL mode NORMAL never corrupts and never loses a committed transaction when the process dies
                // (SIGKILL included); only an OS crash or power loss may roll back the newest commits.
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            let pool = SqlitePoolOptions::new().max_connections(8).connect_with(options).await?;
            Backend::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let options = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .min_connections(2)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await?;
            Backend::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let write_gate = matches!(backend, Backend::Sqlite(_)).then(|| Arc::new(tokio::sync::Mutex::new(())));
        let store = Store { backend, write_gate };
        store.migrate().await?;
        Ok(store)
    }

    pub fn kind(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite(_) => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }

    async fn migrate(&self) -> Result<()> {
        let migrations = match self.kind() {
            BackendKind::Sqlite => SQLITE_MIGRATIONS,
            BackendKind::Postgres => POSTGRES_MIGRATIONS,
        };
        let known = migrations.iter().map(|m| m.version).max().unwrap_or(0);
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if self.kind() == BackendKind::Postgres {
                // Two servers starting at once must not both migrate.
                sqlx::query("SELECT pg_advisory_xact_lock(72436770)").execute(&mut *tx).await?;
            }
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS omnigent_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, \
                 applied_at_us BIGINT NOT NULL)",
            )
            .execute(&mut *tx)
            .await?;
            let applied: Vec<(i64,)> =
                sqlx::query_as("SELECT version FROM omnigent_migrations").fetch_all(&mut *tx).await?;
            let applied: Vec<i64> = applied.into_iter().map(|(v,)| v).collect();
            if let Some(&found) = applied.iter().max().filter(|&&v| v > known) {
                return Err(StoreError::TooNew { found, known });
            }
            for m in migrations.iter().filter(|m| !applied.contains(&m.version)) {
                tracing::info!(version = m.version, name = m.name, "applying migration");
                sqlx::raw_sql(AssertSqlSafe(m.sql)).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO omnigent_migrations (version, name, applied_at_us) VALUES ($1, $2, $3)")
                    .bind(m.version)
                    .bind(m.name)
                    .bind(crate::model::now_us())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.write_gate {
            Some(gate) => Some(gate.lock().await),
            None => None,
        }
    }

    pub async fn create_session(&self, s: &SessionRecord) -> Result<()> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO sessions (id, created_at_us, updated_at_us, title, labels, status, last_task_error, \
                 config, agent_id, kind, parent_session_id, last_seq) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
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
            .bind(&s.kind)
            .bind(s.parent_session_id.as_ref().map(|p| p.as_str().to_string()))
            .bind(s.last_seq)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    pub async fn get_session(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1");
        let row: Option<SessionTuple> = on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(id.as_str()).fetch_optional(pool).await?
        });
        row.map(session_from_tuple).transpose()
    }

    /// Lists sessions by creation time (then id), optionally filtered. Returns the page and whether more rows lie
    /// beyond it.
    pub async fn list_sessions(
        &self,
        page: &Page,
        filter: impl Into<SessionFilter>,
    ) -> Result<(Vec<SessionRecord>, bool)> {
        let SessionFilter { status, kind, agent_id } = filter.into();
        let cursor = match (&page.after, &page.before) {
            (Some(c), _) | (None, Some(c)) => {
                let sql = "SELECT created_at_us, id FROM sessions WHERE id = $1";
                let id = SessionId::parse(c).map_err(|_| StoreError::UnknownCursor(c.clone()))?;
                let found: Option<(i64, String)> = on_pool!(self, pool => {
                    sqlx::query_as(sql).bind(id.as_str()).fetch_optional(pool).await?
                });
                Some(found.ok_or_else(|| StoreError::UnknownCursor(c.clone()))?)
            }
            (None, None) => None,
        };
        let (cmp, scan_desc) = page_direction(page);
        let mut conditions = Vec::new();
        let mut n = 0;
        if cursor.is_some() {
            conditions.push(format!("(created_at_us, id) {cmp} ($1, $2)"));
            n = 2;
        }
        for (present, column) in
            [(status.is_some(), "status"), (kind.is_some(), "kind"), (agent_id.is_some(), "agent_id")]
        {
            if present {
                n += 1;
                conditions.push(format!("{column} = ${n}"));
            }
        }
        let filter = if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) };
        let dir = if scan_desc { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions {filter} ORDER BY created_at_us {dir}, id {dir} LIMIT {}",
            page.limit as i64 + 1
        );
        let rows: Vec<SessionTuple> = on_pool!(self, pool => {
            let mut q = sqlx::query_as(AssertSqlSafe(sql));
            if let Some((at, id)) = &cursor {
                q = q.bind(*at).bind(id.clone());
            }
            if let Some(s) = status {
                q = q.bind(s.as_str());
            }
            if let Some(k) = &kind {
                q = q.bind(k.clone());
            }
            if let Some(a) = &agent_id {
                q = q.bind(a.clone());
            }
            q.fetch_all(pool).await?
        });
        let (rows, has_more) = finish_page(rows, page);
        Ok((rows.into_iter().map(session_from_tuple).collect::<Result<_>>()?, has_more))
    }

    /// A session's child sessions (sub-agents), newest first.
    pub async fn list_children(&self, parent: &SessionId, limit: u32) -> Result<Vec<SessionRecord>> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE parent_session_id = $1 ORDER BY created_at_us DESC, id DESC LIMIT {limit}"
        );
        let rows: Vec<SessionTuple> = on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(parent.as_str()).fetch_all(pool).await?
        });
        rows.into_iter().map(session_from_tuple).collect()
    }

    /// Deletes a session with its log and items. Returns false when it did not exist.
    pub async fn delete_session(&self, id: &SessionId) -> Result<bool> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // Children first, so large logs go in the same transaction whatever the FK settings.
            sqlx::query("DELETE FROM files WHERE session_id = $1").bind(id.as_str()).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM comments WHERE session_id = $1").bind(id.as_str()).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM items WHERE session_id = $1").bind(id.as_str()).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM events WHERE session_id = $1").bind(id.as_str()).execute(&mut *tx).await?;
            let done = sqlx::query("DELETE FROM sessions WHERE id = $1").bind(id.as_str()).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(done.rows_affected() > 0)
        })
    }

    /// Appends events (and their folds) in one transaction. Fails with `Conflict`, writing nothing, when the
    /// session's `last_seq` is not `expected_last_seq` (another writer, or the session was deleted).
    pub async fn commit(&self, c: &Commit<'_>) -> Result<()> {
        let s = c.session;
        let labels = json_text(&Value::Object(s.labels.clone()));
        let error = s.last_task_error.as_ref().map(|e| json_text(&serde_json::to_value(e).unwrap_or_default()));
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // The guarded update comes first: it takes the write lock and proves we are the only writer.
            let updated = sqlx::query(
                "UPDATE sessions SET last_seq = $1, updated_at_us = $2, title = $3, labels = $4, status = $5, \
                 last_task_error = $6, active_response_id = $9, usage_by_model = $10, policy = $11 \
                 WHERE id = $7 AND last_seq = $8",
            )
            .bind(s.last_seq)
            .bind(s.updated_at_us)
            .bind(&s.title)
            .bind(&labels)
            .bind(s.status.as_str())
            .bind(&error)
            .bind(s.id.as_str())
            .bind(c.expected_last_seq)
            .bind(&s.active_response_id)
            .bind(json_text(&Value::Object(s.usage_by_model.clone())))
            .bind(json_text(&serde_json::to_value(&s.policy).unwrap_or_default()))
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() != 1 {
                return Err(StoreError::Conflict(s.id.clone()));
            }
            if c.clear_journal {
                sqlx::query("DELETE FROM turn_journal WHERE session_id = $1").bind(s.id.as_str()).execute(&mut *tx).await?;
            }
            if !c.journal.is_empty() {
                let mut insert = sqlx::QueryBuilder::new("INSERT INTO turn_journal (session_id, idx, response_id, entry) ");
                insert.push_values(c.journal, |mut row, j| {
                    row.push_bind(s.id.as_str()).push_bind(j.idx).push_bind(&j.response_id).push_bind(json_text(&j.entry));
                });
                insert.build().execute(&mut *tx).await?;
            }
            if !c.events.is_empty() {
                let mut insert =
                    sqlx::QueryBuilder::new("INSERT INTO events (session_id, seq, type, data, created_at_us) ");
                insert.push_values(c.events, |mut row, e| {
                    row.push_bind(s.id.as_str())
                        .push_bind(e.seq)
                        .push_bind(&e.event_type)
                        .push_bind(json_text(&e.data))
                        .push_bind(e.created_at_us);
                });
                insert.build().execute(&mut *tx).await?;
            }
            if !c.items.is_empty() {
                let mut upsert = sqlx::QueryBuilder::new(
                    "INSERT INTO items (session_id, id, position, response_id, type, status, created_at_us, data, \
                     created_by) ",
                );
                upsert.push_values(c.items, |mut row, it| {
                    row.push_bind(s.id.as_str())
                        .push_bind(&it.id)
                        .push_bind(it.position)
                        .push_bind(&it.response_id)
                        .push_bind(&it.item_type)
                        .push_bind(&it.status)
                        .push_bind(it.created_at_us)
                        .push_bind(json_text(&it.data))
                        .push_bind(&it.created_by);
                });
                upsert.push(
                    // An update (e.g. a call's status) keeps the item where it first appeared in the transcript.
                    " ON CONFLICT (session_id, id) DO UPDATE SET \
                     response_id = excluded.response_id, type = excluded.type, status = excluded.status, \
                     data = excluded.data, created_by = excluded.created_by",
                );
                upsert.build().execute(&mut *tx).await?;
            }
            for change in c.comments {
                match change {
                    CommentChange::Upsert { id, path, data, created_at_us } => {
                        sqlx::query(
                            "INSERT INTO comments (session_id, id, path, data, created_at_us) VALUES ($1, $2, $3, $4, $5) \
                             ON CONFLICT (session_id, id) DO UPDATE SET path = excluded.path, data = excluded.data",
                        )
                        .bind(s.id.as_str())
                        .bind(id)
                        .bind(path)
                        .bind(json_text(data))
                        .bind(*created_at_us)
                        .execute(&mut *tx)
                        .await?;
                    }
                    CommentChange::Delete { id } => {
                        sqlx::query("DELETE FROM comments WHERE session_id = $1 AND id = $2")
                            .bind(s.id.as_str())
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// The journal of a session's turn in progress, oldest first.
    pub async fn journal(&self, id: &SessionId) -> Result<Vec<JournalEntry>> {
        let sql = "SELECT idx, response_id, entry FROM turn_journal WHERE session_id = $1 ORDER BY idx";
        let rows: Vec<(i64, String, String)> = on_pool!(self, pool => {
            sqlx::query_as(sql).bind(id.as_str()).fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|(idx, response_id, entry)| {
                Ok(JournalEntry { idx, response_id, entry: parse_json(&entry, "turn_journal.entry")? })
            })
            .collect()
    }

    /// Events with `seq > after` (and `<= up_to` when given), oldest first, at most `limit`.
    pub async fn events_after(
        &self,
        id: &SessionId,
        after: i64,
        up_to: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let sql = "SELECT seq, type, data, created_at_us FROM events WHERE session_id = $1 AND seq > $2 \
                   AND seq <= $3 ORDER BY seq LIMIT $4";
        let rows: Vec<(i64, String, String, i64)> = on_pool!(self, pool => {
            sqlx::query_as(sql)
                .bind(id.as_str())
                .bind(after)
                .bind(up_to.unwrap_or(i64::MAX))
                .bind(limit as i64)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|(seq, event_type, data, created_at_us)| {
                Ok(StoredEvent { seq, event_type, data: parse_json(&data, "events.data")?, created_at_us })
            })
            .collect()
    }

    /// A page of a session's transcript in log order.
    pub async fn list_items(&self, id: &SessionId, page: &Page) -> Result<(Vec<Item>, bool)> {
        let cursor = match (&page.after, &page.before) {
            (Some(c), _) | (None, Some(c)) => {
                let sql = "SELECT position, id FROM items WHERE session_id = $1 AND id = $2";
                let found: Option<(i64, String)> = on_pool!(self, pool => {
                    sqlx::query_as(sql).bind(id.as_str()).bind(c.as_str()).fetch_optional(pool).await?
                });
                Some(found.ok_or_else(|| StoreError::UnknownCursor(c.clone()))?)
            }
            (None, None) => None,
        };
        let (cmp, scan_desc) = page_direction(page);
        let filter = if cursor.is_some() { format!("AND (position, id) {cmp} ($2, $3)") } else { String::new() };
        let dir = if scan_desc { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM items WHERE session_id = $1 {filter} ORDER BY position {dir}, id {dir} LIMIT {}",
            page.limit as i64 + 1
        );
        let rows: Vec<ItemTuple> = on_pool!(self, pool => {
            let mut q = sqlx::query_as(AssertSqlSafe(sql)).bind(id.as_str());
            if let Some((pos, item)) = &cursor {
                q = q.bind(*pos).bind(item.clone());
            }
            q.fetch_all(pool).await?
        });
        let (rows, has_more) = finish_page(rows, page);
        Ok((rows.into_iter().map(item_from_tuple).collect::<Result<_>>()?, has_more))
    }

    /// Registers a named config. Fails with `NameTaken` when the name is in use (the table's unique constraint
    /// decides, so two servers racing on one Postgres cannot both win).
    pub async fn create_agent(&self, agent: &Agent) -> Result<()> {
        let _turn = self.write_turn().await;
        let result = on_pool!(self, pool => {
            sqlx::query("INSERT INTO agents (id, name, config, created_at_us) VALUES ($1, $2, $3, $4)")
                .bind(&agent.id)
                .bind(&agent.name)
                .bind(json_text(&agent.config))
                .bind(agent.created_at_us)
                .execute(pool)
                .await
                .map(|_| ())
        });
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::NameTaken(agent.name.clone())),
            Err(e) => Err(e.into()),
        }
    }

    /// An agent by id or by name.
    pub async fn get_agent(&self, id_or_name: &str) -> Result<Option<Agent>> {
        let row: Option<(String, String, String, i64)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, name, config, created_at_us FROM agents WHERE id = $1 OR name = $1")
                .bind(id_or_name)
                .fetch_optional(pool)
                .await?
        });
        row.map(|(id, name, config, created_at_us)| {
            Ok(Agent { id, name, config: parse_json(&config, "agents.config")?, created_at_us })
        })
        .transpose()
    }

    /// Every agent, by name.
    pub async fn list_agents(&self) -> Result<Vec<Agent>> {
        let rows: Vec<(String, String, String, i64)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT id, name, config, created_at_us FROM agents ORDER BY name").fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|(id, name, config, created_at_us)| {
                Ok(Agent { id, name, config: parse_json(&config, "agents.config")?, created_at_us })
            })
            .collect()
    }

    /// Stores a file of a session.
    pub async fn put_file(&self, session: &SessionId, meta: &FileMeta, content: &[u8]) -> Result<()> {
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO files (session_id, id, name, content_type, bytes, content, source, created_at_us) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(session.as_str())
            .bind(&meta.id)
            .bind(&meta.name)
            .bind(&meta.content_type)
            .bind(meta.bytes)
            .bind(content)
            .bind(&meta.source)
            .bind(meta.created_at_us)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    pub async fn get_file(&self, session: &SessionId, id: &str) -> Result<Option<FileMeta>> {
        let sql = format!("SELECT {FILE_COLUMNS} FROM files WHERE session_id = $1 AND id = $2");
        let row: Option<FileTuple> = on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(session.as_str()).bind(id).fetch_optional(pool).await?
        });
        Ok(row.map(file_from_tuple))
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
        let cursor = match (&page.after, &page.before) {
            (Some(c), _) | (None, Some(c)) => {
                let found = self.get_file(session, c).await?.ok_or_else(|| StoreError::UnknownCursor(c.clone()))?;
                Some((found.created_at_us, found.id))
            }
            (None, None) => None,
        };
        let (cmp, scan_desc) = page_direction(page);
        let filter = if cursor.is_some() { format!("AND (created_at_us, id) {cmp} ($2, $3)") } else { String::new() };
        let dir = if scan_desc { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {FILE_COLUMNS} FROM files WHERE session_id = $1 {filter} ORDER BY created_at_us {dir}, id {dir} LIMIT {}",
            page.limit as i64 + 1
        );
        let rows: Vec<FileTuple> = on_pool!(self, pool => {
            let mut q = sqlx::query_as(AssertSqlSafe(sql)).bind(session.as_str());
            if let Some((at, id)) = &cursor {
                q = q.bind(*at).bind(id.clone());
            }
            q.fetch_all(pool).await?
        });
        let (rows, has_more) = finish_page(rows, page);
        Ok((rows.into_iter().map(file_from_tuple).collect(), has_more))
    }

    /// Deletes a file; false when there was none.
    pub async fn delete_file(&self, session: &SessionId, id: &str) -> Result<bool> {
        let _turn = self.write_turn().await;
        let done = on_pool!(self, pool => {
            sqlx::query("DELETE FROM files WHERE session_id = $1 AND id = $2").bind(session.as_str()).bind(id).execute(pool).await?.rows_affected()
        });
        Ok(done > 0)
    }

    /// A session's comments, oldest first, optionally only those on `path`.
    pub async fn list_comments(&self, session: &SessionId, path: Option<&str>) -> Result<Vec<Value>> {
        let rows: Vec<(String,)> = on_pool!(self, pool => {
            match path {
                Some(p) => sqlx::query_as("SELECT data FROM comments WHERE session_id = $1 AND path = $2 ORDER BY created_at_us, id")
                    .bind(session.as_str()).bind(p).fetch_all(pool).await?,
                None => sqlx::query_as("SELECT data FROM comments WHERE session_id = $1 ORDER BY created_at_us, id")
                    .bind(session.as_str()).fetch_all(pool).await?,
            }
        });
        rows.into_iter().map(|(d,)| parse_json(&d, "comments.data")).collect()
    }

    pub async fn get_comment(&self, session: &SessionId, id: &str) -> Result<Option<Value>> {
        let row: Option<(String,)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT data FROM comments WHERE session_id = $1 AND id = $2")
                .bind(session.as_str()).bind(id).fetch_optional(pool).await?
        });
        row.map(|(d,)| parse_json(&d, "comments.data")).transpose()
    }

    /// Number of stored sessions.
    pub async fn count_sessions(&self) -> Result<i64> {
        let (n,): (i64,) = on_pool!(self, pool => {
            sqlx::query_as("SELECT COUNT(*) FROM sessions").fetch_one(pool).await?
        });
        Ok(n)
    }
}

/// For a page request: the comparison against the cursor and whether to scan newest-first. A `before` page is
/// scanned away from the cursor in the opposite order and flipped back by `finish_page`.
fn page_direction(page: &Page) -> (&'static str, bool) {
    let before = page.after.is_none() && page.before.is_some();
    match (page.descending, before) {
        (true, false) => ("<", true),
        (true, true) => (">", false),
        (false, false) => (">", false),
        (false, true) => ("<", true),
    }
}

fn finish_page<T>(mut rows: Vec<T>, page: &Page) -> (Vec<T>, bool) {
    let has_more = rows.len() > page.limit as usize;
    rows.truncate(page.limit as usize);
    if page.after.is_none() && page.before.is_some() {
        rows.reverse();
    }
    (rows, has_more)
}

fn json_text(v: &Value) -> String {
    v.to_string()
}

fn parse_json(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

fn session_from_tuple(t: SessionTuple) -> Result<SessionRecord> {
    let (
        id,
        created_at_us,
        updated_at_us,
        title,
        labels,
        status,
        error,
        config,
        agent_id,
        kind,
        parent,
        last_seq,
        active,
        usage,
        policy,
    ) = t;
    let policy: PolicyFold =
        serde_json::from_str(&policy).map_err(|e| StoreError::Corrupt(format!("sessions.policy: {e}")))?;
    let usage_by_model = match parse_json(&usage, "sessions.usage_by_model")? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let labels = match parse_json(&labels, "sessions.labels")? {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let last_task_error: Option<TaskError> = match error {
        Some(text) => Some(
            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("sessions.last_task_error: {e}")))?,
        ),
        None => None,
    };
    Ok(SessionRecord {
        id: SessionId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at_us,
        updated_at_us,
        title,
        labels,
        status: SessionStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("sessions.status '{status}'")))?,
        last_task_error,
        config: parse_json(&config, "sessions.config")?,
        agent_id,
        kind,
        parent_session_id: parent
            .map(|p| SessionId::parse(&p))
            .transpose()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        last_seq,
        active_response_id: active,
        usage_by_model,
        policy,
    })
}

fn item_from_tuple(t: ItemTuple) -> Result<Item> {
    let (id, position, response_id, item_type, status, created_at_us, data, created_by) = t;
    Ok(Item {
        id,
        position,
        response_id,
        item_type,
        status,
        created_at_us,
        data: parse_json(&data, "items.data")?,
        created_by,
    })
}
