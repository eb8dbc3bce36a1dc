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
use crate::protocol::FeedEvent;
use crate::session::SessionChange;

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
            // Wait for a change, then gather what follows within the window: each session once, its latest state.
            let mut batch = BTreeMap::new();
            let mut lagged = false;
            let mut deadline = None;
            loop {
                let next = match deadline {
                    None => tokio::select! {
                        change = changes.recv() => change,
                        _ = shutdown.cancelled() => break,
                    },
                    Some(at) => match tokio::time::timeout_at(at, changes.recv()).await {
                        Ok(change) => change,
                        Err(_) => break,
                    },
                };
                match next {
                    Ok(change) => {
                        let id = match &change {
                            SessionChange::Updated(record) => record.id.clone(),
                            SessionChange::Deleted(id) => id.clone(),
                        };
                        batch.insert(id, change);
                    }
                    Err(RecvError::Lagged(_)) => lagged = true,
                    Err(RecvError::Closed) => break,
                }
                deadline.get_or_insert(tokio::time::Instant::now() + BATCH_WINDOW);
            }
            if batch.is_empty() && !lagged {
                break; // shutting down
            }
            if lagged {
                // Changes were missed: the subscriber lists again rather than trust a partial batch.
                yield frame(FeedEvent::Resync, json!({}));
                continue;
            }
            for change in batch.into_values() {
                yield match change {
                    SessionChange::Updated(record) => frame(FeedEvent::Summary, json!(list_item((*record).clone()))),
                    SessionChange::Deleted(id) => frame(FeedEvent::Deleted, json!({"id": id.as_str()})),
                };
            }
        }
        yield Ok(SseEvent::default().data("[DONE]"));
    };
    let mut response = Sse::new(events).keep_alive(KeepAlive::new().interval(state.heartbeat)).into_response();
    response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn frame(kind: FeedEvent, data: serde_json::Value) -> Result<SseEvent, Infallible> {
    Ok(SseEvent::default().event(kind.as_str()).data(data.to_string()))
}
