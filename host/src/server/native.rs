//! Routes of native sessions: the CLI's hook calls (posted by `omnigent native-hook`), and the session's
//! terminal as a resource (Omnigent's paths: `…/resources/terminals`, ids like `terminal_claude_main`).

use axum::Json;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, DeletedResponse, session_id};
use crate::ids::SessionId;
use crate::native::bridge::Bridge;

/// A hook call of the session's CLI: the body is the hook's JSON as the CLI sent it, the answer is what the CLI
/// reads back (`{}`: go on as usual).
pub async fn hook(
    State(state): State<AppState>,
    Path((id, event)): Path<(String, String)>,
    ApiJson(body): ApiJson<Value>,
) -> Result<Json<Value>, ApiError> {
    let id = session_id(&id)?;
    let Some(bridge) = state.natives.existing(&id) else {
        return Err(ApiError::not_found(format!("session {id} has no native CLI")));
    };
    tracing::debug!(session = %id, event, "native hook");
    Ok(Json(crate::native::claude::hooks::answer(&state.natives, &bridge, &state.sessions, &event, body).await))
}

/// The session's bridge, if `tid` names its terminal.
async fn bridge_of(state: &AppState, raw: &str, tid: &str) -> Result<(SessionId, std::sync::Arc<Bridge>), ApiError> {
    let id = session_id(raw)?;
    state.sessions.get(&id).await?;
    let no_terminal =
        || ApiError::not_found(format!("session {id} has no terminal '{}'", crate::ids::truncate(tid, 80)));
    let bridge = state.natives.existing(&id).ok_or_else(no_terminal)?;
    if bridge.cli().terminal_id() != tid {
        return Err(no_terminal());
    }
    Ok((id, bridge))
}

/// `GET /v1/sessions/{id}/resources/terminals`
pub async fn list_terminals(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = session_id(&id)?;
    state.sessions.get(&id).await?;
    let data: Vec<Value> = match state.natives.existing(&id) {
        Some(bridge) => bridge.resource().await.into_iter().collect(),
        None => Vec::new(),
    };
    let first = data.first().map(|r| r["id"].clone());
    Ok(Json(json!({"object": "list", "data": data, "first_id": first, "last_id": first, "has_more": false})))
}

#[derive(Deserialize)]
pub struct EnsureTerminal {
    /// The terminal's kind: the session's CLI (`claude` or `codex`; default: whichever the session runs).
    #[serde(default)]
    terminal: Option<String>,
    #[serde(default)]
    session_key: Option<String>,
}

/// `POST /v1/sessions/{id}/resources/terminals {terminal: "claude"}`: makes sure the session's CLI runs (starts
/// it again, resuming its conversation, if it exited) and answers its terminal.
pub async fn ensure_terminal(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<EnsureTerminal>,
) -> Result<(axum::http::StatusCode, Json<Value>), ApiError> {
    let id = session_id(&id)?;
    let record = state.sessions.get(&id).await?;
    let config = crate::config::SessionConfig::from_json(record.config.clone()).map_err(ApiError::invalid)?;
    let Some(cli) = crate::native::cli_of(&config) else {
        return Err(ApiError::invalid(format!(
            "session {id} runs harness '{}', which has no terminal",
            config.executor.harness
        )));
    };
    let wanted = req.terminal.as_deref().unwrap_or(cli.name());
    if wanted != cli.name() || req.session_key.as_deref().is_some_and(|k| k != "main") {
        return Err(ApiError::invalid(format!(
            "unknown terminal '{}': this session has the terminal '{}' (session_key 'main')",
            crate::ids::truncate(wanted, 80),
            cli.name()
        )));
    }
    let bridge = state.natives.bridge(&id);
    let running =
        state.natives.ensure(&bridge, &config).await.map_err(|e| {
            ApiError::new(super::error::ErrorCode::Unavailable, format!("cannot start the terminal: {e}"))
        })?;
    let resource =
        bridge.resource().await.ok_or_else(|| ApiError::not_found(format!("the terminal of {id} ended at once")))?;
    if running.fresh {
        let _ = state.sessions.emit(&id, vec![crate::protocol::resource_created(resource.clone())], Vec::new()).await;
    }
    let status = if running.fresh { axum::http::StatusCode::CREATED } else { axum::http::StatusCode::OK };
    Ok((status, Json(resource)))
}

