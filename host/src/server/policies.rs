//! Policy and elicitation endpoints: answering an approval, a session's policies (list / add / change / remove),
//! and the registry of builtin policies with their parameter schemas.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ErrorCode, ErrorEnvelope};
use super::extract::{ApiJson, ListResponse, list, session_id};
use crate::config::SessionConfig;
use crate::policy::{Level, PolicyDecl, builtin_for, handlers_of};
use crate::protocol::{self, object};
use crate::record::{SessionRecord, now_us, secs};
use crate::session::{Ack, ApprovalAction, Input, SessionError};

/// `POST /v1/sessions/{id}/elicitations/{eid}/resolve` (MCP's `ElicitResult`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// `accept` approves; `decline` and `cancel` deny.
    pub action: ApprovalAction,
    #[schema(value_type = Option<Object>)]
    pub content: Option<Value>,
}

/// Answer a pending elicitation. A sub-agent's request (mirrored on its parent's stream with
/// `params.target_session_id`) can be answered through the parent too.
#[utoipa::path(post, path = "/v1/sessions/{id}/elicitations/{eid}/resolve", params(("id" = String, Path), ("eid" = String, Path)),
    request_body = ResolveRequest,
    responses((status = 202, body = Ack), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn resolve(
    State(state): State<AppState>,
    Path((id, eid)): Path<(String, String)>,
    ApiJson(req): ApiJson<ResolveRequest>,
) -> Result<(StatusCode, Json<Ack>), ApiError> {
    let id = session_id(&id)?;
    let input = || Input::Approval { elicitation_id: eid.clone(), action: req.action, content: req.content.clone() };
    match state.sessions.post(&id, input()).await {
        Err(SessionError::NoSuchElicitation(_)) => {
            // Maybe a child's: its parent's stream showed it.
            for child in state.sessions.store().list_children(&id, 1000).await.map_err(SessionError::from)? {
                if child.policy.pending(&eid).is_some() {
                    let ack = state.sessions.post(&child.id, input()).await?;
                    return Ok((StatusCode::ACCEPTED, Json(ack)));
                }
            }
            Err(SessionError::NoSuchElicitation(eid.clone()).into())
        }
        other => Ok((StatusCode::ACCEPTED, Json(other?))),
    }
}

/// A pending elicitation (for an approval page), or `{"status": "resolved"}` once answered in this turn.
#[utoipa::path(get, path = "/v1/sessions/{id}/elicitations/{eid}", params(("id" = String, Path), ("eid" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorEnvelope)))]
pub async fn get_elicitation(
    State(state): State<AppState>,
    Path((id, eid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = session_id(&id)?;
    let record = state.sessions.get(&id).await?;
    if let Some(request) = record.policy.pending(&eid) {
        let p = &request["params"];
        return Ok(Json(
            json!({"status": "pending", "elicitation_id": eid, "message": p["message"], "phase": p["phase"],
            "policy_name": p["policy_name"], "content_preview": p["content_preview"], "expires_at": p["expires_at"]}),
        ));
    }
    if let Some(action) = record.policy.resolved.get(&eid) {
        return Ok(Json(json!({"status": "resolved", "elicitation_id": eid, "action": action})));
    }
    Err(SessionError::NoSuchElicitation(eid).into())
}

/// `POST /v1/sessions/{id}/policies`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePolicyRequest {
    /// Unique in the session.
    pub name: String,
    /// Omnigent's `python` (or `function`, `component`): informational.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// A builtin policy (see `GET /v1/policy-registry`), by Omnigent's handler name or ours.
    pub handler: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub factory_params: Map<String, Value>,
    /// Phase selectors (`tool_call`, `tool_call:shell`, …); default: every phase.
    #[serde(default)]
    pub on: Vec<String>,
    /// Seconds before an unanswered ask counts as declined (default 86 400).
    pub ask_timeout: Option<u64>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// `PATCH /v1/sessions/{id}/policies/{pid}`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePolicyRequest {
    pub name: Option<String>,
    pub handler: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub factory_params: Option<Map<String, Value>>,
    pub on: Option<Vec<String>>,
    pub ask_timeout: Option<u64>,
    pub enabled: Option<bool>,
}

fn entry(name: &str, decl: &PolicyDecl, level: Level) -> Value {
    json!({"id": null, "object": object::SESSION_POLICY, "name": name, "type": decl.kind.clone().unwrap_or_else(|| "component".into()),
        "handler": decl.handler, "component": decl.component, "factory_params": decl.factory_params, "on": decl.on,
        "enabled": decl.enabled, "source": level.as_str()})
}

/// Checks a declaration by loading it and running its `init` with the parameters.
async fn check(state: &AppState, name: &str, decl: &PolicyDecl) -> Result<(), ApiError> {
    let one = crate::policy::PolicyMap(vec![(name.to_string(), decl.clone())]);
    state.policies.check(&one).await.map_err(ApiError::invalid)
}

/// Over REST only builtins: a path would let a client make the server read any file.
fn require_builtin(handler: &str) -> Result<(), ApiError> {
    match builtin_for(handler) {
        Some(_) => Ok(()),
        None => Err(ApiError::invalid(format!(
            "no builtin policy '{}' (see GET /v1/policy-registry); custom .wasm policies are declared in the session YAML",
            crate::ids::truncate(handler, 120)
        ))),
    }
}

/// The error when another of the session's policies has `policy`'s name.
fn name_taken(record: &SessionRecord, policy: &Value) -> Option<SessionError> {
    record.policy.policies.iter().any(|p| p["name"] == policy["name"] && p["id"] != policy["id"]).then(|| {
        SessionError::AlreadyExists(format!(
            "this session already has a policy named '{}'",
            policy["name"].as_str().unwrap_or("")
        ))
    })
}

/// A session's policies in the order they are judged: the session's own, its config's (`source: spec`), then the
/// server's defaults (`source: admin`).
#[utoipa::path(get, path = "/v1/sessions/{id}/policies", params(("id" = String, Path)),
    responses((status = 200, body = ListResponse<Object>), (status = 404, body = ErrorEnvelope)))]
