//! Session locks: `pg_try_advisory_lock(NAMESPACE, hashtext(schema || '/' || id))`, all held on one connection of
//! this replica, whose backend pid is registered in `replicas` so that `pg_locks` tells who writes a session.
//!
//! Two sessions whose ids hash alike share a lock: whoever holds it writes both, which is still one writer each.
//! Locks are counted here (a session claimed twice on this replica is locked once and released on the last
//! release), so an actor that starts while another retires never runs unlocked.
//!
//! Taking a lock also bumps the session's `writer_epoch`, the fence every commit is guarded by (store/
//! group_postgres.rs): a replica that lost a lock without noticing cannot commit once another has claimed.

use std::collections::HashMap;

use sqlx::{Connection, PgConnection, PgPool, Row};

use super::Claim;
use crate::ids::SessionId;
use crate::store;

/// The advisory lock namespace of session locks ("omni"), in every lock and `pg_locks` query below.
macro_rules! namespace {
    () => {
        "1869442665"
    };
}

/// The lock key of session `$1` in this schema: databases shared through schemas do not block each other.
macro_rules! key {
    ($id:literal) => {
        concat!("hashtext(current_schema() || '/' || ", $id, ")")
    };
}

/// The granted advisory lock of session `$id` in this database, as `pg_locks` shows it.
macro_rules! held_lock {
    ($id:literal) => {
        concat!(
            "l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.classid = ",
            namespace!(),
            " AND l.objid = ",
            key!($id),
            "::oid AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    };
}

pub(super) struct Leases {
    pool: PgPool,
    id: String,
    url: String,
    started_at_us: i64,
    state: tokio::sync::Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The connection holding this replica's locks; None after it failed (its locks died with it).
    conn: Option<PgConnection>,
    /// Sessions this replica holds: how many claims each has, and the writer epoch its lock was taken under.
    held: HashMap<SessionId, Held>,
    /// This replica stopped: it claims nothing more.
    left: bool,
}

struct Held {
    claims: u32,
    epoch: i64,
}

impl Leases {
    pub fn new(pool: PgPool, id: String, url: String, started_at_us: i64) -> Leases {
        Leases { pool, id, url, started_at_us, state: Default::default() }
    }

    /// Opens the lock connection and registers this replica with its backend pid.
    pub async fn register(&self) -> Result<(), sqlx::Error> {
        let mut state = self.state.lock().await;
        self.connect(&mut state).await.map(|_| ())
    }

    /// The writer epoch this replica holds `id` under (taking its lock if it does not hold it yet), with the session
    /// when this call took the lock; None when another replica holds it.
    pub async fn claim(&self, id: &SessionId) -> Result<Option<Claim>, sqlx::Error> {
        let mut state = self.state.lock().await;
        if state.left {
            return Ok(None);
        }
        if let Some(held) = state.held.get_mut(id) {
            held.claims += 1;
            return Ok(Some(Claim { epoch: held.epoch, session: None }));
        }
        let conn = self.connect(&mut state).await?;
        // Taking the lock bumps the session's writer epoch in the same statement: a writer that lost the lock
        // without noticing yet still commits under the old epoch, which every commit's guard now refuses. (A
        // claim counted above, or a lock taken again after the lock connection dropped, keeps the epoch: the
        // actors of this replica hold it.) The statement returns the session as the fence left it: the writer
        // starts from it without reading it again (the fence waited for any commit of the previous writer).
        let lock = concat!(
            "WITH taken AS (SELECT pg_try_advisory_lock(",
            namespace!(),
            ", ",
            key!("$1"),
            ") AS ok), fenced AS (UPDATE sessions SET writer_epoch = writer_epoch + 1 \
             WHERE id = $1 AND (SELECT ok FROM taken) RETURNING sessions.*) \
             SELECT taken.ok, fenced.* FROM taken LEFT JOIN fenced ON true"
        );
        let taken = sqlx::query(lock).bind(id.as_str()).fetch_one(conn).await.and_then(|row| {
            let ok: bool = row.try_get("ok")?;
            let epoch: Option<i64> = row.try_get("writer_epoch")?;
            Ok((ok, epoch.map(|epoch| (epoch, row))))
        });
        match taken {
            Ok((true, fenced)) => {
                // No such session: no epoch, and its read after the claim finds none.
                let (epoch, session) = match fenced {
                    Some((epoch, row)) => match store::session_of_pg_row(&row) {
                        Ok(session) => (epoch, Some(session)),
                        // The caller reads it again, and that read says what is wrong with it.
                        Err(e) => {
                            tracing::warn!(session = %id, error = %e, "the claimed session's row does not read");
                            (epoch, None)
                        }
                    },
                    None => (0, None),
                };
                state.held.insert(id.clone(), Held { claims: 1, epoch });
                Ok(Some(Claim { epoch, session }))
            }
            Ok((false, _)) => Ok(None),
            Err(e) => {
                state.conn = None;
                Err(e)
            }
        }
    }

    pub async fn release(&self, id: &SessionId) {
        let mut state = self.state.lock().await;
        match state.held.get_mut(id) {
            Some(held) if held.claims > 1 => held.claims -= 1,
            Some(_) => {
                state.held.remove(id);
                let Some(conn) = state.conn.as_mut() else { return };
                let unlock = concat!("SELECT pg_advisory_unlock(", namespace!(), ", ", key!("$1"), ")");
                if let Err(e) = sqlx::query(unlock).bind(id.as_str()).execute(conn).await {
                    // Its locks went with the connection.
                    tracing::warn!(session = %id, error = %e, "the lock connection failed while releasing a session");
                    state.conn = None;
                }
            }
            // Lost with the lock connection, and given up since.
            None => tracing::debug!(session = %id, "released a session this replica no longer holds"),
        }
    }

    /// Gives up every session and leaves the registry (a clean stop: the others need not wait for anything).
    pub async fn leave(&self) {
        let mut state = self.state.lock().await;
        state.left = true;
        state.held.clear();
        if let Some(mut conn) = state.conn.take() {
            let left = sqlx::query("DELETE FROM replicas WHERE id = $1").bind(&self.id).execute(&mut conn).await;
            if let Err(e) = left {
                tracing::warn!(error = %e, "could not leave the replica registry");
            }
            // Closing the connection releases every lock it holds.
            let _ = conn.close().await;
        }
    }

    /// See `Cluster::keep_leases`.
    pub async fn keep(&self) -> Vec<SessionId> {
        let mut state = self.state.lock().await;
        if state.left {
            return Vec::new();
        }
        if let Some(conn) = state.conn.as_mut()
            && conn.ping().await.is_ok()
        {
            return Vec::new();
        }
        state.conn = None;
        let held: Vec<SessionId> = state.held.keys().cloned().collect();
        let conn = match self.connect(&mut state).await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::error!(error = %e, "cannot reopen the lock connection; this replica's sessions wait for it");
                return Vec::new();
            }
        };
        let mut lost = Vec::new();
        let lock = concat!("SELECT pg_try_advisory_lock(", namespace!(), ", ", key!("$1"), ")");
        for id in held {
            match sqlx::query_as::<_, (bool,)>(lock).bind(id.as_str()).fetch_one(&mut *conn).await {
                Ok((true,)) => {}
                Ok((false,)) => lost.push(id),
                Err(e) => {
                    tracing::error!(error = %e, "the reopened lock connection failed");
                    state.conn = None;
                    return Vec::new();
                }
            }
        }
        for id in &lost {
            state.held.remove(id);
        }
        if !lost.is_empty() {
            tracing::warn!(sessions = lost.len(), "lost the lock of sessions another replica took meanwhile");
        }
        lost
    }

    /// The lock connection, opened (and this replica registered under its pid) if needed.
    async fn connect<'s>(&self, state: &'s mut State) -> Result<&'s mut PgConnection, sqlx::Error> {
        if state.conn.is_none() {
            let mut conn = self.pool.acquire().await?.detach();
            // Rows of replicas whose connection is gone, and of an earlier connection of this one.
            sqlx::query(
                "DELETE FROM replicas WHERE id = $1 OR backend_pid = pg_backend_pid() \
                 OR backend_pid NOT IN (SELECT pid FROM pg_stat_activity)",
            )
            .bind(&self.id)
            .execute(&mut conn)
            .await?;
            sqlx::query(
                "INSERT INTO replicas (id, url, backend_pid, started_at_us) VALUES ($1, $2, pg_backend_pid(), $3)",
            )
            .bind(&self.id)
            .bind(&self.url)
            .bind(self.started_at_us)
            .execute(&mut conn)
            .await?;
            state.conn = Some(conn);
        }
        Ok(state.conn.as_mut().expect("opened above"))
    }
}

