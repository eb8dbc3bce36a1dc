//! The wire vocabulary: every event type a session's log holds (Omnigent's names) and one constructor per payload.
//!
//! Producers (the session actor, turns, sub-agents, files, comments, policy REST) build events here; readers (the
//! fold, `/v1/responses`, sub-agents, the CLI renderer) match on [`EventType`]. Nothing else spells an event name,
//! so the names and the payload shapes cannot drift apart. Payloads are Omnigent's (`reference/omnigent-api.md`).

use std::borrow::Cow;

use serde_json::{Map, Value, json};

use crate::ids::SessionId;
use crate::policy::StateChange;
use crate::record::{SessionStatus, TaskError};

macro_rules! event_types {
    ($($variant:ident = $name:literal,)*) => {
        /// An event type omnigent writes or reads.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum EventType {
            $($variant,)*
        }

        impl EventType {
            pub const ALL: &[EventType] = &[$(EventType::$variant,)*];

            /// The name on the wire (`event:` of an SSE frame, `type` of its data).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)*
                }
            }

            /// The known type of a stored event's name; None for a harness's own (`harness.<name>`).
            pub fn parse(name: &str) -> Option<EventType> {
                match name {
                    $($name => Some(EventType::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

event_types! {
    SessionStatus = "session.status",
    SessionTitle = "session.title",
    SessionModel = "session.model",
    SessionReasoningEffort = "session.reasoning_effort",
    SessionArchived = "session.archived",
    SessionExternalId = "session.external_session_id",
    SessionRunner = "session.runner",
    SessionLabels = "session.labels",
    SessionLabelsSet = "session.labels_set",
    SessionUsage = "session.usage",
    SessionInputConsumed = "session.input.consumed",
    SessionInterrupted = "session.interrupted",
    SessionHeartbeat = "session.heartbeat",
    McpStartup = "session.mcp_startup",
    PolicyState = "session.policy_state",
    PolicyCreated = "session.policy.created",
    PolicyUpdated = "session.policy.updated",
    PolicyDeleted = "session.policy.deleted",
    ChildCreated = "session.created",
    ChildUpdated = "session.child_session.updated",
    ResourceCreated = "session.resource.created",
    ResourceDeleted = "session.resource.deleted",
    CommentCreated = "session.comment.created",
    CommentUpdated = "session.comment.updated",
    CommentDeleted = "session.comment.deleted",
    ResponseCreated = "response.created",
    ResponseInProgress = "response.in_progress",
    ResponseCompleted = "response.completed",
    ResponseFailed = "response.failed",
    ResponseIncomplete = "response.incomplete",
    ResponseCancelled = "response.cancelled",
    OutputTextDelta = "response.output_text.delta",
    OutputItemDone = "response.output_item.done",
    OutputFileDone = "response.output_file.done",
    Retry = "response.retry",
    Error = "response.error",
    PolicyDenied = "response.policy_denied",
    ElicitationRequest = "response.elicitation_request",
    ElicitationResolved = "response.elicitation_resolved",
    ReasoningStarted = "response.reasoning.started",
    ReasoningTextDelta = "response.reasoning_text.delta",
    ReasoningSummaryTextDelta = "response.reasoning_summary_text.delta",
    CompactionInProgress = "response.compaction.in_progress",
    CompactionCompleted = "response.compaction.completed",
    CompactionFailed = "response.compaction.failed",
}

impl EventType {
    /// The event that ends a response.
    pub fn ends_response(self) -> bool {
        matches!(
            self,
            EventType::ResponseCompleted
                | EventType::ResponseFailed
                | EventType::ResponseIncomplete
                | EventType::ResponseCancelled
        )
    }

    /// Part of a response's own stream (`response.*`), as `/v1/responses` relays it.
    pub fn is_response_event(self) -> bool {
        self.as_str().starts_with("response.")
    }

    /// Whether Omnigent's clients know this event (its `ServerStreamEvent` union in 0.19.1). The others are this
    /// server's own — comments, labels, policy state and policy changes, archive, the external session id — which
    /// Omnigent's SDK would drop; a stream sends them only to a client that asks (`?extensions=true`).
    pub fn known_to_omnigent(self) -> bool {
        !matches!(
            self,
            EventType::SessionArchived
                | EventType::SessionExternalId
                | EventType::SessionRunner
                | EventType::SessionLabels
                | EventType::SessionLabelsSet
                | EventType::PolicyState
                | EventType::PolicyCreated
                | EventType::PolicyUpdated
                | EventType::PolicyDeleted
                | EventType::CommentCreated
                | EventType::CommentUpdated
                | EventType::CommentDeleted
        )
    }

    /// An approval request or its answer.
    pub fn is_elicitation(self) -> bool {
        matches!(self, EventType::ElicitationRequest | EventType::ElicitationResolved)
    }
}

/// The events of the server-wide feed of session summaries (`GET /v1/sessions/feed`, the web UI's live list).
/// Not a session's log: these carry no sequence number and are not replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeedEvent {
    /// Subscribed: every change from now on will arrive, so list the sessions now.
    Ready,
    /// A session was created or its summary changed: the data is its list row (`GET /v1/sessions`'s shape).
    Summary,
    /// A session was deleted: `{"id": …}`.
    Deleted,
    /// This subscriber fell behind and missed changes: list the sessions again.
    Resync,
}

impl FeedEvent {
    pub const fn as_str(self) -> &'static str {
        match self {
            FeedEvent::Ready => "feed.ready",
            FeedEvent::Summary => "session.summary",
            FeedEvent::Deleted => "session.deleted",
            FeedEvent::Resync => "feed.resync",
        }
    }
}

/// Event types a harness may emit itself, besides `harness.<name>`.
pub const HARNESS_EMITTABLE: [EventType; 3] =
    [EventType::ReasoningStarted, EventType::ReasoningTextDelta, EventType::ReasoningSummaryTextDelta];

/// The prefix of a harness's own event types.
pub const HARNESS_PREFIX: &str = "harness.";

/// An event to append to a session's log: its type and its payload (the log adds `type` and `sequence_number`).
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent {
    event_type: Cow<'static, str>,
    payload: Value,
}

impl NewEvent {
    pub fn new(event_type: EventType, payload: Value) -> NewEvent {
        NewEvent { event_type: Cow::Borrowed(event_type.as_str()), payload }
    }

    /// An event under a name that is not ours: a harness's own (checked by the turn) or a copied one (a fork).
    pub fn named(event_type: String, payload: Value) -> NewEvent {
        NewEvent { event_type: Cow::Owned(event_type), payload }
    }

    pub fn into_parts(self) -> (String, Value) {
        (self.event_type.into_owned(), self.payload)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Objects

/// Names of the `object` field of API answers.
pub mod object {
    pub const RESPONSE: &str = "response";
    pub const ITEM: &str = "conversation.item";
    pub const SESSION_POLICY: &str = "session.policy";
    pub const SESSION_POLICY_DELETED: &str = "session.policy.deleted";
    pub const SESSION_RESOURCE: &str = "session.resource";
    pub const SESSION_RESOURCE_DELETED: &str = "session.resource.deleted";
    pub const CHILD_SESSION: &str = "child_session";
}

/// A response's lifecycle states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseStatus {
    InProgress,
    Completed,
    Incomplete,
    Failed,
}

impl ResponseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ResponseStatus::InProgress => "in_progress",
            ResponseStatus::Completed => "completed",
            ResponseStatus::Incomplete => "incomplete",
            ResponseStatus::Failed => "failed",
        }
    }
}

