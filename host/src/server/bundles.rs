//! Omnigent's bundle uploads: multipart `POST /v1/sessions` (a `metadata` JSON part and a `bundle` file part) and
//! multipart `POST /v1/agents` (a `bundle` part). The bundle (`config::bundle`) becomes a session config; the rest
//! is the JSON create's. The body is read whole before any answer (the body guard reads it first).

use std::collections::HashMap;

use axum::Json;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{ApiJson, is_multipart};
use crate::config::bundle::Bundle;

/// The `metadata` keys Omnigent's bundle create takes (others are refused, as Omnigent does).
const METADATA_KEYS: [&str; 9] = [
    "title",
    "labels",
    "reasoning_effort",
    "workspace",
    "host_type",
    "host_id",
    "sandbox_provider",
    "terminal_launch_args",
    "parent_session_id",
];

/// `POST /v1/sessions`: a JSON create, or a bundle upload → 201 `{session_id, agent_id, agent_name}` (Omnigent's
/// answer; `GET /v1/sessions/{id}` has the rest).
pub async fn create_session(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    if !is_multipart(request.headers()) {
        let json = ApiJson::from_request(request, &state).await?;
        return super::sessions::create_session(State(state), json).await.map(IntoResponse::into_response);
    }
    let mut form = read_form(request, &state).await?;
    let metadata = match form.remove("metadata") {
        None => Map::new(),
        Some(bytes) => match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => m,
            Ok(Value::Null) => Map::new(),
            _ => return Err(ApiError::invalid("the 'metadata' part must be a JSON object")),
        },
    };
    if let Some(key) = metadata.keys().find(|k| !METADATA_KEYS.contains(&k.as_str())) {
        return Err(ApiError::invalid(format!("metadata.{key} is not a field of a bundle create")));
    }
    let config = bundle_config(&mut form)?;
    let mut request = metadata;
    request.insert("config".into(), config);
    let req =
        serde_json::from_value(Value::Object(request)).map_err(|e| ApiError::invalid(format!("metadata: {e}")))?;
    let record = super::sessions::create(&state, req).await?;
    let agent_name = record.config.get("name").cloned().unwrap_or(Value::Null);
    let body = json!({"session_id": record.id.as_str(), "agent_id": crate::subagent::agent_id_of(&record),
        "agent_name": agent_name});
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /v1/agents`: a JSON registration, or a bundle upload (its config's `name` names the agent).
pub async fn create_agent(State(state): State<AppState>, request: Request) -> Result<Response, ApiError> {
    if !is_multipart(request.headers()) {
        let json = ApiJson::from_request(request, &state).await?;
        return super::agents::create_agent(State(state), json).await.map(IntoResponse::into_response);
    }
    let mut form = read_form(request, &state).await?;
    let config = bundle_config(&mut form)?;
    let req = super::agents::CreateAgentRequest { config };
    super::agents::create_agent(State(state), ApiJson(req)).await.map(IntoResponse::into_response)
}

/// The parts of a multipart body (their bytes) by name; the last of a name wins.
type Form = HashMap<String, Vec<u8>>;

async fn read_form(request: Request, state: &AppState) -> Result<Form, ApiError> {
    let mut form = Multipart::from_request(request, state)
        .await
        .map_err(|e| ApiError::invalid(format!("a bundle upload is a multipart/form-data body: {}", e.body_text())))?;
    let broken = |e: MultipartError| ApiError::invalid(format!("invalid multipart body: {}", e.body_text()));
    let mut parts = Form::new();
    while let Some(field) = form.next_field().await.map_err(broken)? {
        let name = field.name().unwrap_or_default().to_string();
        parts.insert(name, field.bytes().await.map_err(broken)?.to_vec());
    }
    Ok(parts)
}

/// The session config of the form's `bundle` part.
fn bundle_config(form: &mut Form) -> Result<Value, ApiError> {
    let Some(bytes) = form.remove("bundle") else {
        return Err(ApiError::invalid("multipart part 'bundle' is required"));
    };
    let bundle = Bundle::unpack(&bytes).map_err(|e| ApiError::invalid(format!("invalid agent bundle: {e}")))?;
    bundle.config().map_err(|e| ApiError::invalid(format!("invalid agent bundle: {e}")))
}
