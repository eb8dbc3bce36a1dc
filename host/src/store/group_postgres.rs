//! Postgres: a commit as one statement ([`ONE`]), and a group of commits as one statement ([`GROUP`], in a
//! transaction) — one round trip and one WAL flush, instead of a BEGIN, a statement per table and a COMMIT per
//! commit, each a round trip to the database. Each statement's text is the same whatever the rows (they come as
//! arrays), so each connection prepares it once.

use std::collections::BTreeMap;

use sqlx::PgPool;

use super::rows::Rows;
use super::{Result, StoreError, item_upsert};

/// The guarded update of every session of the group and, only if each of them matched (was still at its expected
/// `last_seq` and its writer's epoch), every row folded from their events. What `guard` updated is kept only if the statement's count is
/// the group's size: a group of more than one runs in a transaction that is rolled back otherwise.
const GROUP: &str = concat!(
    "\
WITH v AS (
    SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], $5::TEXT[], $6::TEXT[], $7::TEXT[],
        $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::INT[], $13::TEXT[], $14::BOOL[], $35::BIGINT[])
    AS v(id, expected, last_seq, updated_at_us, title, labels, status, last_task_error, active_response_id,
        usage_by_model, policy, archived, settings, clear_journal, epoch)
), guard AS (
    UPDATE sessions SET last_seq = v.last_seq, updated_at_us = v.updated_at_us, title = v.title, labels = v.labels,
        status = v.status, last_task_error = v.last_task_error, active_response_id = v.active_response_id,
        usage_by_model = v.usage_by_model, policy = v.policy, archived = v.archived, settings = v.settings
    -- `= ANY` lets the planner find the sessions by their key (it cannot tell how many rows unnest yields).
    FROM v WHERE sessions.id = ANY($1::TEXT[]) AND sessions.id = v.id AND sessions.last_seq = v.expected
        AND sessions.writer_epoch = v.epoch
    RETURNING sessions.id
), matched AS (
    SELECT count(*) = cardinality($1::TEXT[]) AS every FROM guard
), cleared AS (
    DELETE FROM turn_journal USING v
    WHERE turn_journal.session_id = ANY($1::TEXT[]) AND turn_journal.session_id = v.id AND v.clear_journal
        AND (SELECT every FROM matched)
), journaled AS (
    INSERT INTO turn_journal (session_id, idx, response_id, entry)
    SELECT * FROM unnest($15::TEXT[], $16::BIGINT[], $17::TEXT[], $18::TEXT[])
    WHERE (SELECT every FROM matched)
), spent AS (
    INSERT INTO daily_spend (day, cost_usd)
    SELECT * FROM unnest($19::TEXT[], $20::FLOAT8[])
    WHERE (SELECT every FROM matched)
    ON CONFLICT (day) DO UPDATE SET cost_usd = daily_spend.cost_usd + excluded.cost_usd
), logged AS (
    INSERT INTO events (session_id, seq, type, data, created_at_us)
    SELECT * FROM unnest($21::TEXT[], $22::BIGINT[], $23::TEXT[], $24::TEXT[], $25::BIGINT[])
    WHERE (SELECT every FROM matched)
), folded AS (
    INSERT INTO items (session_id, id, position, response_id, type, status, created_at_us, data, created_by)
    SELECT * FROM unnest($26::TEXT[], $27::TEXT[], $28::BIGINT[], $29::TEXT[], $30::TEXT[], $31::TEXT[],
        $32::BIGINT[], $33::TEXT[], $34::TEXT[])
    WHERE (SELECT every FROM matched)
    ",
    item_upsert!(),
    "
)
SELECT count(*) FROM guard"
);