/// Who answers a response: the agent (by name) and the LLM it calls.
#[derive(Clone, Debug, Default)]
pub struct ResponseModel {
    pub agent: String,
    pub llm: String,
}

/// Omnigent's response object, as `response.*` lifecycle events carry it: `model` is the agent's name (as
/// Omnigent's clients read it), `llm_model` the model it calls.
pub fn response_object(
    id: &str,
    status: ResponseStatus,
    model: &ResponseModel,
    created_at: i64,
    session: Option<&SessionId>,
) -> Value {
    json!({"id": id, "object": object::RESPONSE, "status": status.as_str(), "model": model.agent,
        "llm_model": model.llm,
        "created_at": created_at, "output": [], "background": false, "store": true,
        "conversation": {"id": session.map(SessionId::as_str)}})
}

/// The `response.failed` event data of a turn that failed before it had a response (e.g. no harness).
pub fn failed_before_start(session: &SessionId, error: &Value) -> Value {
    json!({"type": EventType::ResponseFailed.as_str(), "source": "execution", "response": {"id": null, "object": object::RESPONSE,
        "status": ResponseStatus::Failed.as_str(), "error": error, "conversation": {"id": session.as_str()}}})
}

/// A conversation item as `response.output_item.done` carries it: `fields` spread over the common ones.
pub fn item(id: &str, item_type: &str, status: &str, response_id: &str, created_at: i64, fields: Value) -> Value {
    let mut item = json!({"id": id, "type": item_type, "status": status, "response_id": response_id,
        "created_at": created_at, "object": object::ITEM});
    if let Value::Object(fields) = fields {
        for (k, v) in fields {
            item[k] = v;
        }
    }
    item
}

