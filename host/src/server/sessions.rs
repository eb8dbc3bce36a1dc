//! The session API: create, list, read, change and delete sessions, post their input events, fork them and list
//! their children. Each handler parses, calls the session layer and renders Omnigent's JSON shapes.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorEnvelope};
use super::extract::{ApiJson, ApiQuery, DeletedResponse, ListItemsQuery, ListResponse, list, page, session_id};
use super::placement::Placement;
use super::settings;
use crate::config::SessionConfig;
use crate::record::{SessionKind, SessionRecord, SessionStatus, secs};
use crate::session::{Ack, EventInput, Input, NewSession, Patch, SessionError, history_import};
use crate::stages::Stage;
use crate::store::{SessionFilter, SessionSort};

// Wire shapes

/// `POST /v1/sessions`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSessionRequest {
    pub title: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub labels: Map<String, Value>,
    /// The session config inline (Omnigent's agent YAML as JSON: `name`, `prompt`, `executor{harness, model}`, …).
    #[schema(value_type = Option<Object>)]
    pub config: Option<Value>,
    /// The session config as YAML text (ours: what the web UI's "paste a config" sends), instead of `config`.
    /// `${VAR}` is not expanded from the server's environment.
    pub config_yaml: Option<String>,
    /// A registered agent (id or name) whose config the session uses, instead of `config`.
    pub agent_id: Option<String>,
    /// Events applied right after creation, usually one user message (which starts a turn).
    #[serde(default)]
    pub initial_items: Vec<EventInput>,
    /// As `PATCH`: sent with each OpenAI-wire model call.
    pub reasoning_effort: Option<String>,
    /// As `PATCH`: the model of the session's turns.
    pub model_override: Option<String>,
    /// An absolute directory: the session's working directory (its `os_env.cwd`).
    pub workspace: Option<String>,
    /// `external` (the default: this server runs the session); `managed` sandboxes do not exist here (400).
    pub host_type: Option<String>,
    /// No hosts here: only `null`.
    pub host_id: Option<String>,
    /// A native harness's extra CLI arguments (its `executor.launch_args`).
    pub terminal_launch_args: Option<Vec<String>>,
    /// Another harness for this session than its config's (a builtin or a `.wasm` path).
    pub harness_override: Option<String>,
    /// Omnigent's cost-control and sub-agent routing modes and smart-routing hint: no meaning here, ignored.
    #[schema(value_type = Option<Object>)]
    #[allow(dead_code)] // accepted, not acted on
    pub cost_control_mode_override: Option<Value>,
    #[schema(value_type = Option<Object>)]
    #[allow(dead_code)] // accepted, not acted on
    pub subagent_routing_override: Option<Value>,
    #[schema(value_type = Option<Object>)]
    #[allow(dead_code)] // accepted, not acted on
    pub smart_routing_message: Option<Value>,
    /// Managed sandboxes, git worktrees and runner-side sub-agent spawns do not exist here: only `null`.
    #[schema(value_type = Option<Object>)]
    pub sandbox_provider: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub git: Option<Value>,
    pub parent_session_id: Option<String>,
    pub sub_agent_name: Option<String>,
    /// As `PATCH`: the registered runner whose machine runs this session's model calls and tools.
    pub runner_id: Option<String>,
}

/// `PATCH /v1/sessions/{id}`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSessionRequest {
    /// A new title; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub title: Option<Option<String>>,
    /// Merged into the labels; a `null` value removes that label.
    #[schema(value_type = Option<Object>)]
    pub labels: Option<Map<String, Value>>,
    /// `none|minimal|low|medium|high|xhigh|max`; `default` clears it. `null` or absent: unchanged.
    pub reasoning_effort: Option<String>,
    /// The model of the next turns; `default`, `off` or `reset` clears it.
    pub model_override: Option<String>,
    /// Omnigent's "do not inject `/model` into a live CLI": nothing is injected here, so it has no effect.
    #[allow(dead_code)] // accepted, not acted on
    pub silent: Option<bool>,
    /// Archived sessions leave the default list.
    pub archived: Option<bool>,
    /// The session's id inside the tool it wraps; set once.
    pub external_session_id: Option<String>,
    /// The registered runner (`GET /v1/runners`) whose machine makes this session's model calls and runs its
    /// tools from the next call on; `""` or `runner_local` unbinds it (this server runs them).
    pub runner_id: Option<String>,
}