/// One commit as one statement: the guarded update of its session by key and, only if it matched, its rows (no
/// transaction needed: a miss updates and writes nothing). Planned far more cheaply than [`GROUP`] for one row —
/// what every commit is when nothing else queued behind it.
const ONE: &str = concat!(
    "\
WITH guard AS (
    UPDATE sessions SET last_seq = $1, updated_at_us = $2, title = $3, labels = $4, status = $5,
        last_task_error = $6, active_response_id = $7, usage_by_model = $8, policy = $9, archived = $10,
        settings = $11
    WHERE id = $12 AND last_seq = $13 AND writer_epoch = $32 RETURNING id
), cleared AS (
    DELETE FROM turn_journal WHERE $14 AND session_id = $12 AND EXISTS (SELECT 1 FROM guard)
), journaled AS (
    INSERT INTO turn_journal (session_id, idx, response_id, entry)
    SELECT $12, j.idx, j.response_id, j.entry
    FROM unnest($15::BIGINT[], $16::TEXT[], $17::TEXT[]) AS j(idx, response_id, entry)
    WHERE EXISTS (SELECT 1 FROM guard)
), spent AS (
    INSERT INTO daily_spend (day, cost_usd) SELECT $18, $19 WHERE $18 IS NOT NULL AND EXISTS (SELECT 1 FROM guard)
    ON CONFLICT (day) DO UPDATE SET cost_usd = daily_spend.cost_usd + excluded.cost_usd
), logged AS (
    INSERT INTO events (session_id, seq, type, data, created_at_us)
    SELECT $12, e.seq, e.type, e.data, e.created_at_us
    FROM unnest($20::BIGINT[], $21::TEXT[], $22::TEXT[], $23::BIGINT[]) AS e(seq, type, data, created_at_us)
    WHERE EXISTS (SELECT 1 FROM guard)
), folded AS (
    INSERT INTO items (session_id, id, position, response_id, type, status, created_at_us, data, created_by)
    SELECT $12, i.id, i.position, i.response_id, i.type, i.status, i.created_at_us, i.data, i.created_by
    FROM unnest($24::TEXT[], $25::BIGINT[], $26::TEXT[], $27::TEXT[], $28::TEXT[], $29::BIGINT[], $30::TEXT[],
        $31::TEXT[]) AS i(id, position, response_id, type, status, created_at_us, data, created_by)
    WHERE EXISTS (SELECT 1 FROM guard)
    ",
    item_upsert!(),
    "
)
SELECT count(*) FROM guard"
);

