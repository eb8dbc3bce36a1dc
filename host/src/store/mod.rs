//! Durable storage: one store with two backends (SQLite by default, Postgres when the URL says so).
//!
//! Both backends run the same SQL text (`$N` placeholders work in both), so every query is written once and
//! `on_pool!` expands it per backend. One file per table family: `sessions`, `log` (events, items, the turn
//! journal), `files`, `comments`, `agents`; `commit` is one session's transaction across them, written with other sessions' commits
//! (`grouped`: as one Postgres statement, `group_postgres`, or one SQLite transaction, `group_sqlite`, from owned
//! `rows`) or, with comment and file rows, alone (`transaction`); `migrate`
//! brings the schema up to date on connect; `paging` is the keyset paging they share.

mod agents;
mod comments;
mod commit;
mod files;
mod group_postgres;
mod group_sqlite;
mod grouped;
mod log;
mod migrate;
mod paging;
mod retry;
mod rows;
mod runners;
mod sessions;
mod transaction;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::ids::SessionId;

pub use agents::Agent;
pub use comments::CommentChange;
pub use commit::{Commit, DailySpend};
pub use files::{FileChange, FileMeta, FileSource};
pub use log::JournalEntry;
pub use paging::Page;
pub use runners::RunnerRecord;
pub(crate) use sessions::session_of_pg_row;
pub use sessions::{SessionFilter, SessionSort};

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
    /// The writer that took this commit into its group stopped before the group was written (nothing was).
    #[error("the write was interrupted before it reached the database")]
    Interrupted,
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
use on_pool;

/// How an item written again is stored: its fields replaced, its `position` kept (where it first appeared in the
/// transcript). The memory transcript and a replayed turn's conversation rely on it (session/transcript.rs,
/// turn/history.rs). Every writer of items ends its upsert with this.
macro_rules! item_upsert {
    () => {
        "ON CONFLICT (session_id, id) DO UPDATE SET response_id = excluded.response_id, type = excluded.type, \
         status = excluded.status, data = excluded.data, created_by = excluded.created_by"
    };
}
use item_upsert;

/// A row struct read by column name on both backends: sqlx's `FromRow` derive without its proc-macro crate
/// (which would compile both database drivers a second time).
macro_rules! row {
    ($(#[$meta:meta])* struct $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        struct $name { $($field: $ty,)* }

        impl<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> for $name {
            fn from_row(row: &'r sqlx::sqlite::SqliteRow) -> Result<Self, sqlx::Error> {
                use sqlx::Row;
                Ok($name { $($field: row.try_get(stringify!($field))?,)* })
            }
        }

        impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for $name {
            fn from_row(row: &'r sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
                use sqlx::Row;
                Ok($name { $($field: row.try_get(stringify!($field))?,)* })
            }
        }
    };
}
use row;

#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// SQLite has one writer at a time; contending writers would sleep in SQLite's busy handler (milliseconds).
    /// Queueing them here instead keeps write latency flat under load. None for Postgres.
    write_gate: Option<Arc<tokio::sync::Mutex<()>>>,
    /// Commits waiting for the write turn, written together (grouped.rs).
    queue: Arc<grouped::Queue>,
    /// Postgres: this process's name (`replica_<hex>`), set on every connection as the `omnigent.replica` setting,
    /// so that a commit notification names the process that wrote (the operator's `application_name` is left as
    /// the URL says).
    process_name: Option<Arc<str>>,
}

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Self> {
        let mut process_name = None;
        let backend = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // In WAL mode NORMAL never corrupts and never loses a committed transaction when the process dies
                // (SIGKILL included); only an OS crash or power loss may roll back the newest commits.
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true);
            // No ping before each use: a local file does not go stale, and the ping is a round trip to the
            // connection's worker thread on every query.
            let pool = SqlitePoolOptions::new()
                .max_connections(8)
                .test_before_acquire(false)
                // The commit guard (group_sqlite.rs) lives in each connection's temp schema.
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        sqlx::Executor::execute(conn, sqlx::raw_sql(group_sqlite::GUARD)).await.map(|_| ())
                    })
                })
                .connect_with(options)
                .await?;
            Backend::Sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let name = crate::ids::prefixed("replica");
            let options = PgConnectOptions::from_str(url)?.options([("omnigent.replica", &name)]);
            process_name = Some(Arc::from(name));
            let pool = PgPoolOptions::new()
                .max_connections(16)
                .min_connections(2)
                .acquire_timeout(Duration::from_secs(10))
                // A ping (a network round trip) only before reusing a connection that sat idle: one in steady use
                // is known alive, and a write that finds it dead is retried (retry.rs). After a quiet second,
                // the database may have restarted: then the ping lets the pool replace the connection unseen.
                .test_before_acquire(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for < Duration::from_secs(1) {
                            return Ok(true);
                        }
                        Ok(sqlx::Connection::ping(conn).await.is_ok())
                    })
                })
                .connect_with(options)
                .await?;
            Backend::Postgres(pool)
        } else {
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        };
        let write_gate = matches!(backend, Backend::Sqlite(_)).then(|| Arc::new(tokio::sync::Mutex::new(())));
        let store = Store { backend, write_gate, queue: Arc::default(), process_name };
        store.migrate().await?;
        Ok(store)
    }

    pub fn kind(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite(_) => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// The Postgres pool and this process's name on it, for what coordinates replicas through the same database
    /// (cluster/); None on SQLite.
    pub fn postgres(&self) -> Option<(&PgPool, &str)> {
        match (&self.backend, &self.process_name) {
            (Backend::Postgres(pool), Some(name)) => Some((pool, name)),
            _ => None,
        }
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }

    /// Appends events (and their folds) atomically. Fails with `Conflict`, writing nothing, when the session's
    /// `last_seq` is not `expected_last_seq` (another writer, or the session was deleted). A transient failure is
    /// retried; a retry that finds the log already at this commit's head knows the earlier attempt committed (only
    /// its answer was lost), since this session has one writer.
    pub async fn commit(&self, c: &Commit<'_>) -> Result<()> {
        retry::retrying("a commit", |attempt| async move {
            match self.commit_once(c).await {
                Err(StoreError::Conflict(id)) if attempt > 0 => match self.get_session(&id).await? {
                    Some(now) if now.last_seq == c.session.last_seq => Ok(()),
                    _ => Err(StoreError::Conflict(id)),
                },
                other => other,
            }
        })
        .await
    }

    /// One attempt, the fastest way the backend and the commit allow.
    async fn commit_once(&self, c: &Commit<'_>) -> Result<()> {
        if rows::fits(c) { self.commit_grouped(c).await } else { self.commit_in_transaction(c).await }
    }

    /// This writer's turn (SQLite only; Postgres writers run concurrently).
    async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.write_gate {
            Some(gate) => Some(gate.lock().await),
            None => None,
        }
    }
}

fn json_text(v: &Value) -> String {
    v.to_string()
}

fn parse_json(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}
