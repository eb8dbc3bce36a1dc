//! With other replicas: the list feed (`GET /v1/sessions/feed`) also announces what the other replicas commit.
//! Every commit, create and delete on the database is notified (cluster/wakeups.rs); while somebody reads the feed
//! here, each session named in a batch of the other replicas' notifications is read once and announced when a list
//! would show it differently from what was last announced. What this replica writes its actors announce.

use std::collections::{BTreeSet, HashMap};

use tokio::sync::broadcast::error::RecvError;

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
        let mut batch = BTreeSet::new();
        let mut deleted = BTreeSet::new();
        let mut next = first;
        loop {
            match next {
                Ok((id, DELETED)) => {
                    deleted.insert(id);
                }
                Ok((id, _)) => {
                    batch.insert(id);
                }
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return,
            }
            next = match commits.try_recv() {
                Ok(c) => Ok(c),
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(_) => break,
            };
        }
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