/// Writes a group; `Conflict` (nothing written) unless every session was still where its writer expected it.
pub(super) async fn write(pool: &PgPool, rows: &[&Rows]) -> Result<()> {
    if let [one] = rows {
        return write_one(pool, one, one.clear_journal).await;
    }
    let sessions = |f: fn(&Rows) -> i64| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    let journal: Vec<_> = rows.iter().flat_map(|r| r.journal.iter().map(move |j| (r.id.as_str(), j))).collect();
    let events: Vec<_> = rows.iter().flat_map(|r| r.events.iter().map(move |e| (r.id.as_str(), e))).collect();
    let items: Vec<_> = rows.iter().flat_map(|r| r.items.iter().map(move |i| (r.id.as_str(), i))).collect();
    // One row per day: an upsert may not touch a row twice.
    let mut spent: BTreeMap<&str, f64> = BTreeMap::new();
    for (day, cost) in rows.iter().filter_map(|r| r.spend.as_ref()) {
        *spent.entry(day.as_str()).or_default() += cost;
    }
    let query = sqlx::query_as::<_, (i64,)>(GROUP)
        .bind(rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
        .bind(sessions(|r| r.expected_last_seq))
        .bind(sessions(|r| r.session.last_seq))
        .bind(sessions(|r| r.session.updated_at_us))
        .bind(rows.iter().map(|r| r.session.title.as_deref()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.session.labels.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.session.status).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.session.last_task_error.as_deref()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.session.active_response_id.as_deref()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.session.usage_by_model.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.session.policy.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.session.archived).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.session.settings.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.clear_journal).collect::<Vec<_>>())
        .bind(journal.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind(journal.iter().map(|(_, j)| j.0).collect::<Vec<_>>())
        .bind(journal.iter().map(|(_, j)| j.1.as_str()).collect::<Vec<_>>())
        .bind(journal.iter().map(|(_, j)| j.2.as_str()).collect::<Vec<_>>())
        .bind(spent.keys().copied().collect::<Vec<_>>())
        .bind(spent.values().copied().collect::<Vec<_>>())
        .bind(events.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind(events.iter().map(|(_, e)| e.0).collect::<Vec<_>>())
        .bind(events.iter().map(|(_, e)| e.1.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|(_, e)| e.2.as_str()).collect::<Vec<_>>())
        .bind(events.iter().map(|(_, e)| e.3).collect::<Vec<_>>())
        .bind(items.iter().map(|(id, _)| *id).collect::<Vec<_>>())
        .bind(items.iter().map(|(_, i)| i.id.as_str()).collect::<Vec<_>>())
        .bind(items.iter().map(|(_, i)| i.position).collect::<Vec<_>>())
        .bind(items.iter().map(|(_, i)| i.response_id.as_deref()).collect::<Vec<_>>())
        .bind(items.iter().map(|(_, i)| i.item_type.as_str()).collect::<Vec<_>>())
        .bind(items.iter().map(|(_, i)| i.status.as_str()).collect::<Vec<_>>())
        .bind(items.iter().map(|(_, i)| i.created_at_us).collect::<Vec<_>>())
        .bind(items.iter().map(|(_, i)| i.data.as_str()).collect::<Vec<_>>())
        .bind(items.iter().map(|(_, i)| i.created_by.as_deref()).collect::<Vec<_>>())
        .bind(sessions(|r| r.writer_epoch));
    let conflict = || StoreError::Conflict(rows[0].id.clone());
    let mut tx = pool.begin().await?;
    let (matched,) = query.fetch_one(&mut *tx).await?;
    if matched != rows.len() as i64 {
        // Dropping the transaction rolls back the sessions that did match.
        return Err(conflict());
    }
    tx.commit().await?;
    Ok(())
}

/// One commit ([`ONE`]) on a pool or in the caller's transaction; `clear_journal` overrides the commit's own (a
/// journal cleared and refilled at once is cleared by the caller first: one statement cannot do both).
pub(super) async fn write_one<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Postgres>,
    r: &Rows,
    clear_journal: bool,
) -> Result<()> {
    let s = &r.session;
    let (matched,): (i64,) = sqlx::query_as(ONE)
        .bind(s.last_seq)
        .bind(s.updated_at_us)
        .bind(&s.title)
        .bind(&s.labels)
        .bind(s.status)
        .bind(&s.last_task_error)
        .bind(&s.active_response_id)
        .bind(&s.usage_by_model)
        .bind(&s.policy)
        .bind(s.archived)
        .bind(&s.settings)
        .bind(r.id.as_str())
        .bind(r.expected_last_seq)
        .bind(clear_journal)
        .bind(r.journal.iter().map(|j| j.0).collect::<Vec<_>>())
        .bind(r.journal.iter().map(|j| j.1.as_str()).collect::<Vec<_>>())
        .bind(r.journal.iter().map(|j| j.2.as_str()).collect::<Vec<_>>())
        .bind(r.spend.as_ref().map(|d| d.0.as_str()))
        .bind(r.spend.as_ref().map(|d| d.1))
        .bind(r.events.iter().map(|e| e.0).collect::<Vec<_>>())
        .bind(r.events.iter().map(|e| e.1.as_str()).collect::<Vec<_>>())
        .bind(r.events.iter().map(|e| e.2.as_str()).collect::<Vec<_>>())
        .bind(r.events.iter().map(|e| e.3).collect::<Vec<_>>())
        .bind(r.items.iter().map(|i| i.id.as_str()).collect::<Vec<_>>())
        .bind(r.items.iter().map(|i| i.position).collect::<Vec<_>>())
        .bind(r.items.iter().map(|i| i.response_id.as_deref()).collect::<Vec<_>>())
        .bind(r.items.iter().map(|i| i.item_type.as_str()).collect::<Vec<_>>())
        .bind(r.items.iter().map(|i| i.status.as_str()).collect::<Vec<_>>())
        .bind(r.items.iter().map(|i| i.created_at_us).collect::<Vec<_>>())
        .bind(r.items.iter().map(|i| i.data.as_str()).collect::<Vec<_>>())
        .bind(r.items.iter().map(|i| i.created_by.as_deref()).collect::<Vec<_>>())
        .bind(r.writer_epoch)
        .fetch_one(executor)
        .await?;
    if matched == 1 { Ok(()) } else { Err(StoreError::Conflict(r.id.clone())) }
}
