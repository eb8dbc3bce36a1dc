//! A commit's rows as owned bound values: what a group of commits is written from, by whichever committer holds
//! the write turn (grouped.rs), on either backend.

use super::commit::{Commit, SessionColumns};
use super::json_text;
use crate::ids::SessionId;

/// Most bound values one group's statements take (SQLite allows 32,766 per statement).
pub(super) const MAX_VALUES: usize = 30_000;

/// A commit's rows as bound values (owned: the group is written by whichever committer holds the write turn).
pub(super) struct Rows {
    pub id: SessionId,
    pub expected_last_seq: i64,
    /// The session's columns, in `SESSION_COLUMNS` order.
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
const SESSION_VALUES: usize = 13;
const JOURNAL_VALUES: usize = 4;
const EVENT_VALUES: usize = 5;
const ITEM_VALUES: usize = 9;

fn values_of(c: &Commit<'_>) -> usize {
    SESSION_VALUES + 2 + c.journal.len() * JOURNAL_VALUES + c.events.len() * EVENT_VALUES + c.items.len() * ITEM_VALUES
}

/// Whether a commit can join a group: no comment or file rows (rare; written alone, in their own transaction),
/// not a journal cleared and refilled at once, and small enough for one statement per table.
pub(super) fn fits(c: &Commit<'_>) -> bool {
    let refilled = c.clear_journal && !c.journal.is_empty();
    c.comments.is_empty() && c.files.is_empty() && !refilled && values_of(c) <= MAX_VALUES
}

impl Rows {
    pub(super) fn of(c: &Commit<'_>) -> Rows {
        let s = c.session;
        Rows {
            id: s.id.clone(),
            expected_last_seq: c.expected_last_seq,
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
        SESSION_VALUES
            + 2
            + self.journal.len() * JOURNAL_VALUES
            + self.events.len() * EVENT_VALUES
            + self.items.len() * ITEM_VALUES
    }
}
