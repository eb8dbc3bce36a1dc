//! One transaction's worth of writes to one session, produced by its actor: the session's fold, its new events,
//! and every row folded from them (items, comments, files, the turn's journal). Written together or not at all.

use super::{Backend, CommentChange, FileChange, JournalEntry, Result, Store, on_pool};
use crate::record::{Item, SessionRecord, StoredEvent};

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
