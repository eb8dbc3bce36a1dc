//! Postgres: a commit as one statement (see [`ONE_STATEMENT`]), when it has no comment or file rows.

use super::commit::{Commit, SessionColumns};
use super::{Result, StoreError, json_text};

/// Whether a commit can be written as one Postgres statement: no comment or file changes (rare; written in a
/// transaction), and not a journal cleared and refilled at once (the two would meet in one statement).
pub(super) fn fits(c: &Commit<'_>) -> bool {
    let refilled = c.clear_journal && !c.journal.is_empty();
    c.comments.is_empty() && c.files.is_empty() && !refilled
}

/// A commit as one statement: the guarded update of the session and, only if it matched, every row folded from the
/// events. One round trip and one implicit transaction, instead of a BEGIN, a statement per table and a COMMIT,
/// each a round trip to the database. The statement's text is the same for every commit (the rows come as
/// arrays), so each connection prepares it once.
const ONE_STATEMENT: &str = "\
WITH guard AS (
    UPDATE sessions SET last_seq = $1, updated_at_us = $2, title = $3, labels = $4, status = $5,
        last_task_error = $6, active_response_id = $7, usage_by_model = $8, policy = $9, archived = $10,
        settings = $11
    WHERE id = $12 AND last_seq = $13 RETURNING id
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
    ON CONFLICT (session_id, id) DO UPDATE SET response_id = excluded.response_id, type = excluded.type,
        status = excluded.status, data = excluded.data, created_by = excluded.created_by
)
SELECT count(*) FROM guard";

pub(super) async fn commit(pool: &sqlx::PgPool, c: &Commit<'_>) -> Result<()> {
    let s = c.session;
    let columns = SessionColumns::of(s);
    let (events, items, journal) = (c.events, c.items, c.journal);
    let (matched,): (i64,) = sqlx::query_as(ONE_STATEMENT)
        .bind(columns.last_seq)
        .bind(columns.updated_at_us)
        .bind(&columns.title)
        .bind(&columns.labels)
        .bind(columns.status)
        .bind(&columns.last_task_error)
        .bind(&columns.active_response_id)
        .bind(&columns.usage_by_model)
        .bind(&columns.policy)
        .bind(columns.archived)
        .bind(&columns.settings)
        .bind(s.id.as_str())
        .bind(c.expected_last_seq)
        .bind(c.clear_journal)
        .bind(journal.iter().map(|j| j.idx).collect::<Vec<_>>())
        .bind(journal.iter().map(|j| j.response_id.clone()).collect::<Vec<_>>())
        .bind(journal.iter().map(|j| json_text(&j.entry)).collect::<Vec<_>>())
        .bind(c.spend.as_ref().map(|d| d.day.clone()))
        .bind(c.spend.as_ref().map(|d| d.cost_usd))
        .bind(events.iter().map(|e| e.seq).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.event_type.clone()).collect::<Vec<_>>())
        .bind(events.iter().map(|e| json_text(&e.data)).collect::<Vec<_>>())
        .bind(events.iter().map(|e| e.created_at_us).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.id.clone()).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.position).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.response_id.clone()).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.item_type.clone()).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.status.clone()).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.created_at_us).collect::<Vec<_>>())
        .bind(items.iter().map(|i| json_text(&i.data)).collect::<Vec<_>>())
        .bind(items.iter().map(|i| i.created_by.clone()).collect::<Vec<_>>())
        .fetch_one(pool)
        .await?;
    if matched != 1 {
        return Err(StoreError::Conflict(s.id.clone()));
    }
    Ok(())
}