// ---------------------------------------------------------------------------------------------------------------
// Session events

pub fn status(session: &SessionId, status: SessionStatus, error: Option<&TaskError>) -> NewEvent {
    let mut payload = json!({"conversation_id": session.as_str(), "status": status.as_str()});
    if let Some(e) = error {
        payload["error"] = serde_json::to_value(e).unwrap_or_default();
    }
    NewEvent::new(EventType::SessionStatus, payload)
}

pub fn title(session: &SessionId, title: Option<&str>) -> NewEvent {
    NewEvent::new(EventType::SessionTitle, json!({"conversation_id": session.as_str(), "title": title}))
}

/// The model turns use from the next turn on (`model`: the override, or the config's when it is cleared).
pub fn model(session: &SessionId, model: Option<&str>, model_override: Option<&str>) -> NewEvent {
    NewEvent::new(
        EventType::SessionModel,
        json!({"conversation_id": session.as_str(), "model": model, "model_override": model_override}),
    )
}

/// The runner the session's turns run on from now on (`omnigent runner`; None: this server).
pub fn runner(session: &SessionId, runner_id: Option<&str>) -> NewEvent {
    NewEvent::new(EventType::SessionRunner, json!({"conversation_id": session.as_str(), "runner_id": runner_id}))
}

/// The reasoning effort model calls ask for (None: the model's default).
pub fn reasoning_effort(session: &SessionId, effort: Option<&str>) -> NewEvent {
    NewEvent::new(
        EventType::SessionReasoningEffort,
        json!({"conversation_id": session.as_str(), "reasoning_effort": effort}),
    )
}

/// The session was archived (it leaves the default list) or brought back.
pub fn archived(session: &SessionId, archived: bool) -> NewEvent {
    NewEvent::new(EventType::SessionArchived, json!({"conversation_id": session.as_str(), "archived": archived}))
}

/// The id of the session inside the tool it wraps, set once.
pub fn external_session_id(session: &SessionId, external_id: &str) -> NewEvent {
    NewEvent::new(
        EventType::SessionExternalId,
        json!({"conversation_id": session.as_str(), "external_session_id": external_id}),
    )
}

/// The session's labels, whole.
pub fn labels(session: &SessionId, labels: &Map<String, Value>) -> NewEvent {
    NewEvent::new(EventType::SessionLabels, json!({"conversation_id": session.as_str(), "labels": labels}))
}

/// Labels a policy sets (merged; a null value removes one).
pub fn labels_set(session: &SessionId, changes: &Map<String, Value>) -> NewEvent {
    NewEvent::new(EventType::SessionLabelsSet, json!({"conversation_id": session.as_str(), "set_labels": changes}))
}

/// The running totals after a turn.
pub fn usage(session: &SessionId, context_tokens: u64, total_cost_usd: f64, by_model: &Map<String, Value>) -> NewEvent {
    NewEvent::new(
        EventType::SessionUsage,
        json!({"conversation_id": session.as_str(), "context_tokens": context_tokens,
            "total_cost_usd": total_cost_usd, "usage_by_model": by_model}),
    )
}

/// A client's input, persisted as a transcript item.
pub fn input_consumed(item_id: &str, item_type: &str, data: Value, created_by: Option<String>) -> NewEvent {
    let mut inner = json!({"item_id": item_id, "type": item_type, "data": data});
    if let Some(by) = created_by {
        inner["created_by"] = by.into();
    }
    NewEvent::new(EventType::SessionInputConsumed, json!({"data": inner}))
}

