//! A session another replica writes, followed on this one: after each commit notification (and every few
//! seconds, in case one was missed) it reads the log past the last event it published and publishes what it finds,
//! in order. Its subscribers cannot tell it from an actor: the same channel, the same events, from the same log.
//! It stops when nobody listens, when an actor takes its place (this replica writes the session now), or when the
//! session is deleted.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use super::{Published, Sessions};
use crate::cluster::DELETED;
use crate::ids::SessionId;

/// A read of the log even without a notification: the log is the truth, notifications only make it quick.
const SAFETY_READ: Duration = Duration::from_secs(5);
const PAGE: u32 = 500;

pub(super) async fn run(
    sessions: Sessions,
    id: SessionId,
    mut last: i64,
    mut wake: watch::Receiver<i64>,
    events: broadcast::Sender<Published>,
) {
    let shutdown = sessions.shutdown_token().clone();
    loop {
        let deleted = tokio::select! {
            changed = wake.changed() => changed.is_ok() && *wake.borrow_and_update() == DELETED,
            _ = tokio::time::sleep(SAFETY_READ) => false,
            _ = shutdown.cancelled() => break,
        };
        if !sessions.keeps_following(&id, &events) {
            break;
        }
        if deleted {
            sessions.follower_closed(&id, &events);
            break;
        }
        loop {
            match sessions.store().events_after(&id, last, None, PAGE).await {
                Ok(page) => {
                    let full = page.len() == PAGE as usize;
                    for event in page {
                        last = event.seq;
                        let _ = events.send(Published::Event(Arc::new(event)));
                    }
                    if !full {
                        break;
                    }
                }
                Err(e) => {
                    // The next wake-up (or the safety read) tries again.
                    tracing::warn!(session = %id, error = %e, "reading a followed session's log failed");
                    break;
                }
            }
        }
    }
    drop(wake);
    if let Some(cluster) = sessions.cluster() {
        cluster.unwatch(&id);
    }
}
