//! One transaction's worth of writes to one session, produced by its actor: the session's fold, its new events,
//! and every row folded from them (items, comments, files, the turn's journal). Written together or not at all.

use serde_json::Value;

use super::{
    Backend, CommentChange, FileChange, JournalEntry, Result, Store, StoreError, item_upsert, json_text, on_pool,
};
use crate::record::{Item, SessionRecord, StoredEvent};

/// The session row's columns as the writers bind them: its fold after the commit, JSON fields as text.
pub(super) struct SessionColumns {
    pub last_seq: i64,
    pub updated_at_us: i64,
    pub title: Option<String>,
    pub labels: String,
    pub status: &'static str,
    pub last_task_error: Option<String>,
    pub active_response_id: Option<String>,
    pub usage_by_model: String,
    pub policy: String,
    pub archived: i32,
    pub settings: String,
}

impl SessionColumns {
    pub(super) fn of(s: &SessionRecord) -> SessionColumns {
        SessionColumns {
            last_seq: s.last_seq,
            updated_at_us: s.updated_at_us,
            title: s.title.clone(),
            labels: json_text(&Value::Object(s.labels.clone())),
            status: s.status.as_str(),
            last_task_error: s
                .last_task_error
                .as_ref()
                .map(|e| json_text(&serde_json::to_value(e).unwrap_or_default())),
            active_response_id: s.active_response_id.clone(),
            usage_by_model: json_text(&Value::Object(s.usage_by_model.clone())),
            policy: json_text(&serde_json::to_value(&s.policy).unwrap_or_default()),
            archived: i32::from(s.archived),
            settings: json_text(&serde_json::to_value(&s.settings).unwrap_or_default()),
        }
    }
}

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
    /// Files stored or removed with these events.
    pub files: &'a [FileChange],
    /// Host-call results of the running turn recorded with these events.
    pub journal: &'a [JournalEntry],
    /// The turn ended: its journal is no longer needed.
    pub clear_journal: bool,
    /// What the turn that ended here spent on its model, added to its UTC day's total.
    pub spend: Option<DailySpend>,
}

/// Money spent on model calls on one UTC day.
#[derive(Clone, Debug, PartialEq)]
pub struct DailySpend {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub cost_usd: f64,
}

impl Store {
    /// A commit in an explicit transaction, a statement per table and per comment or file change: the way for
    /// commits that fit neither one Postgres statement nor a SQLite group.
    pub(super) async fn commit_in_transaction(&self, c: &Commit<'_>) -> Result<()> {
        let s = c.session;
        let columns = SessionColumns::of(s);
        let _turn = self.write_turn().await;
        on_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            // The guarded update comes first: it takes the write lock and proves we are the only writer.
            let updated = sqlx::query(
                "UPDATE sessions SET last_seq = $1, updated_at_us = $2, title = $3, labels = $4, status = $5, \
                 last_task_error = $6, active_response_id = $7, usage_by_model = $8, policy = $9, archived = $10, \
                 settings = $11 WHERE id = $12 AND last_seq = $13",
            )
            .bind(columns.last_seq)
            .bind(columns.updated_at_us)
            .bind(&columns.title)
            .bind(&columns.labels)
            .bind(columns.status)
            .bind(&columns.last_task_error)
            .bind(&columns.active_response_id)
            .bind(&columns.usage_by_model)
            .bind(&columns.policy)
            .bind(columns.archived)
            .bind(&columns.settings)
            .bind(s.id.as_str())
            .bind(c.expected_last_seq)
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
            if let Some(spend) = &c.spend {
                sqlx::query(
                    "INSERT INTO daily_spend (day, cost_usd) VALUES ($1, $2) \
                     ON CONFLICT (day) DO UPDATE SET cost_usd = daily_spend.cost_usd + excluded.cost_usd",
                )
                .bind(&spend.day)
                .bind(spend.cost_usd)
                .execute(&mut *tx)
                .await?;
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
                upsert.push(concat!(" ", item_upsert!()));
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
            for change in c.files {
                match change {
                    FileChange::Put { meta, content } => {
                        sqlx::query(
                            "INSERT INTO files (session_id, id, name, content_type, bytes, content, source, \
                             created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        )
                        .bind(s.id.as_str())
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
                    FileChange::Delete { id } => {
                        sqlx::query("DELETE FROM files WHERE session_id = $1 AND id = $2")
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
}

impl Store {
    /// Spend per UTC day from `since` (`YYYY-MM-DD`) on, oldest first, and the all-time total.
    pub async fn daily_spend(&self, since: &str) -> Result<(Vec<DailySpend>, f64)> {
        let rows: Vec<(String, f64)> = on_pool!(self, pool => {
            sqlx::query_as("SELECT day, cost_usd FROM daily_spend WHERE day >= $1 ORDER BY day")
                .bind(since)
                .fetch_all(pool)
                .await?
        });
        let (total,): (Option<f64>,) = on_pool!(self, pool => {
            sqlx::query_as("SELECT SUM(cost_usd) FROM daily_spend").fetch_one(pool).await?
        });
        let days = rows.into_iter().map(|(day, cost_usd)| DailySpend { day, cost_usd }).collect();
        Ok((days, total.unwrap_or(0.0)))
    }
}
