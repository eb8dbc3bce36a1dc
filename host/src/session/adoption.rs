//! With other replicas: every second, keep this replica's session locks (a lost lock connection is reopened; a
//! session another replica took meanwhile is given up) and adopt running or paused sessions nobody writes — their
//! replica died. Adopting is starting the session's actor, which resumes its turn from the journal.

use super::{SessionError, Sessions};
use crate::cluster::ADOPT_EVERY;

pub(super) async fn run(sessions: Sessions) {
    let Some(cluster) = sessions.cluster().cloned() else { return };
    let shutdown = sessions.shutdown_token().clone();
    let mut tick = tokio::time::interval(ADOPT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        for id in cluster.keep_leases().await {
            sessions.lost(&id).await;
        }
        let orphans = match cluster.orphans().await {
            Ok(orphans) => orphans,
            Err(e) => {
                tracing::warn!(error = %e, "looking for sessions whose replica stopped failed");
                continue;
            }
        };
        for id in orphans {
            match sessions.handle(&id).await {
                Ok(_) => {
                    tracing::info!(session = %id, replica = cluster.id(), "adopted a session whose replica stopped")
                }
                // Another replica was quicker.
                Err(SessionError::Elsewhere { .. } | SessionError::NotFound(_)) => {}
                Err(e) => tracing::warn!(session = %id, error = %e, "adopting a session failed"),
            }
        }
    }
}
