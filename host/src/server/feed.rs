//! `GET /v1/sessions/feed`: one Server-Sent Events stream for the whole server that says which sessions a list must
//! redraw — created, status, title, pending approvals, archived, deleted. The web UI's sidebar and inbox follow it
//! instead of polling. A subscriber lists the sessions after `feed.ready` (so no change falls between the two) and
//! again after `feed.resync` (it fell behind).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use super::sessions::list_item;
use crate::ids::SessionId;
use crate::protocol::FeedEvent;
use crate::session::{SessionChange, SessionError};

/// Changes arriving this close together are sent as one batch, each session once (a turn changes its status
/// twice within milliseconds; the list needs only the latest).
const BATCH_WINDOW: Duration = Duration::from_millis(50);

/// Live summaries of every session: `feed.ready` first, then `session.summary` (a `GET /v1/sessions` row, any
/// kind, archived included: filter client-side), `session.deleted` (`{"id"}`) and `feed.resync`. Ends with
/// `[DONE]` when the server shuts down.
#[utoipa::path(get, path = "/v1/sessions/feed",
    responses((status = 200, content_type = "text/event-stream", body = String)))]
pub async fn feed(State(state): State<AppState>) -> Response {
    let mut changes = state.sessions.changes();
    let shutdown = state.sessions.shutdown_token().clone();
    let events = async_stream::stream! {
        yield frame(FeedEvent::Ready, json!({}));
        loop {
            let first = tokio::select! {
                change = changes.recv() => change,
                _ = shutdown.cancelled() => break,
            };
            let mut batch = BTreeMap::new();
            match first {
                Ok(change) => add(&mut batch, change),
                Err(RecvError::Lagged(_)) => {
                    yield frame(FeedEvent::Resync, json!({}));
                    continue;
                }
                Err(RecvError::Closed) => break,
            }
            let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
            let mut lagged = false;
            while let Ok(next) = tokio::time::timeout_at(deadline, changes.recv()).await {
                match next {
                    Ok(change) => add(&mut batch, change),
                    Err(RecvError::Lagged(_)) => lagged = true,
                    Err(RecvError::Closed) => break,
                }
            }
            if lagged {
                yield frame(FeedEvent::Resync, json!({}));
                continue;
            }
            for (id, deleted) in batch {
                let found = if deleted { Err(SessionError::NotFound(id.clone())) } else { state.sessions.get(&id).await };
                match found {
                    Ok(record) => yield frame(FeedEvent::Summary, json!(list_item(record))),
                    Err(SessionError::NotFound(_)) => yield frame(FeedEvent::Deleted, json!({"id": id.as_str()})),
                    Err(e) => {
                        // The list may now be stale: say so rather than drop the change.
                        tracing::warn!(session = %id, error = %e, "the session feed could not read a session");
                        yield frame(FeedEvent::Resync, json!({}));
                    }
                }
            }
        }
        yield Ok(SseEvent::default().data("[DONE]"));
    };
    let mut response = Sse::new(events).keep_alive(KeepAlive::new().interval(state.heartbeat)).into_response();
    response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Keeps the latest change per session.
fn add(batch: &mut BTreeMap<SessionId, bool>, change: SessionChange) {
    match change {
        SessionChange::Updated(id) => batch.insert(id, false),
        SessionChange::Deleted(id) => batch.insert(id, true),
    };
}

fn frame(kind: FeedEvent, data: serde_json::Value) -> Result<SseEvent, Infallible> {
    Ok(SseEvent::default().event(kind.as_str()).data(data.to_string()))
}
