//! Following a session: replay from the log after a cursor, then live, with no gap and no duplicate.
//!
//! The subscriber registers with the live session first and reads the log second, so every event is either in
//! the log it reads or arrives on the channel; it forwards an event only when its `seq` is exactly one past the
//! last it sent, and fills any hole (a subscriber that fell behind the channel) from the log.

use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::broadcast::error::RecvError;

use crate::ids::SessionId;
use crate::protocol::EventType;
use crate::record::StoredEvent;
use crate::session::{Published, SessionError, Sessions};

/// Idle keep-alive period (Omnigent's `session.heartbeat` every 15 s).
pub const HEARTBEAT: Duration = Duration::from_secs(15);
const PAGE: u32 = 500;

/// One thing to write to a subscriber.
#[derive(Clone, Debug)]
pub enum Frame {
    /// Sent on subscribe (the "ready" ack) and when the stream has been quiet for a while.
    Heartbeat,
    Event(Arc<StoredEvent>),
    /// State a new subscriber needs that is older than what it asked for (a pending elicitation on a stream
    /// opened without a cursor). Sent without an `id:`, so it does not move the client's resume cursor.
    State(Arc<StoredEvent>),
    /// The stream ends normally: the session was deleted or the server is shutting down.
    Done,
}

#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("cursor {cursor} is beyond the newest event of this session ({head}); it may belong to another session")]
    CursorAhead { cursor: i64, head: i64 },
}

/// Opens a subscription to a session. With `after = Some(seq)` every event after `seq` is replayed first;
/// without it only new events are sent.
pub async fn follow(
    sessions: &Sessions,
    id: &SessionId,
    after: Option<i64>,
    heartbeat: Duration,
) -> Result<impl Stream<Item = Frame> + Send + 'static, FollowError> {
    let (mut rx, record) = sessions.subscribe(id).await?;
    let head = record.last_seq;
    if let Some(cursor) = after
        && cursor > head
    {
        return Err(FollowError::CursorAhead { cursor, head });
    }
    let store = sessions.store().clone();
    let shutdown = sessions.shutdown_token().clone();
    let id = id.clone();
    let mut last = after.unwrap_or(head);
    // A client that starts from now still has to see what the session waits for (Omnigent's clients learn it from
    // the snapshot; ours also get it here). One with a cursor replays it from the log.
    let pending: Vec<Arc<StoredEvent>> = if after.is_none() {
        record
            .policy
            .pending
            .iter()
            .map(|data| {
                let seq = data["sequence_number"].as_i64().unwrap_or(0);
                Arc::new(StoredEvent {
                    seq,
                    event_type: EventType::ElicitationRequest.as_str().into(),
                    data: data.clone(),
                    created_at_us: 0,
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(async_stream::stream! {
        yield Frame::Heartbeat;
        for event in pending {
            yield Frame::State(event);
        }
        let mut replay_to = Some(head);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Fill from the log: the replay on connect, or a hole left by falling behind the channel.
            if replay_to.is_none_or(|to| to > last) {
                match store.events_after(&id, last, replay_to, PAGE).await {
                    Ok(page) => {
                        let full = page.len() == PAGE as usize;
                        for event in page {
                            last = event.seq;
                            yield Frame::Event(Arc::new(event));
                        }
                        if full {
                            continue;
                        }
                        replay_to = Some(last);
                    }
                    Err(e) => {
                        // End without [DONE]: the client reconnects with Last-Event-ID and loses nothing.
                        tracing::warn!(session = %id, error = %e, "reading the log for a subscriber failed");
                        return;
                    }
                }
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    yield Frame::Done;
                    return;
                }
                message = rx.recv() => match message {
                    Ok(Published::Event(event)) => {
                        if event.seq <= last {
                            continue;
                        }
                        if event.seq > last + 1 {
                            replay_to = Some(event.seq);
                            continue;
                        }
                        last = event.seq;
                        ticker.reset();
                        yield Frame::Event(event);
                    }
                    Ok(Published::Closed) | Err(RecvError::Closed) => {
                        yield Frame::Done;
                        return;
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::debug!(session = %id, missed, "subscriber fell behind; catching up from the log");
                        replay_to = None;
                    }
                },
                _ = ticker.tick() => yield Frame::Heartbeat,
            }
        }
    })
}