pub async fn list_policies(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ListResponse<Value>>, ApiError> {
    let id = session_id(&id)?;
    let record = state.sessions.get(&id).await?;
    let mut data: Vec<Value> = record.policy.policies.clone();
    if let Ok(config) = serde_json::from_value::<SessionConfig>(record.config.clone()) {
        for (name, decl) in config.policies.iter().flat_map(|p| p.0.iter()) {
            data.push(entry(name, decl, Level::Agent));
        }
    }
    for (name, decl) in &state.policies.server.0 {
        data.push(entry(name, decl, Level::Server));
    }
    Ok(Json(list(data, false, |v| v["id"].as_str().unwrap_or_default().to_string())))
}

/// Add a policy to a session (judged before its config's and the server's). Takes effect from the next turn.
#[utoipa::path(post, path = "/v1/sessions/{id}/policies", params(("id" = String, Path)), request_body = CreatePolicyRequest,
    responses((status = 200, body = Object), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn create_policy(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<CreatePolicyRequest>,
) -> Result<Json<Value>, ApiError> {
    let id = session_id(&id)?;
    let name = req.name.trim().to_string();
    if name.is_empty() || name.len() > 128 {
        return Err(ApiError::invalid("name must be 1 to 128 characters"));
    }
    require_builtin(&req.handler)?;
    let now = secs(now_us());
    let object = json!({"id": format!("pol_{}", crate::ids::random_hex()), "object": object::SESSION_POLICY, "name": name,
        "type": req.kind.unwrap_or_else(|| "component".into()), "handler": req.handler, "factory_params": req.factory_params,
        "on": req.on, "ask_timeout": req.ask_timeout, "enabled": req.enabled, "source": "session", "created_at": now, "updated_at": now});
    let decl = PolicyDecl::of_object(&object).ok_or_else(|| ApiError::invalid("invalid policy"))?;
    check(&state, &name, &decl).await?;
    let stored = object.clone();
    let change = Box::new(move |record: &SessionRecord| {
        if let Some(taken) = name_taken(record, &stored) {
            return Err(taken);
        }
        Ok(vec![protocol::policy_saved(&record.id, stored, true)])
    });
    state.sessions.control(&id, change).await?;
    Ok(Json(object))
}

fn find<'a>(record: &'a SessionRecord, pid: &str) -> Result<&'a Value, ApiError> {
    record
        .policy
        .policies
        .iter()
        .find(|p| p["id"] == pid)
        .ok_or_else(|| ApiError::not_found(format!("no policy '{}' in this session", crate::ids::truncate(pid, 80))))
}

/// One of the session's own policies.
#[utoipa::path(get, path = "/v1/sessions/{id}/policies/{pid}", params(("id" = String, Path), ("pid" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorEnvelope)))]
pub async fn get_policy(
    State(state): State<AppState>,
    Path((id, pid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let record = state.sessions.get(&session_id(&id)?).await?;
    Ok(Json(find(&record, &pid)?.clone()))
}

/// Change a session policy (name, handler, parameters, selectors, enabled).
#[utoipa::path(patch, path = "/v1/sessions/{id}/policies/{pid}", params(("id" = String, Path), ("pid" = String, Path)),
    request_body = UpdatePolicyRequest,
    responses((status = 200, body = Object), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope)))]