pub fn interrupted(response_id: &str, requested_at: i64) -> NewEvent {
    NewEvent::new(
        EventType::SessionInterrupted,
        json!({"data": {"requested_at": requested_at, "response_id": response_id}}),
    )
}

/// The keep-alive frame of a stream (never stored).
/// A keep-alive frame; `server_time` is an ISO-8601 timestamp (Omnigent's SDK parses it as a datetime, and
/// drops a heartbeat whose time it cannot parse).
pub fn heartbeat(server_time: &str) -> Value {
    json!({"type": EventType::SessionHeartbeat.as_str(), "sequence_number": null, "server_time": server_time})
}

pub fn policy_state(session: &SessionId, updates: &[StateChange]) -> NewEvent {
    NewEvent::new(EventType::PolicyState, json!({"conversation_id": session.as_str(), "updates": updates}))
}

/// A REST-added policy, new (`created: true`) or changed.
pub fn policy_saved(session: &SessionId, policy: Value, created: bool) -> NewEvent {
    let event_type = if created { EventType::PolicyCreated } else { EventType::PolicyUpdated };
    NewEvent::new(event_type, json!({"conversation_id": session.as_str(), "policy": policy}))
}

pub fn policy_deleted(session: &SessionId, policy_id: &str) -> NewEvent {
    NewEvent::new(EventType::PolicyDeleted, json!({"conversation_id": session.as_str(), "policy_id": policy_id}))
}

/// A sub-agent's child session, announced on its parent's stream.
pub fn child_created(parent: &SessionId, child: &SessionId, agent_id: &str) -> NewEvent {
    NewEvent::new(
        EventType::ChildCreated,
        json!({"conversation_id": parent.as_str(), "child_session_id": child.as_str(),
            "parent_session_id": parent.as_str(), "agent_id": agent_id}),
    )
}

/// A child's new state (`summary`: Omnigent's `ChildSessionSummary`), on its parent's stream.
pub fn child_updated(parent: &SessionId, child: &SessionId, summary: Value) -> NewEvent {
    NewEvent::new(
        EventType::ChildUpdated,
        json!({"conversation_id": parent.as_str(), "child_session_id": child.as_str(), "child": summary}),
    )
}

/// A child's approval request or answer, mirrored on its parent's stream (`child` names where to answer).
pub fn child_elicitation(event_type: EventType, data: &Value, child: &SessionId) -> NewEvent {
    let mut mirrored = data.clone();
    if let Some(m) = mirrored.as_object_mut() {
        m.remove("type");
        m.remove("sequence_number");
        m.insert("child_session_id".into(), child.as_str().into());
    }
    NewEvent::new(event_type, mirrored)
}

/// An uploaded file (`resource`: Omnigent's `session.resource` object).
pub fn resource_created(resource: Value) -> NewEvent {
    NewEvent::new(EventType::ResourceCreated, json!({"resource": resource}))
}

/// A resource of the session went away (`resource_type`: `file` or `terminal`).
pub fn resource_deleted(session: &SessionId, resource_id: &str, resource_type: &str) -> NewEvent {
    NewEvent::new(
        EventType::ResourceDeleted,
        json!({"resource_id": resource_id, "resource_type": resource_type, "session_id": session.as_str()}),
    )
}

/// What happened to a comment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommentChangeKind {
    Created,
    Updated,
    Deleted,
}

pub fn comment(session: &SessionId, change: CommentChangeKind, comment: &Value) -> NewEvent {
    let event_type = match change {
        CommentChangeKind::Created => EventType::CommentCreated,
        CommentChangeKind::Updated => EventType::CommentUpdated,
        CommentChangeKind::Deleted => EventType::CommentDeleted,
    };
    NewEvent::new(event_type, json!({"conversation_id": session.as_str(), "comment": comment}))
}

// ---------------------------------------------------------------------------------------------------------------
// Response events

/// A response's lifecycle event (`response.created`, `.in_progress`, `.completed`, `.incomplete`, `.failed`).
pub fn response(event_type: EventType, response: Value) -> NewEvent {
    NewEvent::new(event_type, json!({"response": response}))
}

