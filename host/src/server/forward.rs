//! With several replicas: a write to a session (any method but GET and HEAD under `/v1/sessions/{id}`) goes to
//! the replica that writes the session, forwarded as it came (headers, auth, body) and answered as that replica
//! answers. Reads and streams are served by every replica from the shared log.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{OriginalUri, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::{ApiError, ErrorCode};
use crate::cluster::FORWARDED_BY;
use crate::ids::SessionId;
use crate::session::Placement;

/// Headers that belong to one connection, not to the request or answer they travel with.
const HOP_BY_HOP: [header::HeaderName; 6] =
    [header::CONNECTION, header::HOST, header::TRANSFER_ENCODING, header::CONTENT_LENGTH, header::TE, header::UPGRADE];

pub(super) async fn to_owner(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(cluster) = state.sessions.cluster() else { return next.run(request).await };
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return next.run(request).await;
    }
    let path = request.extensions().get::<OriginalUri>().map(|u| u.0.clone()).unwrap_or_else(|| request.uri().clone());
    let Some(id) = session_in(path.path()) else { return next.run(request).await };
    let mut placement = state.sessions.placement(&id).await;
    if matches!(placement, Placement::Here) {
        return next.run(request).await;
    }
    let forwarded = request.headers().contains_key(FORWARDED_BY);
    let (parts, body) = request.into_parts();
    // The body was read whole by the body guard.
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(_) => return ApiError::invalid("the request body could not be read").into_response(),
    };
    let target = path.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    // A session moving between replicas (its replica died and Postgres has not freed its lock yet, or its new
    // writer is starting) settles within moments: wait for it rather than hand the client a retry at once.
    let deadline = tokio::time::Instant::now() + MOVING_WAIT;
    loop {
        let why = match placement {
            Placement::Here => return next.run(Request::from_parts(parts, Body::from(body))).await,
            Placement::Owner(url) if !forwarded => {
                let mut headers = without_hop_by_hop(&parts.headers);
                headers.insert(FORWARDED_BY, HeaderValue::from_str(cluster.id()).expect("replica ids are ASCII"));
                let sending = cluster.client().request(parts.method.clone(), format!("{url}{target}"));
                match sending.headers(headers).body(body.clone()).send().await {
                    Ok(answer) => return relayed(answer),
                    // Never delivered: safe to try again.
                    Err(e) if e.is_connect() => {
                        format!("the replica that writes session {id} ({url}) did not answer ({e})")
                    }
                    // It may have been delivered, and acted on: only the client may decide to send it again.
                    Err(e) => {
                        tracing::warn!(session = %id, owner = %url, error = %e, "forwarding a write to the session's replica failed");
                        return unavailable(format!("the replica that writes session {id} did not answer ({e})"));
                    }
                }
            }
            // Forwarded here once already (its writer moved in between): the client's own replica tries again.
            Placement::Owner(_) => return unavailable(format!("session {id} moved between replicas")),
            Placement::Unknown => format!("session {id} is moving between replicas"),
        };
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(session = %id, "a write found no replica to take it: {why}");
            return unavailable(why);
        }
        tokio::time::sleep(MOVING_POLL).await;
        placement = state.sessions.placement(&id).await;
    }
}

/// How long a write waits for a moving session to settle before the client is told to retry.
const MOVING_WAIT: Duration = Duration::from_secs(3);
/// How often a waiting write asks again where its session is written.
const MOVING_POLL: Duration = Duration::from_millis(50);

/// The owner's answer, as it came.
fn relayed(answer: reqwest::Response) -> Response {
    let status = answer.status();
    let headers = without_hop_by_hop(answer.headers());
    let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// 503 with `Retry-After`: the session is between writers.
fn unavailable(why: String) -> Response {
    let mut response = ApiError::new(ErrorCode::Unavailable, format!("{why}; retry in a moment")).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// The session a `/v1/sessions/{id}[/…]` path names (not the collection's own routes).
fn session_in(path: &str) -> Option<SessionId> {
    let rest = path.strip_prefix("/v1/sessions/")?;
    let segment = rest.split('/').next()?;
    SessionId::parse(segment).ok()
}

fn without_hop_by_hop(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for name in HOP_BY_HOP {
        out.remove(name);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_one_session_name_one() {
        let id = SessionId::new();
        assert_eq!(session_in(&format!("/v1/sessions/{id}/events")), Some(id.clone()));
        assert_eq!(session_in(&format!("/v1/sessions/{id}")), Some(id));
        assert_eq!(session_in("/v1/sessions/feed"), None);
        assert_eq!(session_in("/v1/sessions"), None);
        assert_eq!(session_in("/v1/agents/x"), None);
    }
}