/// Distinguishes an explicit `null` (`Some(None)`) from an absent field (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// The fields a session's list row and its snapshot share.
#[derive(Serialize, ToSchema)]
pub struct SessionSummary {
    pub id: String,
    pub object: &'static str,
    pub status: SessionStatus,
    pub created_at: i64,
    pub updated_at: i64,
    pub title: Option<String>,
    #[schema(value_type = Object)]
    pub labels: Map<String, Value>,
    pub kind: SessionKind,
    pub agent_id: Option<String>,
    pub agent_name: Option<String>,
    pub parent_session_id: Option<String>,
    /// Set only while `status` is `failed`.
    pub last_task_error: Option<crate::record::TaskError>,
    pub archived: bool,
    pub reasoning_effort: Option<String>,
    pub model_override: Option<String>,
    pub external_session_id: Option<String>,
    /// The runner the session is bound to, or [`LOCAL_RUNNER`] (this server runs its turns: always online).
    pub runner_id: Option<String>,
    pub runner_online: bool,
    /// No hosts here.
    pub host_id: Option<String>,
}

/// The runner every session of this server is bound to: the server process.
pub const LOCAL_RUNNER: &str = "runner_local";

/// A session snapshot (`GET /v1/sessions/{id}`).
#[derive(Serialize, ToSchema)]
pub struct SessionResponse {
    #[serde(flatten)]
    pub summary: SessionSummary,
    pub harness: Option<String>,
    pub llm_model: Option<String>,
    /// Full `response.elicitation_request` events still waiting for an answer.
    #[schema(value_type = Vec<Object>)]
    pub pending_elicitations: Vec<Value>,
    /// The response of the turn in progress, if any.
    pub active_response_id: Option<String>,
    /// Token usage so far, per model.
    #[schema(value_type = Object)]
    pub usage_by_model: Map<String, Value>,
    /// Sequence number of the newest event; a stream resumed with `Last-Event-ID: <last_seq>` continues from here.
    pub last_seq: i64,
    /// Transcript items, nested form (`data` holds the type-specific fields).
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
    /// What a running session waits on, when it is not the model or a tool: `runner_unavailable` — its runner is
    /// not connected, and the turn goes on when it is (Omnigent's field, which its native sessions also use).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_on: Option<&'static str>,
}