/// `response.failed`, with where the failure came from (`llm`, `harness`, `execution`, `tool`).
pub fn response_failed(response: Value, source: &str) -> NewEvent {
    NewEvent::new(EventType::ResponseFailed, json!({"response": response, "source": source}))
}

pub fn text_delta(delta: &str, message_id: &str) -> NewEvent {
    NewEvent::new(EventType::OutputTextDelta, json!({"delta": delta, "message_id": message_id}))
}

/// How the session's MCP servers started: `{name: {status: ready | failed, error?}}`.
pub fn mcp_startup(session: &SessionId, servers: &std::collections::BTreeMap<String, Value>) -> NewEvent {
    NewEvent::new(EventType::McpStartup, json!({"conversation_id": session.as_str(), "servers": servers}))
}

/// The model began reasoning (a summary of it follows) for the `reasoning` item `item_id`.
pub fn reasoning_started(item_id: &str) -> NewEvent {
    NewEvent::new(EventType::ReasoningStarted, json!({"item_id": item_id}))
}

/// A piece of the model's reasoning summary, for the `reasoning` item `item_id`.
pub fn reasoning_summary_delta(delta: &str, item_id: &str) -> NewEvent {
    NewEvent::new(EventType::ReasoningSummaryTextDelta, json!({"delta": delta, "item_id": item_id}))
}

/// A finished (or updated) transcript item; see [`item`].
pub fn output_item_done(item: Value) -> NewEvent {
    NewEvent::new(EventType::OutputItemDone, json!({"item": item}))
}

/// The transcript item type of a client's `compact` request (the turn it starts only compacts).
pub const COMPACTION_REQUEST: &str = "compaction_request";
/// The transcript item type of a summary of the older conversation.
pub const COMPACTION: &str = "compaction";

/// A compaction began (Omnigent's event has no fields).
pub fn compaction_in_progress() -> NewEvent {
    NewEvent::new(EventType::CompactionInProgress, json!({}))
}

/// A compaction is in the transcript: what it summarized, with which model, in how many tokens.
pub fn compaction_completed(summary: &str, model: &str, total_tokens: u64, compacted_messages: usize) -> NewEvent {
    NewEvent::new(
        EventType::CompactionCompleted,
        json!({"total_tokens": total_tokens, "summary": summary, "summary_model": model,
            "compacted_messages": compacted_messages}),
    )
}

/// A compaction did not happen (the reason follows as a `response.error`).
pub fn compaction_failed() -> NewEvent {
    NewEvent::new(EventType::CompactionFailed, json!({}))
}

/// A file a harness wrote.
pub fn output_file_done(file_id: &str, filename: &str, content_type: &str) -> NewEvent {
    NewEvent::new(
        EventType::OutputFileDone,
        json!({"file_id": file_id, "filename": filename, "content_type": content_type}),
    )
}

/// A model call is retried after an error.
pub fn retry(attempt: u32, max_attempts: u32, delay_seconds: f64, code: &str, message: &str) -> NewEvent {
    NewEvent::new(
        EventType::Retry,
        json!({"source": "llm", "attempt": attempt, "max_attempts": max_attempts, "delay_seconds": delay_seconds,
            "error": {"code": code, "message": message}}),
    )
}

/// Where an error came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorSource<'a> {
    Llm,
    Tool(&'a str),
    /// The runner a session is bound to (`omnigent runner`).
    Runner,
}

pub fn error(source: ErrorSource<'_>, code: &str, message: &str) -> NewEvent {
    let payload = match source {
        ErrorSource::Llm => json!({"source": "llm", "error": {"code": code, "message": message}}),
        ErrorSource::Runner => json!({"source": "runner", "error": {"code": code, "message": message}}),
        ErrorSource::Tool(name) => {
            json!({"source": "tool", "tool_name": name, "error": {"code": code, "message": message}})
        }
    };
    NewEvent::new(EventType::Error, payload)
}

/// A policy (or a human through one) denied a phase of a turn.
pub fn policy_denied(
    session: &SessionId,
    response_id: &str,
    phase: &str,
    policy: &str,
    reason: &str,
    tool: Option<&str>,
) -> NewEvent {
    NewEvent::new(
        EventType::PolicyDenied,
        json!({"conversation_id": session.as_str(), "reason": reason, "phase": phase,
            "policy_name": policy, "tool_name": tool, "response_id": response_id}),
    )
}