/// The address of the replica holding the lock of `id`.
pub(super) async fn owner(pool: &PgPool, id: &SessionId) -> Result<Option<String>, sqlx::Error> {
    let query =
        concat!("SELECT r.url FROM pg_locks l JOIN replicas r ON r.backend_pid = l.pid WHERE ", held_lock!("$1"));
    let row: Option<(String,)> = sqlx::query_as(query).bind(id.as_str()).fetch_optional(pool).await?;
    Ok(row.map(|(url,)| url))
}

/// The address of the replica whose tunnel `runner` is connected to, if that replica is alive (its lock
/// connection is open).
pub(super) async fn runner_replica(pool: &PgPool, runner: &str) -> Result<Option<String>, sqlx::Error> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT r.url FROM runners x JOIN replicas r ON r.id = x.connected_to \
         JOIN pg_stat_activity a ON a.pid = r.backend_pid WHERE x.id = $1",
    )
    .bind(runner)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(url,)| url))
}

/// Running or paused sessions whose lock nobody holds.
pub(super) async fn orphans(pool: &PgPool) -> Result<Vec<SessionId>, sqlx::Error> {
    let query = concat!(
        "SELECT s.id FROM sessions s WHERE s.status IN ('running', 'paused') ",
        "AND NOT EXISTS (SELECT 1 FROM pg_locks l WHERE ",
        held_lock!("s.id"),
        ") LIMIT 100"
    );
    let rows: Vec<(String,)> = sqlx::query_as(query).fetch_all(pool).await?;
    Ok(rows.into_iter().filter_map(|(id,)| SessionId::parse(&id).ok()).collect())
}