/// One row of `GET /v1/sessions`.
#[derive(Serialize, ToSchema)]
pub struct SessionListItem {
    #[serde(flatten)]
    pub summary: SessionSummary,
    pub pending_elicitations_count: usize,
    /// With `search_query`: the matching title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub search_snippet: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListSessionsQuery {
    /// 1..1000, default 20.
    pub limit: Option<u32>,
    /// Session id: return sessions after this one in the chosen order.
    pub after: Option<String>,
    /// Session id: return sessions before this one in the chosen order.
    pub before: Option<String>,
    /// `desc` (newest first, default) or `asc`.
    pub order: Option<String>,
    /// Only sessions in this state: `idle`, `running`, `failed` or `paused`.
    pub status: Option<String>,
    /// `created_at` (default) or `updated_at`.
    pub sort_by: Option<String>,
    /// Only sessions whose title contains this text (ASCII case ignored); rows then carry `search_snippet`.
    pub search_query: Option<String>,
    /// `default` (top-level sessions; the default, as Omnigent), `sub_agent` (children) or `any`.
    pub kind: Option<String>,
    /// Only sessions created from this agent (id).
    pub agent_id: Option<String>,
    /// Only sessions created from this agent (name).
    pub agent_name: Option<String>,
    /// `all` or `mine` (the same on a single-user server), `archived` (archived sessions only); `shared` is
    /// empty here.
    pub visibility: Option<String>,
    /// Include archived sessions (default false).
    pub include_archived: Option<bool>,
    /// Only sessions whose runner is connected: every session here (this server is their runner).
    #[allow(dead_code)] // accepted: true and false list the same sessions
    pub connected: Option<bool>,
    /// Only pinned sessions (`true`): nothing is pinned here.
    pub pinned: Option<bool>,
    /// Only sessions filed in this project: there are no projects here (`""`, unfiled: every session).
    pub project: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SnapshotQuery {
    /// Include the transcript (default true).
    pub include_items: Option<bool>,
    /// Accepted for Omnigent compatibility.
    #[allow(dead_code)]
    pub include_liveness: Option<bool>,
    /// Accepted for Omnigent compatibility.
    #[allow(dead_code)]
    pub refresh_state: Option<bool>,
    /// Accepted for Omnigent compatibility: the live status is the record's own here.
    #[allow(dead_code)]
    pub include_live_status: Option<bool>,
    /// Accepted for Omnigent compatibility: usage is part of the session row, never a separate read.
    #[allow(dead_code)]
    pub include_usage: Option<bool>,
}

fn config_str(config: &Value, pointer: &str) -> Option<String> {
    config.pointer(pointer).and_then(Value::as_str).map(str::to_string)
}

fn summary(record: SessionRecord) -> SessionSummary {
    let agent_id = crate::subagent::agent_id_of(&record);
    SessionSummary {
        id: record.id.to_string(),
        object: "session",
        status: record.status,
        created_at: secs(record.created_at_us),
        updated_at: secs(record.updated_at_us),
        agent_name: config_str(&record.config, "/name"),
        title: record.title,
        labels: record.labels,
        kind: record.kind,
        agent_id: Some(agent_id),
        parent_session_id: record.parent_session_id.map(|p| p.to_string()),
        last_task_error: record.last_task_error,
        archived: record.archived,
        reasoning_effort: record.settings.reasoning_effort,
        model_override: record.settings.model_override,
        external_session_id: record.settings.external_session_id,
        runner_online: record.settings.runner_id.is_none(),
        runner_id: Some(record.settings.runner_id.unwrap_or_else(|| LOCAL_RUNNER.to_string())),
        host_id: None,
    }
}

fn snapshot(record: SessionRecord, items: Vec<Value>) -> SessionResponse {
    SessionResponse {
        harness: config_str(&record.config, "/executor/harness"),
        llm_model: config_str(&record.config, "/executor/model"),
        pending_elicitations: record.policy.pending.clone(),
        active_response_id: record.active_response_id.clone(),
        usage_by_model: record.usage_by_model.clone(),
        last_seq: record.last_seq,
        items,
        blocked_on: None,
        summary: summary(record),
    }
}

pub(super) fn list_item(record: SessionRecord) -> SessionListItem {
    SessionListItem {
        pending_elicitations_count: record.policy.pending.len(),
        summary: summary(record),
        search_snippet: None,
    }
}

async fn render_snapshot(
    state: &AppState,
    record: SessionRecord,
    include_items: bool,
) -> Result<SessionResponse, ApiError> {
    let mut items = Vec::new();
    // A session with an empty log has no items: skip the query.
    if include_items && record.last_seq > 0 {
        let all = state.sessions.store().all_items(&record.id).await.map_err(SessionError::from)?;
        items = all.iter().map(|i| i.nested()).collect();
    }
    let online = match &record.settings.runner_id {
        Some(runner) => runner_online(state, runner).await,
        None => true,
    };
    let waits_for_runner = !online && record.status == SessionStatus::Running;
    let mut snapshot = snapshot(record, items);
    snapshot.summary.runner_online = online;
    snapshot.blocked_on = waits_for_runner.then_some("runner_unavailable");
    Ok(snapshot)
}

/// Whether a runner's tunnel is open, here or to another live replica.
async fn runner_online(state: &AppState, runner: &str) -> bool {
    state.runners.locate(runner).await != crate::remote::hub::Location::Offline
}

/// A `runner_id` to bind: Some(None) unbinds; a runner must be registered.
async fn runner_binding(state: &AppState, value: Option<String>) -> Result<Option<Option<String>>, ApiError> {
    let Some(runner) = value else { return Ok(None) };
    if runner.is_empty() || runner == LOCAL_RUNNER {
        return Ok(Some(None));
    }
    match state.sessions.store().get_runner(&runner).await.map_err(SessionError::from)? {
        Some(_) => Ok(Some(Some(runner))),
        None => Err(ApiError::invalid(format!(
            "runner_id {:?}: no registered runners have that id (GET /v1/runners lists them)",
            crate::ids::truncate(&runner, 80)
        ))),
    }
}

// Handlers

/// Create a session.
#[utoipa::path(post, path = "/v1/sessions", request_body = CreateSessionRequest,
    responses((status = 201, body = SessionResponse), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn create_session(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<CreateSessionRequest>,
) -> Result<(StatusCode, Json<SessionResponse>), ApiError> {
    let record = create(&state, req).await?;
    let body = render_snapshot(&state, record, true).await?;
    Ok((StatusCode::CREATED, Json(body)))
}

/// Creates a session from a request (JSON, or built from an uploaded bundle).
pub(super) async fn create(state: &AppState, req: CreateSessionRequest) -> Result<SessionRecord, ApiError> {
    let mut agent_id = None;
    let inline = match (req.config, req.config_yaml) {
        (Some(c), Some(_)) if !c.is_null() => return Err(ApiError::invalid("give either 'config' or 'config_yaml'")),
        (_, Some(text)) => Some(SessionConfig::yaml_from_client(&text).map_err(|e| ApiError::invalid(e.to_string()))?),
        (config, None) => config,
    };
    let config = match (req.agent_id, inline) {
        (Some(_), Some(c)) if !c.is_null() => {
            return Err(ApiError::invalid("give either 'agent_id' or 'config', not both"));
        }
        (Some(wanted), _) => {
            let agent =
                state.sessions.store().get_agent(&wanted).await.map_err(SessionError::from)?.ok_or_else(|| {
                    ApiError::not_found(format!(
                        "no agent '{}' (register one with POST /v1/agents)",
                        crate::ids::truncate(&wanted, 80)
                    ))
                })?;
            agent_id = Some(agent.id);
            Some(agent.config)
        }
        (None, config) => config,
    };
    for (field, given) in [
        ("sandbox_provider", req.sandbox_provider.is_some_and(|v| !v.is_null())),
        ("git", req.git.is_some_and(|v| !v.is_null())),
        ("parent_session_id", req.parent_session_id.is_some()),
        ("sub_agent_name", req.sub_agent_name.is_some()),
    ] {
        if given {
            return Err(ApiError::invalid(format!(
                "{field}: this server has no managed sandboxes, worktrees or runner-side sub-agent spawns (sub-agents \
                 are the config's `type: agent` tools)"
            )));
        }
    }
    let placement = Placement {
        workspace: req.workspace,
        host_type: req.host_type,
        host_id: req.host_id,
        terminal_launch_args: req.terminal_launch_args,
        harness: req.harness_override,
    };
    placement.check_host()?;
    let config = match config {
        None | Some(Value::Null) if placement.changes_config() => {
            return Err(ApiError::invalid("workspace, terminal_launch_args and harness_override need a config"));
        }
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(c @ Value::Object(_)) => {
            let mut checked = SessionConfig::from_json(c).map_err(|e| ApiError::invalid(format!("config: {e}")))?;
            placement.apply(&mut checked)?;
            check_policies(state, &checked).await?;
            checked.to_json()
        }
        Some(_) => return Err(ApiError::invalid("'config' must be a JSON object (the session config)")),
    };
    check_title(req.title.as_deref())?;
    let settings = crate::record::SessionSettings {
        reasoning_effort: settings::reasoning_effort(req.reasoning_effort)?.flatten(),
        model_override: settings::model_override(req.model_override)?.flatten(),
        external_session_id: None,
        runner_id: runner_binding(state, req.runner_id).await?.flatten(),
    };
    // A past conversation (an import) becomes the transcript as it was, without a turn; otherwise the items are
    // the first input.
    let (initial_items, history) = if history_import::is_history(&req.initial_items) {
        (Vec::new(), history_import::events(req.initial_items).map_err(ApiError::invalid)?)
    } else {
        let inputs = req
            .initial_items
            .into_iter()
            .enumerate()
            .map(|(i, raw)| Input::parse(raw).map_err(|e| ApiError::invalid(format!("initial_items[{i}]: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        (inputs, Vec::new())
    };
    let record = state
        .sessions
        .create(NewSession {
            title: req.title,
            labels: req.labels,
            config,
            agent_id,
            initial_items,
            parent: None,
            settings,
        })
        .await?;
    if history.is_empty() {
        return Ok(record);
    }
    // Nothing half-created: a session whose history could not be written is removed again.
    if let Err(e) = state.sessions.emit(&record.id, history, Vec::new()).await {
        let _ = state.sessions.delete(&record.id).await;
        return Err(e.into());
    }
    Ok(state.sessions.get(&record.id).await?)
}

/// Longest session title.
const MAX_TITLE_CHARS: usize = 1024;

fn check_title(title: Option<&str>) -> Result<(), ApiError> {
    title.map_or(Ok(()), |t| crate::ids::check_short_text("title", t, MAX_TITLE_CHARS).map_err(ApiError::invalid))
}

/// Loads every policy a config declares and checks its parameters with the component's `init`, so a bad
/// declaration is refused at creation rather than failing the first turn.
pub(super) async fn check_policies(state: &AppState, config: &SessionConfig) -> Result<(), ApiError> {
    let Some(policies) = &config.policies else { return Ok(()) };
    let env = &state.policies;
    env.check(policies).await.map_err(|e| ApiError::invalid(format!("config: {e}")))
}

/// List sessions, newest first by default.
#[utoipa::path(get, path = "/v1/sessions", params(ListSessionsQuery),
    responses((status = 200, body = ListResponse<SessionListItem>), (status = 400, body = ErrorEnvelope)))]
pub async fn list_sessions(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<ListSessionsQuery>,
) -> Result<Json<ListResponse<SessionListItem>>, ApiError> {
    let page = page(q.limit, 20, q.after, q.before, q.order, true)?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(SessionStatus::parse(s).ok_or_else(|| {
            ApiError::invalid(format!(
                "status must be one of idle, running, failed, paused; got '{}'",
                crate::ids::truncate(s, 40)
            ))
        })?),
    };
    let sort = match q.sort_by.as_deref() {
        None | Some("created_at") => SessionSort::Created,
        Some("updated_at") => SessionSort::Updated,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "sort_by must be created_at or updated_at; got '{}'",
                crate::ids::truncate(other, 40)
            )));
        }
    };
    // As Omnigent: sub-agents' sessions are listed under their parent (child_sessions), not among the user's.
    let kind = match q.kind.as_deref() {
        None => Some(SessionKind::Default),
        Some("any") => None,
        Some(k) if SessionKind::parse(k).is_some() => SessionKind::parse(k),
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "kind must be default, sub_agent or any; got '{}'",
                crate::ids::truncate(other, 40)
            )));
        }
    };
    // Archived sessions only on request, as Omnigent lists them.
    let mut archived = if q.include_archived == Some(true) { None } else { Some(false) };
    // No pins and no projects here.
    let no_such_group = q.pinned == Some(true) || q.project.as_deref().is_some_and(|p| !p.is_empty());
    let invisible = match q.visibility.as_deref() {
        None | Some("all") | Some("mine") => false,
        Some("archived") => {
            archived = Some(true);
            false
        }
        Some("shared") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "visibility must be all, mine, shared or archived; got '{}'",
                crate::ids::truncate(other, 40)
            )));
        }
    };
    let empty = no_such_group || invisible;
    let mut agent_id = q.agent_id;
    if let Some(name) = &q.agent_name {
        match state.sessions.store().get_agent(name).await.map_err(SessionError::from)? {
            Some(agent) if agent_id.as_ref().is_none_or(|id| *id == agent.id) => agent_id = Some(agent.id),
            _ => return Ok(Json(list(Vec::new(), false, |s: &SessionListItem| s.summary.id.clone()))),
        }
    }
    if empty {
        return Ok(Json(list(Vec::new(), false, |s: &SessionListItem| s.summary.id.clone())));
    }
    let title_contains = q.search_query.filter(|t| !t.trim().is_empty());
    if let Some(text) = &title_contains {
        crate::ids::check_short_text("search_query", text, MAX_TITLE_CHARS).map_err(ApiError::invalid)?;
    }
    let searching = title_contains.is_some();
    let filter = SessionFilter { status, kind, agent_id, archived, title_contains, sort };
    let (rows, has_more) = state.sessions.list(&page, filter).await?;
    let mut items: Vec<SessionListItem> = rows
        .into_iter()
        .map(|r| {
            let snippet = if searching { r.title.clone() } else { None };
            SessionListItem { search_snippet: snippet, ..list_item(r) }
        })
        .collect();
    // Whether each bound runner is reachable, asked once per runner on the page.
    let mut online: std::collections::HashMap<String, bool> = Default::default();
    for item in items.iter_mut().filter(|i| i.summary.runner_id.as_deref() != Some(LOCAL_RUNNER)) {
        let runner = item.summary.runner_id.clone().unwrap_or_default();
        let reachable = match online.get(&runner) {
            Some(known) => *known,
            None => *online.entry(runner.clone()).or_insert(runner_online(&state, &runner).await),
        };
        item.summary.runner_online = reachable;
    }
    Ok(Json(list(items, has_more, |s| s.summary.id.clone())))
}

