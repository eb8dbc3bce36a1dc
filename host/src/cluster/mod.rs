//! Several server replicas on one Postgres database. Postgres is the coordinator; nothing here votes.
//!
//! - **Who writes a session** ([`leases`]): the replica that holds the session's advisory lock, taken on one
//!   connection of the replica when the session's actor starts and released when it stops. A lock, not a lease
//!   with an expiry: when a replica dies (SIGKILL included) its connection closes and Postgres releases its locks
//!   at once, so failover waits for no timeout; and no clock is compared between machines. The log's own guard
//!   (a commit names the `last_seq` it expects) fences a writer that lost its lock without noticing: its commit is
//!   refused and it steps back.
//! - **Writes that reach another replica** are forwarded to the owner over HTTP (server/forward.rs): the owner's
//!   address is in `replicas`, found through `pg_locks`.
//! - **Followers** ([`wakeups`]): every commit notifies (a trigger, migrations/postgres/0010); a replica that
//!   streams a session it does not write reads the log after each notification — the log stays the truth, a
//!   notification only says "read now".
//! - **Adoption**: each replica looks every second for running or paused sessions whose lock nobody holds (their
//!   replica died) and takes them; the actor resumes their turn from its journal.

mod leases;
mod wakeups;

use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::ids::SessionId;
use crate::record::{SessionRecord, now_us};

pub use wakeups::DELETED;

/// How often a replica looks for sessions whose writer died, and checks that it still holds its own locks.
pub const ADOPT_EVERY: Duration = Duration::from_secs(1);

/// The request header a forwarded write carries (the forwarding replica's id): it is never forwarded again.
pub const FORWARDED_BY: &str = "omnigent-forwarded-by";

/// What a successful claim holds.
pub struct Claim {
    /// The writer epoch this replica holds the session under. A record read after the claim must still show it
    /// (otherwise another replica claimed the session since: this replica's lock died unnoticed).
    pub epoch: i64,
    /// The session as the claim's fence left it, when this claim took the lock: read in the same statement, after
    /// every commit of the previous writer. None when this replica held the lock already (or there is no such
    /// session): read it.
    pub session: Option<SessionRecord>,
}

/// This replica's place among the others.
pub struct Cluster {
    id: String,
    url: String,
    pool: PgPool,
    leases: leases::Leases,
    wakeups: wakeups::Wakeups,
    /// Forwards writes to the replica that owns their session.
    client: reqwest::Client,
}

#[derive(Debug, thiserror::Error)]
#[error("the replica registry: {0}")]
pub struct ClusterError(#[from] sqlx::Error);

impl Cluster {
    /// Registers this replica as `id` (the `omnigent.replica` setting of its connections: commit notifications
    /// name it), reachable at `url` by the others, and starts following the database's notifications until
    /// `shutdown`.
    pub async fn join(
        pool: PgPool,
        id: String,
        url: String,
        shutdown: CancellationToken,
    ) -> Result<Cluster, ClusterError> {
        let (schema,): (String,) = sqlx::query_as("SELECT current_schema()").fetch_one(&pool).await?;
        let leases = leases::Leases::new(pool.clone(), id.clone(), url.clone(), now_us());
        leases.register().await?;
        let wakeups = wakeups::Wakeups::new(id.clone());
        wakeups.start(pool.clone(), format!("omnigent:{schema}"), shutdown).await?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| ClusterError(sqlx::Error::Configuration(e.into())))?;
        tracing::info!(replica = %id, url = %url, "joined the replicas on this database");
        Ok(Cluster { id, url, pool, leases, wakeups, client })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The client that forwards writes to other replicas.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Takes the right to write `id` (counted: each successful claim is matched by one [`Cluster::release`]). None
    /// when another replica holds it.
    pub async fn claim(&self, id: &SessionId) -> Result<Option<Claim>, ClusterError> {
        Ok(self.leases.claim(id).await?)
    }

    pub async fn release(&self, id: &SessionId) {
        self.leases.release(id).await
    }

    /// The address of the replica that writes `id`, if one does.
    pub async fn owner(&self, id: &SessionId) -> Result<Option<String>, ClusterError> {
        Ok(leases::owner(&self.pool, id).await?)
    }

    /// The address of the live replica holding `runner`'s tunnel, if one does.
    pub async fn runner_replica(&self, runner: &str) -> Result<Option<String>, ClusterError> {
        Ok(leases::runner_replica(&self.pool, runner).await?)
    }

    /// Running or paused sessions nobody writes: their replica died with their turn.
    pub async fn orphans(&self) -> Result<Vec<SessionId>, ClusterError> {
        Ok(leases::orphans(&self.pool).await?)
    }

    /// Checks the lock connection; when it was lost (and its locks with it) it is opened again and the held
    /// sessions locked again. Returns those another replica took meanwhile: their writers here must step back.
    pub async fn keep_leases(&self) -> Vec<SessionId> {
        self.leases.keep().await
    }

    /// A clean stop: this replica's sessions are free for the others at once.
    pub async fn leave(&self) {
        self.leases.leave().await;
        tracing::info!(replica = %self.id, "left the replicas on this database");
    }

    /// Wakes on every commit of `id` (by any replica); the value is the session's new `last_seq` or [`DELETED`].
    pub fn watch(&self, id: &SessionId) -> watch::Receiver<i64> {
        self.wakeups.watch(id)
    }

    /// Every session's commits, creates and deletes on this database by the other replicas: `(id, last_seq or
    /// DELETED)`. A reader that falls behind loses the oldest (they only say "read the session again").
    pub fn commits(&self) -> broadcast::Receiver<(SessionId, i64)> {
        self.wakeups.all()
    }

    /// Stops waking for `id` once nobody watches it.
    pub fn unwatch(&self, id: &SessionId) {
        self.wakeups.unwatch(id)
    }
}