pub async fn update_policy(
    State(state): State<AppState>,
    Path((id, pid)): Path<(String, String)>,
    ApiJson(req): ApiJson<UpdatePolicyRequest>,
) -> Result<Json<Value>, ApiError> {
    let id = session_id(&id)?;
    let record = state.sessions.get(&id).await?;
    let mut object = find(&record, &pid)?.clone();
    if let Some(handler) = req.handler {
        require_builtin(&handler)?;
        object["handler"] = handler.into();
    }
    if let Some(name) = req.name {
        object["name"] = name.trim().to_string().into();
    }
    if let Some(p) = req.factory_params {
        object["factory_params"] = Value::Object(p);
    }
    if let Some(on) = req.on {
        object["on"] = json!(on);
    }
    if let Some(t) = req.ask_timeout {
        object["ask_timeout"] = t.into();
    }
    if let Some(e) = req.enabled {
        object["enabled"] = e.into();
    }
    object["updated_at"] = secs(now_us()).into();
    let name = object["name"].as_str().unwrap_or_default().to_string();
    check(&state, &name, &PolicyDecl::of_object(&object).ok_or_else(|| ApiError::invalid("invalid policy"))?).await?;
    let stored = object.clone();
    let change = Box::new(move |record: &SessionRecord| {
        if !record.policy.policies.iter().any(|p| p["id"] == stored["id"]) {
            return Err(SessionError::Invalid("the policy was deleted meanwhile".into()));
        }
        if let Some(taken) = name_taken(record, &stored) {
            return Err(taken);
        }
        Ok(vec![protocol::policy_saved(&record.id, stored, false)])
    });
    state.sessions.control(&id, change).await?;
    Ok(Json(object))
}

/// Remove a session policy (idempotent).
#[utoipa::path(delete, path = "/v1/sessions/{id}/policies/{pid}", params(("id" = String, Path), ("pid" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_policy(
    State(state): State<AppState>,
    Path((id, pid)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id = session_id(&id)?;
    let target = pid.clone();
    let change = Box::new(move |record: &SessionRecord| {
        Ok(if record.policy.policies.iter().any(|p| p["id"] == target) {
            vec![protocol::policy_deleted(&record.id, &target)]
        } else {
            Vec::new()
        })
    });
    state.sessions.control(&id, change).await?;
    Ok(Json(json!({"id": pid, "object": object::SESSION_POLICY_DELETED, "deleted": true})))
}

/// The server-wide default policies (`omnigent server --policies FILE`), judged after every session's own and its
/// config's. Read-only here: change the file and restart.
#[utoipa::path(get, path = "/v1/policies", responses((status = 200, body = ListResponse<Object>)))]
pub async fn server_policies(State(state): State<AppState>) -> Json<ListResponse<Value>> {
    let data: Vec<Value> = state
        .policies
        .server
        .0
        .iter()
        .map(|(name, decl)| {
            let mut object = entry(name, decl, Level::Server);
            object["object"] = "default_policy".into();
            object
        })
        .collect();
    Json(list(data, false, |v| v["name"].as_str().unwrap_or_default().to_string()))
}

/// The builtin policies: handler names (Omnigent's and ours), description and parameter schema.
#[utoipa::path(get, path = "/v1/policy-registry", responses((status = 200, body = ListResponse<Object>)))]
pub async fn registry(State(state): State<AppState>) -> Result<Json<ListResponse<Value>>, ApiError> {
    let env = &state.policies;
    let mut data = Vec::new();
    for (component, _) in omnigent_runtime::BUILTIN_POLICIES {
        let decl = PolicyDecl::builtin(component);
        let loaded = env.component(&decl).await.map_err(|e| ApiError::new(ErrorCode::InternalError, e))?;
        let d = loaded
            .describe(Default::default())
            .await
            .map_err(|e| ApiError::new(ErrorCode::InternalError, e.to_string()))?;
        let handlers = handlers_of(component);
        data.push(json!({"handler": handlers.first(), "name": d.name, "kind": "component", "component": component,
            "description": d.description, "params_schema": serde_json::from_str::<Value>(&d.params_schema).unwrap_or(Value::Null),
            "aliases": handlers}));
    }
    Ok(Json(list(data, false, |v| v["handler"].as_str().unwrap_or_default().to_string())))
}