/// A session's snapshot: state, pending elicitations and (by default) its items.
#[utoipa::path(get, path = "/v1/sessions/{id}", params(("id" = String, Path), SnapshotQuery),
    responses((status = 200, body = SessionResponse), (status = 404, body = ErrorEnvelope)))]
pub async fn get_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<SnapshotQuery>,
) -> Result<Json<SessionResponse>, ApiError> {
    let id = session_id(&id)?;
    let record = state.sessions.get(&id).await?;
    Ok(Json(render_snapshot(&state, record, q.include_items.unwrap_or(true)).await?))
}

/// Change a session's title, labels, archived flag, reasoning effort, model override or external session id.
#[utoipa::path(patch, path = "/v1/sessions/{id}", params(("id" = String, Path)), request_body = UpdateSessionRequest,
    responses((status = 200, body = SessionResponse), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn update_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<UpdateSessionRequest>,
) -> Result<Json<SessionResponse>, ApiError> {
    let id = session_id(&id)?;
    check_title(req.title.as_ref().and_then(Option::as_deref))?;
    let runner_id = runner_binding(&state, req.runner_id).await?;
    let patch = Patch {
        runner_id,
        title: req.title,
        labels: req.labels,
        archived: req.archived,
        reasoning_effort: settings::reasoning_effort(req.reasoning_effort)?,
        model_override: settings::model_override(req.model_override)?,
        external_session_id: settings::external_session_id(req.external_session_id)?,
    };
    let record = state.sessions.patch(&id, patch).await?;
    Ok(Json(render_snapshot(&state, record, true).await?))
}