/// What an approval request asks, as `response.elicitation_request` carries it.
pub struct ElicitationRequest<'a> {
    pub elicitation_id: &'a str,
    pub message: &'a str,
    pub phase: &'a str,
    pub policies: &'a [String],
    pub content_preview: &'a str,
    pub tool_name: Option<&'a str>,
    pub call_id: Option<&'a str>,
    pub session: &'a SessionId,
    pub response_id: &'a str,
    pub expires_at: i64,
}

impl ElicitationRequest<'_> {
    /// The event's payload (kept whole in the journal, so a resumed turn can show it again).
    pub fn payload(&self) -> Value {
        json!({"elicitation_id": self.elicitation_id, "method": "elicitation/create", "params": {
            "mode": "form", "message": self.message, "requestedSchema": {"type": "object", "properties": {}},
            "phase": self.phase, "policy_name": self.policies.first(), "policy_names": self.policies,
            "content_preview": self.content_preview, "tool_name": self.tool_name, "call_id": self.call_id,
            "target_session_id": self.session.as_str(), "response_id": self.response_id,
            "expires_at": self.expires_at}})
    }
}

/// What an MCP server asks a human during one of its tool calls, as `response.elicitation_request` carries it:
/// MCP's own form (`message`, `requestedSchema`), answered with `content` that fits the schema.
pub struct ServerQuestion<'a> {
    pub elicitation_id: &'a str,
    /// The config's key of the MCP server.
    pub server: &'a str,
    pub message: &'a str,
    pub requested_schema: &'a Value,
    /// The tool call (`<server>__<tool>`) the question belongs to.
    pub tool_name: &'a str,
    pub call_id: &'a str,
    pub session: &'a SessionId,
    pub response_id: &'a str,
    pub expires_at: i64,
}

impl ServerQuestion<'_> {
    pub fn payload(&self) -> Value {
        json!({"elicitation_id": self.elicitation_id, "method": "elicitation/create", "params": {
            "mode": "form", "message": self.message, "requestedSchema": self.requested_schema,
            "phase": MCP_ELICITATION_PHASE, "policy_name": format!("mcp:{}", self.server), "mcp_server": self.server,
            "tool_name": self.tool_name, "call_id": self.call_id, "target_session_id": self.session.as_str(),
            "response_id": self.response_id, "expires_at": self.expires_at}})
    }
}

/// The `phase` of an MCP server's question (a policy's question names the phase it judges).
pub const MCP_ELICITATION_PHASE: &str = "mcp_elicitation";

pub fn elicitation_request(payload: Value) -> NewEvent {
    NewEvent::new(EventType::ElicitationRequest, payload)
}

/// A human's answer (`action`: accept, decline or cancel).
pub fn elicitation_resolved(elicitation_id: &str, action: Value, content: Option<Value>) -> NewEvent {
    let mut resolved = json!({"elicitation_id": elicitation_id, "action": action});
    if let Some(content) = content {
        resolved["content"] = content;
    }
    NewEvent::new(EventType::ElicitationResolved, resolved)
}

// ---------------------------------------------------------------------------------------------------------------
// Reading events

/// The response an event belongs to, if it names one.
pub fn response_id_of(data: &Value) -> Option<&str> {
    data.pointer("/response/id").or_else(|| data.pointer("/item/response_id")).and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for &t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
            assert!(seen.insert(t.as_str()), "{} twice", t.as_str());
        }
        assert_eq!(EventType::parse("harness.progress"), None);
    }

    #[test]
    fn terminal_events_are_the_four_ends() {
        let ends: Vec<_> = EventType::ALL.iter().filter(|t| t.ends_response()).map(|t| t.as_str()).collect();
        assert_eq!(ends, ["response.completed", "response.failed", "response.incomplete", "response.cancelled"]);
    }

    #[test]
    fn an_item_spreads_its_fields() {
        let item = item("fc_1", "function_call", "completed", "resp_1", 7, json!({"name": "shell"}));
        assert_eq!(item["name"], "shell");
        assert_eq!(item["object"], "conversation.item");
        assert_eq!(item["response_id"], "resp_1");
    }
}