/// `GET /v1/sessions/{id}/resources/terminals/{tid}`
pub async fn get_terminal(
    State(state): State<AppState>,
    Path((id, tid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (id, bridge) = bridge_of(&state, &id, &tid).await?;
    bridge.resource().await.map(Json).ok_or_else(|| ApiError::not_found(format!("the terminal of {id} has ended")))
}

/// `DELETE /v1/sessions/{id}/resources/terminals/{tid}`: stops the CLI (the next message starts it again,
/// resuming its conversation).
pub async fn delete_terminal(
    State(state): State<AppState>,
    Path((id, tid)): Path<(String, String)>,
) -> Result<Json<DeletedResponse>, ApiError> {
    let (id, bridge) = bridge_of(&state, &id, &tid).await?;
    bridge.stop().await;
    let _ = state.sessions.emit(&id, vec![crate::protocol::resource_deleted(&id, &tid, "terminal")], Vec::new()).await;
    Ok(Json(DeletedResponse { id: tid, object: "session.resource.deleted", deleted: true }))
}

#[derive(Deserialize)]
pub struct ScreenQuery {
    /// Keep colours and attributes as escape sequences.
    #[serde(default)]
    ansi: bool,
}

/// `GET /v1/sessions/{id}/resources/terminals/{tid}/screen`: what the terminal shows now, as text.
pub async fn screen(
    State(state): State<AppState>,
    Path((id, tid)): Path<(String, String)>,
    Query(q): Query<ScreenQuery>,
) -> Result<Json<Value>, ApiError> {
    let (id, bridge) = bridge_of(&state, &id, &tid).await?;
    let text = bridge
        .tmux
        .capture(q.ansi)
        .await
        .map_err(|e| ApiError::not_found(format!("the terminal of {id} is not available: {e}")))?;
    Ok(Json(json!({"id": tid, "text": text})))
}

/// The terminal is gone (Omnigent's close code).
const CLOSE_GONE: u16 = 4404;
/// Something failed on our side.
const CLOSE_INTERNAL: u16 = 1011;

#[derive(Deserialize)]
pub struct AttachQuery {
    /// Watch only: input and resizes are dropped.
    #[serde(default)]
    read_only: bool,
}

/// `GET (WebSocket) /v1/sessions/{id}/resources/terminals/{tid}/attach[?read_only=true]`: binary frames out are
/// the terminal's bytes (first the current screen), binary frames in are keystrokes, a text frame
/// `{"type":"resize","cols":N,"rows":M}` sizes the window; the socket closes with 4404 when the terminal ends.
pub async fn attach(
    State(state): State<AppState>,
    Path((id, tid)): Path<(String, String)>,
    Query(q): Query<AttachQuery>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let (id, bridge) = bridge_of(&state, &id, &tid).await?;
    if !bridge.tmux.alive().await {
        return Err(ApiError::not_found(format!("the terminal of {id} has ended")));
    }
    Ok(upgrade.on_upgrade(move |socket| relay(socket, bridge, q.read_only)))
}

async fn relay(mut socket: WebSocket, bridge: std::sync::Arc<Bridge>, read_only: bool) {
    use crate::native::viewer::{Output, Viewer, snapshot};
    let close = |code: u16, reason: &str| Message::Close(Some(CloseFrame { code, reason: reason.to_string().into() }));
    let mut viewer = match Viewer::attach(&bridge.tmux, read_only).await {
        Ok(v) => v,
        Err(e) => {
            let _ = socket.send(close(CLOSE_INTERNAL, &e.to_string())).await;
            return;
        }
    };
    match snapshot(&bridge.tmux).await {
        Ok(screen) => {
            if socket.send(Message::Binary(screen.into())).await.is_err() {
                return viewer.detach().await;
            }
        }
        Err(_) => {
            let _ = socket.send(close(CLOSE_GONE, "the terminal has ended")).await;
            return viewer.detach().await;
        }
    }
    loop {
        tokio::select! {
            out = viewer.next() => match out {
                Output::Bytes(bytes) => {
                    if socket.send(Message::Binary(bytes.into())).await.is_err() {
                        break;
                    }
                }
                Output::Ended => {
                    let _ = socket.send(close(CLOSE_GONE, "the terminal has ended")).await;
                    return;
                }
            },
            message = socket.recv() => match message {
                Some(Ok(Message::Binary(bytes))) if !read_only => {
                    if viewer.type_bytes(&bytes).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Text(text))) if !read_only => {
                    let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                    if v["type"] == "resize"
                        && let (Some(cols), Some(rows)) = (v["cols"].as_u64(), v["rows"].as_u64())
                    {
                        let _ = viewer.resize(cols.min(1000) as u16, rows.min(1000) as u16).await;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                // Pings are answered by axum; a read-only viewer's input is dropped.
                Some(Ok(_)) => {}
            },
        }
    }
    viewer.detach().await;
}