/// Delete a session and its history. Open streams end with `[DONE]`.
#[utoipa::path(delete, path = "/v1/sessions/{id}", params(("id" = String, Path)),
    responses((status = 200, body = DeletedResponse), (status = 404, body = ErrorEnvelope)))]
pub async fn delete_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeletedResponse>, ApiError> {
    let id = session_id(&id)?;
    state.sessions.delete(&id).await?;
    // Its CLI and MCP servers (if it had any) go with it.
    state.natives.stop(&id).await;
    state.mcp.stop(&id).await;
    Ok(Json(DeletedResponse { id: id.to_string(), object: "conversation.deleted", deleted: true }))
}

/// A page of the transcript as flat items, in log order by default.
#[utoipa::path(get, path = "/v1/sessions/{id}/items", params(("id" = String, Path), ListItemsQuery),
    responses((status = 200, body = ListResponse<Object>), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn list_items(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListItemsQuery>,
) -> Result<Json<ListResponse<Value>>, ApiError> {
    let id = session_id(&id)?;
    let page = page(q.limit, 100, q.after, q.before, q.order, false)?;
    let (items, has_more) = state.sessions.items(&id, &page).await?;
    let flat = items.iter().map(|i| i.flat()).collect();
    Ok(Json(list(flat, has_more, |v: &Value| v["id"].as_str().unwrap_or_default().to_string())))
}

/// Send input to a session: `message`, `function_call_output`, `interrupt` or `approval`.
#[utoipa::path(post, path = "/v1/sessions/{id}/events", params(("id" = String, Path)), request_body = EventInput,
    responses((status = 202, body = Ack), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn post_event(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(raw): ApiJson<EventInput>,
) -> Result<(StatusCode, Json<Ack>), ApiError> {
    let acking = async {
        let id = session_id(&id)?;
        let input = Input::parse(raw).map_err(ApiError::invalid)?;
        let ack = state.sessions.post(&id, input).await?;
        Ok((StatusCode::ACCEPTED, Json(ack)))
    };
    tracing::Instrument::instrument(acking, Stage::Ack.span()).await
}

/// `POST /v1/sessions/{id}/fork`
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForkRequest {
    /// Default: "Fork of <source title>".
    pub title: Option<String>,
    /// Copy the history only through the end of this response (`resp_…`).
    pub up_to_response_id: Option<String>,
}

/// Fork a session: an independent, idle copy of its history (all of it, or through one response).
#[utoipa::path(post, path = "/v1/sessions/{id}/fork", params(("id" = String, Path)), request_body = ForkRequest,
    responses((status = 201, body = SessionResponse), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn fork_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<SessionResponse>), ApiError> {
    let id = session_id(&id)?;
    // The body is optional: an empty POST forks everything.
    let req = if body.iter().all(u8::is_ascii_whitespace) {
        ForkRequest { title: None, up_to_response_id: None }
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))?
    };
    check_title(req.title.as_deref())?;
    let record = state.sessions.fork(&id, req.title, req.up_to_response_id.as_deref()).await?;
    Ok((StatusCode::CREATED, Json(render_snapshot(&state, record, true).await?)))
}

/// A session's sub-agent child sessions, newest first.
#[utoipa::path(get, path = "/v1/sessions/{id}/child_sessions", params(("id" = String, Path)),
    responses((status = 200, body = ListResponse<Object>), (status = 404, body = ErrorEnvelope)))]
pub async fn child_sessions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ListResponse<Value>>, ApiError> {
    let id = session_id(&id)?;
    state.sessions.get(&id).await?;
    let children = state.sessions.store().list_children(&id, 1000).await.map_err(SessionError::from)?;
    let data: Vec<Value> = children.iter().map(crate::subagent::summary).collect();
    Ok(Json(list(data, false, |v| v["id"].as_str().unwrap_or_default().to_string())))
}
