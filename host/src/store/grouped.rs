//! Commits of different sessions written together (group commit). Commits queue for the write turn (SQLite has one
//! writer at a time anyway; on Postgres one group is in flight at a time); whoever gets the turn writes every commit
//! that queued up meanwhile as one group — on SQLite one script, a transaction with one statement per table
//! (group_sqlite.rs), on Postgres one statement (group_postgres.rs) — instead of one transaction each. Each session
//! keeps its order (its actor has one commit in flight) and publishes its events only once its own commit is
//! answered (persist, then publish). If a group fails, nothing of it is written and each of its commits is written
//! alone, so one session's conflict or bad row never fails another session's commit. A commit once queued is
//! written even if its caller stops waiting (an actor always waits; only shutdown drops one).

use std::sync::Mutex;

use tokio::sync::oneshot;

use super::commit::Commit;
use super::rows::{MAX_VALUES, Rows};
use super::{Backend, Result, Store, StoreError, group_postgres, group_sqlite};

/// Most commits one group takes.
const MAX_GROUP: usize = 64;

/// Commits waiting for the write turn, oldest first, and (Postgres) the turn itself; SQLite's turn is the store's
/// write gate, which its other writes take too.
#[derive(Default)]
pub(super) struct Queue {
    waiting: Mutex<Vec<Pending>>,
    turn: tokio::sync::Mutex<()>,
}

struct Pending {
    rows: Rows,
    done: oneshot::Sender<Result<()>>,
}

impl Store {
    /// Queues the commit, waits for the write turn, and then either finds it written by the group before, or writes
    /// the queue (its own commit among them) as one group.
    pub(super) async fn commit_grouped(&self, c: &Commit<'_>) -> Result<()> {
        let queue = &self.queue;
        let (done, mut answer) = oneshot::channel();
        queue.waiting.lock().unwrap().push(Pending { rows: Rows::of(c), done });
        let _turn = match &self.write_gate {
            Some(gate) => gate.lock().await,
            None => queue.turn.lock().await,
        };
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

    async fn write_rows(&self, rows: &[&Rows]) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(pool) => group_sqlite::write(pool, rows).await,
            Backend::Postgres(pool) => group_postgres::write(pool, rows).await,
        }
    }
}

/// The oldest queued commits, as many as one group takes.
fn next_group(queue: &Queue) -> Vec<Pending> {
    let mut waiting = queue.waiting.lock().unwrap();
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
    use crate::store::on_pool;

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
    async fn queued_commits_are_written_as_one_group_and_stale_or_fenced_ones_fail_alone() {
        for db in omnigent_testkit::databases().await {
            group_then_stale(&Store::connect(&db.url).await.unwrap()).await;
        }
    }

    /// Holds the write turn, as a writer in the middle of a group does.
    async fn hold_turn(store: &Store) -> tokio::sync::MutexGuard<'_, ()> {
        match &store.write_gate {
            Some(gate) => gate.lock().await,
            None => store.queue.turn.lock().await,
        }
    }

    async fn group_then_stale(store: &Store) {
        let store = store.clone();
        let mut sessions = Vec::new();
        for _ in 0..6 {
            let s = SessionRecord::new(json!({}), None, Map::new(), now_us());
            store.create_session(&s).await.unwrap();
            sessions.push(s);
        }
        // The last one's writer was fenced out: another claimed the session (cluster/leases.rs bumps the epoch).
        on_pool!(store, pool => {
            sqlx::query("UPDATE sessions SET writer_epoch = writer_epoch + 1 WHERE id = $1")
                .bind(sessions[5].id.as_str())
                .execute(pool)
                .await
                .unwrap();
        });
        // Hold the write turn so every commit below queues up; they are then written as one group.
        let turn = hold_turn(&store).await;
        let mut tasks = Vec::new();
        for (n, s) in sessions.iter().enumerate() {
            let (store, s) = (store.clone(), s.clone());
            // The fifth is stale: its writer thinks the log is at 7.
            let expected = if n == 4 { 7 } else { 0 };
            tasks.push(tokio::spawn(async move { commit(&store, &s, expected).await }));
        }
        let queue = Arc::clone(&store.queue);
        while queue.waiting.lock().unwrap().len() < 6 {
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
            if n >= 4 {
                assert!(matches!(result, Err(StoreError::Conflict(_))), "{result:?}");
                assert!(events.is_empty() && items.is_empty(), "the stale or fenced commit wrote nothing");
            } else {
                assert!(result.is_ok(), "{result:?}");
                assert_eq!(events.len(), 1, "session {n}: its event once");
                assert_eq!(items.len(), 1, "session {n}: its item once");
                assert_eq!(store.get_session(&s.id).await.unwrap().unwrap().last_seq, 1);
            }
        }
        assert!(queue.waiting.lock().unwrap().is_empty());

        // A group where every commit is good: one transaction, each session moved on once.
        let turn = hold_turn(&store).await;
        let tasks: Vec<_> = sessions[..4]
            .iter()
            .map(|s| {
                let (store, s) = (store.clone(), s.clone());
                tokio::spawn(async move { commit(&store, &s, 1).await })
            })
            .collect();
        while queue.waiting.lock().unwrap().len() < 4 {
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
