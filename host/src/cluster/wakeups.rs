//! Notifications of commits, from the database to the sessions this replica follows. One `LISTEN` connection per
//! replica; one watch per followed session. When the connection drops, notifications sent meanwhile are lost, so
//! every follower is woken to read the log once it is back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::ids::SessionId;

/// The value a watch takes when its session is deleted.
pub const DELETED: i64 = -1;

/// How many notifications the feed of every commit keeps for a slow reader.
const ALL_CAPACITY: usize = 4096;

#[derive(Clone)]
pub(super) struct Wakeups {
    /// This replica's name, as the notifications of its own commits carry it.
    me: Arc<str>,
    watchers: Arc<Mutex<HashMap<SessionId, watch::Sender<i64>>>>,
    /// Every other replica's notification, for what follows all sessions (the list feed).
    all: broadcast::Sender<(SessionId, i64)>,
}

impl Wakeups {
    pub fn new(me: String) -> Wakeups {
        Wakeups { me: Arc::from(me), watchers: Arc::default(), all: broadcast::channel(ALL_CAPACITY).0 }
    }

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

    /// Every session's commits, creates and deletes: `(id, last_seq or DELETED)`.
    pub fn all(&self) -> broadcast::Receiver<(SessionId, i64)> {
        self.all.subscribe()
    }

    pub fn unwatch(&self, id: &SessionId) {
        let mut watchers = self.watchers.lock().unwrap();
        if watchers.get(id).is_some_and(|w| w.receiver_count() == 0) {
            watchers.remove(id);
        }
    }

    /// `<session id> <last_seq> <writer>`
    fn wake(&self, payload: &str) {
        let mut parts = payload.splitn(3, ' ');
        let (Some(id), Some(seq), writer) = (parts.next(), parts.next(), parts.next()) else { return };
        let (Ok(id), Ok(seq)) = (SessionId::parse(id), seq.parse::<i64>()) else { return };
        if let Some(watcher) = self.watchers.lock().unwrap().get(&id) {
            watcher.send_replace(seq);
        }
        if writer != Some(&*self.me) && self.all.receiver_count() > 0 {
            let _ = self.all.send((id, seq));
        }
    }

    fn wake_all(&self) {
        for watcher in self.watchers.lock().unwrap().values() {
            watcher.send_modify(|_| {});
        }
    }
}
