//! Notifications of commits, from the database to the sessions this replica follows. One `LISTEN` connection per
//! replica; one watch per followed session. When the connection drops, notifications sent meanwhile are lost, so
//! every follower is woken to read the log once it is back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::ids::SessionId;

/// The value a watch takes when its session is deleted.
pub const DELETED: i64 = -1;

#[derive(Clone, Default)]
pub(super) struct Wakeups {
    watchers: Arc<Mutex<HashMap<SessionId, watch::Sender<i64>>>>,
}

impl Wakeups {
    /// Listens on `channel` (before it returns: a follower registered after it misses nothing) until `shutdown`.
    pub async fn start(&self, pool: PgPool, channel: String, shutdown: CancellationToken) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(&channel).await?;
        let wakeups = self.clone();
        tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    r = listener.try_recv() => r,
                    _ = shutdown.cancelled() => return,
                };
                match received {
                    Ok(Some(notification)) => wakeups.wake(notification.payload()),
                    // The connection dropped (the next receive reconnects): read every followed log again.
                    Ok(None) => {
                        tracing::warn!("the notification connection dropped; reconnecting");
                        wakeups.wake_all();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "listening for commits failed; retrying in 1 s");
                        wakeups.wake_all();
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(())
    }

    pub fn watch(&self, id: &SessionId) -> watch::Receiver<i64> {
        let mut watchers = self.watchers.lock().unwrap();
        watchers.entry(id.clone()).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    pub fn unwatch(&self, id: &SessionId) {
        let mut watchers = self.watchers.lock().unwrap();
        if watchers.get(id).is_some_and(|w| w.receiver_count() == 0) {
            watchers.remove(id);
        }
    }

    /// `<session id> <last_seq>`
    fn wake(&self, payload: &str) {
        let Some((id, seq)) = payload.split_once(' ') else { return };
        let (Ok(id), Ok(seq)) = (SessionId::parse(id), seq.parse::<i64>()) else { return };
        if let Some(watcher) = self.watchers.lock().unwrap().get(&id) {
            watcher.send_replace(seq);
        }
    }

    fn wake_all(&self) {
        for watcher in self.watchers.lock().unwrap().values() {
            watcher.send_modify(|_| {});
        }
    }
}
