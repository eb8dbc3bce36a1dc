//! SQLite: a group of commits in one transaction, its statements sent as one script — every table's rows in one
//! statement each, then the guarded update of every session (each must still be at its expected `last_seq` and
//! writer epoch), which returns the sessions it matched: fewer than the group's, and nothing is kept.
//!
//! One script, because each statement sent on its own is a round trip to the thread that owns the SQLite connection
//! (sqlx runs one per connection): a commit was BEGIN, three to six statements and COMMIT, ~50 µs each on 2 cores;
//! it is now BEGIN, the script, COMMIT. sqlx's SQLite driver runs every statement of a query's text, binding `?`
//! parameters in order across them (sqlx calls this driver-specific and deprecated; `group_then_stale` in
//! grouped.rs and the store tests fail if a later sqlx stops doing it).

use std::collections::BTreeMap;

use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use super::rows::Rows;
use super::{Result, StoreError, item_upsert};

/// One transaction for all of `rows`: written whole, or not at all when a session was not where its writer
/// expected it.
pub(super) async fn write(pool: &SqlitePool, rows: &[&Rows]) -> Result<()> {
    let mut tx = pool.begin().await?;
    write_in(&mut tx, rows).await?;
    tx.commit().await?;
    Ok(())
}

/// The same, inside the caller's transaction (which may write more with it). On an error the caller rolls back:
/// the rows may have been written before the guard found a session moved on.
pub(super) async fn write_in(tx: &mut SqliteConnection, rows: &[&Rows]) -> Result<()> {
    let mut script = QueryBuilder::<Sqlite>::new("");
    rows_of(&mut script, rows);
    guarded_update(&mut script, rows);
    match script.build_query_as::<(String,)>().fetch_all(&mut *tx).await {
        Ok(matched) if matched.len() == rows.len() => Ok(()),
        // Another writer moved a session on (or deleted it): with one commit, that is its conflict.
        Ok(_) => Err(StoreError::Conflict(rows[0].id.clone())),
        // A row the stale writer wrote again (an event's seq, say) can fail before the guard runs.
        Err(e) if !all_where_expected(tx, rows).await? => {
            tracing::debug!(error = %e, "a stale commit failed before its guard");
            Err(StoreError::Conflict(rows[0].id.clone()))
        }
        Err(e) => Err(e.into()),
    }
}

/// The journal, spend, event and item rows of every commit, one statement per table (each ending with `;`).
fn rows_of(script: &mut QueryBuilder<Sqlite>, rows: &[&Rows]) {
    let cleared: Vec<&str> = rows.iter().filter(|r| r.clear_journal).map(|r| r.id.as_str()).collect();
    if !cleared.is_empty() {
        script.push("DELETE FROM turn_journal WHERE session_id IN (");
        let mut list = script.separated(", ");
        for id in cleared {
            list.push_bind(id);
        }
        script.push(");\n");
    }
    let journal: Vec<_> = rows.iter().flat_map(|r| r.journal.iter().map(move |j| (r.id.as_str(), j))).collect();
    if !journal.is_empty() {
        script.push("INSERT INTO turn_journal (session_id, idx, response_id, entry) ");
        script.push_values(journal, |mut b, (id, (idx, response_id, entry))| {
            b.push_bind(id).push_bind(*idx).push_bind(response_id).push_bind(entry);
        });
        script.push(";\n");
    }
    let mut spent: BTreeMap<&str, f64> = BTreeMap::new();
    for (day, cost) in rows.iter().filter_map(|r| r.spend.as_ref()) {
        *spent.entry(day.as_str()).or_default() += cost;
    }
    if !spent.is_empty() {
        script.push("INSERT INTO daily_spend (day, cost_usd) ");
        script.push_values(spent, |mut b, (day, cost)| {
            b.push_bind(day).push_bind(cost);
        });
        script.push(" ON CONFLICT (day) DO UPDATE SET cost_usd = daily_spend.cost_usd + excluded.cost_usd;\n");
    }
    let events: Vec<_> = rows.iter().flat_map(|r| r.events.iter().map(move |e| (r.id.as_str(), e))).collect();
    if !events.is_empty() {
        script.push("INSERT INTO events (session_id, seq, type, data, created_at_us) ");
        script.push_values(events, |mut b, (id, (seq, event_type, data, at))| {
            b.push_bind(id).push_bind(*seq).push_bind(event_type).push_bind(data).push_bind(*at);
        });
        script.push(";\n");
    }
    let items: Vec<_> = rows.iter().flat_map(|r| r.items.iter().map(move |i| (r.id.as_str(), i))).collect();
    if !items.is_empty() {
        script.push(
            "INSERT INTO items (session_id, id, position, response_id, type, status, created_at_us, data, created_by) ",
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
        script.push(concat!(" ", item_upsert!(), ";\n"));
    }
}

/// The update of every session that is still where its writer left it, returning the ids it matched.
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
         FROM v WHERE sessions.id = v.id AND sessions.last_seq = v.expected AND sessions.writer_epoch = v.epoch \
         RETURNING id",
    );
}

/// Whether every session is still where its writer expected it (read in the caller's transaction).
async fn all_where_expected(tx: &mut SqliteConnection, rows: &[&Rows]) -> Result<bool> {
    let mut check = QueryBuilder::<Sqlite>::new("WITH v(id, expected, epoch) AS (");
    check.push_values(rows, |mut b, r| {
        b.push_bind(r.id.as_str()).push_bind(r.expected_last_seq).push_bind(r.writer_epoch);
    });
    check.push(
        ") SELECT count(*) FROM sessions JOIN v ON sessions.id = v.id AND sessions.last_seq = v.expected \
         AND sessions.writer_epoch = v.epoch",
    );
    let (found,): (i64,) = check.build_query_as().fetch_one(&mut *tx).await?;
    Ok(found == rows.len() as i64)
}
