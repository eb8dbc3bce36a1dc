//! SQLite: commits of different sessions written together (group commit). SQLite has one writer at a time, so a
//! commit waits for the write turn anyway; the commits that queued up while one transaction was being written are
//! then written in a single transaction — one BEGIN, one statement per table for all of them, one COMMIT — instead
//! of one transaction each. Each session keeps its order (its actor has one commit in flight) and publishes its
//! events only once its own commit is answered (persist, then publish). If a group fails, it is rolled back and
//! each of its commits is written alone, so one session's conflict or bad row never fails another session's commit.

use std::collections::BTreeMap;
use std::sync::Mutex;

use sqlx::{QueryBuilder, Sqlite};
use tokio::sync::oneshot;

use super::commit::{Commit, SessionColumns};
use super::{Backend, Result, Store, StoreError, json_text};
use crate::ids::SessionId;

/// Most commits one group takes.
const MAX_GROUP: usize = 64;
/// Most bound values one group's statements take (SQLite allows 32,766 per statement).
const MAX_VALUES: usize = 30_000;

/// Commits waiting for the write turn, oldest first.
#[derive(Default)]
pub(super) struct Queue(Mutex<Vec<Pending>>);

struct Pending {
    rows: Rows,
    done: oneshot::Sender<Result<()>>,
}

/// A commit's rows as bound values (owned: the group is written by whichever committer holds the write turn).
struct Rows {
    id: SessionId,
    expected_last_seq: i64,
    /// The session's columns, in `SESSION_COLUMNS` order.
    session: SessionColumns,
    clear_journal: bool,
    /// (idx, response_id, entry)
    journal: Vec<(i64, String, String)>,
    /// (day, cost_usd)
    spend: Option<(String, f64)>,
    /// (seq, type, data, created_at_us)
    events: Vec<(i64, String, String, i64)>,
    items: Vec<ItemValues>,
}

