//! `/v1/agents`: named session configs.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorCode, ErrorEnvelope};
use super::extract::{ApiJson, ListResponse, list};
use super::sessions::check_policies;
use crate::config::SessionConfig;
use crate::record::secs;
use crate::session::SessionError;

/// `POST /v1/agents`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentRequest {
    /// The session config (Omnigent's agent YAML as JSON). Its `name` names the agent.
    #[schema(value_type = Object)]
    pub config: Value,
}

/// A registered agent: a named session config.
#[derive(Serialize, ToSchema)]
pub struct AgentObject {
    pub id: String,
    pub object: &'static str,
    pub name: String,
    #[schema(value_type = Object)]
    pub config: Value,
    pub created_at: i64,
}

fn agent_object(a: crate::store::Agent) -> AgentObject {
    // Configs hold API keys; clients see them redacted.
    let config = crate::config::redacted(&a.config);
    AgentObject { id: a.id, object: "agent", name: a.name, config, created_at: secs(a.created_at_us) }
}

/// Register a named session config; sessions can then be created with `agent_id` = its id or name.
#[utoipa::path(post, path = "/v1/agents", request_body = CreateAgentRequest,
    responses((status = 201, body = AgentObject), (status = 400, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn create_agent(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateAgentRequest>,
) -> Result<(StatusCode, Json<AgentObject>), ApiError> {
    let config = SessionConfig::from_json(req.config).map_err(|e| ApiError::invalid(format!("config: {e}")))?;
    check_policies(&state, &config).await?;
    let agent = crate::store::Agent {
        id: format!("ag_{}", crate::ids::random_hex()),
        name: config.name.clone(),
        config: config.to_json(),
        created_at_us: crate::record::now_us(),
    };
    match state.sessions.store().create_agent(&agent).await {
        Ok(()) => Ok((StatusCode::CREATED, Json(agent_object(agent)))),
        Err(e @ crate::store::StoreError::NameTaken(_)) => Err(ApiError::new(ErrorCode::AlreadyExists, e.to_string())),
        Err(e) => Err(SessionError::from(e).into()),
    }
}

/// Registered agents, by name.
#[utoipa::path(get, path = "/v1/agents", responses((status = 200, body = ListResponse<AgentObject>)))]
pub async fn list_agents(State(state): State<AppState>) -> Result<Json<ListResponse<AgentObject>>, ApiError> {
    let agents = state.sessions.store().list_agents().await.map_err(SessionError::from)?;
    Ok(Json(list(agents.into_iter().map(agent_object).collect(), false, |a| a.id.clone())))
}

/// One agent, by id or name.
#[utoipa::path(get, path = "/v1/agents/{id}", params(("id" = String, Path, description = "Agent id or name")),
    responses((status = 200, body = AgentObject), (status = 404, body = ErrorEnvelope)))]
pub async fn get_agent(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<AgentObject>, ApiError> {
    // A session's own agent (its inline config).
    if let Some(session) = crate::ids::session_of_agent(&id) {
        let record = state.sessions.get(&session).await?;
        let name = record.config.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let config = crate::config::redacted(&record.config);
        let created_at = secs(record.created_at_us);
        return Ok(Json(AgentObject { id, object: "agent", name, config, created_at }));
    }
    let agent = state.sessions.store().get_agent(&id).await.map_err(SessionError::from)?;
    agent
        .map(|a| Json(agent_object(a)))
        .ok_or_else(|| ApiError::not_found(format!("no agent '{}'", crate::ids::truncate(&id, 80))))
}

/// The agent a session runs: its registered agent, or the inline config it was created with (named by the config's
/// `name`), with the tools the config declares (`runtime: client` marks the ones the client runs).
#[utoipa::path(get, path = "/v1/sessions/{id}/agent", params(("id" = String, Path, description = "Session id")),
    responses((status = 200, body = Object), (status = 404, body = ErrorEnvelope)))]
pub async fn session_agent(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = super::extract::session_id(&id)?;
    let record = state.sessions.get(&id).await?;
    let config = SessionConfig::from_json(record.config.clone()).ok();
    let tools: Vec<Value> = config
        .iter()
        .flat_map(|c| c.tools.iter())
        .map(|(name, tool)| {
            serde_json::json!({
                "name": name,
                "type": tool.kind,
                "description": tool.description,
                "runtime": if tool.runs_on_client() { "client" } else { "server" },
            })
        })
        .collect();
    let name = config.as_ref().map(|c| c.name.clone());
    let created_at = match &record.agent_id {
        Some(agent) => {
            state.sessions.store().get_agent(agent).await.map_err(SessionError::from)?.map(|a| a.created_at_us)
        }
        None => None,
    };
    Ok(Json(serde_json::json!({
        "id": crate::subagent::agent_id_of(&record),
        "object": "agent",
        "name": name,
        "version": 1,
        "description": config.as_ref().and_then(|c| c.description.clone()),
        "created_at": secs(created_at.unwrap_or(record.created_at_us)),
        "updated_at": null,
        "harness": config.as_ref().map(|c| c.executor.harness.clone()),
        "tools": tools,
        "mcp_servers": [],
        "policies": config.as_ref().and_then(|c| c.policies.as_ref()).map(|p| p.0.iter().map(|(name, _)| name.clone()).collect::<Vec<_>>()).unwrap_or_default(),
        "skills": [],
        "terminals": [],
        "builtin": false,
        "config": crate::config::redacted(&record.config),
    })))
}
