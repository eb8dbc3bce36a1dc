//! A commit's rows as owned bound values: what a group of commits is written from, by whichever committer holds
//! the write turn (grouped.rs), on either backend.

use serde_json::Value;

use super::commit::Commit;
use super::json_text;
use crate::ids::SessionId;
use crate::record::SessionRecord;

/// Most bound values one group's statements take (SQLite allows 32,766 per statement).
pub(super) const MAX_VALUES: usize = 30_000;

/// A commit's rows as bound values (owned: the group is written by whichever committer holds the write turn).
pub(super) struct Rows {
    pub id: SessionId,
    pub expected_last_seq: i64,
    /// The writer's fence: the session's `writer_epoch` must still be this one.
    pub writer_epoch: i64,
    /// The session row after the commit.
    pub session: SessionColumns,
    pub clear_journal: bool,
    /// (idx, response_id, entry)
    pub journal: Vec<(i64, String, String)>,
    /// (day, cost_usd)
    pub spend: Option<(String, f64)>,
    /// (seq, type, data, created_at_us)
    pub events: Vec<(i64, String, String, i64)>,
    pub items: Vec<ItemValues>,
}

pub(super) struct ItemValues {
    pub id: String,
    pub position: i64,
    pub response_id: Option<String>,
    pub item_type: String,
    pub status: String,
    pub created_at_us: i64,
    pub data: String,
    pub created_by: Option<String>,
}

/// Values bound per session row, journal entry, event and item.
const SESSION_VALUES: usize = 14;
const JOURNAL_VALUES: usize = 4;
const EVENT_VALUES: usize = 5;
const ITEM_VALUES: usize = 9;

/// Values a commit with this many journal entries, events and items binds (its session row and spend included).
fn values(journal: usize, events: usize, items: usize) -> usize {
    SESSION_VALUES + 2 + journal * JOURNAL_VALUES + events * EVENT_VALUES + items * ITEM_VALUES
}

/// Whether a commit can join a group: no comment or file rows (rare; written alone in a transaction with them,
/// transaction.rs), not a journal cleared and refilled at once, and small enough for one statement per table.
pub(super) fn fits(c: &Commit<'_>) -> bool {
    let refilled = c.clear_journal && !c.journal.is_empty();
    c.comments.is_empty()
        && c.files.is_empty()
        && !refilled
        && values(c.journal.len(), c.events.len(), c.items.len()) <= MAX_VALUES
}

impl Rows {
    pub(super) fn of(c: &Commit<'_>) -> Rows {
        let s = c.session;
        Rows {
            id: s.id.clone(),
            expected_last_seq: c.expected_last_seq,
            writer_epoch: s.writer_epoch,
            session: SessionColumns::of(s),
            clear_journal: c.clear_journal,
            journal: c.journal.iter().map(|j| (j.idx, j.response_id.clone(), json_text(&j.entry))).collect(),
            spend: c.spend.as_ref().map(|d| (d.day.clone(), d.cost_usd)),
            events: c
                .events
                .iter()
                .map(|e| (e.seq, e.event_type.clone(), json_text(&e.data), e.created_at_us))
                .collect(),
            items: c
                .items
                .iter()
                .map(|i| ItemValues {
                    id: i.id.clone(),
                    position: i.position,
                    response_id: i.response_id.clone(),
                    item_type: i.item_type.clone(),
                    status: i.status.clone(),
                    created_at_us: i.created_at_us,
                    data: json_text(&i.data),
                    created_by: i.created_by.clone(),
                })
                .collect(),
        }
    }

    pub(super) fn values(&self) -> usize {
        values(self.journal.len(), self.events.len(), self.items.len())
    }
}

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
