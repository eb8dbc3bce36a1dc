//! With other replicas: the list feed (`GET /v1/sessions/feed`) also announces what the other replicas commit.
//! Every commit, create and delete on the database is notified (cluster/wakeups.rs); while somebody reads the feed
//! here, each session named in a batch of the other replicas' notifications is read once and announced when a list
//! would show it differently from what was last announced. What this replica writes its actors announce.

use std::collections::{BTreeSet, HashMap};

use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::Sessions;
use super::changes::Summary;
use crate::cluster::DELETED;
use crate::ids::SessionId;

pub(super) async fn run(sessions: Sessions) {
    let Some(cluster) = sessions.cluster().cloned() else { return };
    let shutdown = sessions.shutdown_token().clone();
    let mut commits = cluster.commits();
    // What was last announced of each session another replica writes (forgotten while nobody reads the feed).
    let mut announced: HashMap<SessionId, Summary> = HashMap::new();
    loop {
        let first = tokio::select! {
            c = commits.recv() => c,
            _ = shutdown.cancelled() => return,
        };
        let mut named = match first {
            Ok(commit) => vec![commit],
            Err(RecvError::Lagged(_)) => Vec::new(),
            Err(RecvError::Closed) => return,
        };
        // With whatever else is queued: one read per session per batch.
        loop {
            match commits.try_recv() {
                Ok(commit) => named.push(commit),
                Err(TryRecvError::Lagged(_)) => {}
                Err(_) => break,
            }
        }
        let (deleted, changed): (Vec<_>, Vec<_>) = named.into_iter().partition(|(_, seq)| *seq == DELETED);
        let deleted: BTreeSet<SessionId> = deleted.into_iter().map(|(id, _)| id).collect();
        let mut batch: BTreeSet<SessionId> = changed.into_iter().map(|(id, _)| id).collect();
        if !sessions.inner.changes.is_read() {
            announced.clear();
            continue;
        }
        for id in deleted {
            batch.remove(&id);
            announced.remove(&id);
            sessions.inner.changes.deleted(&id);
        }
        for id in batch {
            if sessions.writes_here(&id) {
                continue;
            }
            let Ok(Some(record)) = sessions.store().get_session(&id).await else { continue };
            let summary = Summary::of(&record);
            if announced.get(&id) != Some(&summary) {
                sessions.inner.changes.updated(&record);
                announced.insert(id, summary);
            }
        }
    }
}
