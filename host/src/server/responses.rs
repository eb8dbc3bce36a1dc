//! `POST /v1/responses`: the responses-style endpoint the published Python SDK's `client.session(model=…)` and
//! `client.query(…)` still use (Omnigent removed it and broke them). Each call is one turn of a session: a new
//! session from the agent named by `model`, or the session of `previous_response_id`.

use std::convert::Infallible;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::{ApiError, ErrorEnvelope};
use super::extract::ApiJson;
use crate::ids::session_of_response;
use crate::ids::truncate;
use crate::protocol::{self, EventType};
use crate::session::{Input, NewSession, SessionError};
use crate::stream::{Frame, follow};

/// The body the SDK sends (its `_build_body`); other fields are ignored.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateResponse {
    /// The agent's name (registered with `POST /v1/agents`).
    pub model: String,
    /// Text, or a list of content parts.
    #[schema(value_type = Object)]
    pub input: Value,
    #[serde(default)]
    pub stream: bool,
    /// Continue the session this response belongs to.
    pub previous_response_id: Option<String>,
    /// Client-side tools: not supported on this endpoint (use the sessions API).
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<Vec<Value>>,
    // `instructions`, `background`, `reasoning`, `model_override` are accepted and ignored: the agent's config
    // decides.
}

/// Run one turn, streamed as response events (`stream: true`) or answered with the final response object.
#[utoipa::path(post, path = "/v1/responses", request_body = CreateResponse,
    responses((status = 200, description = "SSE of response events, or the final response object"),
        (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateResponse>,
) -> Result<Response, ApiError> {
    if req.tools.as_ref().is_some_and(|t| !t.is_empty()) {
        return Err(ApiError::invalid("client-side tools are not supported on /v1/responses; use the sessions API"));
    }
    let content = match req.input {
        Value::String(text) => vec![json!({"type": "input_text", "text": text})],
        Value::Array(parts) => parts,
        _ => return Err(ApiError::invalid("input must be a string or a list of content parts")),
    };
    let id = match &req.previous_response_id {
        Some(previous) => {
            let id = session_of_response(previous)
                .ok_or_else(|| ApiError::not_found(format!("no response '{}'", truncate(previous, 80))))?;
            state.sessions.get(&id).await?;
            id
        }
        None => {
            let agent =
                state.sessions.store().get_agent(&req.model).await.map_err(SessionError::from)?.ok_or_else(|| {
                    ApiError::not_found(format!(
                        "no agent '{}' (register one with POST /v1/agents)",
                        truncate(&req.model, 80)
                    ))
                })?;
            let new = NewSession {
                title: Some(req.model.clone()),
                config: agent.config,
                agent_id: Some(agent.id),
                ..NewSession::default()
            };
            state.sessions.create(new).await?.id
        }
    };
    // Follow from the log's head before the message, so no event of the turn can slip past (a slow reader is
    // refilled from the log, never skipped).
    let head = state.sessions.get(&id).await?.last_seq;
    let input = Input::parse(crate::session::EventInput {
        event_type: "message".into(),
        data: json!({"role": "user", "content": content}),
        model_override: None,
        tools: None,
        created_by: None,
    })
    .map_err(ApiError::invalid)?;
    state.sessions.post(&id, input).await?;
    let frames = follow(&state.sessions, &id, Some(head), state.heartbeat).await?;
    let turn = async_stream::stream! {
        let mut response_id: Option<String> = None;
        futures::pin_mut!(frames);
        while let Some(frame) = futures::StreamExt::next(&mut frames).await {
            match frame {
                Frame::Event(e) => {
                    let data = &e.data;
                    let mine = match &response_id {
                        None if e.event_type == EventType::ResponseCreated.as_str() => {
                            response_id = data.pointer("/response/id").and_then(Value::as_str).map(str::to_string);
                            true
                        }
                        None => {
                            // A turn that fails before it starts (e.g. no harness) ends as a failed response.
                            if e.event_type == EventType::SessionStatus.as_str() && data["status"] == "failed" {
                                let failed = protocol::failed_before_start(&id, &data["error"]);
                                yield (EventType::ResponseFailed.as_str().to_string(), failed);
                                return;
                            }
                            false
                        }
                        Some(r) => data.pointer("/response/id").and_then(Value::as_str).is_none_or(|x| x == r)
                            && data.pointer("/item/response_id").and_then(Value::as_str).is_none_or(|x| x == r),
                    };
                    let event_type = EventType::parse(&e.event_type);
                    if mine && event_type.is_some_and(EventType::is_response_event) {
                        yield (e.event_type.clone(), e.data.clone());
                        if event_type.is_some_and(EventType::ends_response) {
                            return;
                        }
                    }
                }
                Frame::Done => return,
                Frame::Heartbeat | Frame::State(_) => {}
            }
        }
    };
    if req.stream {
        let frames = futures::StreamExt::map(turn, |(t, d)| {
            Ok::<_, Infallible>(SseEvent::default().event(t).data(d.to_string()))
        });
        let done = futures::stream::once(async { Ok(SseEvent::default().data("[DONE]")) });
        return Ok(Sse::new(futures::StreamExt::chain(frames, done)).into_response());
    }
    // Not streaming: the final response object, with the turn's items as its output.
    let mut last = Value::Null;
    let mut output = Vec::new();
    futures::pin_mut!(turn);
    while let Some((event_type, data)) = futures::StreamExt::next(&mut turn).await {
        if event_type == EventType::OutputItemDone.as_str() {
            output.push(data["item"].clone());
        }
        last = data;
    }
    let mut response = last.get("response").cloned().unwrap_or_else(|| Value::Object(Map::new()));
    response["output"] = Value::Array(output);
    Ok(Json(response).into_response())
}
