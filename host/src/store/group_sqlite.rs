//! SQLite: a group of commits as one script — BEGIN, the guarded update of every session (each must still be at its
//! expected `last_seq` and writer epoch, or the guard aborts the script and nothing is kept), every table's rows in
//! one statement each, COMMIT.
//!
//! One script, because each statement sent on its own is a round trip to the thread that owns the SQLite connection
//! (sqlx runs one per connection): ~60–75 µs each on 2 cores, where BEGIN itself does nothing. A commit was BEGIN,
//! three to six statements and COMMIT; it is one round trip now. sqlx's SQLite driver runs every statement of a
//! query's text, binding `?` parameters in order across them (sqlx calls this driver-specific and deprecated; the
//! store tests and `group_then_stale` in grouped.rs fail if a later sqlx stops doing it).

use std::collections::BTreeMap;

use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use super::rows::Rows;
use super::{Result, StoreError, item_upsert};

/// The guard's error message.
macro_rules! stale {
    () => {
        "omnigent: stale commit"
    };
}
const STALE: &str = stale!();

/// The guard, made on every connection (store/mod.rs): inserting `(matched, expected)` into `commit_guard` aborts the
/// statement — and so the script — with [`STALE`] unless they are equal. A view with a trigger, so nothing is stored.
pub(super) const GUARD: &str = concat!(
    "\
CREATE TEMP VIEW IF NOT EXISTS commit_guard (matched, expected) AS SELECT 0, 0;
CREATE TEMP TRIGGER IF NOT EXISTS commit_guard_check INSTEAD OF INSERT ON commit_guard
    WHEN NEW.matched <> NEW.expected BEGIN SELECT RAISE(ABORT, '",
    stale!(),
    "'); END;"
);

/// One transaction for all of `rows`: written whole, or not at all when a session was not where its writer
/// expected it.
pub(super) async fn write(pool: &SqlitePool, rows: &[&Rows]) -> Result<()> {
    let mut script = QueryBuilder::<Sqlite>::new("BEGIN IMMEDIATE;\n");
    statements(&mut script, rows);
    script.push(";\nCOMMIT");
    let stale = rows[0].id.clone();
    // A group's text is as varied as its commits: preparing it again costs less than caching every shape (each
    // connection keeps 100 prepared texts; a group's, thousands of parameters, weighs megabytes over the pool).
    let cached = rows.len() == 1;
    let mut conn = pool.acquire().await?;
    // Spawned: once sent, the script runs to its end, and one that failed is rolled back, even if the caller stops
    // waiting — the connection must never go back to the pool inside a transaction.
    let written = tokio::spawn(async move {
        let result = script.build().persistent(cached).execute(&mut *conn).await;
        if result.is_err() && sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await.is_err() {
            // No transaction was open (BEGIN itself failed), or the connection is broken: close it to be sure.
            drop(conn.detach());
        }
        result
    });
    match written.await {
        Ok(result) => result.map(|_| ()).map_err(|e| classify(e, &stale)),
        Err(_) => Err(sqlx::Error::WorkerCrashed.into()),
    }
}

/// The same, inside the caller's transaction (which may write more with it, and rolls back on an error).
pub(super) async fn write_in(tx: &mut SqliteConnection, rows: &[&Rows]) -> Result<()> {
    let mut script = QueryBuilder::<Sqlite>::new("");
    statements(&mut script, rows);
    match script.build().execute(&mut *tx).await {
        Ok(_) => Ok(()),
        Err(e) => Err(classify(e, &rows[0].id)),
    }
}

/// The guard's abort is a conflict: another writer moved a session on (or deleted it) — with one commit, that
/// commit's session.
fn classify(e: sqlx::Error, first: &crate::ids::SessionId) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.message().contains(STALE) => StoreError::Conflict(first.clone()),
        _ => e.into(),
    }
}

