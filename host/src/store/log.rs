//! A session's log and what is folded from it row by row: `events` (the source of truth), `items` (the
//! transcript) and `turn_journal` (the host calls of the turn in progress).

use serde_json::Value;
use sqlx::AssertSqlSafe;

use super::retry::retrying;
use super::{Backend, Page, Result, Store, StoreError, on_pool, parse_json, row};
use crate::ids::SessionId;
use crate::record::{Item, StoredEvent};

/// One recorded host call of the turn in progress (see `turn::journal` for what `entry` holds).
#[derive(Clone, Debug, PartialEq)]
pub struct JournalEntry {
    pub idx: i64,
    pub response_id: String,
    /// `{"kind": …, …}`
    pub entry: Value,
}

row! {
    struct ItemRow {
        id: String,
        position: i64,
        response_id: Option<String>,
        item_type: String,
        status: String,
        created_at_us: i64,
        data: String,
        created_by: Option<String>,
    }
}

const ITEM_COLUMNS: &str = "id, position, response_id, type AS item_type, status, created_at_us, data, created_by";

row! {
    struct EventRow {
        seq: i64,
        event_type: String,
        data: String,
        created_at_us: i64,
    }
}

row! {
    struct JournalRow {
        idx: i64,
        response_id: String,
        entry: String,
    }
}

impl Store {
    /// The journal of a session's turn in progress, oldest first.
    pub async fn journal(&self, id: &SessionId) -> Result<Vec<JournalEntry>> {
        let sql = "SELECT idx, response_id, entry FROM turn_journal WHERE session_id = $1 ORDER BY idx";
        let rows: Vec<JournalRow> = retrying("reading a turn's journal", |_| async move {
            Ok(on_pool!(self, pool => { sqlx::query_as(sql).bind(id.as_str()).fetch_all(pool).await? }))
        })
        .await?;
        rows.into_iter()
            .map(|r| {
                let entry = parse_json(&r.entry, "turn_journal.entry")?;
                Ok(JournalEntry { idx: r.idx, response_id: r.response_id, entry })
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
        let sql = "SELECT seq, type AS event_type, data, created_at_us FROM events WHERE session_id = $1 \
                   AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4";
        let rows: Vec<EventRow> = retrying("reading a session's log", |_| async move {
            Ok(on_pool!(self, pool => {
                sqlx::query_as(sql)
                    .bind(id.as_str())
                    .bind(after)
                    .bind(up_to.unwrap_or(i64::MAX))
                    .bind(limit as i64)
                    .fetch_all(pool)
                    .await?
            }))
        })
        .await?;
        rows.into_iter()
            .map(|r| {
                let data = parse_json(&r.data, "events.data")?;
                Ok(StoredEvent { seq: r.seq, event_type: r.event_type, data, created_at_us: r.created_at_us })
            })
            .collect()
    }

    /// The items one response produced, in transcript order (a resumed turn's output when it ends).
    pub async fn items_of_response(&self, id: &SessionId, response_id: &str) -> Result<Vec<Item>> {
        let sql = format!(
            "SELECT {ITEM_COLUMNS} FROM items WHERE session_id = $1 AND response_id = $2 ORDER BY position, id"
        );
        let rows: Vec<ItemRow> = on_pool!(self, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(id.as_str()).bind(response_id).fetch_all(pool).await?
        });
        rows.into_iter().map(ItemRow::item).collect()
    }

    /// The whole transcript, in order, read a page at a time. A failed read is an error, never a shorter one.
    pub async fn all_items(&self, id: &SessionId) -> Result<Vec<Item>> {
        let mut items: Vec<Item> = Vec::new();
        let mut page = Page { limit: 1000, after: None, before: None, descending: false };
        loop {
            let (batch, more) = self.list_items(id, &page).await?;
            page.after = batch.last().map(|i| i.id.clone());
            items.extend(batch);
            if !more {
                return Ok(items);
            }
        }
    }

    /// A page of a session's transcript in log order.
    pub async fn list_items(&self, id: &SessionId, page: &Page) -> Result<(Vec<Item>, bool)> {
        let cursor = match page.cursor() {
            Some(c) => {
                let sql = "SELECT position, id FROM items WHERE session_id = $1 AND id = $2";
                let found: Option<(i64, String)> = on_pool!(self, pool => {
                    sqlx::query_as(sql).bind(id.as_str()).bind(c).fetch_optional(pool).await?
                });
                Some(found.ok_or_else(|| StoreError::UnknownCursor(c.to_string()))?)
            }
            None => None,
        };
        let (keyset, tail) = page.sql("position", 2);
        let keyset = keyset.map(|k| format!("AND {k}")).unwrap_or_default();
        let sql = format!("SELECT {ITEM_COLUMNS} FROM items WHERE session_id = $1 {keyset} {tail}");
        let rows: Vec<ItemRow> = retrying("reading a session's items", |_| {
            let (sql, cursor) = (sql.clone(), cursor.clone());
            async move {
                Ok(on_pool!(self, pool => {
                    let mut q = sqlx::query_as(AssertSqlSafe(sql)).bind(id.as_str());
                    if let Some((pos, item)) = cursor {
                        q = q.bind(pos).bind(item);
                    }
                    q.fetch_all(pool).await?
                }))
            }
        })
        .await?;
        let (rows, has_more) = page.finish(rows);
        Ok((rows.into_iter().map(ItemRow::item).collect::<Result<_>>()?, has_more))
    }
}

/// How many of a session's newest items a lookup by tool call reads: a call waiting for its client belongs to the
/// turn in progress.
const CALL_SCAN: u32 = 1000;

impl Store {
    /// The items of a tool call (its `function_call`, its `function_call_output`), newest first, among the
    /// session's newest items.
    pub async fn items_for_call(&self, id: &SessionId, call_id: &str) -> Result<Vec<Item>> {
        let page = Page { limit: CALL_SCAN, after: None, before: None, descending: true };
        let (items, _) = self.list_items(id, &page).await?;
        Ok(items.into_iter().filter(|i| i.data["call_id"] == call_id).collect())
    }
}

impl ItemRow {
    fn item(self) -> Result<Item> {
        Ok(Item {
            data: parse_json(&self.data, "items.data")?,
            id: self.id,
            position: self.position,
            response_id: self.response_id,
            item_type: self.item_type,
            status: self.status,
            created_at_us: self.created_at_us,
            created_by: self.created_by,
        })
    }
}
