//! The schema: migrations embedded from `migrations/<backend>/`, applied on connect in one transaction (on
//! Postgres under an advisory lock, so two servers starting at once do not both migrate). A database migrated by a
//! newer omnigent is refused rather than guessed at.
//!
//! Not `sqlx::migrate!`: it needs sqlx's proc-macro crate, which compiles both database drivers a second time,
//! and databases made so far record their versions in `omnigent_migrations`, which sqlx's migrator does not read.

use sqlx::AssertSqlSafe;

use super::{Backend, BackendKind, Result, Store, StoreError, on_pool};

struct Migration {
    version: i64,
    name: &'static str,
    sql: &'static str,
}

/// One list per backend, from the same file names: `NNNN_name.sql`.
macro_rules! migrations {
    ($backend:literal: $($version:literal $name:literal),* $(,)?) => {
        &[$(Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../../../migrations/", $backend, "/", stringify!($version), "_", $name, ".sql")),
        }),*]
    };
}

#[allow(clippy::zero_prefixed_literal)] // the versions read as the file names do
const SQLITE: &[Migration] = migrations!("sqlite":
    0001 "sessions", 0002 "agents", 0003 "files", 0004 "comments", 0005 "children", 0006 "turn_state", 0007 "policies", 0008 "settings", 0009 "spend", 0010 "runners", 0011 "writer_epoch");
#[allow(clippy::zero_prefixed_literal)]
const POSTGRES: &[Migration] = migrations!("postgres":
    0001 "sessions", 0002 "agents", 0003 "files", 0004 "comments", 0005 "children", 0006 "turn_state", 0007 "policies", 0008 "settings", 0009 "spend",
    // Postgres only: replicas (host/src/cluster).
    0010 "replicas", 0011 "runners", 0012 "writer_epoch");

/// Serializes concurrent migrations of one Postgres database.
const MIGRATION_LOCK: i64 = 72436770;

impl Store {
    pub(super) async fn migrate(&self) -> Result<()> {
        let migrations = match self.kind() {
            BackendKind::Sqlite => SQLITE,
            BackendKind::Postgres => POSTGRES,
        };
        let known = migrations.iter().map(|m| m.version).max().unwrap_or(0);
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            if self.kind() == BackendKind::Postgres {
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(MIGRATION_LOCK).execute(&mut *tx).await?;
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
                    .bind(crate::record::now_us())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }
}
