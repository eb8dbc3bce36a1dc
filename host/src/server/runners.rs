//! Runners over HTTP: register one (`POST /v1/runners`, with the server's token: the answer holds the runner's own
//! token, shown once), list them with whether each is connected, and the tunnel a runner opens
//! (`GET /v1/runners/{id}/tunnel`, a WebSocket authorized by the runner's token — that token opens nothing else).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorCode, ErrorEnvelope};
use super::extract::{ApiJson, ListResponse, list};
use super::guards::token_matches;
use crate::ids::{check_short_text, prefixed, random_hex};
use crate::record::{now_us, secs};
use crate::remote::RunnerHub;
use crate::remote::hub::Location;
use crate::remote::wire::{Call, FromRunner};
use crate::session::SessionError;
use crate::store::RunnerRecord;

/// How often the server pings a runner's tunnel (keeps proxies from closing a quiet one).
const PING: Duration = Duration::from_secs(15);

/// `POST /v1/runners`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRunnerRequest {
    /// What people call it (the machine's name, say).
    pub name: Option<String>,
}

/// A registered runner.
#[derive(Serialize, ToSchema)]
pub struct RunnerResponse {
    pub id: String,
    pub object: &'static str,
    pub name: String,
    pub created_at: i64,
    /// Its tunnel is open (to this server, or to another replica of it).
    pub online: bool,
    pub last_seen_at: Option<i64>,
    /// Only in the answer that registers it: the runner's token (`omnigent runner --token`). Kept by the server
    /// only as a digest: it cannot be shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// A runner as the API shows it: online when its tunnel is open here or to a live replica (a `connected_to` left
/// by a server that died does not count).
async fn response(state: &AppState, r: RunnerRecord, token: Option<String>) -> RunnerResponse {
    let online = state.runners.locate(&r.id).await != Location::Offline;
    RunnerResponse {
        online,
        created_at: secs(r.created_at_us),
        last_seen_at: r.last_seen_at_us.map(secs),
        id: r.id,
        object: "runner",
        name: r.name,
        token,
    }
}

/// SHA-256 of a runner token, as stored.
pub(crate) fn digest(token: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Register a runner; the answer carries its token, once.
#[utoipa::path(post, path = "/v1/runners", request_body = CreateRunnerRequest,
    responses((status = 201, body = RunnerResponse), (status = 400, body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateRunnerRequest>,
) -> Result<(StatusCode, Json<RunnerResponse>), ApiError> {
    let name = req.name.unwrap_or_else(|| "runner".into());
    check_short_text("name", &name, 200).map_err(ApiError::invalid)?;
    let id = prefixed("runner");
    let token = format!("{id}.{}{}", random_hex(), random_hex());
    let record = RunnerRecord { id, name, created_at_us: now_us(), last_seen_at_us: None, connected_to: None };
    state.sessions.store().create_runner(&record, &digest(&token)).await.map_err(SessionError::from)?;
    tracing::info!(runner = %record.id, name = %record.name, "runner registered");
    Ok((StatusCode::CREATED, Json(response(&state, record, Some(token)).await)))
}

/// The registered runners and whether each is connected.
#[utoipa::path(get, path = "/v1/runners", responses((status = 200, body = ListResponse<RunnerResponse>)))]
pub async fn list_runners(State(state): State<AppState>) -> Result<Json<ListResponse<RunnerResponse>>, ApiError> {
    let runners = state.sessions.store().list_runners().await.map_err(SessionError::from)?;
    let mut data = Vec::with_capacity(runners.len());
    for runner in runners {
        data.push(response(&state, runner, None).await);
    }
    Ok(Json(list(data, false, |r: &RunnerResponse| r.id.clone())))
}

/// `POST /v1/runners/{id}/calls`: another replica's call to a runner connected here.
#[derive(Deserialize)]
pub struct RelayRequest {
    session: String,
    call: Call,
}

/// Relays a call from another replica (whose turn it is) to a runner connected here; the runner's frames are the
/// answer, one JSON object per line. A caller that goes away cancels the call. Not part of the public API.
pub async fn relay(
    State(state): State<AppState>,
    Path(runner): Path<String>,
    ApiJson(req): ApiJson<RelayRequest>,
) -> Result<Response, ApiError> {
    let session = crate::ids::SessionId::parse(&req.session).map_err(|e| ApiError::invalid(e.to_string()))?;
    let Some(stream) = state.runners.call(&runner, &session, req.call).await else {
        return Err(ApiError::new(ErrorCode::Unavailable, format!("runner {runner} is not connected to this replica")));
    };
    let hub = state.runners.clone();
    let unfinished = Unfinished { hub, runner, call: Some(stream.id) };
    let mut frames = stream.frames;
    let body = async_stream::stream! {
        // Moved in whole (not just its field): it lives as long as the answer does.
        let mut unfinished = unfinished;
        while let Some(frame) = frames.recv().await {
            let done = matches!(frame, FromRunner::Done { .. });
            let mut line = serde_json::to_vec(&frame).expect("frames serialize");
            line.push(b'\n');
            yield Ok::<_, std::convert::Infallible>(bytes::Bytes::from(line));
            if done {
                unfinished.call = None;
                break;
            }
        }
    };
    Ok(Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "application/x-ndjson")
        .body(axum::body::Body::from_stream(body))
        .expect("a valid response"))
}

/// A relayed call whose caller went away before its end: the runner is told to stop it.
struct Unfinished {
    hub: Arc<RunnerHub>,
    runner: String,
    call: Option<u64>,
}

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            let (hub, runner) = (self.hub.clone(), std::mem::take(&mut self.runner));
            tokio::spawn(async move { hub.cancel(&runner, call).await });
        }
    }
}

/// The runner's tunnel: a WebSocket the runner opens with `Authorization: Bearer <its token>`.
pub async fn tunnel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let stored = state.sessions.store().runner_token_digest(&id).await.map_err(SessionError::from)?;
    // The same answer for an unknown runner and a wrong token.
    if !stored.is_some_and(|d| token_matches(&digest(presented), &d)) {
        return Err(ApiError::unauthorized());
    }
    let hub = state.runners.clone();
    Ok(upgrade.on_upgrade(move |socket| serve(hub, id, socket)))
}

/// Carries frames both ways until either side closes.
async fn serve(hub: Arc<RunnerHub>, runner: String, socket: WebSocket) {
    let mut attached = hub.attach(&runner).await;
    let (mut to_runner, mut from_runner) = socket.split();
    let mut ping = tokio::time::interval(PING);
    loop {
        tokio::select! {
            frame = attached.outbox.recv() => {
                let Some(frame) = frame else { break };
                let text = serde_json::to_string(&frame).expect("frames serialize");
                if to_runner.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            message = from_runner.next() => match message {
                Some(Ok(Message::Text(text))) => match serde_json::from_str::<FromRunner>(&text) {
                    Ok(frame) => hub.deliver(&runner, frame),
                    Err(e) => tracing::warn!(runner, error = %e, "a runner sent a frame this server does not read"),
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = ping.tick() => {
                if to_runner.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
        }
    }
    hub.detach(&runner, attached.generation).await;
}