struct ItemValues {
    id: String,
    position: i64,
    response_id: Option<String>,
    item_type: String,
    status: String,
    created_at_us: i64,
    data: String,
    created_by: Option<String>,
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
    fn of(c: &Commit<'_>) -> Rows {
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

    fn values(&self) -> usize {
        SESSION_VALUES
            + 2
            + self.journal.len() * JOURNAL_VALUES
            + self.events.len() * EVENT_VALUES
            + self.items.len() * ITEM_VALUES
    }
}

impl Store {
    /// Queues the commit, waits for the write turn, and then either finds it written by the group before, or writes
    /// the queue (its own commit among them) as one group.
    pub(super) async fn commit_grouped(&self, c: &Commit<'_>) -> Result<()> {
        let Some(queue) = &self.queue else { unreachable!("only SQLite groups commits") };
        let (done, mut answer) = oneshot::channel();
        queue.0.lock().unwrap().push(Pending { rows: Rows::of(c), done });
        let _turn = self.write_turn().await;
        loop {
            match answer.try_recv() {
                Ok(result) => return result,
                // The writer that took it was cancelled mid-group: its transaction was rolled back.
                Err(oneshot::error::TryRecvError::Closed) => return Err(StoreError::Interrupted),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let group = next_group(queue);
            self.write_group(group).await;
        }
    }

    /// Writes a group and answers each of its commits.
    async fn write_group(&self, group: Vec<Pending>) {
        let rows: Vec<&Rows> = group.iter().map(|p| &p.rows).collect();
        let result = self.write_rows(&rows).await;
        if result.is_ok() || group.len() == 1 {
            let mut result = Some(result);
            for pending in group {
                let _ = pending.done.send(result.take().unwrap_or(Ok(())));
            }
            return;
        }
        // Something in the group was refused (and nothing of it was written): each commit alone, with its own answer.
        tracing::debug!(commits = group.len(), "a group commit failed; writing its commits one by one");
        for pending in group {
            let result = self.write_rows(&[&pending.rows]).await;
            let _ = pending.done.send(result);
        }
    }

    /// One transaction for all of `rows`: the guarded update of every session (each must still be at its expected
    /// `last_seq`, or nothing is written), then every table's rows in one statement each.
    async fn write_rows(&self, rows: &[&Rows]) -> Result<()> {
        let Backend::Sqlite(pool) = &self.backend else { unreachable!("only SQLite groups commits") };
        let mut tx = pool.begin().await?;
        let mut update = QueryBuilder::<Sqlite>::new(
            "WITH v(id, expected, last_seq, updated_at_us, title, labels, status, last_task_error, \
             active_response_id, usage_by_model, policy, archived, settings) AS (",
        );
        update.push_values(rows, |mut b, r| {
            let s = &r.session;
            b.push_bind(r.id.as_str())
                .push_bind(r.expected_last_seq)
                .push_bind(s.last_seq)
                .push_bind(s.updated_at_us)
                .push_bind(&s.title)
                .push_bind(&s.labels)
                .push_bind(s.status)
                .push_bind(&s.last_task_error)
                .push_bind(&s.active_response_id)
                .push_bind(&s.usage_by_model)
                .push_bind(&s.policy)
                .push_bind(s.archived)
                .push_bind(&s.settings);
        });
        update.push(
            ") UPDATE sessions SET last_seq = v.last_seq, updated_at_us = v.updated_at_us, title = v.title, \
             labels = v.labels, status = v.status, last_task_error = v.last_task_error, \
             active_response_id = v.active_response_id, usage_by_model = v.usage_by_model, policy = v.policy, \
             archived = v.archived, settings = v.settings \
             FROM v WHERE sessions.id = v.id AND sessions.last_seq = v.expected",
        );
        let updated = update.build().execute(&mut *tx).await?;
        if updated.rows_affected() != rows.len() as u64 {
            // Another writer moved a session on (or deleted it): with one commit, that is its conflict.
            return Err(StoreError::Conflict(rows[0].id.clone()));
        }
        let cleared: Vec<&str> = rows.iter().filter(|r| r.clear_journal).map(|r| r.id.as_str()).collect();
        if !cleared.is_empty() {
            let mut delete = QueryBuilder::<Sqlite>::new("DELETE FROM turn_journal WHERE session_id IN (");
            let mut list = delete.separated(", ");
            for id in cleared {
                list.push_bind(id);
            }
            delete.push(")");
            delete.build().execute(&mut *tx).await?;
        }
        let journal: Vec<_> = rows.iter().flat_map(|r| r.journal.iter().map(move |j| (r.id.as_str(), j))).collect();
        if !journal.is_empty() {
            let mut insert =
                QueryBuilder::<Sqlite>::new("INSERT INTO turn_journal (session_id, idx, response_id, entry) ");
            insert.push_values(journal, |mut b, (id, (idx, response_id, entry))| {
                b.push_bind(id).push_bind(*idx).push_bind(response_id).push_bind(entry);
            });
            insert.build().execute(&mut *tx).await?;
        }
        let mut spent: BTreeMap<&str, f64> = BTreeMap::new();
        for (day, cost) in rows.iter().filter_map(|r| r.spend.as_ref()) {
            *spent.entry(day.as_str()).or_default() += cost;
        }
        if !spent.is_empty() {
            let mut upsert = QueryBuilder::<Sqlite>::new("INSERT INTO daily_spend (day, cost_usd) ");
            upsert.push_values(spent, |mut b, (day, cost)| {
                b.push_bind(day).push_bind(cost);
            });
            upsert.push(" ON CONFLICT (day) DO UPDATE SET cost_usd = daily_spend.cost_usd + excluded.cost_usd");
            upsert.build().execute(&mut *tx).await?;
        }
        let events: Vec<_> = rows.iter().flat_map(|r| r.events.iter().map(move |e| (r.id.as_str(), e))).collect();
        if !events.is_empty() {
            let mut insert =
                QueryBuilder::<Sqlite>::new("INSERT INTO events (session_id, seq, type, data, created_at_us) ");
            insert.push_values(events, |mut b, (id, (seq, event_type, data, at))| {
                b.push_bind(id).push_bind(*seq).push_bind(event_type).push_bind(data).push_bind(*at);
            });
            insert.build().execute(&mut *tx).await?;
        }
        let items: Vec<_> = rows.iter().flat_map(|r| r.items.iter().map(move |i| (r.id.as_str(), i))).collect();
        if !items.is_empty() {
            let mut upsert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO items (session_id, id, position, response_id, type, status, created_at_us, data, \
                 created_by) ",
            );
            upsert.push_values(items, |mut b, (id, i)| {
                b.push_bind(id)
                    .push_bind(&i.id)
                    .push_bind(i.position)
                    .push_bind(&i.response_id)
                    .push_bind(&i.item_type)
                    .push_bind(&i.status)
                    .push_bind(i.created_at_us)
                    .push_bind(&i.data)
                    .push_bind(&i.created_by);
            });
            upsert.push(
                // An update (e.g. a call's status) keeps the item where it first appeared in the transcript.
                " ON CONFLICT (session_id, id) DO UPDATE SET \
                 response_id = excluded.response_id, type = excluded.type, status = excluded.status, \
                 data = excluded.data, created_by = excluded.created_by",
            );
            upsert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The oldest queued commits, as many as one group takes.
fn next_group(queue: &Queue) -> Vec<Pending> {
    let mut waiting = queue.0.lock().unwrap();
    let mut values = 0;
    let mut take = 0;
    for pending in waiting.iter() {
        values += pending.rows.values();
        if take == MAX_GROUP || (take > 0 && values > MAX_VALUES) {
            break;
        }
        take += 1;
    }
    waiting.drain(..take).collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::{Map, json};

    use super::*;
    use crate::record::{Item, SessionRecord, StoredEvent, now_us};

    fn event(seq: i64) -> StoredEvent {
        StoredEvent { seq, event_type: "t".into(), data: json!({"n": seq}), created_at_us: now_us() }
    }

    fn item(id: &str, position: i64) -> Item {
        Item {
            id: id.into(),
            position,
            response_id: None,
            item_type: "message".into(),
            status: "completed".into(),
            created_at_us: now_us(),
            data: json!({"role": "user", "content": id}),
            created_by: None,
        }
    }

    /// Commits one event (and one item) to `s`, from `expected` on.
    async fn commit(store: &Store, s: &SessionRecord, expected: i64) -> Result<()> {
        let next = SessionRecord { last_seq: expected + 1, ..s.clone() };
        let items = [item(&format!("i_{}", s.id.as_str()), expected + 1)];
        store
            .commit(&Commit {
                expected_last_seq: expected,
                session: &next,
                events: &[event(expected + 1)],
                items: &items,
                comments: &[],
                files: &[],
                journal: &[],
                clear_journal: false,
                spend: None,
            })
            .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_commits_are_written_as_one_group_and_a_stale_one_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("g.db").display());
        let store = Store::connect(&url).await.unwrap();
        let mut sessions = Vec::new();
        for _ in 0..5 {
            let s = SessionRecord::new(json!({}), None, Map::new(), now_us());
            store.create_session(&s).await.unwrap();
            sessions.push(s);
        }
        // Hold the write turn so every commit below queues up; they are then written as one group.
        let turn = store.write_turn().await;
        let mut tasks = Vec::new();
        for (n, s) in sessions.iter().enumerate() {
            let (store, s) = (store.clone(), s.clone());
            // The last one is stale: its writer thinks the log is at 7.
            let expected = if n == 4 { 7 } else { 0 };
            tasks.push(tokio::spawn(async move { commit(&store, &s, expected).await }));
        }
        let queue = Arc::clone(store.queue.as_ref().unwrap());
        while queue.0.lock().unwrap().len() < 5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(turn);
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        for (n, (s, result)) in sessions.iter().zip(&results).enumerate() {
            let events = store.events_after(&s.id, 0, None, 10).await.unwrap();
            let items = store.all_items(&s.id).await.unwrap();
            if n == 4 {
                assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
                assert!(events.is_empty() && items.is_empty(), "the stale commit wrote nothing");
            } else {
                assert!(result.is_ok(), "{result:?}");
                assert_eq!(events.len(), 1, "session {n}: its event once");
                assert_eq!(items.len(), 1, "session {n}: its item once");
                assert_eq!(store.get_session(&s.id).await.unwrap().unwrap().last_seq, 1);
            }
        }
        assert!(queue.0.lock().unwrap().is_empty());

        // A group where every commit is good: one transaction, each session moved on once.
        let turn = store.write_turn().await;
        let tasks: Vec<_> = sessions[..4]
            .iter()
            .map(|s| {
                let (store, s) = (store.clone(), s.clone());
                tokio::spawn(async move { commit(&store, &s, 1).await })
            })
            .collect();
        while queue.0.lock().unwrap().len() < 4 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        drop(turn);
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        for s in &sessions[..4] {
            assert_eq!(store.events_after(&s.id, 0, None, 10).await.unwrap().len(), 2);
            assert_eq!(store.get_session(&s.id).await.unwrap().unwrap().last_seq, 2);
        }
    }
}
