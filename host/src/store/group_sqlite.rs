//! SQLite: a group of commits in one transaction — the guarded update of every session (each must still be at its
//! expected `last_seq` and writer epoch, or nothing is written), then every table's rows in one statement each.

use std::collections::BTreeMap;

use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use super::rows::Rows;
use super::{Result, StoreError, item_upsert};

/// One transaction for all of `rows`: the guarded update of every session (each must still be at its expected
/// `last_seq`, or nothing is written), then every table's rows in one statement each.
pub(super) async fn write(pool: &SqlitePool, rows: &[&Rows]) -> Result<()> {
    let mut tx = pool.begin().await?;
    write_in(&mut tx, rows).await?;
    tx.commit().await?;
    Ok(())
}

/// The same, inside the caller's transaction (which may write more with it).
pub(super) async fn write_in(tx: &mut SqliteConnection, rows: &[&Rows]) -> Result<()> {
    let mut update = QueryBuilder::<Sqlite>::new(
        "WITH v(id, expected, epoch, last_seq, updated_at_us, title, labels, status, last_task_error, \
         active_response_id, usage_by_model, policy, archived, settings) AS (",
    );
    update.push_values(rows, |mut b, r| {
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
    update.push(
        ") UPDATE sessions SET last_seq = v.last_seq, updated_at_us = v.updated_at_us, title = v.title, \
         labels = v.labels, status = v.status, last_task_error = v.last_task_error, \
         active_response_id = v.active_response_id, usage_by_model = v.usage_by_model, policy = v.policy, \
         archived = v.archived, settings = v.settings \
         FROM v WHERE sessions.id = v.id AND sessions.last_seq = v.expected \
         AND sessions.writer_epoch = v.epoch",
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
        let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO turn_journal (session_id, idx, response_id, entry) ");
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
        upsert.push(concat!(" ", item_upsert!()));
        upsert.build().execute(&mut *tx).await?;
    }
    Ok(())
}