/// The guarded update, the guard, and every table's rows: statements separated by `;`, none after the last.
fn statements(script: &mut QueryBuilder<Sqlite>, rows: &[&Rows]) {
    guarded_update(script, rows);
    script.push(";\nINSERT INTO temp.commit_guard (matched, expected) VALUES (changes(), ");
    script.push_bind(rows.len() as i64);
    script.push(")");
    rows_of(script, rows);
}

/// The journal, spend, event and item rows of every commit, one statement per table (each after a `;`).
fn rows_of(script: &mut QueryBuilder<Sqlite>, rows: &[&Rows]) {
    let cleared: Vec<&str> = rows.iter().filter(|r| r.clear_journal).map(|r| r.id.as_str()).collect();
    if !cleared.is_empty() {
        script.push(";\nDELETE FROM turn_journal WHERE session_id IN (");
        let mut list = script.separated(", ");
        for id in cleared {
            list.push_bind(id);
        }
        script.push(")");
    }
    let journal: Vec<_> = rows.iter().flat_map(|r| r.journal.iter().map(move |j| (r.id.as_str(), j))).collect();
    if !journal.is_empty() {
        script.push(";\nINSERT INTO turn_journal (session_id, idx, response_id, entry) ");
        script.push_values(journal, |mut b, (id, (idx, response_id, entry))| {
            b.push_bind(id).push_bind(*idx).push_bind(response_id).push_bind(entry);
        });
    }
    let mut spent: BTreeMap<&str, f64> = BTreeMap::new();
    for (day, cost) in rows.iter().filter_map(|r| r.spend.as_ref()) {
        *spent.entry(day.as_str()).or_default() += cost;
    }
    if !spent.is_empty() {
        script.push(";\nINSERT INTO daily_spend (day, cost_usd) ");
        script.push_values(spent, |mut b, (day, cost)| {
            b.push_bind(day).push_bind(cost);
        });
        script.push(" ON CONFLICT (day) DO UPDATE SET cost_usd = daily_spend.cost_usd + excluded.cost_usd");
    }
    let events: Vec<_> = rows.iter().flat_map(|r| r.events.iter().map(move |e| (r.id.as_str(), e))).collect();
    if !events.is_empty() {
        script.push(";\nINSERT INTO events (session_id, seq, type, data, created_at_us) ");
        script.push_values(events, |mut b, (id, (seq, event_type, data, at))| {
            b.push_bind(id).push_bind(*seq).push_bind(event_type).push_bind(data).push_bind(*at);
        });
    }
    let items: Vec<_> = rows.iter().flat_map(|r| r.items.iter().map(move |i| (r.id.as_str(), i))).collect();
    if !items.is_empty() {
        script.push(
            ";\nINSERT INTO items (session_id, id, position, response_id, type, status, created_at_us, data, created_by) ",
        );
        script.push_values(items, |mut b, (id, i)| {
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
        script.push(concat!(" ", item_upsert!()));
    }
}

/// The update of every session that is still where its writer left it.
fn guarded_update(script: &mut QueryBuilder<Sqlite>, rows: &[&Rows]) {
    script.push(
        "WITH v(id, expected, epoch, last_seq, updated_at_us, title, labels, status, last_task_error, \
         active_response_id, usage_by_model, policy, archived, settings) AS (",
    );
    script.push_values(rows, |mut b, r| {
        let s = &r.session;
        b.push_bind(r.id.as_str())
            .push_bind(r.expected_last_seq)
            .push_bind(r.writer_epoch)
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
    script.push(
        ") UPDATE sessions SET last_seq = v.last_seq, updated_at_us = v.updated_at_us, title = v.title, \
         labels = v.labels, status = v.status, last_task_error = v.last_task_error, \
         active_response_id = v.active_response_id, usage_by_model = v.usage_by_model, policy = v.policy, \
         archived = v.archived, settings = v.settings \
         FROM v WHERE sessions.id = v.id AND sessions.last_seq = v.expected AND sessions.writer_epoch = v.epoch",
    );
}
