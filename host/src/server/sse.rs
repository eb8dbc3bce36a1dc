//! `GET /v1/sessions/{id}/stream`: a session's events as Server-Sent Events (Omnigent's frames plus `id: <seq>`),
//! replayed from `Last-Event-ID` or `?after=` and then live.

use std::convert::Infallible;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::Deserialize;
use utoipa::IntoParams;

use super::AppState;
use super::error::{ApiError, ErrorEnvelope};
use super::extract::{ApiQuery, session_id};
use crate::protocol::{self, EventType};
use crate::record::{iso8601, now_us};
use crate::stream::{Frame, follow};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Replay every event with a sequence number above this one, then continue live (same as `Last-Event-ID`).
    pub after: Option<String>,
    /// Also send this server's own events, which Omnigent's clients do not know: `session.comment.*`,
    /// `session.labels`, `session.policy_state`, `session.policy.*`, `session.archived`,
    /// `session.external_session_id` and a harness's `harness.*` (default false: the stream is Omnigent's).
    pub extensions: Option<bool>,
    /// Accepted for Omnigent compatibility (presence flag).
    #[allow(dead_code)] // accepted, not acted on
    pub idle: Option<bool>,
}

/// Server-Sent Events: every event of the session, each persisted one with `id: <seq>`. Reconnect with
/// `Last-Event-ID` (or `?after=<seq>`) to receive everything missed, in order, then live.
#[utoipa::path(get, path = "/v1/sessions/{id}/stream", params(("id" = String, Path), StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this sequence number")),
    responses((status = 200, content_type = "text/event-stream", body = String), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn stream(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<StreamQuery>,
) -> Result<Response, ApiError> {
    let id = session_id(&id)?;
    // A browser's EventSource reconnects to the same URL (with its ?after=) and adds Last-Event-ID, which is newer.
    let cursor = match headers.get("last-event-id") {
        Some(v) => Some(parse_cursor(v.to_str().unwrap_or("\u{fffd}"), "Last-Event-ID")?),
        None => q.after.as_deref().map(|a| parse_cursor(a, "after")).transpose()?,
    };
    let frames = follow(&state.sessions, &id, cursor, state.heartbeat).await?;
    let extensions = q.extensions.unwrap_or(false);
    let events = frames
        .filter(move |frame| std::future::ready(extensions || omnigent_knows(frame)))
        .map(|frame| Ok::<_, Infallible>(sse_event(frame)));
    let mut response = Sse::new(events).into_response();
    response.headers_mut().insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

fn parse_cursor(raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.trim().parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
        ApiError::invalid(format!(
            "{what} must be a non-negative event sequence number, got '{}'",
            crate::ids::truncate(raw, 40)
        ))
    })
}

/// Whether an Omnigent client knows this frame (a harness's own `harness.*` events are ours too).
fn omnigent_knows(frame: &Frame) -> bool {
    match frame {
        Frame::Event(e) | Frame::State(e) => EventType::parse(&e.event_type).is_some_and(EventType::known_to_omnigent),
        Frame::Heartbeat | Frame::Done => true,
    }
}

fn sse_event(frame: Frame) -> SseEvent {
    match frame {
        Frame::Heartbeat => SseEvent::default()
            .event(EventType::SessionHeartbeat.as_str())
            .data(protocol::heartbeat(&iso8601(now_us())).to_string()),
        Frame::Event(e) => SseEvent::default().id(e.seq.to_string()).event(&e.event_type).data(e.data.to_string()),
        Frame::State(e) => SseEvent::default().event(&e.event_type).data(e.data.to_string()),
        Frame::Done => SseEvent::default().data("[DONE]"),
    }
}
